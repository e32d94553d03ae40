"""What the client needs from an operating system, and which one it is running on.

The client's core (``service``, ``guards``, ``journal``) is written once
against two small interfaces: ``HostNetwork`` (routes, MTU, metrics;
``hostnet.py``) and ``VirtualAdapter`` below (the player's virtual Ethernet
interface). A ``ClientPlatform`` hands out both:

    platform = current_platform(private_network=False)
    with platform.open_host_network() as hostnet:
        async with platform.open_adapter(None, mac=mac, mtu=mtu) as adapter:
            frames = await adapter.receive_batch()

Linux: ``lanparty.client.linux`` (/dev/net/tun, netlink). Windows:
``lanparty.client.windows`` (TAP-Windows6, IP Helper). Each is imported only
on its own OS, so nothing Windows-only is imported on Linux by accident.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Protocol

from lanparty.client.hostnet import HostNetwork
from lanparty.errors import ConfigError


class VirtualAdapter(Protocol):
    """The player's virtual Ethernet interface, open and up, carrying whole frames."""

    @property
    def name(self) -> str:
        """The name a user knows it by (Linux: the interface name; Windows: the connection name)."""
        ...

    @property
    def index(self) -> int:
        """The back end's interface number (Linux ifindex, Windows LUID): ``HostNetwork``'s
        ``interface_index``, what routes, metrics and the journal refer to."""
        ...

    @property
    def mtu(self) -> int: ...

    @property
    def dropped_frames(self) -> int:
        """Frames ``send_batch`` could not hand to the operating system."""
        ...

    @property
    def discarded_frames(self) -> int:
        """Frames from the PC read and thrown away while discarding (``set_discarding``)."""
        ...

    async def connect_media(self) -> None:
        """Connect the link that ``open_adapter(connect_media=False)`` left down.

        Until then the OS uses no route through the adapter (Windows), so
        the relay's route can be pinned as the host had it. Nothing to do
        when it is connected already.
        """
        ...

    def set_discarding(self, discarding: bool) -> None:
        """While True, frames from the PC are read but thrown away (and counted).

        For while no session carries them: left unread, they wait in the
        OS and reach the next session, stale, as a burst. ``receive_batch``
        does not return meanwhile; a back end that reads only inside it
        (Linux) needs a task waiting in it to drain the adapter.
        """
        ...

    def ipv4_address(self) -> str | None:
        """The adapter's (first) IPv4 address, None before it has one (DHCP still going)."""
        ...

    async def receive_batch(self) -> list[bytes]:
        """Wait for the frames the PC sent onto the LAN; at least one, at most a batch."""
        ...

    def send_batch(self, frames: Sequence[bytes]) -> int:
        """Give ``frames`` to the PC as received from the LAN; returns how many were taken.

        Never waits: it runs inside the transport's pump (the frames of one
        wake-up, no task switch). What the OS cannot take now is handed to a
        bounded queue the adapter drains by itself, or dropped and counted
        in ``dropped_frames``. ``HostNetworkError`` when the adapter went away.
        """
        ...


class TapAddressKeeper(Protocol):
    """Gives the adapter its IPv4 address as the party LAN hands them out (DHCP)."""

    async def run(self) -> None:
        """Take the address and keep it (renewals), until cancelled."""
        ...

    async def release(self) -> bool:
        """Give the address back to the LAN's server; whether a release was sent."""
        ...

    def close(self) -> None:
        """Let go of what ``run`` opened (after ``release``, or instead of it)."""
        ...


class ClientPlatform(Protocol):
    """One operating system's back end."""

    default_adapter_name: str | None
    """``--tap``'s default; None: the only adapter of the right kind."""

    def ensure_privileges(self, argv: Sequence[str]) -> bool:
        """Make sure the process may change the host's network.

        True: go on. False: another, privileged, process was started with
        ``argv`` in our place, and this one should exit 0. ``ConfigError``
        with what to do when neither is possible.
        """
        ...

    def open_host_network(self) -> AbstractContextManager[HostNetwork]: ...

    def open_adapter(
        self, name: str | None, *, mac: bytes, mtu: int, connect_media: bool = True
    ) -> AbstractAsyncContextManager[VirtualAdapter]:
        """The virtual adapter ``name`` (or the default one) with ``mac`` and ``mtu``, up.

        ``connect_media`` False: its link waits for ``connect_media()``.
        ``ConfigError`` when it does not exist, cannot be set up as asked, or
        is in use; the message says what the player can do about it.
        """
        ...

    def tap_address_keeper(
        self, adapter: VirtualAdapter, *, mac: bytes, use_party_dns: bool, metric: int | None
    ) -> TapAddressKeeper | None:
        """What takes the adapter's IPv4 address by DHCP (address and prefix only; its DNS
        servers only with ``use_party_dns``); None when the OS does it itself (Windows)."""
        ...


def current_platform(*, private_network: bool = False) -> ClientPlatform:
    """The back end of the OS we run on; ``ConfigError`` for one we do not support."""
    if sys.platform == "linux":
        if private_network:
            raise ConfigError("--private-network is about Windows network profiles; Linux has none")
        from lanparty.client.linux.platform import LinuxPlatform  # noqa: PLC0415

        return LinuxPlatform()
    if sys.platform == "win32":
        from lanparty.client.windows.platform import WindowsPlatform  # noqa: PLC0415

        return WindowsPlatform(private_network=private_network)
    raise ConfigError(
        f"the lanparty client runs on Linux and Windows, not on {sys.platform}; "
        "relay and gateway need only Linux"
    )
