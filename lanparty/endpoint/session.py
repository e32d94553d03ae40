"""The endpoint session: what a gateway or client does with a relay.

Connect with the user's trust mode, say ``hello`` with the role's
credentials (PROTOCOL.md 10), and turn the answer into a ``Session``
(``welcome``) or a ``RejectedError`` (``reject``). A session then carries
Ethernet frames both ways and reports peer events.

    async with open_session(relay, credentials=ClientCredentials(...), mac=mac) as session:
        session.send_frames(frames)
        frames = await session.receive_frames()
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import attrs
import structlog
import trio

from lanparty import __version__
from lanparty.credentials import ClientCredentials, GatewayCredentials
from lanparty.ctrl import (
    ControlProtocolError,
    Disconnect,
    DisconnectReason,
    EndpointState,
    Hello,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Received,
    Reject,
    RejectCode,
    Role,
    Side,
    State,
    Stats,
    UnknownMessage,
    Verdict,
    Welcome,
    next_state,
)
from lanparty.errors import LanpartyError, ProtocolError, TransportError
from lanparty.obs import TrafficCounters, events
from lanparty.proto import (
    DropReason,
    MalformedDatagramError,
    decode_datagram,
    encode_datagram,
    format_mac,
)
from lanparty.proto.fragments import OVERLAY_FRAGMENT, FragmentError, Reassembler, fragment_frame
from lanparty.transport import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    Connection,
    TransportSettings,
    Trust,
    open_connection,
)

log = structlog.get_logger(component="session")

WELCOME_TIMEOUT_S = 10.0
SOFTWARE = f"lanparty/{__version__}"

# Refusals that a retry cannot fix: the user has to change something.
PERMANENT_REJECTS = frozenset(
    {
        RejectCode.UNSUPPORTED_PROTOCOL,
        RejectCode.MALFORMED,
        RejectCode.INVALID_ROLE,
        RejectCode.INVALID_ROOM,
        RejectCode.INVALID_MAC,
        RejectCode.MTU_TOO_SMALL,
        RejectCode.NOT_AUTHORIZED,
        # A MAC is bound to one client id for the room's whole life (PROTOCOL.md 10).
        RejectCode.DUPLICATE_MAC,
    }
)

RelayEvent = PeerJoined | PeerLeft | Stats | Disconnect
_RELAY_EVENTS = (PeerJoined, PeerLeft, Stats, Disconnect)


class RejectedError(LanpartyError):
    """The relay refused the hello; ``code`` and ``message`` are its words."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(f"the relay refused to let us in ({code}): {message}")
        self.code = code
        self.message = message

    @property
    def permanent(self) -> bool:
        """True when trying again without changing anything cannot help."""
        return self.code in PERMANENT_REJECTS


