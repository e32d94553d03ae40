"""The Windows back end: a TAP-Windows6 adapter and the host's routes through IP Helper.

``current_platform()`` constructs ``WindowsPlatform`` on Windows only.

- ``ensure_privileges``: elevated, go on; otherwise start an elevated copy
  (the User Account Control prompt) and let this process exit
  (``elevation.py``).
- ``open_host_network``: ``hostnet.WindowsHostNetwork`` (IP Helper), with
  a console control handler for as long as it is open, so that closing the
  window (or logging off) stops the client as Ctrl+C does, and Windows
  waits for the restore (``console.py``).
- ``open_adapter``: the TAP-Windows6 adapter found in the registry
  (``adapters.py``), opened and checked (``tap.py``); with
  ``private_network``, its network profile is also Private while it is
  open (``profile.py``).

Windows only: importing this module elsewhere raises ``ImportError``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import (
    AbstractContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)

from lanparty.client.hostnet import HostNetwork
from lanparty.client.platform import TapAddressKeeper, VirtualAdapter
from lanparty.client.windows.adapters import adapters_to_try, find_tap_adapters

if sys.platform != "win32":
    raise ImportError(f"lanparty.client.windows.platform needs Windows; this is {sys.platform}")

from lanparty.client.windows import console, elevation
from lanparty.client.windows.registry import WindowsRegistry
from lanparty.client.windows.tap import open_windows_tap

__all__ = ["WindowsPlatform"]


class WindowsPlatform:
    default_adapter_name: str | None = None  # the only TAP-Windows adapter (adapters_to_try)

    def __init__(self, *, private_network: bool = False) -> None:
        self.private_network = private_network

    def ensure_privileges(self, argv: Sequence[str]) -> bool:
        if elevation.is_elevated():
            return True
        if elevation.relaunched_but_not_elevated():
            raise elevation.not_elevated_after_relaunch()
        elevation.relaunch_elevated(argv)
        print(
            "lanparty-client: continuing as administrator in a new window; this one is done",
            file=sys.stderr,
        )
        return False

    def open_host_network(self) -> AbstractContextManager[HostNetwork]:
        return _host_network_restored_on_close()

    @asynccontextmanager
    async def open_adapter(
        self,
        name: str | None,
        *,
        mac: bytes,
        mtu: int,
        max_frame: int | None = None,
        connect_media: bool = True,
    ) -> AsyncIterator[VirtualAdapter]:
        """``ClientPlatform.open_adapter``, and ``max_frame``, an option of Windows' own.

        ``max_frame``: the room's (default: from ``mtu``). ``connect_media``
        False: the TAP's link stays down (no route through it is used)
        until ``tap.connect_media()``, so that the relay's route can be
        pinned first (``run_client`` does).
        """
        candidates = adapters_to_try(find_tap_adapters(WindowsRegistry()), name, mac=mac)
        async with AsyncExitStack() as stack:
            tap = await stack.enter_async_context(
                open_windows_tap(
                    candidates,
                    chosen_by_user=name is not None,
                    mac=mac,
                    mtu=mtu,
                    max_frame=max_frame,
                    connect_media=connect_media,
                )
            )
            if self.private_network:
                from lanparty.client.windows.profile import (  # noqa: PLC0415
                    private_network_profile,
                )

                await stack.enter_async_context(private_network_profile(tap.interface_index))
            yield tap

    def tap_address_keeper(
        self, adapter: VirtualAdapter, *, mac: bytes, use_party_dns: bool, metric: int | None
    ) -> TapAddressKeeper | None:
        del adapter, mac, use_party_dns, metric
        return None  # Windows' own DHCP client takes the TAP's address


@contextmanager
def _host_network_restored_on_close() -> Iterator[HostNetwork]:
    from lanparty.client.windows.hostnet import WindowsHostNetwork  # noqa: PLC0415

    # The client changes the host only inside this block, and has put it back when the
    # block ends: the handler holds a closing window until then.
    with console.interrupt_on_close(), WindowsHostNetwork() as hostnet:
        yield hostnet
