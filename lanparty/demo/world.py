"""The bridge's world in network namespaces, made here and always removed.

    relay ns    198.18.1.1 ── 198.18.1.2  gateway ns ── lan0 ─┐
                198.18.2.1 ── 198.18.2.2  client ns          │
                                                  lan ns: br0 (the switch)
                                          lanhost ns: eth0 ─┘  198.19.0.10/16

The client namespace's default route (the player's "internet") goes out
of its uplink. Names carry a random suffix so parallel or leftover runs
never collide. Only 198.18.0.0/15 and 198.19.0.0/16 are used, and nothing
routes out of the namespaces.

    with topology() as topo, running_bridge(topo, state_dir) as bridge:
        client = ClientProcess(bridge, state_dir)   # python -m lanparty.client
        client.wait_for_tap()
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from lanparty.demo.netns import run

RELAY_FOR_GATEWAY = "198.18.1.1"
GATEWAY_UPLINK = "198.18.1.2"
RELAY_FOR_CLIENT = "198.18.2.1"
CLIENT_UPLINK = "198.18.2.2"
LAN_HOST_IP = "198.19.0.10"
LAN_PREFIX = 16
LAN_ROUTER = "198.19.0.1"
"""What the LAN's DHCP server announces as the default gateway (nobody has it)."""
DHCP_POOL = ("198.19.0.100", "198.19.0.199")
CLIENT_DEFAULT_METRIC = 100
"""The player's own default route (NetworkManager gives wired Ethernet 100)."""
INTERNET_PROBE = "198.18.9.9"
"""An address only the player's default route leads to (never answered)."""
RELAY_PORT = 4433
ROOM = "party"
TAP = "lp0"


@attrs.frozen
class Topology:
    relay: str
    gateway: str
    client: str
    lan: str
    lanhost: str
    suffix: str

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.relay, self.gateway, self.client, self.lan, self.lanhost)

    def exec(self, namespace: str, *command: str, check: bool = True) -> str:
        return run("ip", "netns", "exec", namespace, *command, check=check)

    def popen(
        self, namespace: str, command: Sequence[str], **kwargs: object
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            ["ip", "netns", "exec", namespace, *command], text=True, **kwargs
        )

    def bridge_fdb(self) -> dict[str, str]:
        """The LAN switch's learned MACs: MAC -> port name (dynamic entries only)."""
        table: dict[str, str] = {}
        for line in self.exec(self.lan, "bridge", "fdb", "show", "br", "br0").splitlines():
            fields = line.split()
            if "permanent" in fields or "self" in fields or len(fields) < 3:
                continue
            table[fields[0].lower()] = fields[2]
        return table


def _veth(a_ns: str, a_name: str, b_ns: str, b_name: str) -> None:
    temp_a, temp_b = f"lpa{secrets.token_hex(3)}", f"lpb{secrets.token_hex(3)}"
    run("ip", "link", "add", temp_a, "type", "veth", "peer", "name", temp_b)
    run("ip", "link", "set", temp_a, "netns", a_ns, "name", a_name)
    run("ip", "link", "set", temp_b, "netns", b_ns, "name", b_name)


@contextmanager
def topology(*, bridge_ageing_s: float = 300.0) -> Iterator[Topology]:
    """The five namespaces, wired and addressed; deleted (with their processes) on exit."""
    suffix = secrets.token_hex(3)
    topo = Topology(
        relay=f"lp-relay-{suffix}",
        gateway=f"lp-gw-{suffix}",
        client=f"lp-client-{suffix}",
        lan=f"lp-lan-{suffix}",
        lanhost=f"lp-lanhost-{suffix}",
        suffix=suffix,
    )
    created: list[str] = []
    try:
        for namespace in topo.namespaces:
            run("ip", "netns", "add", namespace)
            created.append(namespace)
            topo.exec(namespace, "ip", "link", "set", "lo", "up")
        _veth(topo.relay, "to-gw", topo.gateway, "uplink")
        _veth(topo.relay, "to-client", topo.client, "uplink")
        _veth(topo.gateway, "lan0", topo.lan, "port-gw")
        _veth(topo.lanhost, "eth0", topo.lan, "port-host")
        for namespace, device, address in (
            (topo.relay, "to-gw", f"{RELAY_FOR_GATEWAY}/24"),
            (topo.gateway, "uplink", f"{GATEWAY_UPLINK}/24"),
            (topo.relay, "to-client", f"{RELAY_FOR_CLIENT}/24"),
            (topo.client, "uplink", f"{CLIENT_UPLINK}/24"),
            (topo.lanhost, "eth0", f"{LAN_HOST_IP}/{LAN_PREFIX}"),
        ):
            topo.exec(namespace, "ip", "addr", "add", address, "dev", device)
            topo.exec(namespace, "ip", "link", "set", device, "up")
        topo.exec(topo.client, "ip", "route", "add", "default", "via", RELAY_FOR_CLIENT,
                  "metric", str(CLIENT_DEFAULT_METRIC))  # fmt: skip
        ageing_cs = str(int(bridge_ageing_s * 100))
        topo.exec(topo.lan, "ip", "link", "add", "br0", "type", "bridge", "ageing_time", ageing_cs)
        for port in ("port-gw", "port-host"):
            topo.exec(topo.lan, "ip", "link", "set", port, "master", "br0")
            topo.exec(topo.lan, "ip", "link", "set", port, "up")
        topo.exec(topo.lan, "ip", "link", "set", "br0", "up")
        topo.exec(topo.gateway, "ip", "link", "set", "lan0", "up")
        yield topo
    finally:
        for namespace in reversed(created):
            for pid in run("ip", "netns", "pids", namespace, check=False).split():
                run("kill", "-9", pid, check=False)
            run("ip", "netns", "del", namespace, check=False)


