"""IPv4 and IPv6 header walks for the relay's safety filters (PROTOCOL.md section 6).

The walks read a packet the way a hostile sender hopes a filter will not:
a DHCP server reply or an IPv6 router advertisement hidden behind IPv4
options, AH, IPv6 extension headers, or fragmentation (RFC 7113, RFC 7112).
Whenever the upper-layer protocol cannot be determined with certainty from
this frame alone, the result carries an ``Uncertainty`` instead of a guess.

Lengths come from the IP headers, not from the frame: Ethernet pads short
frames to 60 bytes, but the frame must hold every byte the headers claim.
Only the upper-layer headers the filters judge are read (UDP ports, the
ICMPv6 type); for other protocols the protocol number is the answer.
"""

from __future__ import annotations

import struct

from lanparty.proto.classification import (
    FragmentState,
    FrameClass,
    Uncertainty,
    certain_frame_class,
)

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IGMP = 2
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_OSPF = 89
IPPROTO_ETHERIP = 97
IPPROTO_PIM = 103
IPPROTO_VRRP = 112
IPPROTO_L2TP = 115
IPPROTO_SCTP = 132
IPPROTO_MOBILITY = 135
IPPROTO_UDPLITE = 136
IPPROTO_HIP = 139
IPPROTO_SHIM6 = 140
IPPROTO_EXPERIMENTAL_253 = 253
IPPROTO_EXPERIMENTAL_254 = 254

DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68
DHCPV6_SERVER_PORT = 547
DHCPV6_CLIENT_PORT = 546
ICMPV6_ROUTER_SOLICITATION = 133
ICMPV6_ROUTER_ADVERTISEMENT = 134
ICMPV6_REDIRECT = 137

IPV4_MIN_HEADER_BYTES = 20
IPV6_HEADER_BYTES = 40
UDP_HEADER_BYTES = 8
ICMPV6_HEADER_BYTES = 4
IPV6_FRAGMENT_HEADER_BYTES = 8

# Extension headers in the RFC 6564 layout: next header, then the length in
# 8-octet units not counting the first 8 octets (RFC 8200 section 4, IANA's
# "IPv6 Extension Header Types" registry minus fragment, AH and ESP).
IPV6_GENERIC_EXTENSION_HEADERS = frozenset(
    {
        IPPROTO_HOPOPTS,
        IPPROTO_ROUTING,
        IPPROTO_DSTOPTS,
        IPPROTO_MOBILITY,
        IPPROTO_HIP,
        IPPROTO_SHIM6,
        IPPROTO_EXPERIMENTAL_253,
        IPPROTO_EXPERIMENTAL_254,
    }
)
IPV6_EXTENSION_HEADERS = IPV6_GENERIC_EXTENSION_HEADERS | {IPPROTO_FRAGMENT, IPPROTO_AH}

# Next-header values taken as the end of an IPv6 chain. Any other value might
# be an extension header that some receiver knows how to skip (RFC 7045), so it
# is uncertain rather than assumed to be an upper-layer protocol.
IPV6_UPPER_LAYER_PROTOCOLS = frozenset(
    {
        IPPROTO_IPIP,
        IPPROTO_TCP,
        IPPROTO_UDP,
        IPPROTO_DCCP,
        IPPROTO_IPV6,
        IPPROTO_GRE,
        IPPROTO_ICMPV6,
        IPPROTO_NONE,
        IPPROTO_OSPF,
        IPPROTO_ETHERIP,
        IPPROTO_PIM,
        IPPROTO_VRRP,
        IPPROTO_L2TP,
        IPPROTO_SCTP,
        IPPROTO_UDPLITE,
    }
)

# RFC 8200 allows at most 6 extension headers in its recommended order and a
# few tens of bytes each in practice; anything longer is not walked.
MAX_IPV6_EXTENSION_HEADERS = 8
MAX_IPV6_EXTENSION_BYTES = 512
# IPv4 has no extension headers, but AH may sit between IP and the payload.
MAX_IPV4_AH_HEADERS = 2

_IPV4_HEADER = struct.Struct("!BxH2xHxB")  # version/IHL, total length, flags/offset, protocol
_IPV6_HEADER = struct.Struct("!B3xHB")  # version/class, payload length, next header
_UDP_PORTS = struct.Struct("!HH")

# Enum member lookup costs about 0.1 us on Python 3.11; the walks run for every frame.
_UNFRAGMENTED = FragmentState.UNFRAGMENTED
_FIRST = FragmentState.FIRST
_NON_FIRST = FragmentState.NON_FIRST
_HEADER_CHAIN_INCOMPLETE = Uncertainty.HEADER_CHAIN_INCOMPLETE
_FIRST_FRAGMENT_INCOMPLETE = Uncertainty.FIRST_FRAGMENT_INCOMPLETE

