"""Retry tokens and the Retry packet, checked against both QUIC libraries."""

from __future__ import annotations

import pytest
from aioquic.quic.packet import encode_quic_retry as aioquic_retry
from qh3.quic.packet import encode_quic_retry as qh3_retry

from lanparty.transport import QuicBackend
from lanparty.transport.initial import parse_client_initial
from lanparty.transport.retry import RetryTokens, encode_address, encode_retry_packet
from tests.quic_initials import answer_retry, client_connection

ADDRESS = ("192.0.2.7", 50123)
ODCID = bytes.fromhex("8394c8f03e515708")
RSCID = bytes.fromhex("0011223344556677")


def test_the_retry_packet_is_byte_for_byte_what_both_libraries_encode() -> None:
    token = b"some token bytes"
    ours = encode_retry_packet(
        destination_cid=b"\x01" * 8,
        source_cid=RSCID,
        original_destination_cid=ODCID,
        token=token,
    )
    for encode in (aioquic_retry, qh3_retry):
        theirs = encode(
            version=1,
            source_cid=RSCID,
            destination_cid=b"\x01" * 8,
            original_destination_cid=ODCID,
            retry_token=token,
        )
        assert ours == theirs


@pytest.mark.parametrize("backend", [QuicBackend.QH3, QuicBackend.AIOQUIC], ids=str)
def test_a_library_client_answers_our_retry_with_the_token(backend: QuicBackend) -> None:
    tokens = RetryTokens(lifetime_s=10)
    client = client_connection(backend)
    first = parse_client_initial(client.datagrams_to_send(0.0)[0][0])
    assert first is not None
    token = tokens.issue(ADDRESS, first.destination_cid, RSCID, now=0.0)
    retry = encode_retry_packet(
        destination_cid=first.source_cid,
        source_cid=RSCID,
        original_destination_cid=first.destination_cid,
        token=token,
    )
    again = parse_client_initial(answer_retry(client, retry, now=0.1)[0])
    assert again is not None
    assert again.destination_cid == RSCID
    assert again.token == token
    checked = tokens.check(again.token, ADDRESS, again.destination_cid, now=0.1)
    assert checked == first.destination_cid


def test_a_token_is_good_for_its_address_and_connection_id_within_its_lifetime() -> None:
    tokens = RetryTokens(lifetime_s=10)
    token = tokens.issue(ADDRESS, ODCID, RSCID, now=100.0)
    assert tokens.check(token, ADDRESS, RSCID, now=100.0) == ODCID
    assert tokens.check(token, ADDRESS, RSCID, now=110.0) == ODCID
    # Another port, another IP, another destination ID, too late.
    assert tokens.check(token, ("192.0.2.7", 50124), RSCID, now=100.0) is None
    assert tokens.check(token, ("192.0.2.8", 50123), RSCID, now=100.0) is None
    assert tokens.check(token, ADDRESS, ODCID, now=100.0) is None
    assert tokens.check(token, ADDRESS, RSCID, now=110.01) is None


def test_a_changed_cut_or_foreign_token_is_refused() -> None:
    tokens = RetryTokens(lifetime_s=10)
    token = tokens.issue(ADDRESS, ODCID, RSCID, now=0.0)
    for index in range(len(token)):
        changed = bytearray(token)
        changed[index] ^= 0x80
        assert tokens.check(bytes(changed), ADDRESS, RSCID, now=0.0) is None
    for length in range(len(token)):
        assert tokens.check(token[:length], ADDRESS, RSCID, now=0.0) is None
    assert tokens.check(token + b"\x00", ADDRESS, RSCID, now=0.0) is None
    # Another process (another key) does not accept it.
    assert RetryTokens(lifetime_s=10).check(token, ADDRESS, RSCID, now=0.0) is None


def test_addresses_are_bound_as_ip_and_port_in_either_family() -> None:
    assert encode_address(("127.0.0.1", 1)) == bytes([127, 0, 0, 1, 0, 1])
    assert encode_address(("::1", 443, 0, 0)) == bytes(15) + b"\x01" + b"\x01\xbb"
    assert encode_address(("fe80::1%eth0", 443, 0, 2)) == encode_address(("fe80::1", 443))
