"""The admission rules for new clients, with real library Initials and no sockets."""

from __future__ import annotations

import attrs
import pytest

from lanparty.transport import QuicBackend, RetryPolicy, TransportSettings
from lanparty.transport.admission import (
    Admission,
    Admit,
    Drop,
    InitialDrop,
    SendRetry,
    source_key,
)
from lanparty.transport.retry import RetryTokens
from tests.quic_initials import answer_retry, client_connection, first_flight, junk_initial

ADDRESS = ("198.51.100.20", 40000)
OTHER_PORT = ("198.51.100.20", 40001)


def admission(
    retry: RetryPolicy = RetryPolicy.NEVER, *, retry_when_padded: bool = False, **settings: float
) -> Admission:
    return Admission(
        attrs.evolve(TransportSettings(), retry=retry, **settings),
        connection_id_bytes=8,
        retry_when_padded=retry_when_padded,
        tokens=RetryTokens(lifetime_s=10),
    )


def test_source_keys_are_ipv4_addresses_and_ipv6_slash_64s() -> None:
    assert source_key(("192.0.2.1", 1)) == bytes([192, 0, 2, 1])
    assert source_key(("::ffff:192.0.2.1", 1, 0, 0)) == bytes([192, 0, 2, 1])
    same_64 = source_key(("2001:db8:1:2::1", 1, 0, 0))
    assert same_64 == source_key(("2001:db8:1:2:ffff::9", 2, 0, 0))
    assert same_64 != source_key(("2001:db8:1:3::1", 1, 0, 0))
    assert source_key(("fe80::1%eth0", 1, 0, 2)) == source_key(("fe80::2", 1, 0, 0))


def test_datagrams_that_are_no_client_initial_are_not_judged() -> None:
    rules = admission()
    for data in (b"", b"\x40" + bytes(1300), b"\xe0" + bytes(1300), b"\xc0\x00\x00\x00\x02"):
        assert rules.decide(data, ADDRESS, now=0.0) is None


@pytest.mark.parametrize("backend", [QuicBackend.QH3, QuicBackend.AIOQUIC], ids=str)
def test_a_real_initial_is_admitted_and_junk_dropped(backend: QuicBackend) -> None:
    rules = admission()
    datagram = first_flight(backend)[0]
    decision = rules.decide(datagram, ADDRESS, now=0.0)
    assert isinstance(decision, Admit)
    assert decision.retry_source_cid is None
    assert decision.original_destination_cid == decision.initial.destination_cid
    assert decision.source == source_key(ADDRESS)
    assert rules.decide(junk_initial(), ADDRESS, now=0.0) == Drop(InitialDrop.UNDECRYPTABLE)
    assert rules.decide(datagram[:1100], ADDRESS, now=0.0) == Drop(InitialDrop.MALFORMED)


@pytest.mark.parametrize("backend", [QuicBackend.QH3, QuicBackend.AIOQUIC], ids=str)
def test_retry_always_then_the_token_admits_only_at_its_address(backend: QuicBackend) -> None:
    rules = admission(RetryPolicy.ALWAYS)
    client = client_connection(backend)
    first = client.datagrams_to_send(0.0)[0][0]
    retry = rules.decide(first, ADDRESS, now=0.0)
    assert isinstance(retry, SendRetry)
    again = answer_retry(client, retry.packet, now=0.05)[0]
    assert rules.decide(again, OTHER_PORT, now=0.05) == Drop(InitialDrop.TOKEN_REFUSED)
    decision = rules.decide(again, ADDRESS, now=0.05)
    assert isinstance(decision, Admit)
    assert decision.original_destination_cid == first[6 : 6 + first[5]]
    assert decision.retry_source_cid == decision.initial.destination_cid
    # The token has a lifetime.
    assert rules.decide(again, ADDRESS, now=10.1) == Drop(InitialDrop.TOKEN_REFUSED)


def test_auto_asks_for_a_retry_once_handshakes_come_faster_than_the_rate() -> None:
    rules = admission(RetryPolicy.AUTO, retry_above_handshakes_per_s=5)
    flights = [first_flight(QuicBackend.QH3)[0] for _ in range(12)]
    decisions = [rules.decide(datagram, ADDRESS, now=1.0) for datagram in flights[:8]]
    assert [type(d) for d in decisions] == [Admit] * 5 + [SendRetry] * 3
    # A second later the bucket is full again (5), not more.
    decisions = [rules.decide(datagram, ADDRESS, now=3.0) for datagram in flights[6:12]]
    assert [type(d) for d in decisions] == [Admit] * 5 + [SendRetry]
    # Junk never takes from the bucket, nor draws a Retry.
    assert rules.decide(junk_initial(), ADDRESS, now=3.0) == Drop(InitialDrop.UNDECRYPTABLE)


def test_a_datagram_padded_after_its_packet_gets_a_retry_where_the_library_needs_it() -> None:
    padded = first_flight(QuicBackend.AIOQUIC)[0]
    assert isinstance(
        admission(RetryPolicy.AUTO, retry_when_padded=True).decide(padded, ADDRESS, now=0.0),
        SendRetry,
    )
    assert isinstance(
        admission(RetryPolicy.AUTO, retry_when_padded=False).decide(padded, ADDRESS, now=0.0),
        Admit,
    )
    assert isinstance(
        admission(RetryPolicy.NEVER, retry_when_padded=True).decide(padded, ADDRESS, now=0.0),
        Admit,
    )
    unpadded = first_flight(QuicBackend.QH3)[0]
    rules = admission(RetryPolicy.AUTO, retry_when_padded=True)
    assert isinstance(rules.decide(unpadded, ADDRESS, now=0.0), Admit)


def test_the_per_source_cap_drops_before_any_crypto_and_frees_on_close() -> None:
    rules = admission(max_connections_per_source=2)
    source = source_key(ADDRESS)
    rules.opened(source)
    rules.opened(source)
    datagram = first_flight(QuicBackend.QH3)[0]
    assert rules.decide(datagram, OTHER_PORT, now=0.0) == Drop(InitialDrop.SOURCE_LIMIT)
    assert isinstance(rules.decide(datagram, ("198.51.100.21", 1), now=0.0), Admit)
    rules.closed(source)
    assert rules.connections_from(source) == 1
    assert isinstance(rules.decide(datagram, OTHER_PORT, now=0.0), Admit)
    rules.closed(source)
    assert rules.connections_from(source) == 0


def test_a_full_source_gets_retries_and_a_proven_address_may_replace_a_handshake() -> None:
    rules = admission(RetryPolicy.AUTO, max_connections_per_source=1)
    rules.opened(source_key(ADDRESS))
    client = client_connection(QuicBackend.QH3)
    # Full: no Initial is admitted outright, but the client may prove its address.
    retry = rules.decide(client.datagrams_to_send(0.0)[0][0], OTHER_PORT, now=0.0)
    assert isinstance(retry, SendRetry)
    again = answer_retry(client, retry.packet)[0]
    decision = rules.decide(again, OTHER_PORT, now=0.0)
    assert isinstance(decision, Admit)
    assert decision.over_source_cap
    assert decision.retry_source_cid is not None
    # Junk from a full source still draws nothing.
    assert rules.decide(junk_initial(), OTHER_PORT, now=0.0) == Drop(InitialDrop.UNDECRYPTABLE)
