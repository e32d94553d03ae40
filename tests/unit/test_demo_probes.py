"""The demo's DHCP messages and ICMP checksum, without a network."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from lanparty.demo import probes


def test_a_discover_is_a_broadcast_bootp_request_with_the_mac() -> None:
    mac = bytes.fromhex("02aabbccddee")
    message = probes._dhcp_message(1, 0x12345678, mac, {55: bytes([1, 3])})
    op, htype, hlen, _, xid, _, flags = struct.unpack_from("!BBBBIHH", message)
    assert (op, htype, hlen, xid, flags) == (1, 1, 6, 0x12345678, 0x8000)
    assert message[28:34] == mac
    assert message[236:240] == b"\x63\x82\x53\x63"
    assert message[240:] == bytes([53, 1, 1, 55, 2, 1, 3, 255])


def reply(kind: int, xid: int, options: bytes) -> bytes:
    fixed = bytearray(240)
    fixed[0] = 2
    struct.pack_into("!I", fixed, 4, xid)
    fixed[16:20] = bytes([198, 19, 0, 123])
    fixed[236:240] = b"\x63\x82\x53\x63"
    return bytes(fixed) + bytes([53, 1, kind]) + options + b"\xff"


def test_an_offer_for_our_transaction_is_parsed() -> None:
    parsed = probes._dhcp_parse(reply(2, 7, bytes([0, 54, 4, 198, 19, 0, 10])), 7)
    assert parsed == (2, bytes([198, 19, 0, 123]), {53: b"\x02", 54: bytes([198, 19, 0, 10])})


def test_replies_to_other_transactions_or_requests_are_ignored() -> None:
    assert probes._dhcp_parse(reply(2, 8, b""), 7) is None
    request = probes._dhcp_message(1, 7, bytes(6), {})
    assert probes._dhcp_parse(request, 7) is None
    assert probes._dhcp_parse(b"\x02" * 100, 7) is None


@given(st.binary(max_size=600))
def test_any_bytes_parse_to_a_reply_or_none(data: bytes) -> None:
    parsed = probes._dhcp_parse(data, 7)
    assert parsed is None or isinstance(parsed[2], dict)


@given(st.binary(min_size=2, max_size=200).filter(lambda data: len(data) % 2 == 0))
def test_a_checksummed_message_sums_to_zero(data: bytes) -> None:
    with_sum = data + struct.pack("!H", probes._checksum(data))
    assert probes._checksum(with_sum) == 0
