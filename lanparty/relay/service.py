"""The relay's Trio shell: one task tree per connection around the switch.

Everything decided about a frame or a hello is decided in ``switch.py``;
this module moves bytes and messages and keeps time:

- admission: the first control message must be a valid ``hello`` within
  10 s; the switch admits or refuses it (given the connection's real
  DATAGRAM budget), the refusal goes out as ``reject`` and is delivered
  (acknowledged, or 1 s) before the connection closes; sessions the switch
  evicts (replaced, rotated invite key) are told ``disconnect``;
- per member: its frames are forwarded as the pump hands them over
  (``_forward_batch``: a batch per wake-up, no task switch, one flush per
  target); a control loop (``disconnect``, a second ``hello``, broken
  frames); ``stats`` every 5 s; a watch for the malformed threshold;
- leaving: the switch forgets the member and the room hears ``peer_left``;
  a room reaper ends rooms whose gateway left ``room_grace_s`` ago;
- shutdown: every peer is told ``disconnect`` before the relay exits.
"""

from __future__ import annotations

import contextlib
import functools
import math

import attrs
import structlog
import trio

from lanparty.ctrl import (
    ControlProtocolError,
    Disconnect,
    DisconnectReason,
    Hello,
    HelloRejectedError,
    PeerJoined,
    PeerLeft,
    PeerLeftReason,
    Received,
    Reject,
    RejectCode,
    RelayState,
    Side,
    State,
    Stats,
    UnknownMessage,
    Verdict,
    next_state,
)
from lanparty.errors import LanpartyError, TransportError
from lanparty.obs import events
from lanparty.proto import DropReason, format_mac
from lanparty.proto.ethernet import DESTINATION, SOURCE
from lanparty.proto.overlay import FRAME
from lanparty.relay.metrics import MetricsSnapshot, SnapshotCollector
from lanparty.relay.pending import PendingHellos
from lanparty.relay.switch import Eviction, Member, RelayLimits, Switch
from lanparty.tasks import TasksThatEndTogether, open_tasks_that_end_together
from lanparty.transport import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REFUSED,
    Connection,
    ConnectionClosedError,
    QuicServer,
    ServerIdentity,
    TransportSettings,
    serve,
)
from lanparty.transport.admission import SourceKey, source_key

log = structlog.get_logger(component="relay")

HELLO_TIMEOUT_S = 10.0
_MAX_REJECT_CHARS = 1000
MAX_PENDING_HELLOS = 512
MAX_PENDING_HELLOS_PER_SOURCE = 32
_SHOWN = 200
STATS_INTERVAL_S = 5.0
DELIVERY_WAIT_S = 1.0


@attrs.frozen
class RelayConfig:
    host: str
    port: int
    identity: ServerIdentity
    limits: RelayLimits = attrs.field(factory=RelayLimits)
    settings: TransportSettings = attrs.field(factory=TransportSettings)
    hello_timeout_s: float = HELLO_TIMEOUT_S
    stats_interval_s: float = STATS_INTERVAL_S
    # Log every forwarding decision (debug level); costs per frame, so off unless asked.
    log_decisions: bool = False
    # SHA-256 hex of the operator tokens that may open rooms (None: any gateway).
    operator_token_hashes: frozenset[str] | None = None
    # Connections past their handshake that have not said hello yet: in all, and per
    # source (an address, an IPv6 /64); see relay/pending.py for who gets a slot when full.
    max_pending_hellos: int = MAX_PENDING_HELLOS
    max_pending_hellos_per_source: int = MAX_PENDING_HELLOS_PER_SOURCE


