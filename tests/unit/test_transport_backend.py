"""The library adapters behind ``QuicEngine``, two in-memory engines per test, both libraries."""

from __future__ import annotations

import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lanparty import ALPN
from lanparty.errors import TransportError
from lanparty.transport import QuicBackend, ServerIdentity, TransportSettings
from lanparty.transport.backend import (
    ConnectionIdIssued,
    ConnectionTerminated,
    DatagramsReceived,
    HandshakeCompleted,
    QuicLibraryError,
    StreamDataReceived,
    TimerKind,
    load_library,
)
from lanparty.transport.certs import load_or_create_dev_identity
from tests.quic_pair import CLIENT_ADDRESS, EnginePair


@pytest.fixture(scope="module")
def dev_identity(tmp_path_factory: pytest.TempPathFactory) -> ServerIdentity:
    return load_or_create_dev_identity(tmp_path_factory.mktemp("relay-state"))


@pytest.fixture(params=[QuicBackend.QH3, QuicBackend.AIOQUIC], ids=str)
def backend(request: pytest.FixtureRequest) -> QuicBackend:
    value: QuicBackend = request.param
    return value


@pytest.fixture
def pair(backend: QuicBackend, dev_identity: ServerIdentity) -> EnginePair:
    pair = EnginePair(backend, dev_identity)
    pair.exchange()
    return pair


def test_load_library_names_its_backend_and_how_it_credits_padding(backend: QuicBackend) -> None:
    library = load_library(backend)
    assert library.backend is backend
    # qh3 credits only the packets of a datagram to the anti-amplification budget.
    assert library.credits_padding is (backend is QuicBackend.AIOQUIC)


def test_the_handshake_comes_as_our_own_events_with_the_alpn(pair: EnginePair) -> None:
    for engine in (pair.client, pair.server):
        events = engine.events()
        assert HandshakeCompleted(ALPN) in events
        issued = [e for e in events if isinstance(e, ConnectionIdIssued)]
        assert issued
        assert all(len(e.connection_id) == 8 for e in issued)
        assert engine.peer_max_datagram_frame_size() == 65536
        assert engine.cipher_suite() in (0x1301, 0x1302, 0x1303)


def test_the_peer_chain_is_the_server_certificate_as_der(
    pair: EnginePair, dev_identity: ServerIdentity
) -> None:
    certificate = x509.load_pem_x509_certificate(dev_identity.cert_pem)
    assert pair.client.peer_certificate_chain() == [
        certificate.public_bytes(serialization.Encoding.DER)
    ]
    assert pair.server.peer_certificate_chain() == []


def test_datagram_frames_in_a_row_come_as_one_event_in_order(pair: EnginePair) -> None:
    pair.server.events()
    for index in range(3):
        pair.client.send_datagram_frames([bytes([index]) * 10])
    pair.client.send_stream_data(0, b"control")
    pair.client.send_datagram_frames([b"after"])
    pair.exchange()
    events = [e for e in pair.server.events() if not isinstance(e, ConnectionIdIssued)]
    # The libraries choose the order of frames in a packet; the frames keep theirs.
    frames = [p for e in events if isinstance(e, DatagramsReceived) for p in e.payloads]
    assert frames == [b"\x00" * 10, b"\x01" * 10, b"\x02" * 10, b"after"]
    assert StreamDataReceived(0, b"control", end_stream=False) in events
    # A run of frames is one event: no two datagram events follow each other.
    kinds = [type(e) for e in events]
    assert all(
        not (a is DatagramsReceived and b is DatagramsReceived)
        for a, b in itertools.pairwise(kinds)
    )
    assert len(events) < 5


def test_stream_delivered_once_the_peer_acknowledged(pair: EnginePair) -> None:
    pair.client.send_stream_data(0, b"hello")
    assert not pair.client.stream_delivered(0, pair.now)
    pair.exchange()
    pair.now += 1.0  # past any delayed ACK
    for engine in (pair.client, pair.server):
        at = engine.timer_at()
        if at is not None and at <= pair.now:
            engine.handle_timer(pair.now)
    pair.exchange()
    assert pair.client.stream_delivered(0, pair.now)


def test_the_timer_kind_is_known_for_qh3_only(pair: EnginePair, backend: QuicBackend) -> None:
    timer = pair.client.timer()
    assert timer is not None
    at, kind = timer
    assert at == pair.client.timer_at()
    if backend is QuicBackend.QH3:
        assert isinstance(kind, TimerKind)
    else:
        assert kind is None


def test_an_idle_timeout_is_known_from_the_library_not_the_reason(
    backend: QuicBackend, dev_identity: ServerIdentity
) -> None:
    settings = TransportSettings(backend=backend, idle_timeout_s=5.0)
    pair = EnginePair(backend, dev_identity, settings)
    pair.exchange()
    client = pair.client
    client.events()
    terminated: list[ConnectionTerminated] = []
    # The server went away: the client hears nothing and only its timers run.
    for _ in range(1000):
        at = client.timer_at()
        assert at is not None
        pair.now = max(pair.now, at)
        if backend is QuicBackend.QH3 and at >= 5.0:
            assert client.timer() == (at, TimerKind.IDLE)
        client.handle_timer(pair.now)
        client.datagrams_to_send(pair.now)
        terminated = [e for e in client.events() if isinstance(e, ConnectionTerminated)]
        if terminated:
            break
    (event,) = terminated
    assert event.idle_timeout
    assert pair.now >= 5.0


def test_a_peer_close_mentioning_idle_is_not_an_idle_timeout(pair: EnginePair) -> None:
    pair.client.events()
    pair.server.close(0, "idle players are kicked")
    pair.exchange()
    closes = [e for e in pair.client.events() if isinstance(e, ConnectionTerminated)]
    pending = pair.client.pending_close()
    assert pending == ConnectionTerminated(0, "idle players are kicked", idle_timeout=False)
    assert all(not e.idle_timeout for e in closes)


def test_the_library_exceptions_come_out_as_ours(
    pair: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    library_connection = pair.server._quic  # type: ignore[attr-defined]

    def explode(*_args: object) -> None:
        raise ValueError("simulated buffer error")

    monkeypatch.setattr(library_connection, "receive_datagram", explode)
    with pytest.raises(QuicLibraryError, match="ValueError: simulated buffer error") as caught:
        pair.server.receive_datagram(b"\x40" + bytes(40), CLIENT_ADDRESS, pair.now)
    assert isinstance(caught.value, TransportError)


def test_an_exception_the_library_does_not_raise_is_not_hidden(
    pair: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*_args: object) -> None:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(pair.client._quic, "send_ping", bug)  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        pair.client.send_ping(1)


def test_release_empties_the_library_connection(pair: EnginePair) -> None:
    library_connection = pair.server._quic  # type: ignore[attr-defined]
    pair.server.release()
    assert vars(library_connection) == {}


def test_send_budget_is_positive_on_an_idle_connection(pair: EnginePair) -> None:
    assert pair.client.send_budget_bytes() > 1500