def _stop(process: subprocess.Popen[str] | None, timeout_s: float = 15) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit code (None if never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class Bridge:
    """The relay and gateway processes running on a topology."""

    def __init__(
        self,
        topo: Topology,
        state_dir: Path,
        gateway_args: Sequence[str] = (),
        relay_args: Sequence[str] = (),
    ) -> None:
        self.topo = topo
        self.state_dir = state_dir
        self.gateway_args = list(gateway_args)
        self.relay_args = list(relay_args)
        self.gateway_log = state_dir / "gateway.log"
        # What the gateway prints: the room and the players' invite.
        self.gateway_output = state_dir / "gateway.out"
        self.gateway_state_dir = state_dir / "gateway-state"
        self.relay: subprocess.Popen[str] | None = None
        self.gateway: subprocess.Popen[str] | None = None
        self.pin = ""
        self._invite: str | None = None

    def start_relay(self) -> None:
        self.relay = self.topo.popen(
            self.topo.relay,
            [sys.executable, "-m", "lanparty.relay", "--listen", f"0.0.0.0:{RELAY_PORT}",
             "--state-dir", str(self.state_dir / "relay"), "--log-level", "warning",
             *self.relay_args],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.relay.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("gateway:"):
            line = self.relay.stdout.readline()
            if not line:
                raise RuntimeError(f"the relay did not start: {lines}")
            lines.append(line.strip())
        pin = re.search(r"^pin: (\S+)$", "\n".join(lines), re.MULTILINE)
        if pin is None:
            raise RuntimeError(f"the relay printed no pin: {lines}")
        self.pin = pin.group(1)

    def stop_relay(self) -> int | None:
        return _stop(self.relay)

    def start_gateway(self, *extra_args: str, state_dir: Path | None = None) -> None:
        """Start the gateway (its keys in ``state_dir``, default the bridge's own)."""
        log = self.gateway_log.open("a")
        self.gateway_output.unlink(missing_ok=True)
        self._invite = None
        self.gateway = self.topo.popen(
            self.topo.gateway,
            [sys.executable, "-m", "lanparty.gateway", "lan0",
             "--relay", f"{RELAY_FOR_GATEWAY}:{RELAY_PORT}", "--relay-pin", self.pin,
             "--state-dir", str(state_dir or self.gateway_state_dir), "--room-name", ROOM,
             "--log-level", "info", *self.gateway_args, *extra_args],
            stdout=self.gateway_output.open("w"), stderr=log,
        )  # fmt: skip

    @property
    def invite(self) -> str:
        """The invite the gateway printed (waits up to 20 s for it)."""
        if self._invite is None:
            self._invite = wait_for_invite(self.gateway_output, self.gateway)
        return self._invite

    def gateway_stats(self) -> list[dict[str, object]]:
        stats = []
        for line in self.gateway_log.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "stats":
                    stats.append(record)
        return stats

    def stop(self) -> None:
        _stop(self.gateway)
        _stop(self.relay)


@contextmanager
def running_bridge(
    state_dir: Path, *gateway_args: str, ageing_s: float = 300.0, relay_args: Sequence[str] = ()
) -> Iterator[Bridge]:
    """A topology with the relay and the gateway running in it; all gone on exit."""
    with topology(bridge_ageing_s=ageing_s) as topo:
        bridge = Bridge(topo, state_dir, gateway_args, relay_args)
        try:
            bridge.start_relay()
            bridge.start_gateway()
            yield bridge
        finally:
            bridge.stop()


def wait_for_invite(
    output: Path, process: subprocess.Popen[str] | None, timeout_s: float = 20
) -> str:
    """The ``invite: lanparty://...`` line a gateway printed to ``output``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = output.read_text() if output.exists() else ""
        found = re.search(r"^invite: (lanparty://\S+)$", text, re.MULTILINE)
        if found:
            return found.group(1)
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the gateway exited (code {process.returncode}): {text}")
        time.sleep(0.05)
    raise RuntimeError(f"the gateway printed no invite: {output}")


def link(namespace: str, name: str) -> dict[str, Any] | None:
    """``ip -j link show name`` in ``namespace``; None when there is no such link."""
    done = subprocess.run(
        ["ip", "-n", namespace, "-j", "link", "show", name],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    found: dict[str, Any] = json.loads(done.stdout)[0]
    return found


class ClientProcess:
    """``python -m lanparty.client --tap lp0`` in the client namespace."""

    def __init__(
        self, bridge: Bridge, state_dir: Path, *extra_args: str, invite: str | None = None
    ) -> None:
        self.log_path = state_dir / "client.log"
        self.invite = invite or bridge.invite
        self.process = bridge.topo.popen(
            bridge.topo.client,
            [sys.executable, "-m", "lanparty.client", "--tap", TAP,
             "--invite", self.invite, "--relay", f"{RELAY_FOR_CLIENT}:{RELAY_PORT}",
             "--identity", str(state_dir / "identity.json"),
             "--journal", str(state_dir / "journal.json"), "--watchdog-interval-s", "0.5",
             "--status-interval-s", "1", "--log-level", "info", *extra_args],
            stdout=subprocess.DEVNULL, stderr=self.log_path.open("a"),
        )  # fmt: skip
        self.namespace = bridge.topo.client

    def wait_for_tap(self, timeout_s: float = 30) -> dict[str, Any]:
        """The TAP's ``ip -j link`` record once it is up and the client's guards are in place.

        ``RuntimeError`` with the client's log if that does not happen.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the client exited: {self.log_path.read_text()}")
            found = link(self.namespace, TAP)
            if found is not None and "UP" in found["flags"] and self.events("client_started"):
                return found
            time.sleep(0.1)
        raise RuntimeError(f"{TAP} never came up: {self.log_path.read_text()}")

    def wait_for_address(self, timeout_s: float = 45) -> ipaddress.IPv4Interface:
        """The IPv4 address the client put on its TAP (by DHCP), once it is there."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the client exited: {self.log_path.read_text()}")
            found = tap_ipv4(self.namespace)
            if found is not None:
                return found
            time.sleep(0.1)
        raise RuntimeError(f"{TAP} got no IPv4 address: {self.log_path.read_text()}")

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

    def events(self, name: str) -> list[dict[str, Any]]:
        """The client's JSON log records with event ``name``."""
        found = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found


def tap_ipv4(namespace: str) -> ipaddress.IPv4Interface | None:
    """The (first) IPv4 address of the TAP in ``namespace``, None if it has none (or no TAP)."""
    done = subprocess.run(
        ["ip", "-n", namespace, "-j", "-4", "addr", "show", "dev", TAP],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        return None
    for item in json.loads(done.stdout):
        for info in item.get("addr_info", []):
            return ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
    return None


HOSTILE_DHCP_OPTIONS = (
    f"--dhcp-option=option:classless-static-route,0.0.0.0/1,{LAN_ROUTER},128.0.0.0/1,{LAN_ROUTER}",
    f"--dhcp-option=option:dns-server,{LAN_HOST_IP}",
)
"""What a party LAN that wants the player's traffic offers: option 121 routes taking
both halves of the internet, and itself as DNS server."""


@contextmanager
def dhcp_server(
    topo: Topology, state_dir: Path, *extra_options: str
) -> Iterator[subprocess.Popen[str]]:
    """dnsmasq on the LAN host, a DHCP server only (no DNS), handing out ``DHCP_POOL``.

    ``extra_options`` go on its command line (``HOSTILE_DHCP_OPTIONS``).
    """
    log = (state_dir / "dnsmasq.log").open("a")
    process = topo.popen(
        topo.lanhost,
        ["dnsmasq", "--keep-in-foreground", "--no-daemon", "--conf-file=/dev/null",
         "--port=0", "--interface=eth0", "--bind-interfaces", "--no-hosts", "--no-resolv",
         f"--dhcp-range={DHCP_POOL[0]},{DHCP_POOL[1]},255.255.0.0,10m",
         f"--dhcp-option=option:router,{LAN_ROUTER}",
         f"--dhcp-leasefile={state_dir / 'dnsmasq.leases'}", "--pid-file", "--log-dhcp",
         "--user=root", *extra_options],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        _stop(process, timeout_s=5)
