"""The client's Trio shell: a TAP device on this PC carried into a room, kept alive.

run_client
├── load the identity (the virtual MAC); restore what a killed run left (journal)
├── session supervision (_supervise): connect, hand the session to the pumps,
│   and after a loss reconnect with capped exponential backoff and jitter
│   (a permanent reject ends the client). The first session gives the room MTU.
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
        ├── per session (_SessionPumps): TAP -> relay and relay events as tasks;
        │   relay -> TAP inside the transport's pump (``relay_to_tap``);
        │   between sessions the TAP is drained, its frames discarded (stale
        │   by the next session)
        ├── the TAP's address by DHCP (Linux; Windows' own client does it)
        ├── routes through the TAP beyond the LAN removed as the OS adds them
        ├── watchdog: relay route repair
        └── status line every ``status_interval_s``

The status text comes from ``ClientStatus.describe`` (no I/O).
"""

from __future__ import annotations

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
from lanparty.ctrl import Disconnect, PeerJoined, PeerLeft, RejectCode, Role
from lanparty.endpoint.session import (
    EvictedError,
    RejectedError,
    RelayEndpoint,
    Session,
    open_session,
    raise_if_evicted,
)
from lanparty.errors import HostNetworkError, LanpartyError, ProtocolError, TransportError
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


class _Link:
    """Hands each session from the supervisor to the pumps, and the loss back."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self._arrived = trio.Event()
        self._lost = trio.Event()
        self._reason = ""

    async def serve(self, session: Session) -> str:
        """Publish ``session`` until the pumps report it lost; returns why."""
        self.session, self._lost, self._reason = session, trio.Event(), ""
        self._arrived.set()
        try:
            await self._lost.wait()
            return self._reason
        finally:
            if self.session is session:
                self.session, self._arrived = None, trio.Event()

    async def next_session(self) -> Session:
        while self.session is None:
            await self._arrived.wait()
        return self.session

    def lost(self, reason: str) -> None:
        self.session, self._arrived = None, trio.Event()
        self._reason = reason
        self._lost.set()


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
        link = _Link()
        async with trio.open_nursery() as nursery:
            credentials = ClientCredentials(
                room_id=config.room, client_key=config.client_key, identity_secret=identity.secret
            )
            mtu: int = await nursery.start(_supervise, config, credentials, identity.mac, link)
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
                    await _Client(config, tap, guards, link, keeper).run(
                        trio.Event() if stop is None else stop
                    )
            nursery.cancel_scope.cancel()


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


async def _supervise(
    config: ClientConfig,
    credentials: ClientCredentials,
    mac: bytes,
    link: _Link,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep a session with the relay; ``task_status`` gets the first session's MTU."""
    backoff = Backoff(initial_s=config.reconnect_initial_s, cap_s=config.reconnect_cap_s)
    started = False
    while True:
        try:
            async with open_session(
                config.relay, credentials=credentials, mac=mac, settings=config.settings
            ) as session:
                backoff.reset()
                if not started:
                    task_status.started(session.mtu)
                    started = True
                reason = await link.serve(session)
        except RejectedError as exc:
            if exc.permanent:
                raise
            if exc.code is RejectCode.ROOM_NOT_OPEN:
                delay_s = backoff.next_delay_s()
                log.warning(
                    events.WAITING_FOR_GATEWAY,
                    status="the party's gateway is not connected to the relay: waiting for it",
                    room=config.room_name or config.room,
                    in_s=round(delay_s, 2),
                )
                await trio.sleep(delay_s)
                continue
            reason = str(exc)
        except (TransportError, ProtocolError) as exc:
            reason = str(exc)
        delay_s = backoff.next_delay_s()
        log.warning(events.SESSION_RECONNECTING, reason=reason, in_s=round(delay_s, 2))
        await trio.sleep(delay_s)


class _Client:
    """The tasks that run while the TAP and the guards are in place."""

    def __init__(
        self,
        config: ClientConfig,
        tap: VirtualAdapter,
        guards: ClientGuards,
        link: _Link,
        keeper: TapAddressKeeper | None = None,
    ) -> None:
        self.config = config
        self.tap = tap
        self.guards = guards
        self.link = link
        self.keeper = keeper
        self.counters = TrafficCounters()  # rx: relay -> TAP, tx: TAP -> relay
        self.mtu = tap.mtu
        self.peers = 0

    async def run(self, stop: trio.Event) -> None:
        """The tasks, until cancelled, or until ``stop`` is set (then the lease is released)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.carry_sessions)
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

    async def carry_sessions(self) -> None:
        while True:
            session = await self.next_session()
            if session.mtu != self.mtu:
                log.warning(events.ROOM_MTU_CHANGED, room_mtu=session.mtu, tap_mtu=self.mtu)
            self.tap.set_discarding(False)
            try:
                reason = await _SessionPumps(session, self).run()
            finally:
                self.tap.set_discarding(True)
            self.link.lost(reason)

    async def next_session(self) -> Session:
        """The next session; until it comes, the TAP is drained (it is discarding)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.drain_tap)
            session = await self.link.next_session()
            nursery.cancel_scope.cancel()
        return session

    async def drain_tap(self) -> None:
        # The Linux TAP reads only while a task waits in receive_batch, which
        # returns nothing while discarding.
        while True:
            await self.tap.receive_batch()

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
        session = self.link.session
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
    """The tasks that carry frames between the TAP and one relay session."""

    def __init__(self, session: Session, client: _Client) -> None:
        self.session = session
        self.tap = client.tap
        self.counters = client.counters
        self.tap_failure: HostNetworkError | None = None
        self.tap_failed = trio.Event()

    async def run(self) -> str:
        ended: list[str | BaseException] = []
        self.session.deliver_frames_to(self.relay_to_tap)
        try:
            async with trio.open_nursery() as nursery:
                for task in (self.tap_to_relay, self.until_tap_fails, self.relay_events):
                    nursery.start_soon(_until_ended, task, ended, nursery.cancel_scope)
        finally:
            self.session.deliver_frames_to(None)
        outcome = ended[0] if ended else "cancelled"
        if isinstance(outcome, HostNetworkError | EvictedError):
            raise outcome  # the TAP went away, or the room ended our place: no reconnect fixes it
        return str(outcome)

    async def tap_to_relay(self) -> None:
        tap, session, counters = self.tap, self.session, self.counters
        while True:
            frames = await tap.receive_batch()
            session.send_frames(frames)
            counters.tx_frames += len(frames)
            counters.tx_bytes += sum(len(frame) for frame in frames)

    def relay_to_tap(self, frames: list[bytes]) -> None:
        """Frames from the relay to the PC, called by the transport's pump (no waiting)."""
        if self.tap_failure is not None:
            return
        try:
            written = self.tap.send_batch(frames)
        except HostNetworkError as exc:  # the TAP went away: the session's tasks end
            self.tap_failure = exc
            self.tap_failed.set()
            return
        counters = self.counters
        counters.rx_frames += written
        counters.rx_bytes += sum(len(frame) for frame in frames[:written])

    async def until_tap_fails(self) -> None:
        await self.tap_failed.wait()
        assert self.tap_failure is not None
        raise self.tap_failure

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


async def _until_ended(
    task: Callable[[], Awaitable[object]], ended: list[str | BaseException], scope: trio.CancelScope
) -> None:
    """Run one pump; when it ends (or the connection does), end its siblings."""
    try:
        result = await task()
    except LanpartyError as exc:
        ended.append(exc)
    else:
        ended.append(str(result))
    scope.cancel()
