"""Ethernet framing: MAC slices, switch control, VLAN tags and LLC/SNAP.

The IP walks behind the framing are tested in ``test_proto_ip``; here a
DHCP server reply and a router advertisement stand in as the payloads a
hostile client wraps in tags and 802.3 framing to slip them past the filters.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.proto import ethernet as ethernet_module
from lanparty.proto.classification import FrameClass, Uncertainty
from lanparty.proto.ethernet import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPX,
    ETHERTYPE_QINQ,
    ETHERTYPE_VLAN,
    MAX_VLAN_TAGS,
    VLAN_TAG_ETHERTYPES,
    classify_frame,
    destination_mac,
    source_mac,
)
from lanparty.proto.ip import ETHERTYPE_IPV4, ETHERTYPE_IPV6
from lanparty.proto.overlay import (
    DATAGRAM_DESTINATION,
    DATAGRAM_SOURCE,
    FRAME,
    MalformedDatagramError,
    MalformedReason,
    encode_datagram,
)

DESTINATION = bytes.fromhex("ffffffffffff")
SOURCE = bytes.fromhex("020000000001")
IPX_PACKET = b"\xff\xff\x00\x1e\x00\x04" + bytes(24)


def ethernet(payload: bytes, ethertype: int, tags: tuple[int, ...] = ()) -> bytes:
    header = DESTINATION + SOURCE
    for tpid in tags:
        header += struct.pack("!HH", tpid, 0x2001)
    return header + struct.pack("!H", ethertype) + payload


def llc_snap(payload: bytes, ethertype: int, oui: bytes = b"\x00\x00\x00") -> bytes:
    return b"\xaa\xaa\x03" + oui + struct.pack("!H", ethertype) + payload


def ieee8023(llc_payload: bytes, tags: tuple[int, ...] = ()) -> bytes:
    """An 802.3 frame: the type field holds the LLC payload's length."""
    return ethernet(llc_payload, len(llc_payload), tags)


def dhcp_server_reply() -> bytes:
    udp = struct.pack("!HHHH", 67, 68, 8 + 4, 0) + b"DHCP"
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(4), bytes(4))
        + udp
    )


def router_advertisement() -> bytes:
    icmpv6 = bytes([134, 0, 0, 0]) + bytes(12)
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmpv6), 58, 255, bytes(16), bytes(16)) + icmpv6


def assert_dhcp_reply_seen(frame_class: FrameClass) -> None:
    assert frame_class.certain
    assert frame_class.ethertype == ETHERTYPE_IPV4
    assert frame_class.ip_version == 4
    assert frame_class.udp_source_port == 67


def test_mac_slices() -> None:
    frame = ethernet(b"", ETHERTYPE_ARP)
    assert destination_mac(frame) == frame[ethernet_module.DESTINATION] == DESTINATION
    assert source_mac(frame) == frame[ethernet_module.SOURCE] == SOURCE
    datagram = encode_datagram(frame)
    assert datagram[DATAGRAM_DESTINATION] == DESTINATION
    assert datagram[DATAGRAM_SOURCE] == SOURCE
    assert datagram[FRAME] == frame


@pytest.mark.parametrize("length", [0, 1, 13])
def test_frame_shorter_than_a_header_is_malformed(length: int) -> None:
    with pytest.raises(MalformedDatagramError) as caught:
        classify_frame(bytes(length))
    assert caught.value.reason is MalformedReason.SHORT_FRAME


@pytest.mark.parametrize("ethertype", [ETHERTYPE_ARP, ETHERTYPE_IPX, 0x8035, 0x88CC, 0xFFFF])
def test_non_ip_ethertypes_are_certain(ethertype: int) -> None:
    frame_class = classify_frame(ethernet(bytes(46), ethertype))
    assert frame_class == FrameClass(ethertype)
    assert frame_class.certain
    assert not frame_class.is_ip


def test_header_only_frame_is_classified() -> None:
    assert classify_frame(ethernet(b"", ETHERTYPE_IPX)) == FrameClass(ETHERTYPE_IPX)
    assert not classify_frame(ethernet(b"", ETHERTYPE_IPV4)).certain


@pytest.mark.parametrize("tpid", sorted(VLAN_TAG_ETHERTYPES))
def test_each_tag_type_is_walked(tpid: int) -> None:
    frame_class = classify_frame(ethernet(dhcp_server_reply(), ETHERTYPE_IPV4, (tpid,)))
    assert_dhcp_reply_seen(frame_class)
    assert frame_class.vlan_tags == 1


