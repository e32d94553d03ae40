"""The relay's L2 guard through the switch: each attack a hostile player tries, and what passes.

Frames go through ``Switch.forward`` (the hot path), so a disguise the
classifier sees through is judged here as what it is.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanparty.proto import DropReason
from lanparty.relay.guard import MAX_ADDRESSES_PER_CLIENT, MAX_LAN_ADDRESSES
from lanparty.relay.switch import Member, RelayLimits
from tests.unit.test_relay_switch import BROADCAST, LAN_HOST, Party, admit, client_hello, client_mac

ROUTER_IP = "198.19.0.1"
LAN_HOST_IP = "198.19.0.10"
DHCP_SERVER_IP = LAN_HOST_IP
ALICE_IP = "198.19.0.100"
BOB_IP = "198.19.0.101"
LAN_HOST_V6 = "fe80::11:22ff:fe33:4455"
ROUTER_MAC = bytes.fromhex("001122330001")


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def ether(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, tags: tuple[int, ...] = ()
) -> bytes:
    tagged = b"".join(struct.pack("!HH", 0x8100, tci) for tci in tags)
    return b"\x10" + dst + src + tagged + struct.pack("!H", ethertype) + payload


def arp(
    sha: bytes, spa: str, tpa: str, *, op: int = 1, htype: int = 1, tha: bytes = bytes(6)
) -> bytes:
    return struct.pack("!HHBBH", htype, 0x0800, 6, 4, op) + sha + ip4(spa) + tha + ip4(tpa)


def ipv4_udp(src: str, dst: str, sport: int, dport: int, body: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, ip4(src), ip4(dst)
    )
    return header + udp


def dhcp(op: int, chaddr: bytes, message_type: int, *, yiaddr: str = "0.0.0.0",
         ciaddr: str = "0.0.0.0", options: bytes = b"") -> bytes:  # fmt: skip
    fixed = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, 0x1234, 0, 0, ip4(ciaddr),
                        ip4(yiaddr), bytes(4), bytes(4))  # fmt: skip
    fixed += chaddr.ljust(16, b"\0") + bytes(64 + 128)
    return fixed + b"\x63\x82\x53\x63" + bytes([53, 1, message_type]) + options + b"\xff"


def client_dhcp(member: Member, message_type: int = 1, chaddr: bytes | None = None) -> bytes:
    body = dhcp(1, member.mac if chaddr is None else chaddr, message_type)
    return ether(
        BROADCAST, member.mac, 0x0800, ipv4_udp("0.0.0.0", "255.255.255.255", 68, 67, body)
    )


def lan_ack(client_mac_bytes: bytes, address: str, message_type: int = 5) -> bytes:
    options = (
        bytes([54, 4]) + ip4(DHCP_SERVER_IP) + bytes([3, 4]) + ip4(ROUTER_IP)
        + bytes([6, 8]) + ip4("198.19.0.53") + ip4("198.19.0.54")
    )  # fmt: skip
    body = dhcp(2, client_mac_bytes, message_type, yiaddr=address, options=options)
    return ether(
        client_mac_bytes, LAN_HOST, 0x0800, ipv4_udp(DHCP_SERVER_IP, address, 67, 68, body)
    )


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hop_limit: int = 255) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit) + ip6(src) + (ip6(dst))
    )


def icmpv6(src: str, dst: str, body: bytes) -> bytes:
    return ipv6(src, dst, 58, body) + body


def neighbor(kind: int, target: str, link: bytes | None = None, flags: int = 0) -> bytes:
    option_type = 1 if kind == 135 else 2
    options = b"" if link is None else bytes([option_type, 1]) + link
    return struct.pack("!BBHI", kind, 0, 0, flags) + ip6(target) + options


def client_na(member: Member, target: str, link: bytes | None = None) -> bytes:
    body = neighbor(136, target, member.mac if link is None else link, flags=0x20000000)
    return ether(BROADCAST, member.mac, 0x86DD, icmpv6(target, "ff02::1", body))


def party_with_a_lan() -> Party:
    """A room whose LAN (router, DHCP server) the guard has seen through the gateway."""
    party = Party()
    router_says = ether(BROADCAST, ROUTER_MAC, 0x0806, arp(ROUTER_MAC, ROUTER_IP, LAN_HOST_IP))
    assert isinstance(party.forward(party.gateway, router_says), tuple)
    return party


# ----------------------------------------------------------------- DHCP


def test_a_dhcp_reply_from_a_client_is_dropped_by_either_port() -> None:
    party = Party()
    alice = party.alice
    offer = dhcp(2, party.bob.mac, 2)
    for sport in (67, 6767):
        frame = ether(
            BROADCAST, alice.mac, 0x0800, ipv4_udp(ALICE_IP, "255.255.255.255", sport, 68, offer)
        )
        assert party.forward(alice, frame) is DropReason.DHCP_SERVER
    for sport in (547, 5470):
        frame = ether(BROADCAST, alice.mac, 0x86DD, ipv6("fe80::1", "ff02::1:2", 17, b"") + b"")
        body = b"\x07\x00\x00\x01"
        udp = struct.pack("!HHHH", sport, 546, 8 + len(body), 0) + body
        frame = ether(BROADCAST, alice.mac, 0x86DD, ipv6("fe80::a", "fe80::b", 17, udp) + udp)
        assert party.forward(alice, frame) is DropReason.DHCP_SERVER


def test_a_dhcp_request_must_carry_the_client_s_own_mac() -> None:
    party = Party()
    alice = party.alice
    assert isinstance(party.forward(alice, client_dhcp(alice)), tuple)
    for made_up in (bytes.fromhex("020000001234"), party.bob.mac, LAN_HOST):
        assert party.forward(alice, client_dhcp(alice, chaddr=made_up), 5.0) is (
            DropReason.DHCP_SPOOF
        )


def test_dhcp_messages_are_a_few_per_second() -> None:
    party = Party()
    alice = party.alice
    results = [party.forward(alice, client_dhcp(alice), 0.0) for _ in range(200)]
    assert results.count(DropReason.RATE_LIMITED_DHCP) == 190  # a burst of 10
    assert isinstance(party.forward(alice, client_dhcp(alice), 0.3), tuple)  # 4 a second
    # the others' allowance is their own
    assert isinstance(party.forward(party.bob, client_dhcp(party.bob), 0.0), tuple)


def test_a_fragmented_dhcp_request_too_short_to_judge_is_suspicious() -> None:
    party = Party()
    alice = party.alice
    whole = client_dhcp(alice)
    # the first fragment ends inside the DHCP header, before the client address
    ip_start = 15
    cut = whole[: ip_start + 20 + 8 + 20]
    header = bytearray(cut[ip_start : ip_start + 20])
    struct.pack_into("!H", header, 2, len(cut) - ip_start)
    struct.pack_into("!H", header, 6, 0x2000)  # more fragments, offset 0
    first = cut[:ip_start] + bytes(header) + cut[ip_start + 20 :]
    assert party.forward(alice, first) is DropReason.SUSPICIOUS


# ------------------------------------------------------------------ ARP


@pytest.mark.parametrize("htype", [1, 6])
def test_a_gratuitous_arp_for_the_router_s_address_is_dropped(htype: int) -> None:
    party = party_with_a_lan()
    alice = party.alice
    claim = arp(alice.mac, ROUTER_IP, ROUTER_IP, op=2, htype=htype)
    assert party.forward(alice, ether(BROADCAST, alice.mac, 0x0806, claim)) is DropReason.ARP_SPOOF


def test_an_arp_speaking_for_another_hardware_address_is_dropped() -> None:
    party = Party()
    alice = party.alice
    claim = arp(party.bob.mac, "198.19.0.77", "198.19.0.77", op=2)
    assert party.forward(alice, ether(BROADCAST, alice.mac, 0x0806, claim)) is DropReason.ARP_SPOOF


def test_the_lan_s_dhcp_server_tells_the_guard_who_holds_what() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    assert isinstance(party.forward(party.gateway, lan_ack(alice.mac, ALICE_IP)), tuple)
    # alice may speak for her lease, and for nothing else now
    mine = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, ALICE_IP, LAN_HOST_IP))
    assert party.forward(alice, mine) == (party.gateway, bob, party.carol)
    other = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, "198.19.0.150", LAN_HOST_IP))
    assert party.forward(alice, other) is DropReason.ARP_SPOOF
    # the router and DNS servers the ACK named are the LAN's
    for lan in (ROUTER_IP, DHCP_SERVER_IP, "198.19.0.54"):
        claim = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, lan, lan, op=2))
        assert party.forward(bob, claim) is DropReason.ARP_SPOOF
    # nobody else may claim alice's address
    steal = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, ALICE_IP, ALICE_IP, op=2))
    assert party.forward(bob, steal) is DropReason.ARP_SPOOF
    # probes claim nothing and pass
    probe = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, "0.0.0.0", ALICE_IP))
    assert isinstance(party.forward(bob, probe), tuple)


def test_a_new_lease_moves_the_address_to_its_new_holder() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    party.forward(party.gateway, lan_ack(alice.mac, ALICE_IP))
    party.forward(party.gateway, lan_ack(bob.mac, ALICE_IP))
    theirs = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, ALICE_IP, LAN_HOST_IP))
    assert isinstance(party.forward(bob, theirs), tuple)
    old = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, ALICE_IP, LAN_HOST_IP))
    assert party.forward(alice, old) is DropReason.ARP_SPOOF


def test_a_player_with_a_static_address_claims_a_free_one_first_come() -> None:
    party = party_with_a_lan()
    alice, bob = party.alice, party.bob
    announce = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, "198.19.5.5", "198.19.5.5", op=2))
    assert isinstance(party.forward(alice, announce), tuple)
    again = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, "198.19.5.5", LAN_HOST_IP))
    assert isinstance(party.forward(alice, again), tuple)
    steal = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, "198.19.5.5", "198.19.5.5", op=2))
    assert party.forward(bob, steal) is DropReason.ARP_SPOOF
    # alice's address stays hers while she is away (a blip must not lose it)
    party.switch.leave(alice, 1.0)
    assert party.forward(bob, steal, 2.0) is DropReason.ARP_SPOOF
    back = admit(party.switch, client_hello(client_mac(1)), 3.0).member
    assert isinstance(party.forward(back, again, 3.0), tuple)


def test_a_release_frees_the_lease() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    party.forward(party.gateway, lan_ack(alice.mac, ALICE_IP))
    body = dhcp(1, alice.mac, 7, ciaddr=ALICE_IP)
    release = ether(LAN_HOST, alice.mac, 0x0800, ipv4_udp(ALICE_IP, DHCP_SERVER_IP, 68, 67, body))
    assert party.forward(alice, release) == (party.gateway,)
    claim = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, ALICE_IP, ALICE_IP, op=2))
    assert isinstance(party.forward(bob, claim), tuple)


# ------------------------------------------------------------- IPv6 ND


def lan_na(address: str) -> bytes:
    body = neighbor(136, address, LAN_HOST, flags=0x20000000)
    return ether(BROADCAST, LAN_HOST, 0x86DD, icmpv6(address, "ff02::1", body))


def test_a_neighbour_advertisement_for_someone_else_s_address_is_dropped() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    assert isinstance(party.forward(party.gateway, lan_na(LAN_HOST_V6)), tuple)
    assert party.forward(alice, client_na(alice, LAN_HOST_V6)) is DropReason.ND_SPOOF
    # a link-local address alice probed for (DAD) is hers
    mine = "fe80::a:1"
    dad = ether(BROADCAST, alice.mac, 0x86DD, icmpv6("::", "ff02::1:ff0a:1", neighbor(135, mine)))
    assert isinstance(party.forward(alice, dad), tuple)
    assert isinstance(party.forward(alice, client_na(alice, mine)), tuple)
    assert party.forward(bob, client_na(bob, mine)) is DropReason.ND_SPOOF
    # speaking for another link-layer address is spoofing, whatever the target
    assert party.forward(bob, client_na(bob, "fe80::b:1", link=LAN_HOST)) is DropReason.ND_SPOOF


def test_a_neighbour_solicitation_speaks_for_its_source() -> None:
    party = Party()
    party.forward(party.gateway, lan_na(LAN_HOST_V6))
    alice = party.alice
    body = neighbor(135, "fe80::99", alice.mac)
    poison = ether(BROADCAST, alice.mac, 0x86DD, icmpv6(LAN_HOST_V6, "ff02::1:ff00:99", body))
    assert party.forward(alice, poison) is DropReason.ND_SPOOF


def test_a_disguised_advertisement_is_judged_as_what_it_is() -> None:
    party = Party()
    party.forward(party.gateway, lan_na(LAN_HOST_V6))
    alice = party.alice
    body = neighbor(136, LAN_HOST_V6, alice.mac, flags=0x20000000)
    hop_by_hop = bytes([58, 0]) + bytes([1, 4]) + bytes(4)  # PadN
    packet = ipv6(LAN_HOST_V6, "ff02::1", 0, hop_by_hop + body) + hop_by_hop + body
    assert party.forward(alice, ether(BROADCAST, alice.mac, 0x86DD, packet)) is DropReason.ND_SPOOF
    # in a fragment: hosts drop fragmented neighbour discovery; so does the relay
    fragment = struct.pack("!BBHI", 58, 0, 0x0001, 7)  # offset 0, more fragments
    packet = ipv6(LAN_HOST_V6, "ff02::1", 44, fragment + body) + fragment + body
    assert party.forward(alice, ether(BROADCAST, alice.mac, 0x86DD, packet)) is (
        DropReason.SUSPICIOUS
    )


def test_dhcpv6_replies_bind_their_addresses_to_the_client() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    leased = "2001:db8::a"
    iaaddr = struct.pack("!HH", 5, 24) + ip6(leased) + struct.pack("!II", 3600, 7200)
    ia_na = struct.pack("!HH", 3, 12 + len(iaaddr)) + struct.pack("!III", 1, 0, 0) + iaaddr
    body = b"\x07\x00\x00\x01" + ia_na
    udp = struct.pack("!HHHH", 547, 546, 8 + len(body), 0) + body
    reply = ether(alice.mac, LAN_HOST, 0x86DD, ipv6(LAN_HOST_V6, "fe80::a", 17, udp) + udp)
    assert party.forward(party.gateway, reply) == (alice,)
    assert isinstance(party.forward(alice, client_na(alice, leased)), tuple)
    assert party.forward(bob, client_na(bob, leased)) is DropReason.ND_SPOOF


def dhcpv6_message(message_type: int, *duids: bytes) -> bytes:
    options = b"".join(struct.pack("!HH", 1, len(duid)) + duid for duid in duids)
    return bytes([message_type]) + b"\x00\x00\x01" + options


def client_dhcpv6(member: Member, body: bytes) -> bytes:
    udp = struct.pack("!HHHH", 546, 547, 8 + len(body), 0) + body
    return ether(BROADCAST, member.mac, 0x86DD, ipv6("fe80::a", "ff02::1:2", 17, udp) + udp)


ALICE_DUID = bytes.fromhex("00030001") + bytes.fromhex("02000000000a")
BOB_DUID = bytes.fromhex("00030001") + bytes.fromhex("02000000000b")
SOLICIT, RELEASE, INFORMATION_REQUEST, RELAY_FORWARD = 1, 8, 11, 12


def test_a_dhcpv6_client_keeps_the_first_duid_it_used() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(SOLICIT, ALICE_DUID))), tuple
    )
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(RELEASE, ALICE_DUID))), tuple
    )
    # a made-up DUID would take a second lease, another's would release theirs
    for duid in (BOB_DUID, ALICE_DUID + b"\x01"):
        frame = client_dhcpv6(alice, dhcpv6_message(SOLICIT, duid))
        assert party.forward(alice, frame) is DropReason.DHCP_SPOOF
    frame = client_dhcpv6(bob, dhcpv6_message(RELEASE, ALICE_DUID))
    assert party.forward(bob, frame) is DropReason.DHCP_SPOOF
    assert isinstance(
        party.forward(bob, client_dhcpv6(bob, dhcpv6_message(SOLICIT, BOB_DUID))), tuple
    )


def test_a_dhcpv6_message_cannot_hide_or_double_its_duid() -> None:
    party = Party()
    alice = party.alice
    for body in (
        dhcpv6_message(SOLICIT, ALICE_DUID, BOB_DUID),
        dhcpv6_message(SOLICIT, b"\x00\x01"),
        dhcpv6_message(SOLICIT, bytes(131)),
        dhcpv6_message(RELAY_FORWARD, BOB_DUID),
    ):
        assert party.forward(alice, client_dhcpv6(alice, body)) is DropReason.DHCP_SPOOF
    assert party.forward(alice, client_dhcpv6(alice, b"\x01\x00")) is DropReason.SUSPICIOUS
    # an information-request without a DUID keys no lease
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(INFORMATION_REQUEST))), tuple
    )
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(SOLICIT, ALICE_DUID))), tuple
    )


def test_a_duid_built_from_a_player_s_mac_is_taken_back_from_a_later_squatter() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    # bob knows alice's MAC, so her DUID-LL and could try to squat it before she asks
    alice_ll = bytes.fromhex("00030001") + alice.mac
    squat = client_dhcpv6(bob, dhcpv6_message(SOLICIT, alice_ll))
    assert isinstance(party.forward(bob, squat), tuple)
    frame = client_dhcpv6(alice, dhcpv6_message(SOLICIT, alice_ll))
    assert isinstance(party.forward(alice, frame), tuple)
    assert party.forward(bob, squat) is DropReason.DHCP_SPOOF
    # bob, who lost the squatted one, may still use his own, a DUID-LLT (with a time)
    bob_llt = bytes.fromhex("000100010a0b0c0d") + bob.mac
    assert isinstance(
        party.forward(bob, client_dhcpv6(bob, dhcpv6_message(SOLICIT, bob_llt))), tuple
    )


def test_a_lan_host_s_duid_is_its_own() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    lan_duid = bytes.fromhex("0001000100000001") + LAN_HOST
    # alice used it first: the LAN host's own solicit takes it back
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(SOLICIT, lan_duid))), tuple
    )
    body = dhcpv6_message(SOLICIT, lan_duid)
    udp = struct.pack("!HHHH", 546, 547, 8 + len(body), 0) + body
    solicit = ether(BROADCAST, LAN_HOST, 0x86DD, ipv6(LAN_HOST_V6, "ff02::1:2", 17, udp) + udp)
    assert isinstance(party.forward(party.gateway, solicit), tuple)
    for member in (alice, bob):
        frame = client_dhcpv6(member, dhcpv6_message(RELEASE, lan_duid))
        assert party.forward(member, frame) is DropReason.DHCP_SPOOF
    # alice may start again with a DUID of her own
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(SOLICIT, ALICE_DUID))), tuple
    )


FILLER = struct.pack("!HH", 0xFF00, 0)


def client_id(duid: bytes) -> bytes:
    return struct.pack("!HH", 1, len(duid)) + duid


def ia_na(iaid: int) -> bytes:
    return struct.pack("!HHIII", 3, 12, iaid, 0, 0)


def test_a_duid_the_guard_cannot_read_is_not_passed() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    assert isinstance(
        party.forward(bob, client_dhcpv6(bob, dhcpv6_message(SOLICIT, BOB_DUID))), tuple
    )
    header = bytes([RELEASE]) + b"\x00\x00\x01"
    for body in (
        header + FILLER * 64 + client_id(BOB_DUID),  # past the guard's cap on options
        header + client_id(BOB_DUID)[:-1],  # cut short
        header + FILLER + b"\x00\x01",  # bytes after the last option
    ):
        assert party.forward(alice, client_dhcpv6(alice, body)) is DropReason.DHCP_SPOOF


def test_a_fragmented_dhcp_message_from_a_client_is_dropped() -> None:
    party = Party()
    alice = party.alice
    head = bytes([RELEASE]) + b"\x00\x00\x01" + FILLER
    udp = struct.pack("!HHHH", 546, 547, 8 + len(head) + len(client_id(BOB_DUID)), 0) + head
    first = struct.pack("!BBHI", 17, 0, 1, 0xBEEF) + udp  # more fragments follow
    frame = ether(BROADCAST, alice.mac, 0x86DD, ipv6("fe80::a", "ff02::1:2", 44, first) + first)
    assert party.forward(alice, frame) is DropReason.SUSPICIOUS


def test_a_newcomer_cannot_take_a_player_s_duid_by_choosing_the_mac_inside_it() -> None:
    party = Party()
    alice = party.alice
    nic = bytes.fromhex("001b21aabbcc")  # Windows names the physical NIC, not the room MAC
    duid = bytes.fromhex("000100012c3d4e5f") + nic
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(SOLICIT, duid))), tuple
    )
    mallory = party.join(nic.hex(":"))
    frame = client_dhcpv6(mallory, dhcpv6_message(RELEASE, duid))
    assert party.forward(mallory, frame) is DropReason.DHCP_SPOOF
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(RELEASE, duid)), 1.0), tuple
    )


def test_one_duid_cannot_take_leases_without_bound() -> None:
    party = Party()
    alice = party.alice
    duid = client_id(ALICE_DUID)
    header = bytes([SOLICIT]) + b"\x00\x00\x01"
    two_of_a_kind = header + duid + ia_na(1) + ia_na(2)
    assert party.forward(alice, client_dhcpv6(alice, two_of_a_kind)) is DropReason.DHCP_SPOOF
    results = [
        party.forward(alice, client_dhcpv6(alice, header + duid + ia_na(iaid)), float(iaid))
        for iaid in range(1, 12)
    ]
    assert all(isinstance(result, tuple) for result in results[:8])
    assert results[8:] == [DropReason.DHCP_SPOOF] * 3
    # the IAIDs it has are still its own
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, header + duid + ia_na(1)), 20.0), tuple
    )


def test_the_lan_cannot_reserve_a_player_s_own_duid_nor_teach_an_ambiguous_one() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    alice_ll = bytes.fromhex("00030001") + alice.mac
    lan_duid = bytes.fromhex("0001000100000001") + LAN_HOST
    for body in (dhcpv6_message(SOLICIT, alice_ll), dhcpv6_message(SOLICIT, lan_duid, BOB_DUID)):
        udp = struct.pack("!HHHH", 546, 547, 8 + len(body), 0) + body
        lan = ether(BROADCAST, LAN_HOST, 0x86DD, ipv6(LAN_HOST_V6, "ff02::1:2", 17, udp) + udp)
        assert isinstance(party.forward(party.gateway, lan), tuple)
    assert isinstance(
        party.forward(alice, client_dhcpv6(alice, dhcpv6_message(SOLICIT, alice_ll))), tuple
    )
    assert isinstance(
        party.forward(bob, client_dhcpv6(bob, dhcpv6_message(SOLICIT, BOB_DUID))), tuple
    )


# ------------------------------------------------------------------ VLAN


def test_vlan_tagged_frames_from_clients_are_dropped_unless_allowed() -> None:
    party = Party()
    alice = party.alice
    game = ipv4_udp(ALICE_IP, "255.255.255.255", 4000, 4000, b"hello")
    double = ether(BROADCAST, alice.mac, 0x0800, game, tags=(0, 5))
    assert party.forward(alice, double) is DropReason.VLAN_TAGGED
    assert party.forward(alice, ether(BROADCAST, alice.mac, 0x0800, game, tags=(7,))) is (
        DropReason.VLAN_TAGGED
    )
    # a priority tag (VID 0) is no VLAN
    priority = ether(BROADCAST, alice.mac, 0x0800, game, tags=(0x6000,))
    assert isinstance(party.forward(alice, priority), tuple)
    allowed = Party(RelayLimits(allow_client_vlan_tags=True))
    tagged = ether(BROADCAST, allowed.alice.mac, 0x0800, game, tags=(7,))
    assert isinstance(allowed.forward(allowed.alice, tagged), tuple)
    # allowed tags hide nothing from the guard
    claim = arp(allowed.alice.mac, "198.19.0.9", "198.19.0.9", op=2)
    allowed.forward(allowed.gateway, lan_ack(allowed.bob.mac, "198.19.0.9"))
    sneaky = ether(BROADCAST, allowed.alice.mac, 0x0806, claim, tags=(7,))
    assert allowed.forward(allowed.alice, sneaky) is DropReason.ARP_SPOOF


# ------------------------------------------------------ what games send


def test_lan_games_pass_untouched() -> None:
    party = party_with_a_lan()
    alice = party.alice
    ipx = ether(BROADCAST, alice.mac, 0x8137, bytes(30))
    discovery = ether(
        BROADCAST, alice.mac, 0x0800, ipv4_udp(ALICE_IP, "255.255.255.255", 27015, 27015, b"q")
    )
    unicast = ether(LAN_HOST, alice.mac, 0x0800, ipv4_udp(ALICE_IP, LAN_HOST_IP, 5000, 5000, b"x"))
    for frame in (ipx, discovery):
        assert party.forward(alice, frame) == (party.gateway, party.bob, party.carol)
    party.learn(LAN_HOST)
    assert party.forward(alice, unicast) == (party.gateway,)
    assert party.alice.counters.drops == {}


def test_what_a_room_remembers_is_bounded() -> None:
    party = Party(RelayLimits(client_pps=1e9, client_pps_burst=1e9))
    alice = party.alice
    for n in range(MAX_ADDRESSES_PER_CLIENT * 3):
        address = f"198.19.{n // 250}.{n % 250 + 1}"
        party.forward(alice, ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, address, address)))
    assert len(alice.guard.ipv4) == MAX_ADDRESSES_PER_CLIENT
    guard = party.switch.get_room(alice.room.id).guard  # type: ignore[union-attr]
    assert len(guard.ipv4_owners) == MAX_ADDRESSES_PER_CLIENT
    gateway = party.gateway
    for n in range(MAX_LAN_ADDRESSES + 10):
        address = str(ipaddress.IPv4Address(0x0A000000 + n))
        party.forward(
            gateway,
            ether(BROADCAST, ROUTER_MAC, 0x0806, arp(ROUTER_MAC, address, address)),
            n * 1e-5,
        )
    assert len(guard.lan_ipv4) == MAX_LAN_ADDRESSES


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.sampled_from([0x0806, 0x0800, 0x86DD, 0x8100]))
def test_any_frame_from_anyone_is_a_verdict_never_an_exception(
    payload: bytes, ethertype: int
) -> None:
    party = Party(RelayLimits(client_pps=1e9, client_pps_burst=1e9))
    for sender, source in ((party.alice, party.alice.mac), (party.gateway, LAN_HOST)):
        result = party.forward(sender, ether(BROADCAST, source, ethertype, payload))
        assert isinstance(result, tuple | DropReason)


def test_a_client_joining_later_starts_with_no_binding() -> None:
    party = Party()
    dave = admit(party.switch, client_hello(client_mac(9)), 1.0).member
    assert dave.guard.ipv4 == {}
    assert not dave.guard.leased


# ------------------------------------- found by an attacker's review of the guard


def test_the_lan_takes_back_an_address_a_player_claimed_first() -> None:
    party = Party()
    alice = party.alice
    early = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, ROUTER_IP, ROUTER_IP, op=2))
    assert isinstance(party.forward(alice, early), tuple)  # nobody was heard holding it yet
    router_says = ether(BROADCAST, ROUTER_MAC, 0x0806, arp(ROUTER_MAC, ROUTER_IP, LAN_HOST_IP))
    party.forward(party.gateway, router_says)
    assert party.forward(alice, early) is DropReason.ARP_SPOOF


def test_a_lease_outlives_a_blip_and_nobody_takes_it_meanwhile() -> None:
    party = Party()
    alice, bob = party.alice, party.bob
    party.forward(party.gateway, lan_ack(bob.mac, BOB_IP))
    party.switch.leave(bob, 1.0)
    party.switch.leave(alice, 1.0)
    alice = admit(party.switch, client_hello(client_mac(1)), 2.0).member  # lease flag? none
    steal = ether(BROADCAST, alice.mac, 0x0806, arp(alice.mac, BOB_IP, BOB_IP, op=2))
    assert party.forward(alice, steal, 2.0) is DropReason.ARP_SPOOF
    bob = admit(party.switch, client_hello(client_mac(2)), 3.0).member
    assert bob.guard.leased
    mine = ether(BROADCAST, bob.mac, 0x0806, arp(bob.mac, BOB_IP, LAN_HOST_IP))
    assert isinstance(party.forward(bob, mine, 3.0), tuple)


def test_a_router_solicitation_speaks_for_its_source() -> None:
    party = Party()
    party.forward(party.gateway, lan_na(LAN_HOST_V6))
    alice = party.alice
    body = struct.pack("!BBHI", 133, 0, 0, 0) + bytes([1, 1]) + alice.mac
    spoof = ether(BROADCAST, alice.mac, 0x86DD, icmpv6(LAN_HOST_V6, "ff02::2", body))
    assert party.forward(alice, spoof) is DropReason.ND_SPOOF
    other_link = struct.pack("!BBHI", 133, 0, 0, 0) + bytes([1, 1]) + LAN_HOST
    own_address = ether(BROADCAST, alice.mac, 0x86DD, icmpv6("fe80::a:9", "ff02::2", other_link))
    assert party.forward(alice, own_address) is DropReason.ND_SPOOF
    honest = struct.pack("!BBHI", 133, 0, 0, 0) + bytes([1, 1]) + alice.mac
    assert isinstance(
        party.forward(
            alice, ether(BROADCAST, alice.mac, 0x86DD, icmpv6("fe80::a:9", "ff02::2", honest))
        ),
        tuple,
    )


def test_every_link_option_of_an_advertisement_is_read() -> None:
    party = Party()
    alice = party.alice
    filler = bytes([14, 1]) + bytes(6)  # a nonce option, 8 bytes
    body = (
        struct.pack("!BBHI", 136, 0, 0, 0x20000000) + ip6("fe80::a:2")
        + filler * 20 + bytes([2, 1]) + LAN_HOST
    )  # fmt: skip
    frame = ether(BROADCAST, alice.mac, 0x86DD, icmpv6("fe80::a:2", "ff02::1", body))
    assert party.forward(alice, frame) is DropReason.ND_SPOOF


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body[:1] + b"\x06" + body[2:],  # another hardware type
        lambda body: body[:2] + b"\x10" + body[3:],  # hlen 16 with more bytes to vary
        lambda body: body[:40] + b"\x99" + body[41:],  # chaddr beyond the MAC
        lambda body: body[:-1] + bytes([61, 7, 1]) + bytes(6) + b"\xff",  # option 61 made up
    ],
)
def test_a_dhcp_request_cannot_vary_what_servers_key_leases_on(change: object) -> None:
    party = Party()
    alice = party.alice
    body = change(dhcp(1, alice.mac, 1))  # type: ignore[operator]
    frame = ether(
        BROADCAST, alice.mac, 0x0800, ipv4_udp("0.0.0.0", "255.255.255.255", 68, 67, body)
    )
    assert party.forward(alice, frame) is DropReason.DHCP_SPOOF
    own_id = dhcp(1, alice.mac, 1)[:-1] + bytes([61, 7, 1]) + alice.mac + b"\xff"
    frame = ether(
        BROADCAST, alice.mac, 0x0800, ipv4_udp("0.0.0.0", "255.255.255.255", 68, 67, own_id)
    )
    assert isinstance(party.forward(alice, frame), tuple)


def test_a_vlan_tag_carried_in_snap_is_a_vlan_tag() -> None:
    party = Party()
    alice = party.alice
    inner = (
        struct.pack("!H", 5)
        + struct.pack("!H", 0x0800)
        + ipv4_udp(ALICE_IP, "255.255.255.255", 9, 9, b"x")
    )
    snap = bytes([0xAA, 0xAA, 0x03, 0, 0, 0]) + struct.pack("!H", 0x8100) + inner
    frame = b"\x10" + BROADCAST + alice.mac + struct.pack("!H", len(snap)) + snap
    assert party.forward(alice, frame) is DropReason.VLAN_TAGGED


def test_an_icmp_redirect_from_a_player_is_dropped() -> None:
    party = Party()
    alice = party.alice
    icmp = bytes([5, 1, 0, 0]) + ip4(ALICE_IP) + bytes(28)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, ip4(ROUTER_IP), ip4(LAN_HOST_IP)
    )
    frame = ether(LAN_HOST, alice.mac, 0x0800, header + icmp)
    assert party.forward(alice, frame) is DropReason.ICMP_REDIRECT
    echo = bytes([8, 0, 0, 0]) + bytes(8)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(echo), 1, 0, 64, 1, 0, ip4(ALICE_IP), ip4(LAN_HOST_IP)
    )
    assert isinstance(
        party.forward(alice, ether(LAN_HOST, alice.mac, 0x0800, header + echo)), tuple
    )
