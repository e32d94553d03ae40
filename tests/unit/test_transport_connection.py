"""The connection rules of ``Connection`` (see its module docstring), on a fake clock.

Two in-memory connections, client and server, both libraries: what one
transmits the other receives at the time the test says (``tests.quic_pair``).
"""

from __future__ import annotations

import itertools

import pytest

from lanparty.ctrl import Disconnect
from lanparty.proto import DropReason
from lanparty.transport import (
    CLOSE_NORMAL,
    CLOSE_REFUSED,
    ConnectionClosedError,
    QuicBackend,
    ServerIdentity,
    TransportSettings,
)
from lanparty.transport.backend import QuicLibraryError, TimerKind
from lanparty.transport.certs import load_or_create_dev_identity
from lanparty.transport.connection import Connection
from tests.quic_pair import ConnectionPair


@pytest.fixture(scope="module")
def dev_identity(tmp_path_factory: pytest.TempPathFactory) -> ServerIdentity:
    return load_or_create_dev_identity(tmp_path_factory.mktemp("relay-state"))


@pytest.fixture(params=[QuicBackend.QH3, QuicBackend.AIOQUIC], ids=str)
def backend(request: pytest.FixtureRequest) -> QuicBackend:
    value: QuicBackend = request.param
    return value


def established(
    backend: QuicBackend, identity: ServerIdentity, **settings: object
) -> ConnectionPair:
    pair = ConnectionPair(backend, identity, TransportSettings(backend=backend, **settings))  # type: ignore[arg-type]
    pair.handshake()
    return pair