class Relay:
    """Rooms of members on one QUIC server."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.switch = Switch(config.limits, operator_token_hashes=config.operator_token_hashes)
        self.server: QuicServer | None = None
        self._shutting_down = False
        self._malformed: dict[Member, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        # What the metrics exporter's thread reads: snapshots made on the Trio thread.
        self.metrics = SnapshotCollector(self._snapshot_from_another_thread)
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._pending_hellos = PendingHellos[_WaitingForHello](
            config.max_pending_hellos, config.max_pending_hellos_per_source
        )
        # Set when a room may have started its grace period: the reaper looks again.
        self._grace_started = trio.Event()

    async def serve(
        self, *, task_status: trio.TaskStatus[QuicServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; reports the ``QuicServer`` once listening."""
        config = self.config
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._trio_token = trio.lowlevel.current_trio_token()
            nursery.start_soon(self._end_expired_rooms)
            self.server = await nursery.start(
                serve, config.host, config.port, config.identity, self._handle, config.settings
            )
            task_status.started(self.server)

    # ----------------------------------------------------------- admission

    async def _handle(self, connection: Connection) -> None:
        # Frames sent before the welcome are dropped at once, not kept until
        # the hello comes (PROTOCOL.md 3): a silent peer must not fill memory.
        self.switch.drops[DropReason.NOT_ESTABLISHED] += connection.discard_received()
        connection.datagram_handler = self._drop_early_frames
        source = source_key(connection.peer_address)
        waiting = _WaitingForHello(connection)
        admitted, evicted = self._pending_hellos.add(source, waiting)
        if evicted is not None:
            evicted.scope.cancel()
        if not admitted:
            _refuse_waiting(connection)
            return
        member: Member | None = None
        try:
            with waiting.scope:
                member = await self._admit(connection, source)
        finally:
            self._pending_hellos.remove(source, waiting)
        if member is None:
            if waiting.scope.cancelled_caught:
                _refuse_waiting(connection)
            return
        # The first of the member's loops to end decides why it left. Not the endpoints'
        # SessionSupervisor and bridge: a member is served, not kept (no reconnect), and
        # its frames go to other members, not to a device. A frame path that gives up
        # on the member does not end the loops from the pump: the malformed watch must
        # first tell the member ``disconnect`` and wait for its delivery.
        self._malformed[member] = trio.Event()
        connection.datagram_handler = functools.partial(self._forward_batch, member)
        loops: TasksThatEndTogether[PeerLeftReason] | None = None
        try:
            async with open_tasks_that_end_together(_left_when_closed) as loops:
                for loop in (self._malformed_watch, self._control_loop, self._stats_loop):
                    loops.start_soon(functools.partial(loop, member))
        finally:
            connection.datagram_handler = self._drop_early_frames
            del self._malformed[member]
            reason = None if loops is None else loops.outcome
            self._leave(member, reason or PeerLeftReason.CLOSED)

    async def _admit(self, connection: Connection, source: SourceKey) -> Member | None:
        with trio.move_on_after(self.config.hello_timeout_s):
            try:
                message = await connection.receive_control()
            except ControlProtocolError as exc:
                await self._refuse(connection, exc.reject_code, str(exc))
                return None
            except ConnectionClosedError:
                return None
            outcome = next_state(Side.RELAY, RelayState.AWAITING_HELLO, message)
            if outcome.verdict is not Verdict.ACCEPT or not isinstance(message, Hello):
                await self._refuse(connection, RejectCode.MALFORMED, outcome.reason)
                return None
            if connection.is_closed:
                return None  # a hello sent with FIN (or a close right behind it)
            try:
                admission = self.switch.admit(
                    message,
                    connection,
                    trio.current_time(),
                    datagram_budget=connection.max_datagram_payload,
                    source=source,
                )
            except HelloRejectedError as exc:
                await self._refuse(connection, exc.reject_code, str(exc), hello=message)
                return None
            for eviction in admission.evicted:
                self._evicted(eviction)
            member = admission.member
            try:
                connection.send_control(admission.welcome)
            except BaseException as exc:
                # Admitted but never served: without this it would stay in its
                # room for good, and with it the room and a seat (a ghost member).
                self._leave(member, PeerLeftReason.CLOSED)
                if isinstance(exc, ConnectionClosedError):
                    return None
                raise
            joined = PeerJoined(peer_id=member.peer_id, role=member.role, mac=member.mac_text)
            for other in admission.joined:
                _send_control(other, joined)
            log.info(
                events.PEER_JOINED,
                room=message.room,
                room_name=message.room_name,
                peer_id=member.peer_id,
                role=str(member.role),
                mac=member.mac_text,
                mtu=member.room.mtu,
                address=connection.peer_address,
                software=message.software,
            )
            return member
        await self._refuse(
            connection,
            RejectCode.HELLO_TIMEOUT,
            f"no hello arrived within {self.config.hello_timeout_s:g} s of the handshake",
        )
        return None

    async def _refuse(
        self, connection: Connection, code: RejectCode, message: str, hello: Hello | None = None
    ) -> None:
        log.info(
            events.PEER_REJECTED,
            code=str(code),
            reason=message[:_MAX_REJECT_CHARS],
            address=connection.peer_address,
            room=hello.room if hello else None,
            mac=hello.mac if hello else None,
        )
        try:
            # Whatever a rule quoted of the peer, the answer fits one control message.
            connection.send_control(Reject(code=code, message=message[:_MAX_REJECT_CHARS]))
        except TransportError:
            pass  # no control stream to answer on: closing is all we can do
        else:
            await connection.wait_control_delivered(DELIVERY_WAIT_S)
        connection.close(CLOSE_REFUSED, str(code))

    def _evicted(self, eviction: Eviction) -> None:
        """A member the switch removed: the room hears ``peer_left``, it hears ``disconnect``."""
        member = eviction.member
        left = PeerLeft(peer_id=member.peer_id, reason=PeerLeftReason.DISCONNECT)
        for other in eviction.tell:
            _send_control(other, left)
        log.info(
            events.PEER_EVICTED,
            room=member.room.id,
            peer_id=member.peer_id,
            role=str(member.role),
            reason=str(eviction.reason),
        )
        assert self._nursery is not None
        self._nursery.start_soon(self._disconnect, member, str(eviction.reason), CLOSE_NORMAL)

    def metrics_snapshot(self) -> MetricsSnapshot:
        """The switch's and the QUIC endpoint's counters, frozen (call on the Trio thread)."""
        transport: dict[str, int] = {}
        if self.server is not None:
            counters = self.server.endpoint.counters
            transport = {
                "ignored_datagrams": counters.ignored_datagrams,
                "retries_sent": counters.retries_sent,
                "udp_send_dropped": counters.dropped_udp_datagrams,
                "receive_backlog_dropped": counters.receive_backlog_dropped,
            }
            for reason, count in counters.initials_dropped.items():
                transport[f"initial_dropped_{reason}"] = count
        return MetricsSnapshot.of(self.switch, transport)

    def _snapshot_from_another_thread(self) -> MetricsSnapshot | None:
        """For the exporter's thread: a snapshot made on the Trio thread, None if it is gone."""
        token = self._trio_token
        if token is None:
            return None
        try:
            return trio.from_thread.run_sync(self.metrics_snapshot, trio_token=token)
        except trio.RunFinishedError:
            return None

    async def _end_expired_rooms(self) -> None:
        """End rooms whose gateway left ``room_grace_s`` ago (PROTOCOL.md 10, room life)."""
        switch = self.switch
        while True:
            self._grace_started = trio.Event()
            for eviction in switch.end_expired_rooms(trio.current_time()):
                self._evicted(eviction)
            expiry = switch.next_room_expiry()
            with trio.move_on_at(math.inf if expiry is None else expiry):
                await self._grace_started.wait()

    # ------------------------------------------------------ member tasks

    def _drop_early_frames(self, datagrams: list[bytes]) -> None:
        """Count (and drop) frames from a peer that is not, or no longer, a member."""
        self.switch.drops[DropReason.NOT_ESTABLISHED] += len(datagrams)

    def _forward_batch(self, member: Member, datagrams: list[bytes]) -> None:
        """Forward one batch from ``member``: the pump calls this as frames arrive.

        A bug in the frame path must cost one member, never every room: an
        unexpected exception (the core is fuzzed never to raise) disconnects
        that member and logs the traceback, instead of reaching the pump,
        which would end the whole server.
        """
        try:
            self._forward_frames(member, datagrams)
        except Exception:  # isolation: see the docstring
            log.exception(events.FRAME_PATH_FAILED, peer_id=member.peer_id)
            member.should_disconnect = True
        if member.should_disconnect:
            member.handle.datagram_handler = self._drop_early_frames
            self._malformed[member].set()

    def _forward_frames(self, member: Member, datagrams: list[bytes]) -> None:
        switch = self.switch
        ingress, forward = switch.ingress, switch.forward
        now = trio.current_time()
        outgoing: dict[Member, list[bytes]] = {}
        for received in datagrams:
            datagram = ingress(member, received, now)
            if datagram is None:
                continue  # a fragment of a frame not whole yet, or dropped
            decision = forward(member, datagram, now)
            if type(decision) is tuple:
                size = len(datagram)
                for target in decision:
                    batch = outgoing.get(target)
                    if batch is None:
                        batch = outgoing[target] = []
                    if size <= target.max_datagram:
                        batch.append(datagram)
                    else:
                        batch.extend(switch.egress(target, datagram))
            if self.config.log_decisions:
                _log_decision(member, datagram, decision)
        for target, batch in outgoing.items():
            if batch:
                target.handle.send_datagrams(batch)

    async def _malformed_watch(self, member: Member) -> PeerLeftReason:
        """Disconnect a member once it passed the malformed threshold."""
        await self._malformed[member].wait()
        await self._disconnect(member, DisconnectReason.MALFORMED, CLOSE_REFUSED)
        return PeerLeftReason.MALFORMED

    async def _control_loop(self, member: Member) -> PeerLeftReason:
        connection: Connection = member.handle
        state: State = RelayState.MEMBER
        while True:
            try:
                message: Received = await connection.receive_control()
            except ControlProtocolError as exc:
                outcome = next_state(Side.RELAY, state, exc)
                log.info(events.CONTROL_PROTOCOL_ERROR, peer_id=member.peer_id, error=str(exc))
                connection.close(CLOSE_PROTOCOL_ERROR, outcome.reason)
                return PeerLeftReason.CLOSED
            outcome = next_state(Side.RELAY, state, message)
            state = outcome.state
            if outcome.verdict is Verdict.PROTOCOL_ERROR:
                log.info(
                    events.CONTROL_PROTOCOL_ERROR, peer_id=member.peer_id, error=outcome.reason
                )
                connection.close(CLOSE_PROTOCOL_ERROR, outcome.reason)
                return PeerLeftReason.CLOSED
            if outcome.verdict is Verdict.ACCEPT and isinstance(message, Disconnect):
                log.info(
                    "peer_disconnecting", peer_id=member.peer_id, reason=message.reason[:_SHOWN]
                )
                connection.close(CLOSE_NORMAL, "bye")
                return PeerLeftReason.DISCONNECT
            if isinstance(message, UnknownMessage):
                log.debug(events.CONTROL_MESSAGE_IGNORED, peer_id=member.peer_id, type=message.type)

    async def _stats_loop(self, member: Member) -> PeerLeftReason:
        while True:
            await trio.sleep(self.config.stats_interval_s)
            _send_control(member, self.stats_for(member))

    def stats_for(self, member: Member) -> Stats:
        """The relay's view of ``member``: what it sent us, what we sent it, what we dropped."""
        received = member.counters
        sent = member.handle.counters
        return Stats(
            rx_frames=received.rx_frames,
            rx_bytes=received.rx_bytes,
            tx_frames=sent.tx_frames,
            tx_bytes=sent.tx_bytes,
            drops={str(reason): count for reason, count in received.drops.items() if count},
        )

    # ----------------------------------------------------------- leaving

    def _leave(self, member: Member, reason: PeerLeftReason) -> None:
        others = self.switch.leave(member, trio.current_time())
        if member.is_gateway:
            self._grace_started.set()
        if self._shutting_down:
            reason = PeerLeftReason.RELAY_SHUTDOWN
        else:
            left = PeerLeft(peer_id=member.peer_id, reason=reason)
            for other in others:
                _send_control(other, left)
        member.handle.close(CLOSE_NORMAL)
        log.info(
            events.PEER_LEFT,
            room=member.room.id,
            peer_id=member.peer_id,
            reason=str(reason),
            **_traffic_fields(member),
        )

    async def _disconnect(self, member: Member, reason: str, code: int) -> None:
        connection: Connection = member.handle
        if connection.is_closed:
            return
        _send_control(member, Disconnect(reason=reason))
        await connection.wait_control_delivered(DELIVERY_WAIT_S)
        connection.close(code, reason)

    async def disconnect_all(self, reason: str = DisconnectReason.RELAY_SHUTDOWN) -> None:
        """Tell every member ``disconnect`` and close once delivered (at most 1 s)."""
        self._shutting_down = True
        members = [m for room in self.switch.rooms.values() for m in room.members.values()]
        async with trio.open_nursery() as nursery:
            for member in members:
                nursery.start_soon(self._disconnect, member, reason, CLOSE_NORMAL)
        if self.server is not None:
            for connection in self.server.connections:
                connection.close(CLOSE_NORMAL, reason)


