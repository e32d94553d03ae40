"""The relay's safety filters (PROTOCOL.md section 6).

``safety_drop`` judges one Ethernet frame (no overlay byte) and returns the
reason to drop it, or ``None``. Every member's frames are checked for size
(``jumbo``) and for bridge-protocol destinations (``switch_control``); a
client's frames are also checked for what only the LAN may send: DHCP and
DHCPv6 server replies (by source or destination port), IPv6 router
advertisements and redirects. The L2 guard (``guard.py``) then judges the
same classified frame for address spoofing.

A hostile client hides such a frame behind VLAN tags, LLC/SNAP framing,
IPv4 options or AH, IPv6 extension headers, or in a first fragment. The
classifier (``lanparty.proto.classify_frame``) walks all of that and reports
the upper-layer protocol wherever it sits, or says it is uncertain; so the
client rules below read only the IP-level facts (version, protocol, ports,
ICMPv6 type), never the tag count or framing. The outer type field is only
used to skip the classifier for EtherTypes that cannot lead to IP. Uncertain
means ``suspicious``: a frame the relay cannot judge is not passed.
"""

from __future__ import annotations

from lanparty.proto.classification import FragmentState, FrameClass
from lanparty.proto.drops import DropReason
from lanparty.proto.ethernet import (
    DESTINATION,
    MIN_ETHERTYPE,
    SWITCH_CONTROL_FIRST,
    SWITCH_CONTROL_LAST,
    VLAN_TAG_ETHERTYPES,
    classify_frame,
)
from lanparty.proto.ip import (
    DHCP_CLIENT_PORT,
    DHCP_SERVER_PORT,
    DHCPV6_CLIENT_PORT,
    DHCPV6_SERVER_PORT,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ICMPV6_REDIRECT,
    ICMPV6_ROUTER_ADVERTISEMENT,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
)
from lanparty.proto.mac import MAC_LENGTH

# Type fields after which the classifier may find IP: IP itself, a VLAN tag
# (IP may follow it), and anything below 0x0600 (an 802.3 length: LLC/SNAP may
# carry IP). Any other EtherType is a non-IP protocol that the client rules
# pass, so such frames skip the classifier.
_MAY_CARRY_IP = frozenset({ETHERTYPE_IPV4, ETHERTYPE_IPV6} | VLAN_TAG_ETHERTYPES)
_ROUTER_ONLY_ICMPV6 = frozenset({ICMPV6_ROUTER_ADVERTISEMENT, ICMPV6_REDIRECT})
_NON_FIRST = FragmentState.NON_FIRST

# Enum member lookup costs about 0.1 us on Python 3.11; these run per frame.
_JUMBO = DropReason.JUMBO
_SWITCH_CONTROL = DropReason.SWITCH_CONTROL
_SUSPICIOUS = DropReason.SUSPICIOUS
_DHCP_SERVER = DropReason.DHCP_SERVER
_IPV6_RA = DropReason.IPV6_RA


def safety_drop(frame: bytes, *, from_client: bool, max_frame: int) -> DropReason | None:
    """Why section 6 drops ``frame`` (an Ethernet frame of at least 14 bytes), or ``None``.

    ``from_client`` applies the client-only filters; ``max_frame`` is the
    room's largest frame. When several filters match, the first in the
    table's order wins: jumbo, switch control, then the client filters.
    """
    return safety_drop_at(frame, 0, from_client, max_frame)


def safety_drop_at(data: bytes, start: int, from_client: bool, max_frame: int) -> DropReason | None:
    """``safety_drop`` for the frame at ``data[start:]``.

    The switch passes the whole datagram and ``start=1`` (after the overlay
    byte): the frame is then copied out only when the classifier needs it.
    """
    destination = data[start : start + DESTINATION.stop]
    reason = member_drop(destination, len(data) - start, max_frame)
    if reason is not None or not from_client:
        return reason
    frame_class = client_frame_class(data, start)
    return None if frame_class is None else client_verdict(frame_class)


def member_drop(destination: bytes, frame_bytes: int, max_frame: int) -> DropReason | None:
    """The filters for every member's frame: ``jumbo``, ``switch_control``.

    ``destination`` is the frame's destination MAC and ``frame_bytes`` its
    length: the switch has both at hand without copying the frame.
    """
    if frame_bytes > max_frame:
        return _JUMBO
    if (
        SWITCH_CONTROL_FIRST <= destination <= SWITCH_CONTROL_LAST
        and len(destination) == MAC_LENGTH
    ):
        return _SWITCH_CONTROL
    return None


def client_frame_class(data: bytes, start: int) -> FrameClass | None:
    """The classifier's verdict on a client's frame; None when its type cannot lead to IP."""
    type_field = data[start + 12] << 8 | data[start + 13]
    if type_field >= MIN_ETHERTYPE and type_field not in _MAY_CARRY_IP:
        return None
    return classify_frame(data[start:] if start else data)


def client_verdict(frame_class: FrameClass) -> DropReason | None:
    """The client-only filters on a classified frame: DHCP server, IPv6 RA, ``suspicious``.

    Non-IP protocols (ARP, IPX, NetBEUI, AppleTalk ...) pass, and so do
    non-first fragments: the relay judges a fragmented packet by its first
    fragment, which carries the headers.
    """
    if frame_class.uncertainty is not None:
        return _SUSPICIOUS
    if frame_class.fragment is _NON_FIRST:
        return None
    upper_protocol = frame_class.upper_protocol
    ip_version = frame_class.ip_version
    if upper_protocol == IPPROTO_UDP:
        # A server's reply by either port: DHCP clients check only the destination.
        if ip_version == 4:
            if frame_class.udp_source_port == DHCP_SERVER_PORT or (
                frame_class.udp_destination_port == DHCP_CLIENT_PORT
            ):
                return _DHCP_SERVER
        elif frame_class.udp_source_port == DHCPV6_SERVER_PORT or (
            frame_class.udp_destination_port == DHCPV6_CLIENT_PORT
        ):
            return _DHCP_SERVER
    elif (
        upper_protocol == IPPROTO_ICMPV6
        and ip_version == 6
        and frame_class.icmpv6_type in _ROUTER_ONLY_ICMPV6
    ):
        return _IPV6_RA
    return None
