"""The bridge's world in network namespaces, made by the test and always removed.

    relay ns    198.18.1.1 ── 198.18.1.2  gateway ns ── lan0 ─┐
                198.18.2.1 ── 198.18.2.2  client ns          │
                                                  lan ns: br0 (the switch)
                                          lanhost ns: eth0 ─┘  198.19.0.10/16

Names carry a random suffix so parallel or leftover runs never collide.
Only 198.18.0.0/15 and 198.19.0.0/16 are used, and nothing routes out.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import attrs

RELAY_FOR_GATEWAY = "198.18.1.1"
GATEWAY_UPLINK = "198.18.1.2"
RELAY_FOR_CLIENT = "198.18.2.1"
CLIENT_UPLINK = "198.18.2.2"
LAN_HOST_IP = "198.19.0.10"
LAN_PREFIX = 16
RELAY_PORT = 4433


def run(*command: str, check: bool = True) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


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
