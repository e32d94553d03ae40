"""Ethernet frames as the relay's switch and safety filters see them.

A frame is ``bytes`` without FCS: destination MAC, source MAC, then a
type/length field, possibly behind VLAN tags. ``classify_frame`` walks
the tags and any LLC/SNAP header to the payload's EtherType and hands IP
packets to the walks in ``ip``.
"""

from __future__ import annotations

from lanparty.proto.classification import FragmentState as _FragmentState
from lanparty.proto.classification import FrameClass, Uncertainty, certain_frame_class
from lanparty.proto.ip import ETHERTYPE_IPV4, ETHERTYPE_IPV6, classify_ipv4, classify_ipv6
from lanparty.proto.mac import MAC_LENGTH
from lanparty.proto.overlay import MalformedDatagramError, MalformedReason

ETHERTYPE_ARP = 0x0806
ETHERTYPE_RARP = 0x8035
ETHERTYPE_IPX = 0x8137
ETHERTYPE_VLAN = 0x8100  # IEEE 802.1Q customer tag
ETHERTYPE_QINQ = 0x88A8  # IEEE 802.1ad service tag
# Service-tag TPIDs of pre-802.1ad switches.
ETHERTYPE_QINQ_9100 = 0x9100
ETHERTYPE_QINQ_9200 = 0x9200
ETHERTYPE_QINQ_9300 = 0x9300
VLAN_TAG_ETHERTYPES = frozenset(
    {
        ETHERTYPE_VLAN,
        ETHERTYPE_QINQ,
        ETHERTYPE_QINQ_9100,
        ETHERTYPE_QINQ_9200,
        ETHERTYPE_QINQ_9300,
    }
)
# Smaller type/length values are an IEEE 802.3 length and an LLC header follows
# (the values 1501..1535 are undefined; receivers such as Linux treat them as lengths).
MIN_ETHERTYPE = 0x0600

ETHERNET_HEADER_BYTES = 14
VLAN_TAG_BYTES = 4
# QinQ: a service tag and a customer tag. Deeper stacks are not walked.
MAX_VLAN_TAGS = 2

LLC_SAP_IP = 0x06
LLC_SAP_SNAP = 0xAA
LLC_CONTROL_UI = 0x03
LLC_HEADER_BYTES = 3
SNAP_OUI_BYTES = 3
SNAP_HEADER_BYTES = SNAP_OUI_BYTES + 2
# OUIs whose SNAP protocol id is an EtherType: RFC 1042 and IEEE 802.1H.
SNAP_ETHERTYPE_OUIS = frozenset({b"\x00\x00\x00", b"\x00\x00\xf8"})

SWITCH_CONTROL_PREFIX = b"\x01\x80\xc2\x00\x00"
SWITCH_CONTROL_LAST_OCTET_MAX = 0x0F
# 01:80:c2:00:00:00 to 0f, reserved for bridge protocols (STP, LACP, 802.1X, LLDP), as
# 6-byte strings: a MAC is one of them when it lies between the two (the relay's
# filters, ``member_drop``, judge this per frame).
SWITCH_CONTROL_FIRST = SWITCH_CONTROL_PREFIX + b"\x00"
SWITCH_CONTROL_LAST = SWITCH_CONTROL_PREFIX + bytes([SWITCH_CONTROL_LAST_OCTET_MAX])

# A frame's MACs: ``frame[SOURCE]`` (a module-level slice is cheaper than ``frame[6:12]``).
DESTINATION = slice(0, MAC_LENGTH)
SOURCE = slice(MAC_LENGTH, 2 * MAC_LENGTH)

_SAP_ADDRESS_MASK = 0xFE  # the low bit of a SAP is I/G (DSAP) or C/R (SSAP)


def destination_mac(frame: bytes) -> bytes:
    return frame[DESTINATION]


def source_mac(frame: bytes) -> bytes:
    return frame[SOURCE]