def test_qinq_is_walked() -> None:
    frame = ethernet(router_advertisement(), ETHERTYPE_IPV6, (ETHERTYPE_QINQ, ETHERTYPE_VLAN))
    frame_class = classify_frame(frame)
    assert frame_class.certain
    assert frame_class.vlan_tags == 2
    assert frame_class.icmpv6_type == 134


def test_non_ip_behind_tags() -> None:
    frame_class = classify_frame(ethernet(IPX_PACKET, ETHERTYPE_IPX, (ETHERTYPE_VLAN,)))
    assert frame_class == FrameClass(ETHERTYPE_IPX, vlan_tags=1)


def test_too_many_tags_is_uncertain() -> None:
    tags = (ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_VLAN)
    assert len(tags) > MAX_VLAN_TAGS
    frame_class = classify_frame(ethernet(dhcp_server_reply(), ETHERTYPE_IPV4, tags))
    assert frame_class.uncertainty is Uncertainty.TOO_MANY_VLAN_TAGS
    # Even when what is behind them is harmless: it was not looked at.
    frame_class = classify_frame(ethernet(IPX_PACKET, ETHERTYPE_IPX, tags))
    assert frame_class.uncertainty is Uncertainty.TOO_MANY_VLAN_TAGS


@pytest.mark.parametrize("cut", [14, 15, 16, 17])
def test_frame_ending_inside_a_tag_is_truncated(cut: int) -> None:
    frame = ethernet(dhcp_server_reply(), ETHERTYPE_IPV4, (ETHERTYPE_VLAN,))[:cut]
    frame_class = classify_frame(frame)
    assert frame_class.uncertainty is Uncertainty.FRAME_TRUNCATED
    assert frame_class.ethertype == ETHERTYPE_VLAN


@pytest.mark.parametrize("oui", [b"\x00\x00\x00", b"\x00\x00\xf8"])
def test_snap_carrying_ipv4_is_walked(oui: bytes) -> None:
    frame_class = classify_frame(ieee8023(llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4, oui)))
    assert_dhcp_reply_seen(frame_class)
    assert frame_class.llc


def test_snap_carrying_ipv6_behind_a_tag_is_walked() -> None:
    frame = ieee8023(llc_snap(router_advertisement(), ETHERTYPE_IPV6), (ETHERTYPE_VLAN,))
    frame_class = classify_frame(frame)
    assert frame_class.certain
    assert (frame_class.vlan_tags, frame_class.llc) == (1, True)
    assert frame_class.icmpv6_type == 134


def test_snap_carrying_a_tag_is_walked() -> None:
    inner = struct.pack("!HH", 0x0001, ETHERTYPE_IPV4) + dhcp_server_reply()
    frame_class = classify_frame(ieee8023(llc_snap(inner, ETHERTYPE_VLAN)))
    assert_dhcp_reply_seen(frame_class)
    assert frame_class.vlan_tags == 1


def test_tags_around_snap_count_towards_the_limit() -> None:
    inner = struct.pack("!HH", 0x0001, ETHERTYPE_IPV4) + dhcp_server_reply()
    frame = ieee8023(llc_snap(inner, ETHERTYPE_VLAN), (ETHERTYPE_QINQ, ETHERTYPE_VLAN))
    assert classify_frame(frame).uncertainty is Uncertainty.TOO_MANY_VLAN_TAGS


def test_snap_with_the_group_bit_is_still_snap() -> None:
    llc_payload = b"\xab\xab" + llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4)[2:]
    assert_dhcp_reply_seen(classify_frame(ieee8023(llc_payload)))


def test_snap_carrying_ipx_is_certain_non_ip() -> None:
    frame_class = classify_frame(ieee8023(llc_snap(IPX_PACKET, ETHERTYPE_IPX)))
    assert frame_class == FrameClass(ETHERTYPE_IPX, llc=True)


def test_snap_with_an_organisation_protocol_is_certain_non_ip() -> None:
    llc_payload = llc_snap(bytes(20), 0x809B, oui=b"\x08\x00\x07")  # AppleTalk
    frame_class = classify_frame(ieee8023(llc_payload))
    assert frame_class == FrameClass(len(llc_payload), llc=True)


