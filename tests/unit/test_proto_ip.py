"""The IPv4 and IPv6 walks, attacked the way a hostile client would.

Each disguise hides a DHCP server reply (IPv4 UDP from 67, IPv6 UDP from
547) or a router advertisement / redirect (ICMPv6 134 / 137). The walk must
either see through it or say it is uncertain; it must never call such a
frame harmless.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.proto.classification import FragmentState, FrameClass, Uncertainty
from lanparty.proto.ethernet import MAX_VLAN_TAGS, VLAN_TAG_ETHERTYPES, classify_frame
from lanparty.proto.ip import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_AH,
    IPPROTO_DSTOPTS,
    IPPROTO_ESP,
    IPPROTO_EXPERIMENTAL_253,
    IPPROTO_EXPERIMENTAL_254,
    IPPROTO_FRAGMENT,
    IPPROTO_HIP,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_MOBILITY,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    IPPROTO_SCTP,
    IPPROTO_SHIM6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MAX_IPV4_AH_HEADERS,
    MAX_IPV6_EXTENSION_BYTES,
    MAX_IPV6_EXTENSION_HEADERS,
    classify_ipv4,
    classify_ipv6,
)

MORE_FRAGMENTS_V4 = 0x2000

# ---------------------------------------------------------------- builders


def ethernet(payload: bytes, ethertype: int, tags: Sequence[int] = ()) -> bytes:
    header = bytes.fromhex("ffffffffffff020000000001")
    for tpid in tags:
        header += struct.pack("!HH", tpid, 0x0005)
    return header + struct.pack("!H", ethertype) + payload


def llc_snap(payload: bytes, ethertype: int) -> bytes:
    """An LLC/SNAP header (RFC 1042) carrying ``ethertype``, then the payload."""
    return b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype) + payload


def ieee8023(llc_payload: bytes, tags: Sequence[int] = ()) -> bytes:
    """An 802.3 frame: the type field holds the LLC payload's length."""
    assert len(llc_payload) < 0x0600
    return ethernet(llc_payload, len(llc_payload), tags)


def udp(source_port: int, destination_port: int, data: bytes = b"") -> bytes:
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(data), 0) + data


def icmpv6(message_type: int, body: bytes = bytes(12)) -> bytes:
    return bytes([message_type, 0, 0, 0]) + body


def ipv4(
    payload: bytes,
    protocol: int,
    *,
    options: bytes = b"",
    flags_offset: int = 0,
    total_length: int | None = None,
    ihl: int | None = None,
    version: int = 4,
) -> bytes:
    header_bytes = 20 + len(options)
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            version << 4 | (header_bytes // 4 if ihl is None else ihl),
            0,
            header_bytes + len(payload) if total_length is None else total_length,
            0x1234,
            flags_offset,
            64,
            protocol,
            0,
            bytes([198, 19, 0, 66]),
            bytes([255, 255, 255, 255]),
        )
        + options
        + payload
    )


# An extension header as (next-header value of its kind, parameter): the length
# field for the generic layout and AH, the offset/flags word for a fragment header.
Extension = tuple[int, int]


def extension(kind: int, parameter: int, next_header: int) -> bytes:
    if kind == IPPROTO_FRAGMENT:
        return struct.pack("!BBHI", next_header, 0, parameter, 0xCAFE)
    if kind == IPPROTO_AH:
        return bytes([next_header, parameter]) + bytes((parameter + 2) * 4 - 2)
    return bytes([next_header, parameter]) + bytes((parameter + 1) * 8 - 2)


def chain(extensions: Sequence[Extension], upper_protocol: int, upper: bytes) -> tuple[int, bytes]:
    """The first next-header value and the bytes of extensions + upper-layer data."""
    next_header, body = upper_protocol, upper
    for kind, parameter in reversed(extensions):
        body = extension(kind, parameter, next_header) + body
        next_header = kind
    return next_header, body


def ipv6(
    next_header: int, body: bytes, *, payload_length: int | None = None, version: int = 6
) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            version << 28,
            len(body) if payload_length is None else payload_length,
            next_header,
            255,
            bytes.fromhex("fe80000000000000000000fffe000001"),
            bytes.fromhex("ff020000000000000000000000000001"),
        )
        + body
    )


