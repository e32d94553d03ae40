"""The client's Trio shell: a TAP device on this PC carried into a room, kept alive.

run_client
├── load the identity (the virtual MAC); restore what a killed run left (journal)
├── the first session (``SessionSupervisor.admitted``, held by a task of its
│   own and left once lost): tried, with capped exponential backoff and
│   jitter, until the relay admits us (a permanent reject ends the client);
│   it gives the room MTU
└── host set-up, once, kept across reconnects:
    ├── the host's best route to the relay, asked before the TAP exists
    ├── the TAP device, opened with the room MTU, its link still down
    ├── the guards (relay route pinned first, from that answer, then MTU,
    │   metric, nothing taken from routers, no DNS servers where the OS would
    │   install the party's, routes beyond the LAN removed)
    ├── the TAP's link connected, then the pin checked (a TAP route left
    │   from an earlier run must not take the relay's traffic)
    └── tasks, until cancelled or ``stop`` is set (then the DHCP lease is
        released while the session still carries it, and they end):
        ├── session supervision (``SessionSupervisor.run``): the first
        │   session, then after a loss a new one (backoff and jitter; an
        │   eviction or the TAP going away ends the client)
        │   └── per session (``run_device_bridge`` with the TAP as its
        │       device, ``_SessionPumps``): TAP -> relay and relay events as
        │       tasks; relay -> TAP inside the transport's pump
        ├── between sessions: the TAP drained, its frames discarded (stale
        │   by the next session)
        ├── the TAP's address by DHCP (Linux; Windows' own client does it)
        ├── routes through the TAP beyond the LAN removed as the OS adds them
        ├── watchdog: relay route repair
        └── status line every ``status_interval_s``

The status text comes from ``ClientStatus.describe`` (no I/O).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import structlog
import trio

from lanparty.backoff import Backoff
from lanparty.client.guards import ClientGuards, apply_guards
from lanparty.client.hostnet import IPAddress
from lanparty.client.identity import load_or_create_identity
from lanparty.client.journal import Journal, restore_pending
from lanparty.client.platform import (
    ClientPlatform,
    TapAddressKeeper,
    VirtualAdapter,
    current_platform,
)
from lanparty.credentials import ClientCredentials
from lanparty.ctrl import Disconnect, PeerJoined, PeerLeft, Role
from lanparty.endpoint.bridge import run_device_bridge
from lanparty.endpoint.session import RelayEndpoint, Session, open_session, raise_if_evicted
from lanparty.endpoint.supervisor import SessionEnd, SessionSupervisor
from lanparty.errors import HostNetworkError, TransportError
from lanparty.obs import TrafficCounters, events
from lanparty.proto import format_mac
from lanparty.transport import TransportSettings

log = structlog.get_logger(component="client")

TAP_METRIC = 10
"""The TAP's interface metric (on Linux: its connected routes' priority).

Low, so that the party LAN's prefix is reached through the TAP even when a
physical interface (NetworkManager gives Ethernet 100, Wi-Fi 600) has an
overlapping one. It cannot pull the relay's traffic in: the relay's pinned
/32 or /128 wins by prefix length, and routes through the TAP beyond the
LAN's own subnets are removed by the route guard.
"""

RELEASE_FLUSH_S = 1.0
"""How long the DHCP release may take to leave through the session on exit."""


@attrs.frozen
class ClientConfig:
    relay: RelayEndpoint
    room: str
    """The room id, from the invite."""
    client_key: bytes = attrs.field(repr=False)
    """The invite's key; a secret."""
    room_name: str | None = None
    tap_name: str | None = None
    """The virtual adapter; None: the platform's default (Linux ``lanparty0``)."""
    identity_path: Path | None = None
    virtual_mac: str | None = None
    journal_path: Path | None = None
    settings: TransportSettings = attrs.field(factory=TransportSettings)
    watchdog_interval_s: float = 5.0
    status_interval_s: float = 30.0
    reconnect_initial_s: float = 0.5
    reconnect_cap_s: float = 30.0
    private_network: bool = False
    dhcp: bool = True
    """Take the TAP's IPv4 address by DHCP (Linux; Windows does it itself)."""
    use_party_dns: bool = False
    """Use the DNS servers of the party's DHCP server on the TAP (Linux: systemd-resolved only;
    Windows: its DHCP client's, left in place)."""


@attrs.frozen
class ClientStatus:
    """What the status line reports (from the counters; no I/O)."""

    connected: bool
    room: str
    peers: int
    mtu: int
    tap_ipv4: str | None
    tap_to_relay_frames: int
    tap_to_relay_bytes: int
    relay_to_tap_frames: int
    relay_to_tap_bytes: int
    drops: int
    discarded: int
    """Frames from the PC thrown away while no session could carry them."""

    def describe(self) -> str:
        state = "connected" if self.connected else "reconnecting"
        address = self.tap_ipv4 or "no IPv4 address yet"
        discarded = f", discarded {self.discarded} while disconnected" if self.discarded else ""
        return (
            f"{state} to room {self.room} ({self.peers} peers, MTU {self.mtu}), "
            f"TAP {address}; sent {self.tap_to_relay_frames} frames "
            f"({self.tap_to_relay_bytes} bytes), received {self.relay_to_tap_frames} frames "
            f"({self.relay_to_tap_bytes} bytes), dropped {self.drops}{discarded}"
        )


