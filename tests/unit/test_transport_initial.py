"""Reading and opening a client's first Initial before any connection exists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.transport import QuicBackend
from lanparty.transport.initial import (
    client_initial_keys,
    decrypts,
    long_packet_end,
    parse_client_initial,
)
from tests.quic_initials import first_flight, junk_initial

BACKENDS = [QuicBackend.QH3, QuicBackend.AIOQUIC]


def test_initial_keys_match_rfc_9001_appendix_a() -> None:
    keys = client_initial_keys(bytes.fromhex("8394c8f03e515708"))
    assert keys.key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert keys.iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert keys.hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_a_real_client_initial_parses_and_decrypts(backend: QuicBackend) -> None:
    for datagram in first_flight(backend):
        initial = parse_client_initial(datagram)
        assert initial is not None
        assert initial.version == 1
        assert len(initial.destination_cid) >= 8
        assert initial.token == b""
        assert decrypts(datagram, initial)


def test_aioquic_pads_its_first_datagram_after_the_packet_and_qh3_does_not() -> None:
    (aioquic_datagram,) = first_flight(QuicBackend.AIOQUIC)
    aioquic_initial = parse_client_initial(aioquic_datagram)
    assert aioquic_initial is not None
    assert aioquic_initial.packet_end < len(aioquic_datagram)
    assert set(aioquic_datagram[aioquic_initial.packet_end :]) == {0}
    assert aioquic_initial.padded_after_packets
    for datagram in first_flight(QuicBackend.QH3):
        initial = parse_client_initial(datagram)
        assert initial is not None
        assert initial.packet_end == len(datagram)
        assert not initial.padded_after_packets


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_any_changed_byte_of_the_packet_fails_to_decrypt(backend: QuicBackend) -> None:
    datagram = first_flight(backend)[0]
    initial = parse_client_initial(datagram)
    assert initial is not None
    for offset in (initial.packet_number_offset, 100, initial.packet_end - 1):
        changed = bytearray(datagram)
        changed[offset] ^= 0x01
        assert not decrypts(bytes(changed), initial)
    # Another destination ID means other keys.
    changed = bytearray(datagram)
    changed[6] ^= 0x01
    other = parse_client_initial(bytes(changed))
    assert other is not None
    assert not decrypts(bytes(changed), other)


def test_junk_with_an_initial_header_parses_but_does_not_decrypt() -> None:
    for _ in range(50):
        datagram = junk_initial()
        initial = parse_client_initial(datagram)
        assert initial is not None
        assert not decrypts(datagram, initial)


def test_what_is_not_a_well_formed_client_initial() -> None:
    datagram = first_flight(QuicBackend.QH3)[0]
    assert parse_client_initial(datagram[:1199]) is None  # under 1200 bytes
    short_header = bytes([0x40]) + datagram[1:]
    assert parse_client_initial(short_header) is None
    handshake_type = bytes([datagram[0] | 0x20]) + datagram[1:]
    assert parse_client_initial(handshake_type) is None
    version_2 = datagram[:1] + bytes.fromhex("6b3343cf") + datagram[5:]
    assert parse_client_initial(version_2) is None
    short_dcid = datagram[:5] + b"\x04" + datagram[6:10] + datagram[14:]
    assert parse_client_initial(short_dcid + bytes(1200)) is None
    # A packet length beyond the end of the datagram.
    junk = junk_initial(1300)
    assert parse_client_initial(junk) is not None
    assert parse_client_initial(junk[:1250]) is None


def test_long_packet_end_follows_coalesced_packets() -> None:
    datagram = first_flight(QuicBackend.AIOQUIC)[0]
    initial = parse_client_initial(datagram)
    assert initial is not None
    assert long_packet_end(datagram, 0) == initial.packet_end
    assert long_packet_end(datagram, initial.packet_end) is None  # zeros
    assert long_packet_end(b"\xc0\x00", 0) is None


@given(st.binary(min_size=0, max_size=1400))
def test_parsing_never_raises_on_any_bytes(tail: bytes) -> None:
    for prefix in (b"", b"\xc0\x00\x00\x00\x01", b"\xc0\x00\x00\x00\x01\x08"):
        data = prefix + tail
        initial = parse_client_initial(data)
        if initial is not None:
            decrypts(data, initial)
        long_packet_end(data, 0)