def ipv6_frame(
    extensions: Sequence[Extension],
    upper_protocol: int,
    upper: bytes,
    *,
    payload_length: int | None = None,
    version: int = 6,
) -> bytes:
    next_header, body = chain(extensions, upper_protocol, upper)
    packet = ipv6(next_header, body, payload_length=payload_length, version=version)
    return ethernet(packet, ETHERTYPE_IPV6)


def dhcpv6_reply() -> bytes:
    return udp(547, 546, b"\x07" + bytes(11))


def dhcp_reply() -> bytes:
    return udp(67, 68, b"\x02" + bytes(11))


def fragment_word(offset_units: int, more: bool) -> int:
    return offset_units << 3 | more


# ------------------------------------------------------------------- IPv4


def test_dhcp_server_reply() -> None:
    frame_class = classify_frame(ethernet(ipv4(dhcp_reply(), IPPROTO_UDP), ETHERTYPE_IPV4))
    assert frame_class == FrameClass(
        ETHERTYPE_IPV4, 0, False, 4, IPPROTO_UDP, FragmentState.UNFRAGMENTED, 67, 68
    )


@pytest.mark.parametrize("options_bytes", [4, 8, 20, 40])
def test_ipv4_options_are_skipped_by_ihl(options_bytes: int) -> None:
    # Options made of bytes that look like a UDP header from port 68.
    options = (udp(68, 67) * 5)[:options_bytes]
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, options=options)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.certain
    assert frame_class.udp_source_port == 67


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_ipv4_ihl_below_5_is_bad(ihl: int) -> None:
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, ihl=ihl)
    assert (
        classify_frame(ethernet(packet, ETHERTYPE_IPV4)).uncertainty is Uncertainty.BAD_IPV4_HEADER
    )


@pytest.mark.parametrize("total_length", [0, 19, 23])
def test_ipv4_total_length_shorter_than_header_is_bad(total_length: int) -> None:
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, options=bytes(4), total_length=total_length)
    assert (
        classify_frame(ethernet(packet, ETHERTYPE_IPV4)).uncertainty is Uncertainty.BAD_IPV4_HEADER
    )


def test_ipv4_ihl_beyond_the_frame_is_truncated() -> None:
    packet = ipv4(b"", IPPROTO_UDP, ihl=15, total_length=60)
    assert (
        classify_frame(ethernet(packet, ETHERTYPE_IPV4)).uncertainty is Uncertainty.FRAME_TRUNCATED
    )


def test_ipv4_total_length_beyond_the_frame_is_truncated() -> None:
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, total_length=20 + len(dhcp_reply()) + 1)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.FRAME_TRUNCATED


@pytest.mark.parametrize("cut", [14, 15, 33])
def test_frame_ending_inside_the_ipv4_header_is_truncated(cut: int) -> None:
    frame = ethernet(ipv4(dhcp_reply(), IPPROTO_UDP), ETHERTYPE_IPV4)[:cut]
    assert classify_frame(frame).uncertainty is Uncertainty.FRAME_TRUNCATED


def test_ethernet_padding_after_ipv4_is_ignored() -> None:
    packet = ipv4(udp(67, 68), IPPROTO_UDP)
    frame = ethernet(packet + udp(68, 67) + bytes(10), ETHERTYPE_IPV4)
    assert len(frame) >= 60
    frame_class = classify_frame(frame)
    assert frame_class.certain
    assert frame_class.udp_source_port == 67


def test_udp_header_in_the_padding_only_is_incomplete() -> None:
    # The frame holds a whole UDP header, but the IP packet ends after 4 bytes of it.
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, total_length=24)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE
    assert frame_class.upper_protocol == IPPROTO_UDP


@pytest.mark.parametrize("version", [0, 5, 6, 15])
def test_ipv4_ethertype_with_another_version_is_a_mismatch(version: int) -> None:
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, version=version)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.IP_VERSION_MISMATCH
    assert frame_class.ip_version == 4


def test_ipv6_packet_under_the_ipv4_ethertype_is_a_mismatch() -> None:
    packet = ipv6(*chain([], IPPROTO_UDP, dhcpv6_reply()))
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.IP_VERSION_MISMATCH