class EvictedError(LanpartyError):
    """The relay ended our session for a reason a reconnect cannot fix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _eviction_message(reason: str, role: Role) -> str | None:
    if reason == DisconnectReason.KEY_ROTATED:
        return (
            "the party's host made a new invite, so this one no longer opens the room: "
            "ask them for the new invite"
        )
    if reason == DisconnectReason.REPLACED:
        if role is Role.GATEWAY:
            return (
                "another gateway with this gateway's keys (the same --state-dir) opened the "
                "room and took this one's place; run only one"
            )
        return (
            "another lanparty client with this PC's identity joined the room and took this "
            "one's place; run only one"
        )
    return None


def raise_if_evicted(event: Disconnect, role: Role) -> str:
    """Why the relay disconnected us; ``EvictedError`` when reconnecting cannot help."""
    message = _eviction_message(event.reason, role)
    if message is not None:
        raise EvictedError(event.reason, message)
    return f"the relay disconnected us: {event.reason[:200]}"


Credentials = GatewayCredentials | ClientCredentials


def hello_for(credentials: Credentials, *, mac: str, max_datagram: int, software: str) -> Hello:
    """The hello a gateway or a client says (PROTOCOL.md 10)."""
    if isinstance(credentials, GatewayCredentials):
        return Hello(
            role=Role.GATEWAY,
            room=credentials.room_id,
            mac=mac,
            max_datagram=max_datagram,
            software=software,
            gateway_key=credentials.gateway_key,
            client_key_sha256=credentials.client_key_sha256,
            room_name=credentials.room_name,
            operator_token=credentials.operator_token,
        )
    return Hello(
        role=Role.CLIENT,
        room=credentials.room_id,
        mac=mac,
        max_datagram=max_datagram,
        software=software,
        client_key=credentials.client_key,
        client_id=credentials.client_id,
    )


__all__ = [
    "Credentials",
    "EvictedError",
    "RejectedError",
    "RelayEndpoint",
    "Session",
    "hello_for",
    "open_session",
    "raise_if_evicted",
]


@attrs.frozen
class RelayEndpoint:
    """Where the relay is and how to trust it."""

    host: str
    port: int
    trust: Trust
    server_name: str | None = None


class Session:
    """An admitted member of a room: frames both ways, peer events."""

    def __init__(self, connection: Connection, welcome: Welcome, mac: str) -> None:
        self.connection = connection
        self.peer_id = welcome.peer_id
        self.room = welcome.room
        self.room_name = welcome.room_name
        self.mtu = welcome.mtu
        self.max_frame = welcome.max_frame
        self.mac = mac
        self.relay_software = welcome.software
        self.peers: dict[int, PeerInfo] = {peer.peer_id: peer for peer in welcome.peers}
        # Where the control stream stands (lanparty.ctrl.rules).
        self.state: State = EndpointState.ADMITTED
        # Frames the relay sent us that we could not use, and ours too big to send.
        self.counters = TrafficCounters()
        # Frames larger than one datagram travel in fragments (PROTOCOL.md 11).
        self._reassembler = Reassembler(welcome.max_frame)
        self._next_frame_id = 0
        self.fragments_sent = 0
        self.fragments_received = 0

    def send_frame(self, frame: bytes) -> bool:
        """Send one Ethernet frame; False (and counted) if it was not sent."""
        return self.send_frames([frame]) > 0

    def send_frames(self, frames: Iterable[bytes]) -> int:
        """Send Ethernet frames with one flush; return how many datagrams were queued.

        A frame that does not fit one datagram goes in fragments.
        """
        max_frame = self.max_frame
        budget = self.connection.max_datagram_payload - 1
        counters = self.counters
        encode = encode_datagram
        datagrams = []
        for frame in frames:
            size = len(frame)
            if size <= budget and size <= max_frame:
                try:
                    datagrams.append(encode(frame))
                except ValueError:  # shorter than an Ethernet header: the relay would drop it
                    counters.count_drop(DropReason.MALFORMED)
            elif size > max_frame:
                counters.count_drop(DropReason.JUMBO)
            else:
                datagrams.extend(self._fragments(frame))
        return self.connection.send_datagrams(datagrams)

    def _fragments(self, frame: bytes) -> list[bytes]:
        frame_id = self._next_frame_id
        self._next_frame_id = (frame_id + 1) & 0xFFFF
        parts = fragment_frame(frame, frame_id, self.connection.max_datagram_payload)
        if parts is None:
            self.counters.count_drop(DropReason.OVERSIZE)
            return []
        self.fragments_sent += len(parts)
        return parts

    def _frames_of(self, datagrams: list[bytes]) -> list[bytes]:
        decode = decode_datagram
        frames = []
        for datagram in datagrams:
            if datagram and datagram[0] == OVERLAY_FRAGMENT:
                frame = self._reassemble(datagram)
                if frame is not None:
                    frames.append(frame)
                continue
            try:
                frames.append(decode(datagram))
            except MalformedDatagramError:
                self.counters.count_drop(DropReason.MALFORMED)
        return frames

    def _reassemble(self, datagram: bytes) -> bytes | None:
        self.fragments_received += 1
        reassembler = self._reassembler
        timeouts = reassembler.timeouts
        try:
            return reassembler.add(datagram, trio.current_time())
        except FragmentError:
            self.counters.count_drop(DropReason.FRAGMENT_INVALID)
            return None
        finally:
            if reassembler.timeouts > timeouts:
                self.counters.drops[DropReason.FRAGMENT_TIMEOUT] += reassembler.timeouts - timeouts

    async def receive_frames(self) -> list[bytes]:
        """The Ethernet frames received since the last call; waits for one at least."""
        while True:
            frames = self._frames_of(await self.connection.receive_datagrams())
            if frames:
                return frames

    def deliver_frames_to(self, handler: Callable[[list[bytes]], None] | None) -> None:
        """Give received frames to ``handler`` from inside the transport's pump.

        The frames of one wake-up go straight to ``handler``, with no task
        switch in between (a wake-up less per frame batch: lower latency).
        ``handler`` must not block; an exception from it closes the
        connection. None goes back to ``receive_frames``.
        """
        if handler is None:
            self.connection.datagram_handler = None
            return
        frames_of = self._frames_of

        def deliver(datagrams: list[bytes]) -> None:
            frames = frames_of(datagrams)
            if frames:
                handler(frames)

        self.connection.datagram_handler = deliver

    async def next_event(self) -> RelayEvent:
        """The next peer event, stats report or disconnect from the relay.

        Keeps ``peers`` up to date. What is allowed is ``lanparty.ctrl.rules``'
        call: ignored messages (unknown types among them) are logged and
        skipped; a malformed control frame closes the connection (code 2)
        and raises the ``ProtocolError``.
        """
        while True:
            try:
                message: Received = await self.connection.receive_control()
            except ControlProtocolError as exc:
                outcome = next_state(Side.ENDPOINT, self.state, exc)
                self.state = outcome.state
                self.connection.close(CLOSE_PROTOCOL_ERROR, outcome.reason)
                raise ProtocolError(f"the relay sent a malformed control frame: {exc}") from exc
            outcome = next_state(Side.ENDPOINT, self.state, message)
            self.state = outcome.state
            if outcome.verdict is Verdict.IGNORE or not isinstance(message, _RELAY_EVENTS):
                shown = (
                    message.type if isinstance(message, UnknownMessage) else type(message).__name__
                )
                log.debug(events.CONTROL_MESSAGE_IGNORED, type=shown)
                continue
            if isinstance(message, PeerJoined):
                self.peers[message.peer_id] = PeerInfo(
                    peer_id=message.peer_id, role=message.role, mac=message.mac
                )
            elif isinstance(message, PeerLeft):
                self.peers.pop(message.peer_id, None)
            return message


async def _await_welcome(connection: Connection) -> Welcome:
    with trio.move_on_after(WELCOME_TIMEOUT_S):
        state = EndpointState.AWAITING_WELCOME
        try:
            answer: Received = await connection.receive_control()
        except ControlProtocolError as exc:
            connection.close(CLOSE_PROTOCOL_ERROR, next_state(Side.ENDPOINT, state, exc).reason)
            raise ProtocolError(f"the relay answered hello with garbage: {exc}") from exc
        outcome = next_state(Side.ENDPOINT, state, answer)
        if outcome.verdict is Verdict.ACCEPT:
            if isinstance(answer, Welcome):
                return answer
            if isinstance(answer, Reject):
                raise RejectedError(answer.code, answer.message)
        connection.close(CLOSE_PROTOCOL_ERROR, outcome.reason)
        raise ProtocolError(f"the relay answered hello with {type(answer).__name__}")
    raise TransportError(f"the relay did not answer hello within {WELCOME_TIMEOUT_S:g} s")


@asynccontextmanager
async def open_session(
    relay: RelayEndpoint,
    *,
    credentials: Credentials,
    mac: bytes,
    settings: TransportSettings | None = None,
    software: str = SOFTWARE,
) -> AsyncIterator[Session]:
    """Connect, say hello and yield the admitted ``Session``; leave on exit.

    Raises ``RejectedError`` for a ``reject``, ``TrustError`` for a relay
    certificate that is not the trusted one, ``TransportError`` when the
    relay cannot be reached, ``ProtocolError`` for a relay that breaks the
    protocol.
    """
    async with open_connection(
        relay.host, relay.port, relay.trust, server_name=relay.server_name, settings=settings
    ) as connection:
        mac_text = format_mac(mac)
        connection.send_control(
            hello_for(
                credentials,
                mac=mac_text,
                max_datagram=connection.max_datagram_payload,
                software=software,
            )
        )
        session = Session(connection, await _await_welcome(connection), mac_text)
        log.info(
            events.SESSION_STARTED,
            room=session.room,
            room_name=session.room_name,
            peer_id=session.peer_id,
            mtu=session.mtu,
            peers=len(session.peers),
            cipher=connection.cipher_suite,
        )
        try:
            yield session
        finally:
            # The relay may have closed the connection meanwhile (replaced, rotated key):
            # then there is nobody left to tell.
            with contextlib.suppress(TransportError):
                connection.send_control(Disconnect(reason=DisconnectReason.LEAVING))
                with trio.CancelScope(shield=True):
                    await connection.wait_control_delivered(1.0)
            connection.close(CLOSE_NORMAL, "leaving")