_IPV4_MORE_FRAGMENTS = 0x2000
_IPV4_FRAGMENT_OFFSET = 0x1FFF
_IPV6_FRAGMENT_OFFSET = 0xFFF8
_IPV6_MORE_FRAGMENTS = 0x0001


def classify_ipv4(
    frame: bytes, start: int, end: int, *, vlan_tags: int = 0, llc: bool = False
) -> FrameClass:
    """Classify the IPv4 packet at ``frame[start:end]`` (ethertype 0x0800).

    ``vlan_tags`` and ``llc`` describe the Ethernet framing around it and are
    copied into the result. Never raises for any bytes.
    """
    if start + IPV4_MIN_HEADER_BYTES > end:
        return _uncertain_ipv4(vlan_tags, llc, Uncertainty.FRAME_TRUNCATED)
    version_ihl, total_length, flags_offset, protocol = _IPV4_HEADER.unpack_from(frame, start)
    if version_ihl >> 4 != 4:
        return _uncertain_ipv4(vlan_tags, llc, Uncertainty.IP_VERSION_MISMATCH)
    header_bytes = (version_ihl & 0x0F) * 4
    if header_bytes < IPV4_MIN_HEADER_BYTES or total_length < header_bytes:
        return _uncertain_ipv4(vlan_tags, llc, Uncertainty.BAD_IPV4_HEADER)
    packet_end = start + total_length
    if packet_end > end:
        return _uncertain_ipv4(vlan_tags, llc, Uncertainty.FRAME_TRUNCATED)
    if flags_offset & _IPV4_FRAGMENT_OFFSET:
        return certain_frame_class(ETHERTYPE_IPV4, vlan_tags, llc, 4, protocol, _NON_FIRST)

    if flags_offset & _IPV4_MORE_FRAGMENTS:
        fragment = _FIRST
        incomplete = _FIRST_FRAGMENT_INCOMPLETE
    else:
        fragment = _UNFRAGMENTED
        incomplete = _HEADER_CHAIN_INCOMPLETE
    position = start + header_bytes

    ah_headers = 0
    while protocol == IPPROTO_AH:
        if ah_headers == MAX_IPV4_AH_HEADERS:
            return _uncertain_ipv4(vlan_tags, llc, Uncertainty.HEADER_CHAIN_TOO_LONG, fragment)
        if position + 2 > packet_end:
            return _uncertain_ipv4(vlan_tags, llc, incomplete, fragment)
        ah_bytes = (frame[position + 1] + 2) * 4
        if position + ah_bytes > packet_end:
            return _uncertain_ipv4(vlan_tags, llc, incomplete, fragment)
        protocol = frame[position]
        position += ah_bytes
        ah_headers += 1

    if protocol == IPPROTO_UDP:
        if position + UDP_HEADER_BYTES > packet_end:
            return _uncertain_ipv4(vlan_tags, llc, incomplete, fragment, protocol)
        source_port, destination_port = _UDP_PORTS.unpack_from(frame, position)
        return certain_frame_class(
            ETHERTYPE_IPV4, vlan_tags, llc, 4, protocol, fragment, source_port, destination_port,
            None, start, position,
        )  # fmt: skip
    if protocol == IPPROTO_ESP:
        return _uncertain_ipv4(vlan_tags, llc, Uncertainty.ENCRYPTED, fragment)
    return certain_frame_class(
        ETHERTYPE_IPV4, vlan_tags, llc, 4, protocol, fragment, None, None, None, start, position
    )