def _send_control(member: Member, message: PeerJoined | PeerLeft | Stats | Disconnect) -> None:
    """Send to a member whose connection may have closed meanwhile."""
    # A closed member's own tasks notice the close and clean up.
    with contextlib.suppress(TransportError):
        member.handle.send_control(message)


def _left_when_closed(error: LanpartyError) -> PeerLeftReason:
    """Why a member left whose loop saw its connection close; other errors are bugs."""
    if isinstance(error, ConnectionClosedError):
        return PeerLeftReason.TIMEOUT if error.info.idle_timeout else PeerLeftReason.CLOSED
    raise error


def _log_decision(
    member: Member, datagram: bytes, decision: tuple[Member, ...] | DropReason
) -> None:
    frame = datagram[FRAME]
    dropped = isinstance(decision, DropReason)
    log.debug(
        events.FRAME_DROPPED if dropped else events.FRAME_FORWARDED,
        room=member.room.id,
        peer_id=member.peer_id,
        src=format_mac(frame[SOURCE]) if len(frame) >= SOURCE.stop else None,
        dst=format_mac(frame[DESTINATION]) if len(frame) >= DESTINATION.stop else None,
        ethertype=f"0x{int.from_bytes(frame[12:14], 'big'):04x}" if len(frame) >= 14 else None,
        action="drop" if dropped else "forward",
        reason=str(decision) if dropped else None,
        targets=0 if dropped else len(decision),
    )


@attrs.frozen(eq=False)
class _WaitingForHello:
    """A connection holding a pending-hello slot; cancelled when a newcomer takes it."""

    connection: Connection
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


def _refuse_waiting(connection: Connection) -> None:
    log.info(events.PEER_REJECTED, code="too_many_pending", address=connection.peer_address)
    connection.close(CLOSE_REFUSED, "too many connections waiting for hello")


def _traffic_fields(member: Member) -> dict[str, object]:
    """A member's traffic for the log: what it sent (the switch counts it) and
    what it was sent (its connection counts it), and the drops of both."""
    received = member.counters
    sent = member.handle.counters
    drops = received.drops + sent.drops
    return {
        "rx_frames": received.rx_frames,
        "rx_bytes": received.rx_bytes,
        "tx_frames": sent.tx_frames,
        "tx_bytes": sent.tx_bytes,
        "drops": {str(reason): count for reason, count in sorted(drops.items()) if count},
    }