def test_ipv4_first_fragment_with_the_udp_header() -> None:
    packet = ipv4(dhcp_reply()[:8], IPPROTO_UDP, flags_offset=MORE_FRAGMENTS_V4)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.certain
    assert frame_class.fragment is FragmentState.FIRST
    assert frame_class.udp_source_port == 67


@pytest.mark.parametrize("udp_bytes", [0, 4, 7])
def test_ipv4_first_fragment_too_short_for_udp_is_uncertain(udp_bytes: int) -> None:
    packet = ipv4(dhcp_reply()[:udp_bytes], IPPROTO_UDP, flags_offset=MORE_FRAGMENTS_V4)
    frame_class = classify_frame(ethernet(packet + bytes(20), ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.FIRST_FRAGMENT_INCOMPLETE
    assert frame_class.fragment is FragmentState.FIRST


@pytest.mark.parametrize("flags_offset", [1, 0x1FFF, MORE_FRAGMENTS_V4 | 1, 0x4000 | 3])
def test_ipv4_non_first_fragment_passes_to_its_first(flags_offset: int) -> None:
    # Payload bytes that look like a UDP header from 67 are data, not a header.
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, flags_offset=flags_offset)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.certain
    assert frame_class.fragment is FragmentState.NON_FIRST
    assert frame_class.udp_source_port is None
    assert frame_class.upper_protocol == IPPROTO_UDP


def test_dont_fragment_is_unfragmented() -> None:
    packet = ipv4(dhcp_reply(), IPPROTO_UDP, flags_offset=0x4000)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.fragment is FragmentState.UNFRAGMENTED
    assert frame_class.udp_source_port == 67


def ipv4_ah(next_header: int, length_field: int) -> bytes:
    return bytes([next_header, length_field]) + bytes((length_field + 2) * 4 - 2)


def test_ipv4_ah_is_walked_in_4_octet_units() -> None:
    # 12 bytes of AH: an 8-octet reading would land inside the UDP header.
    packet = ipv4(ipv4_ah(IPPROTO_UDP, 1) + dhcp_reply(), IPPROTO_AH)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.certain
    assert frame_class.upper_protocol == IPPROTO_UDP
    assert frame_class.udp_source_port == 67


def test_ipv4_ah_stack_too_deep_is_uncertain() -> None:
    payload = dhcp_reply()
    protocol = IPPROTO_UDP
    for _ in range(MAX_IPV4_AH_HEADERS + 1):
        payload = ipv4_ah(protocol, 1) + payload
        protocol = IPPROTO_AH
    frame_class = classify_frame(ethernet(ipv4(payload, protocol), ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.HEADER_CHAIN_TOO_LONG


def test_ipv4_ah_beyond_the_packet_is_incomplete() -> None:
    packet = ipv4(ipv4_ah(IPPROTO_UDP, 10)[:12], IPPROTO_AH)
    frame = ethernet(packet + bytes(40), ETHERTYPE_IPV4)
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE


def test_ipv4_esp_is_encrypted() -> None:
    packet = ipv4(bytes(8) + dhcp_reply(), IPPROTO_ESP)
    frame_class = classify_frame(ethernet(packet, ETHERTYPE_IPV4))
    assert frame_class.uncertainty is Uncertainty.ENCRYPTED


@pytest.mark.parametrize("protocol", [IPPROTO_TCP, IPPROTO_ICMP, 2, 47, 253, 255])
def test_other_ipv4_protocols_are_certain(protocol: int) -> None:
    frame_class = classify_frame(ethernet(ipv4(bytes(20), protocol), ETHERTYPE_IPV4))
    assert frame_class.certain
    assert frame_class.upper_protocol == protocol
    assert frame_class.udp_source_port is None


def test_walks_start_where_they_are_told() -> None:
    packet = ipv4(dhcp_reply(), IPPROTO_UDP)
    frame = bytes(7) + packet + bytes(3)
    frame_class = classify_ipv4(frame, 7, len(frame), vlan_tags=2, llc=True)
    assert (frame_class.vlan_tags, frame_class.llc, frame_class.udp_source_port) == (2, True, 67)
    assert classify_ipv4(frame, 7, len(frame) - 4).uncertainty is Uncertainty.FRAME_TRUNCATED
    packet6 = ipv6(*chain([], IPPROTO_ICMPV6, icmpv6(137)))
    frame6 = bytes(3) + packet6
    assert classify_ipv6(frame6, 3, len(frame6)).icmpv6_type == 137


# ------------------------------------------------------------------- IPv6


@pytest.mark.parametrize("message_type", [134, 137, 133, 135, 136, 128])
def test_icmpv6_type_is_read(message_type: int) -> None:
    frame_class = classify_frame(ipv6_frame([], IPPROTO_ICMPV6, icmpv6(message_type)))
    assert frame_class == FrameClass(
        ETHERTYPE_IPV6, 0, False, 6, IPPROTO_ICMPV6, icmpv6_type=message_type
    )


def test_dhcpv6_reply() -> None:
    frame_class = classify_frame(ipv6_frame([], IPPROTO_UDP, dhcpv6_reply()))
    assert frame_class.certain
    assert (frame_class.udp_source_port, frame_class.udp_destination_port) == (547, 546)


@pytest.mark.parametrize(
    "kind",
    [
        IPPROTO_HOPOPTS,
        IPPROTO_ROUTING,
        IPPROTO_DSTOPTS,
        IPPROTO_MOBILITY,
        IPPROTO_HIP,
        IPPROTO_SHIM6,
        IPPROTO_EXPERIMENTAL_253,
        IPPROTO_EXPERIMENTAL_254,
    ],
)
@pytest.mark.parametrize("length_field", [0, 1, 3])
def test_generic_extension_headers_are_walked(kind: int, length_field: int) -> None:
    # Bytes inside the header that look like an RA must not be read as one.
    frame_class = classify_frame(ipv6_frame([(kind, length_field)], IPPROTO_UDP, dhcpv6_reply()))
    assert frame_class.certain
    assert frame_class.udp_source_port == 547


@pytest.mark.parametrize("length_field", [1, 2, 4])
def test_ipv6_ah_is_walked_in_4_octet_units(length_field: int) -> None:
    frame_class = classify_frame(
        ipv6_frame([(IPPROTO_AH, length_field)], IPPROTO_ICMPV6, icmpv6(134))
    )
    assert frame_class.certain
    assert frame_class.icmpv6_type == 134


def test_full_rfc_8200_order_is_walked() -> None:
    extensions = [
        (IPPROTO_HOPOPTS, 0),
        (IPPROTO_DSTOPTS, 1),
        (IPPROTO_ROUTING, 2),
        (IPPROTO_FRAGMENT, fragment_word(0, more=True)),
        (IPPROTO_AH, 4),
        (IPPROTO_DSTOPTS, 0),
    ]
    frame_class = classify_frame(ipv6_frame(extensions, IPPROTO_ICMPV6, icmpv6(137)))
    assert frame_class.certain
    assert frame_class.fragment is FragmentState.FIRST
    assert frame_class.icmpv6_type == 137


def test_hop_by_hop_after_another_header_is_misplaced() -> None:
    frame = ipv6_frame([(IPPROTO_DSTOPTS, 0), (IPPROTO_HOPOPTS, 0)], IPPROTO_UDP, dhcpv6_reply())
    assert classify_frame(frame).uncertainty is Uncertainty.MISPLACED_HOP_BY_HOP


def test_esp_is_encrypted() -> None:
    frame = ipv6_frame([(IPPROTO_DSTOPTS, 0)], IPPROTO_ESP, bytes(8) + icmpv6(134))
    assert classify_frame(frame).uncertainty is Uncertainty.ENCRYPTED


def test_no_next_header_is_certain() -> None:
    # Bytes after "no next header" are ignored by receivers.
    frame_class = classify_frame(ipv6_frame([(IPPROTO_DSTOPTS, 0)], IPPROTO_NONE, icmpv6(134)))
    assert frame_class.certain
    assert frame_class.upper_protocol == IPPROTO_NONE
    assert frame_class.icmpv6_type is None


@pytest.mark.parametrize("next_header", [IPPROTO_TCP, IPPROTO_SCTP, 41, 47, 136])
def test_known_upper_layer_protocols_are_certain(next_header: int) -> None:
    frame_class = classify_frame(ipv6_frame([(IPPROTO_HOPOPTS, 0)], next_header, bytes(20)))
    assert frame_class.certain
    assert frame_class.upper_protocol == next_header


@pytest.mark.parametrize("next_header", [IPPROTO_ICMP, 2, 100, 141, 200, 252, 255])
def test_unknown_next_header_is_uncertain(next_header: int) -> None:
    # It could be an extension header that some receiver skips to an RA.
    frame = ipv6_frame([], next_header, bytes([IPPROTO_ICMPV6, 0]) + bytes(6) + icmpv6(134))
    assert classify_frame(frame).uncertainty is Uncertainty.UNKNOWN_NEXT_HEADER


def test_chain_at_the_header_count_limit_is_walked() -> None:
    extensions = [(IPPROTO_HOPOPTS, 0)] + [(IPPROTO_DSTOPTS, 0)] * (MAX_IPV6_EXTENSION_HEADERS - 1)
    frame_class = classify_frame(ipv6_frame(extensions, IPPROTO_ICMPV6, icmpv6(134)))
    assert frame_class.icmpv6_type == 134


def test_chain_beyond_the_header_count_limit_is_uncertain() -> None:
    extensions = [(IPPROTO_DSTOPTS, 0)] * (MAX_IPV6_EXTENSION_HEADERS + 1)
    frame = ipv6_frame(extensions, IPPROTO_ICMPV6, icmpv6(134))
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_TOO_LONG


def test_chain_beyond_the_byte_limit_is_uncertain() -> None:
    length_field = MAX_IPV6_EXTENSION_BYTES // 8  # one octet group too many
    frame = ipv6_frame([(IPPROTO_DSTOPTS, length_field)], IPPROTO_UDP, dhcpv6_reply())
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_TOO_LONG
    frame = ipv6_frame([(IPPROTO_DSTOPTS, length_field - 1)], IPPROTO_UDP, dhcpv6_reply())
    assert classify_frame(frame).udp_source_port == 547


def test_first_fragment_without_the_upper_header_is_uncertain() -> None:
    # RFC 7113: padding pushes the RA into the second fragment.
    extensions = [(IPPROTO_FRAGMENT, fragment_word(0, more=True)), (IPPROTO_DSTOPTS, 20)]
    _, body = chain(extensions, IPPROTO_ICMPV6, icmpv6(134))
    first_fragment = body[:64]
    frame = ethernet(ipv6(IPPROTO_FRAGMENT, first_fragment) + bytes(200), ETHERTYPE_IPV6)
    frame_class = classify_frame(frame)
    assert frame_class.uncertainty is Uncertainty.FIRST_FRAGMENT_INCOMPLETE
    assert frame_class.fragment is FragmentState.FIRST


@pytest.mark.parametrize("upper_bytes", [0, 2, 7])
def test_first_fragment_with_a_partial_udp_header_is_uncertain(upper_bytes: int) -> None:
    extensions = [(IPPROTO_FRAGMENT, fragment_word(0, more=True))]
    _, body = chain(extensions, IPPROTO_UDP, dhcpv6_reply())
    frame = ethernet(ipv6(IPPROTO_FRAGMENT, body[: 8 + upper_bytes]), ETHERTYPE_IPV6)
    frame_class = classify_frame(frame + bytes(20))
    assert frame_class.uncertainty is Uncertainty.FIRST_FRAGMENT_INCOMPLETE
    assert frame_class.upper_protocol == IPPROTO_UDP


def test_first_fragment_with_the_whole_chain_is_classified() -> None:
    extensions = [(IPPROTO_FRAGMENT, fragment_word(0, more=True)), (IPPROTO_DSTOPTS, 1)]
    frame_class = classify_frame(ipv6_frame(extensions, IPPROTO_UDP, dhcpv6_reply()))
    assert frame_class.certain
    assert frame_class.fragment is FragmentState.FIRST
    assert frame_class.udp_source_port == 547


def test_atomic_fragment_is_classified_as_a_whole_packet() -> None:
    extensions = [(IPPROTO_FRAGMENT, fragment_word(0, more=False))]
    frame_class = classify_frame(ipv6_frame(extensions, IPPROTO_ICMPV6, icmpv6(134)))
    assert frame_class.certain
    assert frame_class.fragment is FragmentState.UNFRAGMENTED
    assert frame_class.icmpv6_type == 134


@pytest.mark.parametrize(("offset_units", "more"), [(1, True), (1, False), (8191, False)])
def test_ipv6_non_first_fragment_passes_to_its_first(offset_units: int, more: bool) -> None:
    extensions = [(IPPROTO_HOPOPTS, 0), (IPPROTO_FRAGMENT, fragment_word(offset_units, more))]
    frame_class = classify_frame(ipv6_frame(extensions, IPPROTO_ICMPV6, icmpv6(134)))
    assert frame_class.certain
    assert frame_class.fragment is FragmentState.NON_FIRST
    assert frame_class.upper_protocol is None
    assert frame_class.icmpv6_type is None


def test_second_fragment_header_is_uncertain() -> None:
    extensions = [
        (IPPROTO_FRAGMENT, fragment_word(0, more=False)),
        (IPPROTO_FRAGMENT, fragment_word(0, more=True)),
    ]
    frame = ipv6_frame(extensions, IPPROTO_ICMPV6, icmpv6(134))
    assert classify_frame(frame).uncertainty is Uncertainty.REPEATED_FRAGMENT_HEADER


def test_payload_length_beyond_the_frame_is_truncated() -> None:
    frame = ipv6_frame([], IPPROTO_UDP, dhcpv6_reply(), payload_length=len(dhcpv6_reply()) + 1)
    assert classify_frame(frame).uncertainty is Uncertainty.FRAME_TRUNCATED


def test_payload_length_ending_inside_the_chain_is_incomplete() -> None:
    # Padding after the packet holds the rest; receivers never look there.
    frame = ipv6_frame([(IPPROTO_DSTOPTS, 1)], IPPROTO_ICMPV6, icmpv6(134), payload_length=8)
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE
    frame = ipv6_frame([], IPPROTO_UDP, dhcpv6_reply(), payload_length=4)
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE


def test_jumbogram_is_incomplete() -> None:
    jumbo_option = bytes([IPPROTO_UDP, 0, 0xC2, 4]) + struct.pack("!I", 70000)
    frame = ethernet(
        ipv6(IPPROTO_HOPOPTS, jumbo_option + dhcpv6_reply(), payload_length=0), ETHERTYPE_IPV6
    )
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE


def test_empty_ipv6_packet_with_no_next_header_is_certain() -> None:
    frame_class = classify_frame(ethernet(ipv6(IPPROTO_NONE, b"") + bytes(20), ETHERTYPE_IPV6))
    assert frame_class.certain
    assert frame_class.upper_protocol == IPPROTO_NONE


def test_ethernet_padding_after_ipv6_is_ignored() -> None:
    frame = ethernet(ipv6(*chain([], IPPROTO_ICMPV6, icmpv6(134))) + bytes(30), ETHERTYPE_IPV6)
    assert classify_frame(frame).icmpv6_type == 134


@pytest.mark.parametrize("cut", [14, 30, 53])
def test_frame_ending_inside_the_ipv6_header_is_truncated(cut: int) -> None:
    frame = ipv6_frame([], IPPROTO_ICMPV6, icmpv6(134))[:cut]
    assert classify_frame(frame).uncertainty is Uncertainty.FRAME_TRUNCATED


@pytest.mark.parametrize("version", [0, 4, 7])
def test_ipv6_ethertype_with_another_version_is_a_mismatch(version: int) -> None:
    frame = ipv6_frame([], IPPROTO_ICMPV6, icmpv6(134), version=version)
    frame_class = classify_frame(frame)
    assert frame_class.uncertainty is Uncertainty.IP_VERSION_MISMATCH
    assert frame_class.ip_version == 6


def test_icmpv6_header_must_be_whole() -> None:
    frame = ipv6_frame([], IPPROTO_ICMPV6, icmpv6(134), payload_length=3)
    frame_class = classify_frame(frame)
    assert frame_class.uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE
    assert frame_class.icmpv6_type is None


def test_extension_header_cut_by_the_packet_end_is_incomplete() -> None:
    frame = ipv6_frame([(IPPROTO_ROUTING, 0)], IPPROTO_UDP, dhcpv6_reply(), payload_length=1)
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE
    frame = ipv6_frame([(IPPROTO_FRAGMENT, 1)], IPPROTO_UDP, dhcpv6_reply(), payload_length=6)
    assert classify_frame(frame).uncertainty is Uncertainty.HEADER_CHAIN_INCOMPLETE


# ------------------------------------------------------ generated disguises

hostile_kinds = st.sampled_from(
    [
        IPPROTO_HOPOPTS,
        IPPROTO_ROUTING,
        IPPROTO_DSTOPTS,
        IPPROTO_AH,
        IPPROTO_FRAGMENT,
        IPPROTO_MOBILITY,
        IPPROTO_HIP,
        IPPROTO_SHIM6,
        IPPROTO_EXPERIMENTAL_253,
        IPPROTO_EXPERIMENTAL_254,
    ]
)


@st.composite
def extension_chains(draw: st.DrawFn) -> list[Extension]:
    extensions = []
    for kind in draw(st.lists(hostile_kinds, max_size=MAX_IPV6_EXTENSION_HEADERS + 2)):
        if kind == IPPROTO_FRAGMENT:
            parameter = fragment_word(0, draw(st.booleans()))
        elif kind == IPPROTO_AH:
            parameter = draw(st.integers(min_value=1, max_value=6))
        else:
            parameter = draw(st.integers(min_value=0, max_value=12))
        extensions.append((kind, parameter))
    return extensions


# VLAN tags outside, whether LLC/SNAP follows, and tags inside the SNAP.
Framing = tuple[list[int], bool, list[int]]


@st.composite
def framings(draw: st.DrawFn) -> Framing:
    tpids = st.sampled_from(sorted(VLAN_TAG_ETHERTYPES))
    outer = draw(st.lists(tpids, max_size=3))
    snap = draw(st.booleans())
    inner = draw(st.lists(tpids, max_size=2)) if snap else []
    return outer, snap, inner


def frame_around(packet: bytes, ethertype: int, framing: Framing) -> bytes:
    outer, snap, inner = framing
    if not snap:
        return ethernet(packet, ethertype, outer)
    # The SNAP protocol id is the first inner tag's TPID; each tag then holds
    # its control information and the next type.
    types = [*inner, ethertype]
    tags = b"".join(struct.pack("!HH", 0x0007, next_type) for next_type in types[1:])
    return ieee8023(llc_snap(tags + packet, types[0]), outer)


def expected_framing_uncertainty(framing: Framing) -> bool:
    outer, _, inner = framing
    return len(outer) + len(inner) > MAX_VLAN_TAGS


def expected_chain_uncertainty(extensions: Sequence[Extension]) -> bool:
    """What the walk must refuse in a well-formed chain: the structural rules."""
    if len(extensions) > MAX_IPV6_EXTENSION_HEADERS:
        return True
    sizes = [len(extension(kind, parameter, 0)) for kind, parameter in extensions]
    if sum(sizes) > MAX_IPV6_EXTENSION_BYTES:
        return True
    if any(kind == IPPROTO_HOPOPTS for kind, _ in extensions[1:]):
        return True
    return sum(kind == IPPROTO_FRAGMENT for kind, _ in extensions) > 1


def is_hostile_ipv6(frame_class: FrameClass) -> bool:
    return frame_class.ip_version == 6 and (
        (frame_class.upper_protocol == IPPROTO_UDP and frame_class.udp_source_port == 547)
        or (frame_class.upper_protocol == IPPROTO_ICMPV6 and frame_class.icmpv6_type in {134, 137})
    )


ipv6_hostile_uppers = st.sampled_from(
    [(IPPROTO_UDP, dhcpv6_reply()), (IPPROTO_ICMPV6, icmpv6(134)), (IPPROTO_ICMPV6, icmpv6(137))]
)


@given(framings(), extension_chains(), ipv6_hostile_uppers, st.binary(max_size=30))
def test_well_formed_ipv6_disguises_are_seen_through(
    framing: Framing,
    extensions: list[Extension],
    upper: tuple[int, bytes],
    padding: bytes,
) -> None:
    packet = ipv6(*chain(extensions, *upper))
    frame_class = classify_frame(frame_around(packet, ETHERTYPE_IPV6, framing) + padding)
    if expected_framing_uncertainty(framing) or expected_chain_uncertainty(extensions):
        assert not frame_class.certain
    else:
        assert frame_class.certain, frame_class.uncertainty
        assert is_hostile_ipv6(frame_class)
        assert frame_class.vlan_tags == len(framing[0]) + len(framing[2])
        assert frame_class.llc == framing[1]


@st.composite
def tamperings(draw: st.DrawFn, packet_length: int) -> tuple[int | None, int | None]:
    """An optional cut of the frame and an optional false IP length field."""
    cut = draw(st.none() | st.integers(min_value=14, max_value=packet_length + 60))
    false_length = draw(st.none() | st.integers(min_value=0, max_value=0xFFFF))
    return cut, false_length


@given(framings(), extension_chains(), ipv6_hostile_uppers, st.data())
def test_tampered_ipv6_disguises_are_never_harmless(
    framing: Framing,
    extensions: list[Extension],
    upper: tuple[int, bytes],
    data: st.DataObject,
) -> None:
    first_header, body = chain(extensions, *upper)
    cut, false_length = data.draw(tamperings(40 + len(body)))
    packet = ipv6(first_header, body, payload_length=false_length)
    frame = frame_around(packet, ETHERTYPE_IPV6, framing)
    frame_class = classify_frame(frame if cut is None else frame[:cut])
    assert not frame_class.certain or is_hostile_ipv6(frame_class)


@given(
    framing=framings(),
    options_words=st.integers(min_value=0, max_value=10),
    ah_lengths=st.lists(st.integers(min_value=1, max_value=4), max_size=3),
    first_fragment=st.booleans(),
    padding=st.binary(max_size=20),
    data=st.data(),
)
def test_ipv4_dhcp_disguises_are_seen_through_or_uncertain(
    *,
    framing: Framing,
    options_words: int,
    ah_lengths: list[int],
    first_fragment: bool,
    padding: bytes,
    data: st.DataObject,
) -> None:
    payload, protocol = dhcp_reply(), IPPROTO_UDP
    for length_field in ah_lengths:
        payload, protocol = ipv4_ah(protocol, length_field) + payload, IPPROTO_AH
    options = udp(68, 67)[:4] * options_words
    flags_offset = MORE_FRAGMENTS_V4 if first_fragment else 0
    cut, false_length = data.draw(tamperings(20 + len(options) + len(payload)))
    packet = ipv4(
        payload, protocol, options=options, flags_offset=flags_offset, total_length=false_length
    )
    frame = frame_around(packet, ETHERTYPE_IPV4, framing) + padding
    frame_class = classify_frame(frame if cut is None else frame[:cut])
    if frame_class.certain:
        assert frame_class.ip_version == 4
        assert frame_class.upper_protocol == IPPROTO_UDP
        assert frame_class.udp_source_port == 67
    untampered = cut is None and false_length is None
    if untampered and not expected_framing_uncertainty(framing):
        assert frame_class.certain == (len(ah_lengths) <= MAX_IPV4_AH_HEADERS)


@given(st.binary(max_size=120), st.integers(min_value=0, max_value=130))
def test_walks_never_raise(packet: bytes, start: int) -> None:
    for walk in (classify_ipv4, classify_ipv6):
        frame_class = walk(packet, start, len(packet))
        assert isinstance(frame_class, FrameClass)
        if frame_class.udp_source_port is not None or frame_class.icmpv6_type is not None:
            assert frame_class.certain


@given(st.binary(min_size=14, max_size=120))
def test_ports_and_types_only_come_from_a_whole_upper_header(packet: bytes) -> None:
    for ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        frame_class = classify_frame(ethernet(packet, ethertype))
        if frame_class.udp_source_port is not None:
            assert frame_class.upper_protocol == IPPROTO_UDP
            assert frame_class.fragment is not FragmentState.NON_FIRST
        if frame_class.icmpv6_type is not None:
            assert frame_class.upper_protocol == IPPROTO_ICMPV6
