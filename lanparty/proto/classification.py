"""What the relay's safety filters learn about one frame (PROTOCOL.md section 6).

``ethernet.classify_frame`` produces a ``FrameClass``; the filters read it.
The important field is ``uncertainty``: when it is set, the classifier could
not determine the upper-layer protocol as a receiving host might, and the
relay drops such a client frame as ``suspicious`` instead of trusting the
other fields.
"""

from __future__ import annotations

import enum
import functools

import attrs


class FragmentState(enum.Enum):
    # Enum's own __hash__ runs Python code; identity is enough for members and
    # keeps the hot path's cache lookups (``certain_frame_class``) cheap.
    __hash__ = object.__hash__

    UNFRAGMENTED = "unfragmented"
    # Offset 0 with more fragments to come: carries the headers the filters judge.
    FIRST = "first"
    # Judged by its first fragment: the upper-layer header is not in it.
    NON_FIRST = "non_first"


class Uncertainty(enum.StrEnum):
    """Why a frame's upper-layer protocol cannot be determined with certainty."""

    TOO_MANY_VLAN_TAGS = "too_many_vlan_tags"
    # LLC inside LLC, or an LLC header a receiver might read as IP (SAP 0x06,
    # a SNAP header with odd SSAP/control or a length field that does not cover it).
    LLC_AMBIGUOUS = "llc_ambiguous"
    # The frame ends before the end of a header or of the length an IP header claims.
    FRAME_TRUNCATED = "frame_truncated"
    # The IP version nibble does not match the ethertype.
    IP_VERSION_MISMATCH = "ip_version_mismatch"
    # IPv4 IHL below 5, or a total length shorter than the header.
    BAD_IPV4_HEADER = "bad_ipv4_header"
    # An unfragmented packet ends (by its own length field) inside its header chain.
    HEADER_CHAIN_INCOMPLETE = "header_chain_incomplete"
    # A first fragment does not hold the whole header chain and upper-layer header (RFC 7112).
    FIRST_FRAGMENT_INCOMPLETE = "first_fragment_incomplete"
    # More extension headers, or more bytes of them, than the classifier walks.
    HEADER_CHAIN_TOO_LONG = "header_chain_too_long"
    # ESP: whatever follows is encrypted.
    ENCRYPTED = "encrypted"
    # An IPv6 next header that is neither a known extension header nor a known
    # upper-layer protocol: it may be an extension header some host can skip.
    UNKNOWN_NEXT_HEADER = "unknown_next_header"
    MISPLACED_HOP_BY_HOP = "misplaced_hop_by_hop"
    REPEATED_FRAGMENT_HEADER = "repeated_fragment_header"


@attrs.frozen
class FrameClass:
    """The facts about a frame that the safety filters need.

    Fields other than ``ethertype``, ``vlan_tags`` and ``llc`` are ``None``
    when they do not apply or were not learned; with ``uncertainty`` set they
    hold only what was learned before the classifier gave up.
    """

    # The type that identifies the payload: after all VLAN tags and, for an
    # 802.3 frame with an LLC/SNAP header carrying an EtherType, that EtherType.
    # For other 802.3 frames (``llc``), the length field (below 0x0600).
    ethertype: int
    vlan_tags: int = 0
    # The frame uses 802.3 length framing with an LLC header.
    llc: bool = False
    # 4 or 6 when the ethertype announces IP, whatever the packet then says.
    ip_version: int | None = None
    # IPv4 protocol or final IPv6 next header (59 when there is none). None for a
    # non-first IPv6 fragment: only its first fragment names the protocol.
    upper_protocol: int | None = None
    fragment: FragmentState = FragmentState.UNFRAGMENTED
    udp_source_port: int | None = None
    udp_destination_port: int | None = None
    icmpv6_type: int | None = None
    uncertainty: Uncertainty | None = None
    # Where the network-layer header (IP, ARP, ...) and the upper-layer header
    # (UDP, ICMPv6, ...) start in the frame, for the relay's guard to read
    # them (0: not found). Not part of a frame class's identity.
    l3_offset: int = attrs.field(default=0, eq=False)
    l4_offset: int = attrs.field(default=0, eq=False)
    # Whether the relay's L2 guard must read this frame (ARP, a VLAN tag, DHCP
    # to a server, neighbour discovery): fixed per shape, so the other frames
    # (nearly all of them) skip the guard at no cost.
    guarded: bool = attrs.field(default=False, eq=False)

    @property
    def certain(self) -> bool:
        return self.uncertainty is None

    @property
    def is_ip(self) -> bool:
        return self.ip_version is not None


_ETHERTYPE_ARP = 0x0806
_IPPROTO_UDP = 17
_IPPROTO_ICMPV6 = 58
_DHCP_SERVER_PORTS = frozenset({67, 547})
_NEIGHBOUR_DISCOVERY = frozenset({133, 135, 136})
_IPPROTO_ICMP = 1


# Building a frozen attrs instance costs about a microsecond, more than the
# whole header walk, and the relay classifies every client frame. Most frames
# repeat a few shapes (one game's ports, ARP, TCP), and the values are
# immutable, so certain results are shared through a bounded cache. Call it
# with positional arguments only (keywords would be cached separately).
@functools.lru_cache(maxsize=4096)
def certain_frame_class(  # noqa: PLR0917 - positional keeps cache keys cheap
    ethertype: int,
    vlan_tags: int,
    llc: bool,
    ip_version: int | None = None,
    upper_protocol: int | None = None,
    fragment: FragmentState = FragmentState.UNFRAGMENTED,
    udp_source_port: int | None = None,
    udp_destination_port: int | None = None,
    icmpv6_type: int | None = None,
    l3_offset: int = 0,
    l4_offset: int = 0,
) -> FrameClass:
    guarded = (
        vlan_tags > 0
        or ethertype == _ETHERTYPE_ARP
        or (upper_protocol == _IPPROTO_UDP and udp_destination_port in _DHCP_SERVER_PORTS)
        or (upper_protocol == _IPPROTO_ICMPV6 and icmpv6_type in _NEIGHBOUR_DISCOVERY)
        or (upper_protocol == _IPPROTO_ICMP and ip_version == 4)
    )
    return FrameClass(
        ethertype,
        vlan_tags,
        llc,
        ip_version,
        upper_protocol,
        fragment,
        udp_source_port,
        udp_destination_port,
        icmpv6_type,
        None,
        l3_offset,
        l4_offset,
        guarded,
    )