_UNFRAGMENTED = _FragmentState.UNFRAGMENTED


def classify_frame(frame: bytes) -> FrameClass:
    """Classify a frame for the safety filters (see ``FrameClass``).

    Never raises for a frame of 14 bytes or more; for a shorter one it raises
    ``MalformedDatagramError`` (``short_frame``), the same verdict that
    ``decode_datagram`` gives, so a caller that decoded the datagram first
    never sees it.
    """
    end = len(frame)
    if end < ETHERNET_HEADER_BYTES:
        raise MalformedDatagramError(
            MalformedReason.SHORT_FRAME,
            f"an Ethernet frame has at least {ETHERNET_HEADER_BYTES} bytes, not {end}",
        )
    position = 12
    vlan_tags = 0
    llc = False
    while True:
        ethertype = frame[position] << 8 | frame[position + 1]
        position += 2
        if ethertype == ETHERTYPE_IPV4:
            return classify_ipv4(frame, position, end, vlan_tags=vlan_tags, llc=llc)
        if ethertype == ETHERTYPE_IPV6:
            return classify_ipv6(frame, position, end, vlan_tags=vlan_tags, llc=llc)
        if ethertype in VLAN_TAG_ETHERTYPES:
            if vlan_tags == MAX_VLAN_TAGS:
                return FrameClass(
                    ethertype, vlan_tags, llc, uncertainty=Uncertainty.TOO_MANY_VLAN_TAGS
                )
            # Skip the tag control information to the next type/length field.
            position += 2
            if position + 2 > end:
                return FrameClass(
                    ethertype, vlan_tags, llc, uncertainty=Uncertainty.FRAME_TRUNCATED
                )
            vlan_tags += 1
            continue
        if ethertype >= MIN_ETHERTYPE:
            return certain_frame_class(
                ethertype, vlan_tags, llc, None, None, _UNFRAGMENTED, None, None, None, position
            )
        if llc:
            return FrameClass(ethertype, vlan_tags, llc, uncertainty=Uncertainty.LLC_AMBIGUOUS)
        llc = True
        length = ethertype

        if position + LLC_HEADER_BYTES > end:
            return FrameClass(length, vlan_tags, llc, uncertainty=Uncertainty.FRAME_TRUNCATED)
        dsap = frame[position] & _SAP_ADDRESS_MASK
        if dsap == LLC_SAP_SNAP:
            if (
                frame[position + 1] & _SAP_ADDRESS_MASK != LLC_SAP_SNAP
                or frame[position + 2] != LLC_CONTROL_UI
                or length < LLC_HEADER_BYTES + SNAP_HEADER_BYTES
            ):
                return FrameClass(length, vlan_tags, llc, uncertainty=Uncertainty.LLC_AMBIGUOUS)
            if position + LLC_HEADER_BYTES + SNAP_HEADER_BYTES > end:
                return FrameClass(length, vlan_tags, llc, uncertainty=Uncertainty.FRAME_TRUNCATED)
            oui_start = position + LLC_HEADER_BYTES
            if frame[oui_start : oui_start + SNAP_OUI_BYTES] not in SNAP_ETHERTYPE_OUIS:
                # An organisation's own protocol id (AppleTalk and the like): not IP.
                return certain_frame_class(length, vlan_tags, llc)
            # Receivers take the 802.3 length as the end of the LLC payload;
            # bytes after it are padding, even if an IP header claims them.
            end = min(end, position + length)
            position = oui_start + SNAP_OUI_BYTES
            continue
        if dsap == LLC_SAP_IP:
            return FrameClass(length, vlan_tags, llc, uncertainty=Uncertainty.LLC_AMBIGUOUS)
        # Plain LLC (NetBEUI, STP, IPX on SAP 0xE0), or Novell "raw 802.3" IPX whose
        # 0xFFFF checksum sits where the SAPs would be: not IP.
        return certain_frame_class(length, vlan_tags, llc)
