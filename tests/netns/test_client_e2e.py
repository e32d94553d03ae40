"""The client program end to end: TAP <-> relay <-> gateway <-> LAN switch <-> LAN host.

The relay and the gateway run as in test_gateway_e2e (tests/netns/bridge.py);
``python -m lanparty.client --tap lp0`` runs in the client namespace. The
client must leave that namespace's routes and links as it found them, after
a clean stop and after a SIGKILL followed by a clean run (the journal).
Root only; CI runs as root.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.netns.bridge import Bridge, running_bridge
from tests.netns.netns import inside
from tests.netns.topology import LAN_HOST_IP, RELAY_FOR_CLIENT, RELAY_PORT, run

pytestmark = pytest.mark.netns

TAP = "lp0"
ROOM_MTU = 1389
CLIENT_IP = "198.19.0.100"


def snapshot(namespace: str, timeout_s: float = 15) -> dict[str, Any]:
    """The namespace's routes (every table, both families) and links (name, MTU, flags).

    Taken once no IPv6 address is tentative: duplicate address detection
    adds its local routes a moment after a link comes up.
    """
    deadline = time.monotonic() + timeout_s
    while run("ip", "-n", namespace, "-6", "addr", "show", "tentative").strip():
        assert time.monotonic() < deadline, "IPv6 addresses stayed tentative"
        time.sleep(0.1)
    links = json.loads(run("ip", "-n", namespace, "-j", "link", "show"))
    return {
        "ipv4": json.loads(run("ip", "-n", namespace, "-j", "-4", "route", "show", "table", "all")),
        "ipv6": json.loads(run("ip", "-n", namespace, "-j", "-6", "route", "show", "table", "all")),
        "links": sorted((link["ifname"], link["mtu"], tuple(link["flags"])) for link in links),
    }


def tap_link(namespace: str) -> dict[str, Any] | None:
    done = subprocess.run(
        ["ip", "-n", namespace, "-j", "link", "show", TAP],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    link: dict[str, Any] = json.loads(done.stdout)[0]
    return link


def relay_route_present(namespace: str) -> bool:
    routes = json.loads(run("ip", "-n", namespace, "-j", "-4", "route", "show", "table", "main"))
    return any(route["dst"] == RELAY_FOR_CLIENT for route in routes)


class ClientProcess:
    def __init__(self, bridge: Bridge, state_dir: Path, *extra_args: str) -> None:
        self.log_path = state_dir / "client.log"
        self.process = bridge.topo.popen(
            bridge.topo.client,
            [sys.executable, "-m", "lanparty.client", "--tap", TAP,
             "--relay", f"{RELAY_FOR_CLIENT}:{RELAY_PORT}", "--relay-pin", bridge.pin,
             "--room", "party", "--identity", str(state_dir / "identity.json"),
             "--journal", str(state_dir / "journal.json"), "--watchdog-interval-s", "0.5",
             "--status-interval-s", "1", "--log-level", "info", *extra_args],
            stdout=subprocess.DEVNULL, stderr=self.log_path.open("a"),
        )  # fmt: skip
        self.namespace = bridge.topo.client

    def wait_for_tap(self, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            link = tap_link(self.namespace)
            if link is not None and "UP" in link["flags"]:
                return link
            time.sleep(0.1)
        raise AssertionError(f"{TAP} never came up: {self.log_path.read_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill_if_running(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(namespace: str, address: str, count: int, timeout_s: float = 2) -> bool:
    """``count`` ICMP echoes from ``namespace``, all answered (a raw socket: no ping binary)."""
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    identifier = secrets.randbits(16)
    try:
        for sequence in range(1, count + 1):
            header = struct.pack("!BBHHH", 8, 0, 0, identifier, sequence) + b"lanparty"
            checksum = _checksum(header)
            sock.sendto(header[:2] + struct.pack("!H", checksum) + header[4:], (address, 0))
            deadline = time.monotonic() + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                try:
                    packet, (source, _) = sock.recvfrom(2048)
                except TimeoutError:
                    return False
                icmp = packet[(packet[0] & 0x0F) * 4 :]
                kind, _, _, got_id, got_sequence = struct.unpack("!BBHHH", icmp[:8])
                if (source, kind, got_id, got_sequence) == (address, 0, identifier, sequence):
                    break
    finally:
        sock.close()
    return True


def wait_for_ping(namespace: str, address: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ping(namespace, address, 1):
            return
    raise AssertionError(f"no answer from {address} within {timeout_s} s")


def test_client_carries_the_tap_and_restores_the_host(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        client = ClientProcess(bridge, tmp_path)
        try:
            link = client.wait_for_tap()
            assert link["mtu"] == ROOM_MTU
            assert relay_route_present(namespace)
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            assert ping(namespace, LAN_HOST_IP, 3)
            assert ping(bridge.topo.lanhost, CLIENT_IP, 3)
            # the uplink still reaches the relay directly
            assert ping(namespace, RELAY_FOR_CLIENT, 1)
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
        assert tap_link(namespace) is None
        assert snapshot(namespace) == before


def test_a_killed_client_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        first = ClientProcess(bridge, tmp_path)
        try:
            first.wait_for_tap()
            assert relay_route_present(namespace)
            first.stop(signal.SIGKILL)
        finally:
            first.kill_if_running()
        assert relay_route_present(namespace)  # left behind, in the journal
        # The relay keeps the killed client's MAC until its idle timeout (30 s):
        # the second run uses another one, so that it is admitted at once.
        second = ClientProcess(bridge, tmp_path, "--virtual-mac", "02:00:00:00:00:2b")
        try:
            second.wait_for_tap()
            assert relay_route_present(namespace)
            assert second.stop() == 0, second.log_path.read_text()
        finally:
            second.kill_if_running()
        assert tap_link(namespace) is None
        assert snapshot(namespace) == before


def test_a_permanent_refusal_exits_3_and_leaves_the_host_alone(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        client = ClientProcess(bridge, tmp_path, "--room", "no spaces allowed")
        try:
            assert client.process.wait(timeout=30) == 3, client.log_path.read_text()
        finally:
            client.kill_if_running()
        assert "invalid_room" in client.log_path.read_text()
        assert snapshot(namespace) == before


def test_the_tap_and_the_guards_stay_while_the_relay_restarts(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        client = ClientProcess(bridge, tmp_path)
        try:
            tap_index = client.wait_for_tap()["ifindex"]
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            bridge.stop_relay()
            bridge.start_relay()  # same state directory: same pin
            wait_for_ping(namespace, LAN_HOST_IP, timeout_s=60)
            assert client.wait_for_tap()["ifindex"] == tap_index  # the same TAP, never reopened
            assert relay_route_present(namespace)
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
