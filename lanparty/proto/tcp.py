"""TCP MSS clamping (PROTOCOL.md 11): SYNs announce no more than one datagram carries. No I/O.

The relay rewrites the MSS option of every TCP SYN and SYN-ACK it forwards
(IPv4 and IPv6, behind up to two VLAN tags) down to what fits one datagram
of the smallest budget in the room, and fixes the TCP checksum
incrementally (RFC 1624). A SYN without an MSS option gets none added, and
a frame it cannot parse with certainty (IPv6 extension headers, IP
fragments, options that overrun the header) is forwarded unchanged.
"""

from __future__ import annotations

from lanparty.proto.ethernet import VLAN_TAG_BYTES, VLAN_TAG_ETHERTYPES
from lanparty.proto.ip import ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP

IPV4_HEADER_BYTES = 20
IPV6_HEADER_BYTES = 40
TCP_HEADER_BYTES = 20
_SYN = 0x02
_OPTION_END = 0
_OPTION_NOP = 1
_OPTION_MSS = 2
_MAX_TAGS = 2


def mss_for(max_datagram: int, *, ipv6: bool) -> int:
    """The largest MSS whose segments fit one datagram of ``max_datagram`` (untagged frame)."""
    ip_header = IPV6_HEADER_BYTES if ipv6 else IPV4_HEADER_BYTES
    return max_datagram - 1 - 14 - ip_header - TCP_HEADER_BYTES


def clamp_mss(datagram: bytes, start: int, mss_ipv4: int, mss_ipv6: int) -> bytes | None:
    """``datagram`` with its SYN's MSS lowered to the limit, or None when nothing changes.

    The frame starts at ``datagram[start:]``; each VLAN tag lowers the limit
    by its 4 bytes.
    """
    end = len(datagram)
    position = start + 12
    tags = 0
    while True:
        if position + 2 > end:
            return None
        type_field = datagram[position] << 8 | datagram[position + 1]
        position += 2
        if type_field not in VLAN_TAG_ETHERTYPES:
            break
        tags += 1
        if tags > _MAX_TAGS:
            return None
        position += 2
    if type_field == ETHERTYPE_IPV4:
        if position + IPV4_HEADER_BYTES > end or datagram[position] >> 4 != 4:
            return None
        if (
            datagram[position + 9] != IPPROTO_TCP
            or (datagram[position + 6] << 8 | datagram[position + 7]) & 0x3FFF
        ):
            return None  # not TCP, or a fragment
        tcp = position + (datagram[position] & 0x0F) * 4
        limit = mss_ipv4
    elif type_field == ETHERTYPE_IPV6:
        if position + IPV6_HEADER_BYTES > end or datagram[position + 6] != IPPROTO_TCP:
            return None
        tcp = position + IPV6_HEADER_BYTES
        limit = mss_ipv6
    else:
        return None
    limit -= tags * VLAN_TAG_BYTES
    if tcp + TCP_HEADER_BYTES > end or not datagram[tcp + 13] & _SYN:
        return None
    options_end = tcp + (datagram[tcp + 12] >> 4) * 4
    if options_end > end or options_end < tcp + TCP_HEADER_BYTES:
        return None
    at = tcp + TCP_HEADER_BYTES
    while at < options_end:
        kind = datagram[at]
        if kind == _OPTION_END:
            return None
        if kind == _OPTION_NOP:
            at += 1
            continue
        if at + 2 > options_end:
            return None
        length = datagram[at + 1]
        if length < 2 or at + length > options_end:
            return None
        if kind == _OPTION_MSS:
            if length != 4:
                return None
            mss = datagram[at + 2] << 8 | datagram[at + 3]
            if mss <= limit or limit <= 0:
                return None
            return _rewrite(datagram, at + 2, tcp + 16, mss, limit)
        at += length
    return None


def _rewrite(datagram: bytes, mss_at: int, checksum_at: int, old: int, new: int) -> bytes:
    frame = bytearray(datagram)
    frame[mss_at : mss_at + 2] = new.to_bytes(2, "big")
    checksum = frame[checksum_at] << 8 | frame[checksum_at + 1]
    # RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')
    total = (~checksum & 0xFFFF) + (~old & 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    frame[checksum_at : checksum_at + 2] = (~total & 0xFFFF).to_bytes(2, "big")
    return bytes(frame)
