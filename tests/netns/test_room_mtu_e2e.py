"""A room is a real 1500-byte Ethernet (PROTOCOL.md 11), end to end.

A player and a LAN host on the namespace bridge: full-size pings with DF,
1472-byte UDP datagrams and 1500-byte IPv6 packets cross both ways (in
fragments where one datagram cannot carry them), and bulk TCP travels one
segment per datagram (the relay's fragment counters stay at zero) because
the relay clamps the MSS. Root only; CI runs as root.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import time
import urllib.request
from pathlib import Path

import pytest

from lanparty.demo.netns import inside, run
from lanparty.demo.probes import tcp_transfer, wait_for_ping
from lanparty.demo.world import LAN_HOST_IP, TAP, ClientProcess, link, running_bridge

pytestmark = pytest.mark.netns

CLIENT_IP = "198.19.0.70"
METRICS = "127.0.0.1:9109"  # inside the relay's own namespace
# <linux/in.h>, <linux/in6.h>: set DF, never fragment locally
_IP_MTU_DISCOVER = 10
_IPV6_MTU_DISCOVER = 23
_PMTUDISC_DO = 2


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping_df(namespace: str, address: str, payload: int, *, count: int = 3) -> bool:
    """``count`` echoes carrying ``payload`` bytes that may not be fragmented; all answered?"""
    ipv6 = ":" in address
    with inside(namespace):
        if ipv6:
            target = socket.getaddrinfo(address, 0, socket.AF_INET6)[0][4]
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _PMTUDISC_DO)
        else:
            target = (address, 0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _PMTUDISC_DO)
    request, reply = (128, 129) if ipv6 else (8, 0)
    identifier = secrets.randbits(16)
    body = secrets.token_bytes(payload)
    answered = 0
    with sock:
        sock.settimeout(3)
        for sequence in range(1, count + 1):
            header = struct.pack("!BBHHH", request, 0, 0, identifier, sequence)
            if not ipv6:
                header = header[:2] + struct.pack("!H", _checksum(header + body)) + header[4:]
            sock.sendto(header + body, target)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    break
                icmp = data if ipv6 else data[(data[0] & 0x0F) * 4 :]
                if icmp[0] == reply and struct.unpack("!HH", icmp[4:8]) == (identifier, sequence):
                    answered += icmp[8:] == body
                    break
    return answered == count


def udp_once(sender_ns: str, receiver_ns: str, receiver_ip: str, size: int) -> bytes:
    """One UDP datagram of ``size`` bytes with DF set; what arrived."""
    with inside(receiver_ns):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((receiver_ip, 6000))
        receiver.settimeout(5)
    with inside(sender_ns):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _PMTUDISC_DO)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with receiver, sender:
        for _ in range(3):  # the first may wait for ARP
            sender.sendto(payload, (receiver_ip, 6000))
            try:
                data, _ = receiver.recvfrom(65536)
            except TimeoutError:
                continue
            return data
    return b""


def fragment_counts(namespace: str) -> dict[str, float]:
    with inside(namespace), urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=5) as got:
        text = got.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("lanparty_fragments_total{"):
            name, value = line.rsplit(" ", 1)
            counts[name.split('"')[1]] = float(value)
    return counts


def link_local(namespace: str, interface: str) -> str:
    """The interface's link-local address, once duplicate address detection is done."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        shown = run("ip", "-n", namespace, "-j", "-6", "addr", "show", "dev", interface)
        for info in json.loads(shown)[0]["addr_info"]:
            if info["scope"] == "link" and "tentative" not in info:
                return str(info["local"])
        time.sleep(0.2)
    raise AssertionError(f"{interface} has no link-local address")


def test_full_size_frames_cross_both_ways(tmp_path: Path) -> None:
    with running_bridge(tmp_path, relay_args=("--metrics", METRICS)) as bridge:
        namespace, lanhost = bridge.topo.client, bridge.topo.lanhost
        client = ClientProcess(bridge, tmp_path)
        try:
            tap = client.wait_for_tap()
            assert tap["mtu"] == 1500
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            assert ping_df(namespace, LAN_HOST_IP, 1472)
            assert ping_df(lanhost, CLIENT_IP, 1472)
            assert ping_df(namespace, LAN_HOST_IP, 1400)
            sent = bytes(range(256)) * 5 + bytes(1472 - 1280)
            assert udp_once(namespace, lanhost, LAN_HOST_IP, 1472) == sent
            assert udp_once(lanhost, namespace, CLIENT_IP, 1472) == sent
            # a 1500-byte IPv6 packet each way (1452 bytes of ICMPv6 payload)
            tap_v6 = f"{link_local(namespace, TAP)}%eth0"
            lan_v6 = f"{link_local(lanhost, 'eth0')}%{TAP}"
            assert ping_df(namespace, lan_v6, 1452)
            assert ping_df(lanhost, tap_v6, 1452)
            counts = fragment_counts(bridge.topo.relay)
            assert counts.get("reassembled", 0) > 0  # they did travel in fragments
            assert counts.get("fragmented", 0) > 0
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
        assert link(namespace, TAP) is None


def test_bulk_tcp_is_one_segment_per_datagram(tmp_path: Path) -> None:
    with running_bridge(tmp_path, relay_args=("--metrics", METRICS)) as bridge:
        namespace, lanhost = bridge.topo.client, bridge.topo.lanhost
        client = ClientProcess(bridge, tmp_path)
        try:
            client.wait_for_tap()
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            before = fragment_counts(bridge.topo.relay)
            size = 50 * 2**20
            upload = tcp_transfer(namespace, lanhost, LAN_HOST_IP, size)
            download = tcp_transfer(lanhost, namespace, CLIENT_IP, size, port=5002)
            assert upload.intact
            assert download.intact
            after = fragment_counts(bridge.topo.relay)
            for kind in ("received", "sent"):
                assert after.get(kind, 0) == before.get(kind, 0), (kind, before, after)
            assert after.get("mss_clamped", 0) >= 2  # the SYN each way, at least
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