def explode(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("simulated library failure")


def test_the_handshake_sets_the_datagram_limit_and_the_cipher(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity)
    for connection in (pair.client, pair.server):
        assert connection.backend == backend.value
        # 1452 bytes of UDP payload less the packet and frame overhead.
        assert connection.max_datagram_payload == 1452 - 41 - 3
        assert connection.cipher_suite.startswith("TLS_")
    assert len(pair.client.peer_certificate_chain()) == 1


def test_datagrams_are_refused_before_the_handshake(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = ConnectionPair(backend, dev_identity)
    assert not pair.client.queue_datagram(b"early")
    assert pair.client.counters.drops[DropReason.NOT_ESTABLISHED] == 1
    pair.handshake()
    assert pair.client.queue_datagram(b"in time")


def test_an_oversize_frame_is_refused_and_counted(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity)
    largest = pair.client.max_datagram_payload
    assert not pair.client.queue_datagram(bytes(largest + 1))
    assert pair.client.counters.drops[DropReason.OVERSIZE] == 1
    assert pair.client.queue_datagram(bytes(largest))
    pair.exchange()
    assert pair.server.discard_received() == 1
    assert pair.server.counters.rx_bytes == largest


def test_a_full_send_queue_is_sent_before_anything_is_dropped(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    # The bound is on frames waiting for the library's room, not on a batch:
    # a relay forwarding a thousand frames to one member in one wake-up
    # dropped all but the last 256 before (issue 14, UDP at 200 B).
    pair = established(backend, dev_identity, send_queue_frames=4)
    for index in range(10):
        assert pair.client.queue_datagram(bytes([index]) * 8)
    assert pair.client.counters.drops[DropReason.SEND_QUEUE_FULL] == 0
    pair.exchange()
    assert pair.server._received == [bytes([index]) * 8 for index in range(10)]
    assert pair.client.counters.tx_frames == 10


def test_with_no_room_left_a_full_send_queue_drops_the_oldest_frames_and_counts_them(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity, send_queue_frames=4)
    pair.deliver = lambda receiver, data: False  # no ACK comes back: the window fills
    frames = [index.to_bytes(2, "big") * 500 for index in range(200)]
    for frame in frames:
        assert pair.client.queue_datagram(frame)
    counters = pair.client.counters
    dropped = counters.drops[DropReason.SEND_QUEUE_FULL]
    assert dropped > 0
    assert pair.client.send_queue_length == 4
    assert counters.tx_frames + dropped + pair.client.send_queue_length == len(frames)
    assert list(pair.client._send_queue) == frames[-4:]


def test_a_full_queue_towards_a_peer_with_no_room_is_not_flushed_per_frame(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity)
    pair.deliver = lambda receiver, data: False  # never acknowledges
    sender = pair.client
    for _ in range(5000):
        sender.queue_datagram(b"x" * 200)
    flushes = 0
    flush = sender._request_flush

    def counting(connection: Connection) -> None:
        nonlocal flushes
        flushes += 1
        flush(connection)

    sender._request_flush = counting
    for _ in range(1000):
        sender.queue_datagram(b"y" * 200)
    assert flushes <= 10
    assert sender.counters.drops[DropReason.SEND_QUEUE_FULL] >= 990


def test_the_receive_queue_is_bounded_and_counts_what_it_drops(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity, receive_queue_frames=3)
    assert pair.client.send_datagrams(bytes([index]) * 8 for index in range(5)) == 5
    pair.exchange()
    assert pair.server._received == [bytes([index]) * 8 for index in range(3)]
    assert pair.server.counters.rx_frames == 3
    assert pair.server.counters.drops[DropReason.RECEIVE_QUEUE_FULL] == 2


def test_a_ping_keeps_a_quiet_connection_alive_past_the_idle_timeout(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity, keepalive_interval_s=2.0, idle_timeout_s=5.0)
    start = pair.now
    pair.run_until(start + 30.0)
    assert pair.client.is_established
    assert pair.server.is_established
    quiet_sends = [at for at in pair.sent_at[pair.client] if at > start + 1.0]
    # Per keep-alive interval: its PING, and its ACK of the server's PING.
    assert 14 <= len(quiet_sends) <= 2 * 15 + 2
    gaps = [b - a for a, b in itertools.pairwise(quiet_sends)]
    assert max(gaps) <= 2.0 + 0.1


def test_the_keepalive_deadline_is_the_connection_timer_when_the_library_has_none(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity, keepalive_interval_s=2.0)
    pair.run_until(pair.now + 1.0)
    last_send = pair.client._last_send_at
    # Everything is acknowledged: the library waits only for its idle timeout.
    assert pair.client.timer_at() == last_send + 2.0
    assert pair.client.timer() == (last_send + 2.0, None)
    pair.run_until(last_send + 2.0)
    assert last_send + 2.0 in pair.sent_at[pair.client]  # the PING


def test_the_timer_kind_of_qh3_is_passed_on(dev_identity: ServerIdentity) -> None:
    pair = established(QuicBackend.QH3, dev_identity)
    pair.server.send_datagram(b"ack-eliciting")  # sent at once
    pair.now += 0.001
    pair.step()  # the client receives it and delays its ACK
    timer = pair.client.timer()
    assert timer is not None
    assert timer == (pair.client.timer_at(), TimerKind.ACK_APPLICATION)


def test_an_idle_timeout_on_the_fake_clock_is_reported_as_one(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity, keepalive_interval_s=100.0, idle_timeout_s=5.0)
    pair.run_until(pair.now + 20.0)
    for connection in (pair.client, pair.server):
        info = connection.close_info
        assert info is not None
        assert info.idle_timeout
        assert not info.by_peer
        assert "timed out" in info.describe()
        assert connection.terminated


def test_a_peer_close_whose_reason_says_idle_is_not_an_idle_timeout(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity)
    pair.server.close(CLOSE_REFUSED, "idle players are kicked")
    pair.run_until(pair.now + 5.0)  # the client's draining period
    info = pair.client.close_info
    assert info is not None
    assert not info.idle_timeout
    assert info.by_peer
    assert (info.error_code, info.reason) == (CLOSE_REFUSED, "idle players are kicked")


def test_a_library_exception_closes_the_connection_and_never_escapes(
    backend: QuicBackend, dev_identity: ServerIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = established(backend, dev_identity)
    library_connection = pair.server._engine._quic  # type: ignore[attr-defined]
    monkeypatch.setattr(library_connection, "receive_datagram", explode)
    monkeypatch.setattr(library_connection, "receive_many_datagrams", explode, raising=False)
    pair.client.send_datagram(b"\x10" + bytes(63))
    pair.exchange()
    info = pair.server.close_info
    assert info is not None
    assert info.error_code == CLOSE_REFUSED
    assert info.reason == "QUIC library error (RuntimeError: simulated library failure)"
    # The close still reaches the peer.
    pair.run_until(pair.now + 5.0)
    client_info = pair.client.close_info
    assert client_info is not None
    assert client_info.by_peer


def test_a_library_exception_while_transmitting_still_sends_the_close(
    backend: QuicBackend, dev_identity: ServerIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = established(backend, dev_identity)
    # At the boundary: qh3's adapter polls the native core itself, past the Python
    # layer a test could patch. The adapters' mapping of the library's own
    # exceptions is tested in test_transport_backend.
    engine = pair.client._engine
    real = engine.datagrams_to_send

    def fail_once(now: float) -> object:
        monkeypatch.setattr(engine, "datagrams_to_send", real)
        raise QuicLibraryError("ValueError: simulated write error")

    monkeypatch.setattr(engine, "datagrams_to_send", fail_once)
    assert pair.client.transmit(pair.now)  # the close, sent at once
    info = pair.client.close_info
    assert info is not None
    assert "simulated write error" in info.reason
    assert not pair.client.terminated


def test_a_second_library_failure_ends_the_connection(
    backend: QuicBackend, dev_identity: ServerIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = established(backend, dev_identity)

    def library_fails(*_args: object, **_kwargs: object) -> None:
        raise QuicLibraryError("RuntimeError: simulated library failure")

    monkeypatch.setattr(pair.client._engine, "datagrams_to_send", library_fails)
    monkeypatch.setattr(pair.client._engine, "close", library_fails)
    assert pair.client.transmit(pair.now) == []
    assert pair.client.terminated
    assert pair.client.close_info is not None


async def test_the_peer_ending_its_control_stream_closes_after_its_messages(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = established(backend, dev_identity)
    message = Disconnect(reason="leaving")
    pair.client.send_control(message)
    pair.client._engine.send_stream_data(0, b"", end_stream=True)
    pair.exchange()
    assert await pair.server.receive_control() == message
    with pytest.raises(ConnectionClosedError) as closed:
        await pair.server.receive_control()
    info = closed.value.info
    assert (info.error_code, info.by_peer) == (CLOSE_NORMAL, True)
    assert "ended its control stream" in info.reason
    pair.run_until(pair.now + 5.0)  # the client's draining period
    client_info = await pair.client.wait_closed()
    assert client_info.error_code == CLOSE_NORMAL
    assert client_info.by_peer


def test_a_handshake_past_its_deadline_is_abandoned_without_a_word(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = ConnectionPair(backend, dev_identity, TransportSettings(backend=backend))
    # The client's address was spoofed: the server's answers reach no one.
    pair.deliver = lambda receiver, data: receiver is not pair.client
    deadline = pair.server.handshake_deadline
    assert deadline == 10.0
    pair.run_until(deadline - 0.01)
    assert not pair.server.terminated
    pair.run_until(deadline + 0.01)
    info = pair.server.close_info
    assert pair.server.terminated
    assert info is not None
    assert (info.error_code, info.by_peer) == (CLOSE_REFUSED, False)
    assert info.reason == "no handshake within 10 s"
    assert not pair.server.is_established


def test_a_server_that_negotiates_another_alpn_is_refused(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    settings = TransportSettings(backend=backend, alpn="lanparty-other")
    # Both libraries agree on the other ALPN; our rule refuses it.
    pair = ConnectionPair(backend, dev_identity, settings)
    client = Connection(
        pair.client._engine,
        TransportSettings(backend=backend),
        pair.client.peer_address,
        pair.flush,
        is_client=True,
    )
    pair.client = client
    pair.sent_at[client] = []
    pair._inbox[client] = []
    pair.exchange()
    info = client.close_info
    assert info is not None
    assert info.error_code == CLOSE_REFUSED
    assert "ALPN 'lanparty-other'" in info.reason
    assert not client.is_established
    # The server hears the refusal (aioquic), or gives up at its handshake
    # deadline (qh3's client close during the handshake does not reach it).
    pair.run_until(pair.settings.handshake_timeout_s + 1.0)
    assert pair.server.is_closed
    assert not pair.server.is_established


def test_a_client_offering_an_unknown_alpn_never_gets_a_connection(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    pair = ConnectionPair(
        backend,
        dev_identity,
        TransportSettings(backend=backend, alpn="lanparty-other"),
        server_settings=TransportSettings(backend=backend),
    )
    pair.run_until(pair.now + 5.0)
    assert not pair.client.is_established
    assert not pair.server.is_established
    assert pair.client.is_closed
    assert pair.server.is_closed
    assert pair.client._handshake_done is False


def quiet(pair: ConnectionPair) -> None:
    """Let every pending ACK and timer of the handshake play out."""
    pair.run_until(pair.now + 1.0)


def test_a_lone_ack_waits_ack_wait_s_longer_than_the_library_asks(
    dev_identity: ServerIdentity,
) -> None:
    pair = established(QuicBackend.QH3, dev_identity, ack_wait_s=0.02)
    quiet(pair)
    pair.server.send_datagram(b"one frame")
    pair.now += 0.0005
    received_at = pair.now
    pair.step()  # the client receives it; the library delays its ACK
    library_timer = pair.client._engine.timer()
    assert library_timer is not None
    assert library_timer[1] is TimerKind.ACK_APPLICATION
    assert pair.client.timer() == (library_timer[0] + 0.02, TimerKind.ACK_APPLICATION)
    client_sends = len(pair.sent_at[pair.client])
    pair.run_until(library_timer[0] + 0.02)
    sends = pair.sent_at[pair.client][client_sends:]
    # The lone ACK went out once its wait was over, no earlier, and within the
    # 25 ms max_ack_delay the libraries announce.
    assert sends[0] == library_timer[0] + 0.02
    assert sends[0] - received_at <= 0.025


def test_a_second_packet_within_the_wait_is_acknowledged_with_the_first_at_once(
    dev_identity: ServerIdentity,
) -> None:
    pair = established(QuicBackend.QH3, dev_identity, ack_wait_s=0.02)
    quiet(pair)
    pair.server.send_datagram(b"first")
    pair.now += 0.0005
    pair.step()
    client_sends = len(pair.sent_at[pair.client])
    pair.run_until(pair.now + 0.010)  # the next frame of a game, or the next ping
    pair.server.send_datagram(b"second")
    pair.now += 0.0005
    pair.step()
    # One ACK for both, sent on arrival of the second: no timer wake-up for it.
    assert pair.sent_at[pair.client][client_sends:] == [pair.now]
    timer = pair.client.timer()
    assert timer is None or timer[1] is not TimerKind.ACK_APPLICATION


def test_with_no_ack_wait_the_library_timer_is_kept(dev_identity: ServerIdentity) -> None:
    pair = established(QuicBackend.QH3, dev_identity, ack_wait_s=0.0)
    quiet(pair)
    pair.server.send_datagram(b"one frame")
    pair.now += 0.0005
    pair.step()
    assert pair.client.timer() == pair.client._engine.timer()


@pytest.mark.parametrize("ack_wait_s", [-0.001, 0.021, 0.5])
def test_an_ack_wait_beyond_the_announced_max_ack_delay_is_refused(ack_wait_s: float) -> None:
    with pytest.raises(ValueError, match="ack_wait_s"):
        TransportSettings(ack_wait_s=ack_wait_s)
