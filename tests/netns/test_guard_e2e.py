"""The L2 guard end to end: a hostile player's attacks die at the relay.

The relay, the gateway and the LAN host (with dnsmasq) run in the
namespaces of ``lanparty.demo.world``; the attacker is a raw endpoint
session with the real invite (a real client would refuse to send these),
an honest player is another session. Each attack frame carries a marker:
none may reach the LAN host's wire or the honest player, and the LAN
host's ARP and neighbour caches keep the router's real MAC. Root only.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from lanparty.credentials import ClientCredentials
from lanparty.ctrl import RejectCode
from lanparty.demo.netns import inside, run
from lanparty.demo.world import Bridge, dhcp_server, running_bridge
from lanparty.endpoint.session import RejectedError, RelayEndpoint, Session, open_session
from lanparty.invite import Invite
from lanparty.proto import parse_mac
from lanparty.transport import SpkiPin
from tests.netns.lan import BROADCAST, checksum, drain, raw_socket
from tests.netns.topology import RELAY_FOR_CLIENT, RELAY_PORT

pytestmark = pytest.mark.netns

MALLORY = parse_mac("02:66:00:00:00:01")
HONEST = parse_mac("02:00:00:00:00:0b")
ROUTER_IP = "198.19.0.1"
ROUTER_MAC = parse_mac("02:52:00:00:00:01")  # a router on the LAN, as the LAN host knows it
MARK = b"lanparty-attack"


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def arp(op: int, sha: bytes, spa: str, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, ip4(spa), bytes(6), ip4(tpa))


def udp4(src: str, dst: str, sport: int, dport: int, body: bytes) -> bytes:
    """An IPv4 UDP packet whose header checksum is right (the LAN's bridge drops bad ones)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, ip4(src), ip4(dst)
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + udp


def dhcp(op: int, chaddr: bytes, message_type: int) -> bytes:
    fixed = struct.pack("!BBBBIHH", op, 1, 6, 0, 0x55AA, 0, 0x8000) + bytes(16)
    fixed += chaddr.ljust(16, b"\0") + bytes(192)
    return fixed + b"\x63\x82\x53\x63" + bytes([53, 1, message_type, 255]) + MARK


def frame(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, tags: tuple[int, ...] = ()
) -> bytes:
    tagged = b"".join(struct.pack("!HH", 0x8100, tci) for tci in tags)
    return (dst + src + tagged + struct.pack("!H", ethertype) + payload).ljust(60, b"\0")


def neighbour_advertisement(source: str, target: bytes, link: bytes) -> bytes:
    """An unsolicited, overriding advertisement (its checksum right: hosts would take it)."""
    src, dst = ipaddress.IPv6Address(source).packed, ipaddress.IPv6Address("ff02::1").packed
    body = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + target + bytes([2, 1]) + link
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    return struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src + dst + body


@asynccontextmanager
async def session_of(bridge: Bridge, mac: bytes) -> AsyncIterator[Session]:
    relay = RelayEndpoint(RELAY_FOR_CLIENT, RELAY_PORT, SpkiPin.parse(bridge.pin))
    invite = Invite.parse(bridge.invite)
    credentials = ClientCredentials(
        room_id=invite.room, client_key=invite.client_key, identity_secret=mac.ljust(32, b"\1")
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with inside(bridge.topo.client):
                context = open_session(relay, credentials=credentials, mac=mac)
                session = await context.__aenter__()
        except RejectedError as exc:
            if exc.code is not RejectCode.ROOM_NOT_OPEN or time.monotonic() > deadline:
                raise
            await trio.sleep(0.2)
            continue
        try:
            yield session
        finally:
            await context.__aexit__(None, None, None)
        return


def neighbour(namespace: str, address: str) -> str:
    shown = run("ip", "-n", namespace, "neigh", "show", address, "dev", "eth0")
    return shown.split("lladdr ")[1].split()[0] if "lladdr" in shown else ""


async def test_a_hostile_player_s_attacks_die_at_the_relay(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge, dhcp_server(bridge.topo, tmp_path):
        lanhost = bridge.topo.lanhost
        with inside(lanhost):
            lan = raw_socket("eth0")
        try:
            # The LAN knows its router; the router has spoken on the LAN (the relay sees it).
            run("ip", "-n", lanhost, "neigh", "replace", ROUTER_IP, "lladdr",
                ROUTER_MAC.hex(":"), "dev", "eth0", "nud", "stale")  # fmt: skip
            lan_v6 = ipaddress.IPv6Address("fe80::52:ff:fe00:1")
            run("ip", "-n", lanhost, "-6", "neigh", "replace", str(lan_v6), "lladdr",
                ROUTER_MAC.hex(":"), "dev", "eth0", "nud", "stale")  # fmt: skip
            async with session_of(bridge, HONEST) as honest, session_of(bridge, MALLORY) as mallory:
                router_says = frame(
                    BROADCAST, ROUTER_MAC, 0x0806, arp(2, ROUTER_MAC, ROUTER_IP, ROUTER_IP)
                )
                lan.send(router_says)
                router_na = neighbour_advertisement(str(lan_v6), lan_v6.packed, ROUTER_MAC)
                lan.send(frame(BROADCAST, ROUTER_MAC, 0x86DD, router_na))
                with trio.fail_after(10):
                    seen: list[bytes] = []
                    while router_says not in seen:
                        seen.extend(await honest.receive_frames())
                drain(lan)
                attacks = [
                    # a DHCP reply from port 6767
                    frame(BROADCAST, MALLORY, 0x0800,
                          udp4("198.19.0.66", "255.255.255.255", 6767, 68, dhcp(2, HONEST, 2))),
                    # a gratuitous ARP claiming the router
                    frame(BROADCAST, MALLORY, 0x0806,
                          arp(2, MALLORY, ROUTER_IP, ROUTER_IP) + MARK),
                    # a neighbour advertisement for the router's IPv6 address
                    frame(BROADCAST, MALLORY, 0x86DD,
                          neighbour_advertisement("fe80::66", lan_v6.packed, MALLORY)),
                    # a double-tagged frame, for another VLAN on a trunk
                    frame(BROADCAST, MALLORY, 0x0800,
                          udp4("198.19.0.66", "255.255.255.255", 9, 9, MARK), tags=(0, 42)),
                ]  # fmt: skip
                # and DHCP DISCOVERs with made-up hardware addresses, 200 of them
                attacks += [
                    frame(BROADCAST, MALLORY, 0x0800,
                          udp4("0.0.0.0", "255.255.255.255", 68, 67,
                               dhcp(1, bytes([2, 0x77, 0, 0, n >> 8, n & 0xFF]), 1)))
                    for n in range(200)
                ]  # fmt: skip
                for attack in attacks:
                    mallory.send_frame(attack)
                    await trio.sleep(0.005)
                marker = frame(BROADCAST, MALLORY, 0x88B5, b"after the attacks")
                mallory.send_frame(marker)
                with trio.fail_after(10):
                    on_the_lan: list[bytes] = []
                    while marker not in on_the_lan:
                        on_the_lan.extend(drain(lan))
                        await trio.sleep(0.02)
                    at_the_player: list[bytes] = []
                    while marker not in at_the_player:
                        at_the_player.extend(await honest.receive_frames())
                reached = [f for f in on_the_lan + at_the_player if f[6:12] == MALLORY]
                assert reached.count(marker) == 2
                assert [f for f in reached if f != marker] == []
                assert neighbour(lanhost, ROUTER_IP) == ROUTER_MAC.hex(":")
                assert neighbour(lanhost, str(lan_v6)) == ROUTER_MAC.hex(":")
                # the pool is untouched: dnsmasq heard no made-up client
                assert "02:77:00:00" not in (tmp_path / "dnsmasq.log").read_text()
                # an honest DHCP request still goes through
                honest.send_frame(
                    frame(BROADCAST, HONEST, 0x0800,
                          udp4("0.0.0.0", "255.255.255.255", 68, 67, dhcp(1, HONEST, 1)))
                )  # fmt: skip
                with trio.fail_after(10):
                    while not [f for f in drain(lan) if HONEST in f[40:]]:
                        await trio.sleep(0.02)
        finally:
            lan.close()
