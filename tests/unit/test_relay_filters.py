"""The safety filters end to end, against the disguises a hostile client would try.

Each hidden payload is a DHCP server reply, a DHCPv6 server reply, a router
advertisement or a redirect; each disguise wraps it in framing, headers or
fragmentation that the classifier sees through. ``safety_drop`` must drop
every combination from a client, and let the same frames from the gateway
through (the LAN's DHCP server and router are the real ones).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.proto import DropReason
from lanparty.proto.ethernet import classify_frame
from lanparty.relay.filters import client_verdict, member_drop, safety_drop, safety_drop_at

MAX_FRAME = 1418
BROADCAST = b"\xff" * 6
CLIENT_MAC = bytes.fromhex("020000000001")

# ---------------------------------------------------------------- builders


def ethernet(
    payload: bytes, ethertype: int, tags: tuple[int, ...] = (), dst: bytes = BROADCAST
) -> bytes:
    header = dst + CLIENT_MAC
    for tpid in tags:
        header += struct.pack("!HH", tpid, 0x0005)
    return header + struct.pack("!H", ethertype) + payload


def snap(payload: bytes, ethertype: int, tags: tuple[int, ...] = ()) -> bytes:
    """802.3 framing with an RFC 1042 LLC/SNAP header carrying ``ethertype``."""
    llc_payload = b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype) + payload
    return ethernet(llc_payload, len(llc_payload), tags)


def udp(source_port: int, destination_port: int, data: bytes = b"DHCP") -> bytes:
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(data), 0) + data


def icmpv6(message_type: int) -> bytes:
    return bytes([message_type, 0, 0, 0]) + bytes(12)


def ipv4(payload: bytes, protocol: int, *, options: bytes = b"", flags_offset: int = 0) -> bytes:
    header_bytes = 20 + len(options)
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | header_bytes // 4,
            0,
            header_bytes + len(payload),
            0x1234,
            flags_offset,
            64,
            protocol,
            0,
            bytes([198, 19, 0, 1]),
            bytes([255, 255, 255, 255]),
        )
        + options
        + payload
    )


def ipv6(payload: bytes, next_header: int) -> bytes:
    return (
        struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 255, bytes(16), bytes(16))
        + payload
    )


def generic_extension(next_header: int, length_units: int = 0) -> bytes:
    """Hop-by-hop, destination options or routing: next header, length, padding."""
    return bytes([next_header, length_units]) + bytes((length_units + 1) * 8 - 2)


def fragment_extension(next_header: int, offset_flags: int) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset_flags, 0xCAFE)


def ah(next_header: int) -> bytes:
    """An authentication header with 8 bytes of ICV (length field 3: 20 bytes)."""
    return bytes([next_header, 3]) + bytes(18)


UDP = 17
ICMPV6 = 58
HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
AH = 51
DESTINATION_OPTIONS = 60
IPV4 = 0x0800
IPV6 = 0x86DD
MORE_FRAGMENTS_V4 = 0x2000
MORE_FRAGMENTS_V6 = 0x0001

# ------------------------------------------------------ hidden payloads

# An IP packet builder: given the upper-layer header and its protocol number,
# wrap it (possibly behind extension headers or fragmentation).
Wrap = Callable[[bytes, int], bytes]

# (name, upper-layer header, protocol, IP version, the drop reason)
HOSTILE = [
    ("dhcp_reply", udp(67, 68), UDP, 4, DropReason.DHCP_SERVER),
    ("dhcpv6_reply", udp(547, 546), UDP, 6, DropReason.DHCP_SERVER),
    ("dhcpv6_relay_reply", udp(547, 547), UDP, 6, DropReason.DHCP_SERVER),
    ("router_advertisement", icmpv6(134), ICMPV6, 6, DropReason.IPV6_RA),
    ("redirect", icmpv6(137), ICMPV6, 6, DropReason.IPV6_RA),
]

IPV4_WRAPS: dict[str, Wrap] = {
    "plain": ipv4,
    "options": lambda upper, protocol: ipv4(upper, protocol, options=b"\x01\x01\x01\x00"),
    "ah": lambda upper, protocol: ipv4(ah(protocol) + upper, AH),
    "first_fragment": lambda upper, protocol: ipv4(upper, protocol, flags_offset=MORE_FRAGMENTS_V4),
    "options_and_first_fragment": lambda upper, protocol: ipv4(
        upper, protocol, options=bytes(8), flags_offset=MORE_FRAGMENTS_V4
    ),
}

IPV6_WRAPS: dict[str, Wrap] = {
    "plain": ipv6,
    "hop_by_hop": lambda upper, protocol: ipv6(generic_extension(protocol) + upper, HOP_BY_HOP),
    "destination_options": lambda upper, protocol: ipv6(
        generic_extension(protocol, 2) + upper, DESTINATION_OPTIONS
    ),
    "routing": lambda upper, protocol: ipv6(generic_extension(protocol) + upper, ROUTING),
    "first_fragment": lambda upper, protocol: ipv6(
        fragment_extension(protocol, MORE_FRAGMENTS_V6) + upper, FRAGMENT
    ),
    "atomic_fragment": lambda upper, protocol: ipv6(
        fragment_extension(protocol, 0) + upper, FRAGMENT
    ),
    "ah": lambda upper, protocol: ipv6(ah(protocol) + upper, AH),
    "chain": lambda upper, protocol: ipv6(
        generic_extension(DESTINATION_OPTIONS)
        + generic_extension(ROUTING)
        + generic_extension(FRAGMENT)
        + fragment_extension(AH, MORE_FRAGMENTS_V6)
        + ah(protocol)
        + upper,
        HOP_BY_HOP,
    ),
}

# Ethernet framings: (packet, its ethertype) -> frame
FRAMINGS: dict[str, Callable[[bytes, int], bytes]] = {
    "ethernet_ii": ethernet,
    "vlan": lambda packet, ethertype: ethernet(packet, ethertype, (0x8100,)),
    "qinq": lambda packet, ethertype: ethernet(packet, ethertype, (0x88A8, 0x8100)),
    "legacy_qinq": lambda packet, ethertype: ethernet(packet, ethertype, (0x9100, 0x8100)),
    "snap": snap,
    "snap_in_vlan": lambda packet, ethertype: snap(packet, ethertype, (0x8100,)),
    "snap_in_qinq": lambda packet, ethertype: snap(packet, ethertype, (0x88A8, 0x8100)),
}


def hostile_frames() -> list[tuple[str, bytes, DropReason]]:
    cases = []
    for payload_name, upper, protocol, version, reason in HOSTILE:
        wraps = IPV4_WRAPS if version == 4 else IPV6_WRAPS
        ethertype = IPV4 if version == 4 else IPV6
        for wrap_name, wrap in wraps.items():
            packet = wrap(upper, protocol)
            for framing_name, framing in FRAMINGS.items():
                case = f"{payload_name}-{wrap_name}-{framing_name}"
                cases.append((case, framing(packet, ethertype), reason))
    return cases


HOSTILE_FRAMES = hostile_frames()
HOSTILE_IDS = [case for case, _, _ in HOSTILE_FRAMES]


# ------------------------------------------------------------- tests


@pytest.mark.parametrize(("case", "frame", "reason"), HOSTILE_FRAMES, ids=HOSTILE_IDS)
def test_hostile_client_frames_are_dropped(case: str, frame: bytes, reason: DropReason) -> None:
    assert classify_frame(frame).certain, case  # seen through, not merely suspicious
    assert safety_drop(frame, from_client=True, max_frame=MAX_FRAME) is reason


@pytest.mark.parametrize(("case", "frame", "reason"), HOSTILE_FRAMES, ids=HOSTILE_IDS)
def test_the_same_frames_from_the_gateway_pass(case: str, frame: bytes, reason: DropReason) -> None:
    assert safety_drop(frame, from_client=False, max_frame=MAX_FRAME) is None


@pytest.mark.parametrize(
    "frame",
    [
        ethernet(ipv4(udp(68, 67), UDP), IPV4),  # DHCP client request
        ethernet(ipv4(udp(5000, 67), UDP), IPV4),
        ethernet(ipv4(udp(27015, 27015), UDP), IPV4),  # a game
        ethernet(ipv4(bytes(20), 6), IPV4),  # TCP
        ethernet(ipv4(bytes([8, 0, 0, 0]), 1), IPV4),  # ICMP echo
        ethernet(ipv6(udp(546, 547), UDP), IPV6),  # DHCPv6 client
        ethernet(ipv6(udp(67, 68), UDP), IPV6),  # DHCP's v4 port means nothing in IPv6
        ethernet(ipv4(udp(547, 546), UDP), IPV4),  # nor DHCPv6's in IPv4
        ethernet(ipv6(icmpv6(133), ICMPV6), IPV6),  # router solicitation
        ethernet(ipv6(icmpv6(135), ICMPV6), IPV6),  # neighbour solicitation
        ethernet(ipv6(icmpv6(136), ICMPV6), IPV6),  # neighbour advertisement
        ethernet(ipv6(icmpv6(128), ICMPV6), IPV6),  # echo request
        ethernet(ipv6(b"", 59), IPV6),  # no next header
        snap(ipv4(udp(68, 67), UDP), IPV4, (0x8100,)),
    ],
)
def test_ordinary_client_traffic_passes(frame: bytes) -> None:
    assert safety_drop(frame, from_client=True, max_frame=MAX_FRAME) is None


@pytest.mark.parametrize(
    "frame",
    [
        ethernet(bytes(28), 0x0806),  # ARP
        ethernet(b"\xff\xff\x00\x1e\x00\x04" + bytes(24), 0x8137),  # IPX
        ethernet(b"\xff\xff\x00\x1e\x00\x04" + bytes(24), 30),  # Novell raw 802.3 IPX
        ethernet(b"\xf0\xf0\x03" + bytes(40), 43),  # NetBEUI over LLC
        ethernet(bytes(28), 0x0806, (0x8100,)),  # tagged ARP
        snap(bytes(30), 0x809B),  # AppleTalk over SNAP
        # Looks like a DHCP reply, but the ethertype says it is not IP.
        ethernet(ipv4(udp(67, 68), UDP), 0x88B5),
    ],
)
def test_non_ip_protocols_pass(frame: bytes) -> None:
    assert safety_drop(frame, from_client=True, max_frame=MAX_FRAME) is None


@pytest.mark.parametrize(
    "frame",
    [
        # IPv4 fragment at offset 8: its first bytes are not a UDP header
        ethernet(ipv4(udp(67, 68), UDP, flags_offset=1), IPV4),
        ethernet(ipv4(udp(67, 68), UDP, flags_offset=MORE_FRAGMENTS_V4 | 185), IPV4),
        # IPv6 fragment at offset 8
        ethernet(ipv6(fragment_extension(UDP, 8) + udp(547, 546), FRAGMENT), IPV6),
        ethernet(ipv6(fragment_extension(ICMPV6, 16 | 1) + icmpv6(134), FRAGMENT), IPV6),
        ethernet(ipv6(fragment_extension(ICMPV6, 16) + icmpv6(134), FRAGMENT), IPV6, (0x8100,)),
    ],
)
def test_non_first_fragments_pass(frame: bytes) -> None:
    """Judged by their first fragment, which carries the headers (section 6)."""
    assert safety_drop(frame, from_client=True, max_frame=MAX_FRAME) is None


@pytest.mark.parametrize(
    "frame",
    [
        # three VLAN tags: deeper than the classifier walks
        ethernet(ipv4(udp(67, 68), UDP), IPV4, (0x88A8, 0x8100, 0x8100)),
        # IPv4 total length beyond the frame
        ethernet(ipv4(udp(67, 68), UDP)[:-4], IPV4),
        # ethertype IPv4, version 6
        ethernet(ipv6(udp(547, 546), UDP), IPV4),
        # ESP: encrypted, anything may follow
        ethernet(ipv6(bytes(16), 50), IPV6),
        ethernet(ipv4(bytes(16), 50), IPV4),
        # a next header that may be an extension header some host can skip
        ethernet(ipv6(bytes(16), 150), IPV6),
        # a first fragment that ends inside its header chain (RFC 7112)
        ethernet(
            ipv6(fragment_extension(DESTINATION_OPTIONS, MORE_FRAGMENTS_V6) + bytes(8), FRAGMENT),
            IPV6,
        ),
        # an IPv4 first fragment too short for the UDP header
        ethernet(ipv4(b"\x00\x43\x00", UDP, flags_offset=MORE_FRAGMENTS_V4), IPV4),
        # hop-by-hop anywhere but first
        ethernet(
            ipv6(generic_extension(HOP_BY_HOP) + generic_extension(UDP) + udp(547, 546), 60), IPV6
        ),
        # LLC with the IP SAP: a receiver might read it as IP
        ethernet(b"\x06\x06\x03" + ipv4(udp(67, 68), UDP), 23 + 28),
        # SNAP whose 802.3 length does not cover it
        ethernet(b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + ipv4(udp(67, 68), UDP), 4),
    ],
)
def test_uncertain_client_frames_are_suspicious(frame: bytes) -> None:
    assert not classify_frame(frame).certain
    assert safety_drop(frame, from_client=True, max_frame=MAX_FRAME) is DropReason.SUSPICIOUS
    assert safety_drop(frame, from_client=False, max_frame=MAX_FRAME) is None


@pytest.mark.parametrize("from_client", [True, False])
def test_jumbo(from_client: bool) -> None:
    frame = ethernet(bytes(MAX_FRAME - 14), 0x0806)
    assert len(frame) == MAX_FRAME
    assert safety_drop(frame, from_client=from_client, max_frame=MAX_FRAME) is None
    assert (
        safety_drop(frame + b"\x00", from_client=from_client, max_frame=MAX_FRAME)
        is DropReason.JUMBO
    )


@pytest.mark.parametrize("from_client", [True, False])
@pytest.mark.parametrize("last_octet", range(0x10))
def test_switch_control(from_client: bool, last_octet: int) -> None:
    destination = bytes([0x01, 0x80, 0xC2, 0, 0, last_octet])
    frame = ethernet(bytes(40), 0x88CC, dst=destination)
    assert (
        safety_drop(frame, from_client=from_client, max_frame=MAX_FRAME)
        is DropReason.SWITCH_CONTROL
    )


@pytest.mark.parametrize(
    "destination",
    [
        "0180c2000010",
        "0180c2000100",
        "0180c3000000",
        "01005e000001",
        "333300000001",
        "ffffffffffff",
    ],
)
def test_other_group_addresses_are_not_switch_control(destination: str) -> None:
    frame = ethernet(bytes(40), 0x88CC, dst=bytes.fromhex(destination))
    assert safety_drop(frame, from_client=True, max_frame=MAX_FRAME) is None


def test_jumbo_is_reported_before_switch_control_and_the_client_filters() -> None:
    stp_jumbo = ethernet(bytes(MAX_FRAME), 0x0806, dst=bytes.fromhex("0180c2000000"))
    assert safety_drop(stp_jumbo, from_client=True, max_frame=MAX_FRAME) is DropReason.JUMBO
    dhcp_to_stp = ethernet(ipv4(udp(67, 68), UDP), IPV4, dst=bytes.fromhex("0180c2000000"))
    assert (
        safety_drop(dhcp_to_stp, from_client=True, max_frame=MAX_FRAME) is DropReason.SWITCH_CONTROL
    )


def test_safety_drop_at_an_offset_reads_the_frame_after_it() -> None:
    frame = ethernet(ipv4(udp(67, 68), UDP), IPV4, (0x8100,))
    assert safety_drop_at(b"\x10" + frame, 1, True, MAX_FRAME) is DropReason.DHCP_SERVER
    assert safety_drop_at(b"\x10" + frame, 1, False, MAX_FRAME) is None
    exactly_max = ethernet(bytes(MAX_FRAME - 14), 0x0806)
    assert safety_drop_at(b"\x10" + exactly_max, 1, True, MAX_FRAME) is None
    assert safety_drop_at(b"\x10" + exactly_max + b"\x00", 1, True, MAX_FRAME) is DropReason.JUMBO


# Frames near the shapes the classifier walks, so that random bytes reach deep.
_type_fields = st.sampled_from([IPV4, IPV6, 0x8100, 0x88A8, 0x9100, 0x0806, 0x8137, 0x05DC, 40])
_frames = st.one_of(
    st.binary(min_size=14, max_size=200),
    st.builds(
        lambda dst, type_field, body: dst + CLIENT_MAC + struct.pack("!H", type_field) + body,
        st.sampled_from([BROADCAST, bytes.fromhex("0180c2000003"), bytes.fromhex("020000000002")]),
        _type_fields,
        st.binary(max_size=120),
    ),
    st.builds(
        lambda wrap, upper, protocol, framing: FRAMINGS[framing](
            IPV6_WRAPS[wrap](upper, protocol), IPV6
        ),
        st.sampled_from(sorted(IPV6_WRAPS)),
        st.binary(max_size=24),
        st.sampled_from([UDP, ICMPV6, 6, 59, 50, 43]),
        st.sampled_from(sorted(FRAMINGS)),
    ),
)


@given(frame=_frames, from_client=st.booleans())
def test_never_raises_and_agrees_with_the_full_classification(
    frame: bytes, from_client: bool
) -> None:
    """The shortcut that skips the classifier for non-IP ethertypes changes no verdict."""
    reason = safety_drop(frame, from_client=from_client, max_frame=MAX_FRAME)
    assert reason is None or isinstance(reason, DropReason)
    assert safety_drop_at(b"\x10" + frame, 1, from_client, MAX_FRAME) is reason
    if len(frame) > MAX_FRAME or (frame[:5] == b"\x01\x80\xc2\x00\x00" and frame[5] <= 0x0F):
        return
    expected = client_verdict(classify_frame(frame)) if from_client else None
    assert reason is expected


@pytest.mark.parametrize("last_octet", range(0x10))
def test_switch_control_range_is_dropped(last_octet: int) -> None:
    assert member_drop(bytes([0x01, 0x80, 0xC2, 0, 0, last_octet]), 60, MAX_FRAME) is (
        DropReason.SWITCH_CONTROL
    )


@pytest.mark.parametrize(
    "mac",
    [
        "0180c2000010",
        "0180c20000ff",
        "0180c2000100",
        "0080c2000000",
        "01005e000001",
        "ffffffffffff",
    ],
)
def test_not_switch_control_passes(mac: str) -> None:
    assert member_drop(bytes.fromhex(mac), 60, MAX_FRAME) is None


def test_switch_control_needs_a_whole_mac() -> None:
    assert member_drop(bytes.fromhex("0180c20000"), 60, MAX_FRAME) is None
    assert member_drop(bytes.fromhex("0180c2000000ff"), 60, MAX_FRAME) is None


def test_jumbo_is_judged_before_switch_control() -> None:
    switch_control = bytes.fromhex("0180c2000000")
    assert member_drop(switch_control, MAX_FRAME + 1, MAX_FRAME) is DropReason.JUMBO
    assert member_drop(BROADCAST, MAX_FRAME, MAX_FRAME) is None
