"""The TAP's IPv4 address by DHCP on Linux: the Trio shell around ``lanparty.client.dhcp``.

    keeper = LinuxTapAddress(tap.name, tap.index, tap.mac, use_party_dns=False, metric=10)
    nursery.start_soon(keeper.run)      # DISCOVER ... ACK, the address on the TAP, renewals
    await keeper.release()              # on exit: DHCPRELEASE, the address taken off

One UDP socket on port 68, bound to the TAP (``SO_BINDTODEVICE``), with
broadcasts allowed: what the state machine wants sent goes out of it, what
comes in goes to the state machine, and its timer is slept on. The address
(and its prefix) is put on the TAP over netlink, its connected route with
priority ``metric`` (the TAP's metric, ``service.TAP_METRIC``); the router
and static routes a server offers are never installed, nor its DNS servers
unless ``use_party_dns`` (then only on the TAP, through systemd-resolved's
``resolvectl dns``, and only if systemd-resolved runs; /etc/resolv.conf is
never touched). Sends that fail (a unicast renewal to a server the TAP has
no route to) are logged: the state machine retransmits, then rebinds by
broadcast.
"""

from __future__ import annotations

import ipaddress
import math
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import structlog
import trio

from lanparty.client.dhcp import (
    CLIENT_PORT,
    SERVER_PORT,
    DhcpClient,
    Event,
    LeaseBound,
    LeaseLost,
    OfferRefused,
)
from lanparty.errors import HostNetworkError

if sys.platform != "linux":
    raise ImportError(f"lanparty.client.linux.dhcp is for Linux, not {sys.platform}")

from lanparty.client.linux.hostnet import LinuxHostNetwork

__all__ = ["LinuxTapAddress", "systemd_resolved_runs"]

log = structlog.get_logger(component="client")

TAP_ADDRESS = "tap_address"
TAP_ADDRESS_LOST = "tap_address_lost"
DHCP_OFFER_REFUSED = "dhcp_offer_refused"
PARTY_DNS = "party_dns"
DHCP_SEND_FAILED = "dhcp_send_failed"

_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_RECEIVE_BYTES = 4096
_RESOLVECTL_TIMEOUT_S = 10.0
_RESOLVED_RUNTIME = Path("/run/systemd/resolve")


def systemd_resolved_runs() -> bool:
    """Whether systemd-resolved manages DNS here (its runtime directory and ``resolvectl``)."""
    return shutil.which("resolvectl") is not None and _RESOLVED_RUNTIME.is_dir()


class LinuxTapAddress:
    """Keeps the TAP's IPv4 address from the party's DHCP server (see the module docstring)."""

    def __init__(
        self, tap_name: str, tap_index: int, mac: bytes, *, use_party_dns: bool, metric: int | None
    ) -> None:
        self.tap_name = tap_name
        self.tap_index = tap_index
        self.use_party_dns = use_party_dns
        self.metric = metric
        self.client = DhcpClient(mac)
        self._sock: trio.socket.SocketType | None = None
        self._dns: tuple[ipaddress.IPv4Address, ...] = ()

    def _open_socket(self) -> trio.socket.SocketType:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, self.tap_name.encode())
        except OSError as exc:
            sock.close()
            raise HostNetworkError(
                f"cannot open the DHCP client's socket on {self.tap_name}: {exc.strerror}"
            ) from exc
        return sock

    async def run(self) -> None:
        """Take the address and keep it, until cancelled (the address stays: see release)."""
        sock = self._open_socket()
        self._sock = sock
        try:
            await sock.bind(("0.0.0.0", CLIENT_PORT))
        except OSError as exc:
            raise HostNetworkError(
                f"cannot listen for DHCP replies on {self.tap_name} (port {CLIENT_PORT}): "
                f"{exc.strerror}; is another DHCP client running on it? (--no-dhcp leaves the "
                "address to it)"
            ) from exc
        with LinuxHostNetwork() as hostnet:
            self.client.start(trio.current_time())
            while True:
                await self._send_pending(sock)
                await self._act_on(hostnet, self.client.events())
                deadline = self.client.next_timer()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    data = await sock.recv(_RECEIVE_BYTES)
                    self.client.receive(data, trio.current_time())
                self.client.handle_timer(trio.current_time())

    async def release(self) -> bool:
        """Give the lease back (a DHCPRELEASE to the server); whether one was sent.

        The address stays on the TAP until the TAP goes: the release, unicast,
        may still wait for the server's MAC (ARP) when this returns.
        """
        lease = self.client.lease
        self.client.release(trio.current_time())
        sock = self._sock
        if lease is None or sock is None:
            return False
        await self._send_pending(sock)
        log.info(TAP_ADDRESS_LOST, tap=self.tap_name, address=str(lease.address), why="released")
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _send_pending(self, sock: trio.socket.SocketType) -> None:
        for datagram in self.client.datagrams_to_send():
            try:
                await sock.sendto(datagram.payload, (str(datagram.destination), SERVER_PORT))
            except OSError as exc:
                log.warning(
                    DHCP_SEND_FAILED, to=str(datagram.destination), error=exc.strerror or str(exc)
                )

    async def _act_on(self, hostnet: LinuxHostNetwork, events: list[Event]) -> None:
        for event in events:
            match event:
                case LeaseBound(lease=lease, renewed=renewed):
                    if not renewed:
                        hostnet.add_address(self.tap_index, lease.address, self.metric)
                    log.info(
                        TAP_ADDRESS,
                        tap=self.tap_name,
                        address=str(lease.address),
                        server=str(lease.server),
                        lease_s=lease.lease_s,
                        renewed=renewed,
                    )
                    if lease.dns_servers != self._dns:
                        self._dns = lease.dns_servers
                        await self._party_dns(lease.dns_servers)
                case LeaseLost(address=address, reason=reason):
                    hostnet.delete_address(self.tap_index, address)
                    log.warning(
                        TAP_ADDRESS_LOST, tap=self.tap_name, address=str(address), why=reason
                    )
                case OfferRefused(server=server, address=address, reason=reason):
                    log.warning(
                        DHCP_OFFER_REFUSED,
                        tap=self.tap_name,
                        server=str(server),
                        address=str(address),
                        why=reason,
                    )

    async def _party_dns(self, servers: tuple[ipaddress.IPv4Address, ...]) -> None:
        if not servers:
            return
        listed = [str(server) for server in servers]
        if not self.use_party_dns:
            log.info(
                PARTY_DNS, servers=listed, installed=False,
                hint=f"not used; to use them: resolvectl dns {self.tap_name} "
                f"{' '.join(listed)}, or --use-party-dns",
            )  # fmt: skip
            return
        if not systemd_resolved_runs():
            log.warning(
                PARTY_DNS, servers=listed, installed=False,
                hint="--use-party-dns installs them on the TAP only with systemd-resolved, "
                "which does not run here; /etc/resolv.conf is left as it is",
            )  # fmt: skip
            return
        command = ["resolvectl", "dns", self.tap_name, *listed]
        try:
            with trio.fail_after(_RESOLVECTL_TIMEOUT_S):
                await trio.run_process(command, capture_stdout=True, capture_stderr=True)
        except (OSError, subprocess.CalledProcessError, trio.TooSlowError) as exc:
            log.warning(PARTY_DNS, servers=listed, installed=False, error=str(exc))
            return
        log.info(PARTY_DNS, servers=listed, installed=True, on=self.tap_name)