def classify_ipv6(
    frame: bytes, start: int, end: int, *, vlan_tags: int = 0, llc: bool = False
) -> FrameClass:
    """Classify the IPv6 packet at ``frame[start:end]`` (ethertype 0x86DD).

    Walks the extension-header chain to the upper-layer header, which must
    lie in this packet (for a first fragment: in this fragment). ``vlan_tags``
    and ``llc`` are copied into the result. Never raises for any bytes.
    """
    fragment = _UNFRAGMENTED
    if start + IPV6_HEADER_BYTES > end:
        return _uncertain_ipv6(vlan_tags, llc, Uncertainty.FRAME_TRUNCATED, fragment)
    version_class, payload_length, next_header = _IPV6_HEADER.unpack_from(frame, start)
    if version_class >> 4 != 6:
        return _uncertain_ipv6(vlan_tags, llc, Uncertainty.IP_VERSION_MISMATCH, fragment)
    packet_end = start + IPV6_HEADER_BYTES + payload_length
    if packet_end > end:
        return _uncertain_ipv6(vlan_tags, llc, Uncertainty.FRAME_TRUNCATED, fragment)

    position = start + IPV6_HEADER_BYTES
    incomplete = _HEADER_CHAIN_INCOMPLETE
    seen_fragment_header = False
    extension_headers = 0
    extension_bytes = 0
    while next_header in IPV6_EXTENSION_HEADERS:
        if extension_headers == MAX_IPV6_EXTENSION_HEADERS:
            return _uncertain_ipv6(vlan_tags, llc, Uncertainty.HEADER_CHAIN_TOO_LONG, fragment)
        if next_header == IPPROTO_HOPOPTS and extension_headers:
            return _uncertain_ipv6(vlan_tags, llc, Uncertainty.MISPLACED_HOP_BY_HOP, fragment)
        if position + 2 > packet_end:
            return _uncertain_ipv6(vlan_tags, llc, incomplete, fragment)
        if next_header == IPPROTO_FRAGMENT:
            if seen_fragment_header:
                return _uncertain_ipv6(
                    vlan_tags, llc, Uncertainty.REPEATED_FRAGMENT_HEADER, fragment
                )
            seen_fragment_header = True
            header_bytes = IPV6_FRAGMENT_HEADER_BYTES
            if position + header_bytes > packet_end:
                return _uncertain_ipv6(vlan_tags, llc, incomplete, fragment)
            offset_flags = frame[position + 2] << 8 | frame[position + 3]
            if offset_flags & _IPV6_FRAGMENT_OFFSET:
                return certain_frame_class(ETHERTYPE_IPV6, vlan_tags, llc, 6, None, _NON_FIRST)
            # Offset 0 without M is an atomic fragment (RFC 6946): a whole packet.
            if offset_flags & _IPV6_MORE_FRAGMENTS:
                fragment = _FIRST
                incomplete = _FIRST_FRAGMENT_INCOMPLETE
        elif next_header == IPPROTO_AH:
            header_bytes = (frame[position + 1] + 2) * 4
        else:
            header_bytes = (frame[position + 1] + 1) * 8
        extension_bytes += header_bytes
        if extension_bytes > MAX_IPV6_EXTENSION_BYTES:
            return _uncertain_ipv6(vlan_tags, llc, Uncertainty.HEADER_CHAIN_TOO_LONG, fragment)
        if position + header_bytes > packet_end:
            return _uncertain_ipv6(vlan_tags, llc, incomplete, fragment)
        next_header = frame[position]
        position += header_bytes
        extension_headers += 1

    if next_header == IPPROTO_UDP:
        if position + UDP_HEADER_BYTES > packet_end:
            return _uncertain_ipv6(vlan_tags, llc, incomplete, fragment, next_header)
        source_port, destination_port = _UDP_PORTS.unpack_from(frame, position)
        return certain_frame_class(
            ETHERTYPE_IPV6, vlan_tags, llc, 6, next_header, fragment, source_port, destination_port,
            None, start, position,
        )  # fmt: skip
    if next_header == IPPROTO_ICMPV6:
        if position + ICMPV6_HEADER_BYTES > packet_end:
            return _uncertain_ipv6(vlan_tags, llc, incomplete, fragment, next_header)
        return certain_frame_class(
            ETHERTYPE_IPV6, vlan_tags, llc, 6, next_header, fragment, None, None, frame[position],
            start, position,
        )  # fmt: skip
    if next_header == IPPROTO_ESP:
        return _uncertain_ipv6(vlan_tags, llc, Uncertainty.ENCRYPTED, fragment)
    if next_header not in IPV6_UPPER_LAYER_PROTOCOLS:
        return _uncertain_ipv6(vlan_tags, llc, Uncertainty.UNKNOWN_NEXT_HEADER, fragment)
    return certain_frame_class(
        ETHERTYPE_IPV6, vlan_tags, llc, 6, next_header, fragment, None, None, None, start, position
    )


def _uncertain_ipv4(
    vlan_tags: int,
    llc: bool,
    reason: Uncertainty,
    fragment: FragmentState = _UNFRAGMENTED,
    protocol: int | None = None,
) -> FrameClass:
    return FrameClass(ETHERTYPE_IPV4, vlan_tags, llc, 4, protocol, fragment, uncertainty=reason)


def _uncertain_ipv6(
    vlan_tags: int,
    llc: bool,
    reason: Uncertainty,
    fragment: FragmentState,
    protocol: int | None = None,
) -> FrameClass:
    return FrameClass(ETHERTYPE_IPV6, vlan_tags, llc, 6, protocol, fragment, uncertainty=reason)