async def run_client(
    config: ClientConfig,
    *,
    platform: ClientPlatform | None = None,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Carry the TAP into the room until cancelled or ``stop`` is set (then it returns,
    having released the TAP's DHCP lease and restored the host); ``task_status`` gets the
    TAP name.

    Raises ``RejectedError`` for a permanent refusal, ``ConfigError`` or
    ``HostNetworkError`` when the host cannot be set up.
    """
    if platform is None:
        platform = current_platform(private_network=config.private_network)
    identity = load_or_create_identity(config.identity_path, virtual_mac=config.virtual_mac)
    journal = Journal(config.journal_path)
    with platform.open_host_network() as hostnet:
        await restore_pending(journal, hostnet)  # before anything else: a killed run's leftovers
        relay_address = await _resolve(config.relay.host)
        credentials = ClientCredentials(
            room_id=config.room, client_key=config.client_key, identity_secret=identity.secret
        )
        supervisor = SessionSupervisor(
            functools.partial(
                open_session,
                config.relay,
                credentials=credentials,
                mac=identity.mac,
                settings=config.settings,
            ),
            Backoff(initial_s=config.reconnect_initial_s, cap_s=config.reconnect_cap_s),
            room=config.room_name or config.room,
            log=log,
        )
        # The first session lives in a task of its own, which leaves it once it is lost
        # (leave_first) or at the end at the latest: a session's pump and cancel scopes
        # must be left by the task that entered them.
        async with trio.open_nursery() as first_session:
            first_lost = trio.Event()
            first: Session = await first_session.start(_hold_first_session, supervisor, first_lost)

            async def leave_first() -> None:
                first_lost.set()

            mtu = first.mtu
            before_tap = await hostnet.best_route(relay_address)
            async with platform.open_adapter(
                config.tap_name, mac=identity.mac, mtu=mtu, connect_media=False
            ) as tap:
                tap.set_discarding(True)  # until a session carries its frames
                async with apply_guards(
                    hostnet,
                    journal,
                    tap_index=tap.index,
                    tap_mtu=mtu,
                    tap_metric=TAP_METRIC,
                    relay_address=relay_address,
                    relay_best_before_tap=before_tap,
                    party_dns=config.use_party_dns,
                ) as guards:
                    await tap.connect_media()
                    await guards.relay_route.verify()
                    log.info(
                        events.CLIENT_STARTED,
                        tap=tap.name,
                        mac=format_mac(identity.mac),
                        identity=str(identity.path),
                        new_identity=identity.created,
                        relay=f"{config.relay.host}:{config.relay.port}",
                        relay_route=str(before_tap),
                        room=config.room,
                        room_name=config.room_name,
                        mtu=mtu,
                    )
                    keeper = None
                    if config.dhcp:
                        keeper = platform.tap_address_keeper(
                            tap,
                            mac=identity.mac,
                            use_party_dns=config.use_party_dns,
                            metric=TAP_METRIC,
                        )
                    task_status.started(tap.name)
                    await _Client(config, tap, guards, keeper).run(
                        trio.Event() if stop is None else stop,
                        supervisor,
                        first,
                        leave_first,
                    )
            first_lost.set()


async def _hold_first_session(
    supervisor: SessionSupervisor,
    lost: trio.Event,
    *,
    task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the first session (the room MTU comes from it) and hold it until ``lost``."""
    async with supervisor.admitted() as first:
        task_status.started(first)
        await lost.wait()


async def _resolve(host: str) -> IPAddress:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise TransportError(f"cannot resolve the relay {host}: {exc}") from exc
    return ipaddress.ip_address(infos[0][4][0])


class _Client:
    """The tasks that run while the TAP and the guards are in place."""

    def __init__(
        self,
        config: ClientConfig,
        tap: VirtualAdapter,
        guards: ClientGuards,
        keeper: TapAddressKeeper | None = None,
    ) -> None:
        self.config = config
        self.tap = tap
        self.guards = guards
        self.keeper = keeper
        self.counters = TrafficCounters()  # rx: relay -> TAP, tx: TAP -> relay
        self.mtu = tap.mtu
        self.session: Session | None = None
        """The session carrying the TAP's frames; None between sessions."""
        self._nursery: trio.Nursery | None = None
        # Between sessions a task drains the TAP; none before the first.
        self._draining = trio.CancelScope()
        self._drained = trio.Event()
        self._drained.set()

    async def run(
        self,
        stop: trio.Event,
        supervisor: SessionSupervisor,
        first: Session,
        leave_first: Callable[[], Awaitable[object]],
    ) -> None:
        """The tasks, until cancelled, or until ``stop`` is set (then the lease is released)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(
                    functools.partial(
                        supervisor.run, self.carry, first=first, leave_first=leave_first
                    )
                )
                nursery.start_soon(self.guards.tap_routes.run)
                nursery.start_soon(self.watchdog)
                nursery.start_soon(self.report)
                if self.keeper is not None:
                    nursery.start_soon(self.keeper.run)
                await stop.wait()
                await self.release_address()
                nursery.cancel_scope.cancel()
        finally:
            if self.keeper is not None:
                self.keeper.close()

    async def release_address(self) -> None:
        """Release the lease while the session still carries frames: wait (bounded) until
        the pump has taken the release from the TAP."""
        if self.keeper is None:
            return
        sent_before = self.counters.tx_frames
        if not await self.keeper.release():
            return
        with trio.move_on_after(RELEASE_FLUSH_S):
            while self.counters.tx_frames == sent_before:
                await trio.sleep(0.01)
            await trio.sleep(RELEASE_FLUSH_S / 4)  # the release itself, if that was its ARP

    async def carry(self, session: Session) -> SessionEnd:
        """Carry one session's frames; until the next session the TAP is drained."""
        self._draining.cancel()
        await self._drained.wait()  # one reader at a time: the drain has left the TAP
        if session.mtu != self.mtu:
            log.warning(events.ROOM_MTU_CHANGED, room_mtu=session.mtu, tap_mtu=self.mtu)
        self.tap.set_discarding(False)
        self.session = session
        try:
            return await _SessionPumps(session, self).run()
        finally:
            self.session = None
            self.tap.set_discarding(True)
            self._draining, self._drained = trio.CancelScope(), trio.Event()
            assert self._nursery is not None
            self._nursery.start_soon(self.drain_tap, self._draining, self._drained)

    async def drain_tap(self, scope: trio.CancelScope, drained: trio.Event) -> None:
        # The Linux TAP reads only while a task waits in receive_batch, which
        # returns nothing while discarding.
        try:
            with scope:
                while True:
                    await self.tap.receive_batch()
        finally:
            drained.set()

    async def watchdog(self) -> None:
        while True:
            await trio.sleep(self.config.watchdog_interval_s)
            try:
                if await self.guards.relay_route.repair():
                    log.warning(
                        events.RELAY_ROUTE_REPAIRED, route=str(self.guards.relay_route.route)
                    )
            except HostNetworkError as exc:
                log.warning(events.WATCHDOG_FAILED, error=str(exc))

    async def report(self) -> None:
        while True:
            await trio.sleep(self.config.status_interval_s)
            status = self.status()
            log.info(events.CLIENT_STATUS, status=status.describe(), **attrs.asdict(status))

    def status(self) -> ClientStatus:
        session = self.session
        drops = self.tap.dropped_frames + sum(self.counters.drops.values())
        if session is not None:
            drops += sum(session.counters.drops.values())
            drops += sum(session.connection.counters.drops.values())
        return ClientStatus(
            connected=session is not None,
            room=self.config.room_name or self.config.room,
            peers=0 if session is None else len(session.peers),
            mtu=self.mtu,
            tap_ipv4=self.tap.ipv4_address(),
            tap_to_relay_frames=self.counters.tx_frames,
            tap_to_relay_bytes=self.counters.tx_bytes,
            relay_to_tap_frames=self.counters.rx_frames,
            relay_to_tap_bytes=self.counters.rx_bytes,
            drops=drops,
            discarded=self.tap.discarded_frames,
        )


class _SessionPumps:
    """The TAP's side of one relay session: the bridge's device and the relay events."""

    def __init__(self, session: Session, client: _Client) -> None:
        self.session = session
        self.tap = client.tap
        self.counters = client.counters

    async def run(self) -> SessionEnd:
        return await run_device_bridge(self.session, self, self.relay_events)

    async def read_for_relay(self) -> list[bytes]:
        """The PC's next frames for the relay."""
        frames = await self.tap.receive_batch()
        counters = self.counters
        counters.tx_frames += len(frames)
        counters.tx_bytes += sum(len(frame) for frame in frames)
        return frames

    def write_from_relay(self, frames: list[bytes]) -> None:
        """Frames from the relay to the PC, called by the transport's pump (no waiting)."""
        written = self.tap.send_batch(frames)
        counters = self.counters
        counters.rx_frames += written
        counters.rx_bytes += sum(len(frame) for frame in frames[:written])

    async def relay_events(self) -> str:
        while True:
            event = await self.session.next_event()
            if isinstance(event, PeerJoined | PeerLeft):
                log.info(
                    events.PEER_JOINED if isinstance(event, PeerJoined) else events.PEER_LEFT,
                    peer_id=event.peer_id,
                    peers=len(self.session.peers),
                )
            elif isinstance(event, Disconnect):
                return raise_if_evicted(event, Role.CLIENT)
