"""TCP MSS clamping: the MSS is lowered, the checksum stays right, anything odd is left alone."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanparty.proto.tcp import clamp_mss, mss_for

SRC4, DST4 = (
    ipaddress.IPv4Address("198.19.0.10").packed,
    ipaddress.IPv4Address("198.19.0.50").packed,
)
SRC6, DST6 = ipaddress.IPv6Address("fe80::1").packed, ipaddress.IPv6Address("fe80::2").packed


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(options: bytes, flags: int = 0x02, payload: bytes = b"") -> bytes:
    options = options + bytes(-len(options) % 4)
    offset = (20 + len(options)) // 4
    return (
        struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, offset << 4, flags, 64240, 0, 0)
        + options
        + payload
    )


def with_checksum(segment: bytes, pseudo: bytes) -> bytes:
    value = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def ipv4_frame(segment: bytes, tags: int = 0, flags_offset: int = 0x4000) -> bytes:
    pseudo = SRC4 + DST4 + struct.pack("!BBH", 0, 6, len(segment))
    segment = with_checksum(segment, pseudo)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, flags_offset, 64, 6, 0, SRC4, DST4
    )
    tagged = b"".join(struct.pack("!HH", 0x8100, 5) for _ in range(tags))
    return b"\x10" + bytes(6) + bytes(6) + tagged + b"\x08\x00" + ip + segment


def ipv6_frame(segment: bytes, next_header: int = 6) -> bytes:
    pseudo = SRC6 + DST6 + struct.pack("!I3xB", len(segment), 6)
    segment = with_checksum(segment, pseudo)
    ip = struct.pack("!IHBB", 6 << 28, len(segment), next_header, 64) + SRC6 + DST6
    return b"\x10" + bytes(12) + b"\x86\xdd" + ip + segment


def mss_option(value: int) -> bytes:
    return struct.pack("!BBH", 2, 4, value)


def tcp_of(datagram: bytes, ipv6: bool = False, tags: int = 0) -> bytes:
    start = 1 + 14 + 4 * tags + (40 if ipv6 else 20)
    return datagram[start:]


def valid(datagram: bytes, ipv6: bool = False, tags: int = 0) -> bool:
    segment = tcp_of(datagram, ipv6, tags)
    pseudo = (
        SRC6 + DST6 + struct.pack("!I3xB", len(segment), 6)
        if ipv6
        else SRC4 + DST4 + struct.pack("!BBH", 0, 6, len(segment))
    )
    return checksum(pseudo + segment) == 0


def mss_in(datagram: bytes, ipv6: bool = False, tags: int = 0) -> int:
    segment = tcp_of(datagram, ipv6, tags)
    at = segment.index(b"\x02\x04")
    return int.from_bytes(segment[at + 2 : at + 4], "big")


def test_the_mss_for_a_budget() -> None:
    assert mss_for(1408, ipv6=False) == 1408 - 1 - 14 - 40
    assert mss_for(1408, ipv6=True) == 1408 - 1 - 14 - 60


@pytest.mark.parametrize("flags", [0x02, 0x12])  # SYN, SYN-ACK
def test_a_syn_s_mss_is_lowered_and_its_checksum_stays_right(flags: int) -> None:
    options = b"\x01\x01" + mss_option(1460) + b"\x04\x02"  # NOP NOP MSS SACK-permitted
    frame = ipv4_frame(tcp_segment(options, flags))
    assert valid(frame)
    clamped = clamp_mss(frame, 1, 1353, 1333)
    assert clamped is not None
    assert mss_in(clamped) == 1353
    assert valid(clamped)
    assert len(clamped) == len(frame)


def test_ipv6_and_vlan_tags_have_their_own_limits() -> None:
    six = clamp_mss(ipv6_frame(tcp_segment(mss_option(1440))), 1, 1353, 1333)
    assert six is not None
    assert mss_in(six, ipv6=True) == 1333
    assert valid(six, ipv6=True)
    tagged = clamp_mss(ipv4_frame(tcp_segment(mss_option(1460)), tags=2), 1, 1353, 1333)
    assert tagged is not None
    assert mss_in(tagged, tags=2) == 1353 - 8
    assert valid(tagged, tags=2)


@pytest.mark.parametrize(
    "frame",
    [
        ipv4_frame(tcp_segment(mss_option(1200))),  # already small enough
        ipv4_frame(tcp_segment(b"\x01\x01\x04\x02")),  # no MSS option: none is added
        ipv4_frame(tcp_segment(mss_option(1460), flags=0x10)),  # not a SYN
        ipv4_frame(tcp_segment(mss_option(1460)), flags_offset=0x2000),  # a first fragment
        ipv6_frame(tcp_segment(mss_option(1460)), next_header=0),  # behind an extension header
        ipv4_frame(tcp_segment(b"\x02\x05\x05\xb4\x00")),  # a malformed MSS option
        ipv4_frame(tcp_segment(b"\x00" + mss_option(1460))),  # after the end of options
        ipv4_frame(tcp_segment(mss_option(1460)), tags=3),  # more tags than a host reads
    ],
)
def test_anything_else_is_left_alone(frame: bytes) -> None:
    assert clamp_mss(frame, 1, 1353, 1333) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(536, 65535), st.integers(500, 1400), st.sampled_from([0x02, 0x12]))
def test_every_clamped_syn_checksums(mss: int, limit: int, flags: int) -> None:
    frame = ipv4_frame(tcp_segment(mss_option(mss) + b"\x01\x03\x03\x07", flags))
    clamped = clamp_mss(frame, 1, limit, limit - 20)
    if mss <= limit:
        assert clamped is None
    else:
        assert clamped is not None
        assert mss_in(clamped) == limit
        assert valid(clamped)


@given(st.binary(max_size=120), st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x81\x00"]))
def test_any_bytes_are_a_datagram_or_none_never_an_exception(
    payload: bytes, ethertype: bytes
) -> None:
    clamp_mss(b"\x10" + bytes(12) + ethertype + payload, 1, 1000, 980)