def test_snap_inside_snap_is_ambiguous() -> None:
    inner = llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4)
    # The outer SNAP's protocol id is a length: another LLC header follows.
    frame_class = classify_frame(ieee8023(llc_snap(inner, len(inner))))
    assert frame_class.uncertainty is Uncertainty.LLC_AMBIGUOUS


@pytest.mark.parametrize(
    "llc_header",
    [
        b"\xaa\xaa\x13",  # not an unnumbered-information PDU
        b"\xaa\x42\x03",  # SNAP DSAP with another SSAP
        b"\x06\x06\x03",  # the IP SAP
        b"\x07\x06\x03",
    ],
)
def test_odd_llc_that_a_receiver_might_read_as_ip_is_ambiguous(llc_header: bytes) -> None:
    llc_payload = llc_header + llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4)[3:]
    assert classify_frame(ieee8023(llc_payload)).uncertainty is Uncertainty.LLC_AMBIGUOUS


def test_snap_length_field_that_does_not_cover_the_snap_header_is_ambiguous() -> None:
    frame = ethernet(llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4), 7)
    assert classify_frame(frame).uncertainty is Uncertainty.LLC_AMBIGUOUS


def test_ip_beyond_the_8023_length_is_truncated() -> None:
    llc_payload = llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4)
    frame = ethernet(llc_payload, len(llc_payload) - 4)
    assert classify_frame(frame).uncertainty is Uncertainty.FRAME_TRUNCATED


def test_padding_after_the_8023_length_is_ignored() -> None:
    llc_payload = llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4)
    frame = ethernet(llc_payload + bytes(30), len(llc_payload))
    assert_dhcp_reply_seen(classify_frame(frame))


def test_8023_length_beyond_the_frame_still_walks_what_is_there() -> None:
    llc_payload = llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4)
    assert_dhcp_reply_seen(classify_frame(ethernet(llc_payload, 1500)))


@pytest.mark.parametrize("cut", [14, 16, 17, 21])
def test_frame_ending_inside_llc_or_snap_is_truncated(cut: int) -> None:
    frame = ieee8023(llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4))[:cut]
    assert classify_frame(frame).uncertainty is Uncertainty.FRAME_TRUNCATED


@pytest.mark.parametrize(
    "llc_payload",
    [
        IPX_PACKET,  # Novell raw 802.3
        b"\xe0\xe0\x03" + IPX_PACKET,  # IPX over 802.2
        b"\xf0\xf0\x03" + bytes(40),  # NetBIOS/NetBEUI
        b"\x42\x42\x03" + bytes(35),  # spanning tree
    ],
)
def test_plain_llc_is_certain_non_ip(llc_payload: bytes) -> None:
    frame_class = classify_frame(ieee8023(llc_payload))
    assert frame_class == FrameClass(len(llc_payload), llc=True)


def test_values_between_1500_and_1536_are_lengths() -> None:
    frame = ethernet(llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4), 0x05FF)
    assert_dhcp_reply_seen(classify_frame(frame))
    assert classify_frame(frame).llc


@given(st.binary(min_size=14, max_size=200))
def test_arbitrary_frames_are_classified_without_raising(frame: bytes) -> None:
    frame_class = classify_frame(frame)
    assert isinstance(frame_class, FrameClass)
    assert 0 <= frame_class.vlan_tags <= MAX_VLAN_TAGS


@given(st.binary(max_size=13))
def test_arbitrary_short_frames_are_malformed(frame: bytes) -> None:
    with pytest.raises(MalformedDatagramError):
        classify_frame(frame)


@given(
    st.lists(st.sampled_from(sorted(VLAN_TAG_ETHERTYPES)), max_size=4),
    st.booleans(),
    st.binary(max_size=40),
)
def test_framing_around_a_dhcp_reply_never_hides_it(
    tags: list[int], snap: bool, padding: bytes
) -> None:
    if snap:
        frame = ieee8023(llc_snap(dhcp_server_reply(), ETHERTYPE_IPV4) + padding, tuple(tags))
    else:
        frame = ethernet(dhcp_server_reply() + padding, ETHERTYPE_IPV4, tuple(tags))
    frame_class = classify_frame(frame)
    if len(tags) > MAX_VLAN_TAGS:
        assert frame_class.uncertainty is Uncertainty.TOO_MANY_VLAN_TAGS
    else:
        assert_dhcp_reply_seen(frame_class)
        assert frame_class.vlan_tags == len(tags)
        assert frame_class.llc == snap
