"""End-to-end benchmark: the player through the bridge vs a PC plugged into the LAN.

Not a test. Builds the namespaces of ``lanparty.demo.world`` plus one more,
``direct``, plugged straight into the LAN switch (the path with no tunnel),
starts relay, gateway and client, and measures in one run, for both paths
to the LAN host:

- ping RTT p50 / p99 at 100 pings/s (iputils ``ping -i 0.01``),
- TCP throughput each way (iperf3, ``-R`` for LAN -> player),
- UDP packets/s delivered for 200-byte payloads at an unlimited rate.

Root only; needs ``ping`` and ``iperf3`` (Debian: iputils-ping iperf3).
Every phase is bounded in time; the namespaces are removed at the end.

    python -m benchmarks.e2e [--pings 1000] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._common import machine_summary, percentile, process_cpu_s
from lanparty.demo.netns import run
from lanparty.demo.probes import wait_for_ping
from lanparty.demo.world import (
    LAN_HOST_IP,
    LAN_PREFIX,
    TAP,
    ClientProcess,
    Topology,
    running_bridge,
)

PLAYER_IP = "198.19.0.50"
DIRECT_IP = "198.19.0.60"
UDP_PAYLOAD = 200


@contextmanager
def direct_host(topo: Topology) -> Iterator[str]:
    """A namespace plugged into the LAN switch by a veth: the path with no tunnel."""
    name = f"lp-direct-{topo.suffix}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "link", "add", f"lpd{topo.suffix}", "type", "veth", "peer", "name",
            f"lpe{topo.suffix}")  # fmt: skip
        run("ip", "link", "set", f"lpd{topo.suffix}", "netns", name, "name", "eth0")
        run("ip", "link", "set", f"lpe{topo.suffix}", "netns", topo.lan, "name", "port-direct")
        topo.exec(topo.lan, "ip", "link", "set", "port-direct", "master", "br0")
        topo.exec(topo.lan, "ip", "link", "set", "port-direct", "up")
        topo.exec(name, "ip", "link", "set", "lo", "up")
        topo.exec(name, "ip", "addr", "add", f"{DIRECT_IP}/{LAN_PREFIX}", "dev", "eth0")
        topo.exec(name, "ip", "link", "set", "eth0", "up")
        yield name
    finally:
        for pid in run("ip", "netns", "pids", name, check=False).split():
            run("kill", "-9", pid, check=False)
        run("ip", "netns", "del", name, check=False)


def ping_stats(topo: Topology, namespace: str, count: int) -> dict[str, float]:
    timeout_s = count * 0.01 + 30
    output = topo.exec(namespace, "timeout", str(int(timeout_s)), "ping", "-n", "-c", str(count),
                       "-i", "0.01", "-W", "1", LAN_HOST_IP, check=False)  # fmt: skip
    rtts = [float(value) for value in re.findall(r"time=([\d.]+) ms", output)]
    return {
        "sent": count,
        "answered": len(rtts),
        "p50_ms": percentile(rtts, 0.5),
        "p99_ms": percentile(rtts, 0.99),
        "max_ms": max(rtts, default=float("nan")),
    }


def iperf(topo: Topology, namespace: str, seconds: int, *args: str) -> dict[str, Any]:
    output = topo.exec(namespace, "timeout", str(seconds + 30), "iperf3", "-c", LAN_HOST_IP,
                       "-t", str(seconds), "-J", *args, check=False)  # fmt: skip
    try:
        result: dict[str, Any] = json.loads(output)
    except json.JSONDecodeError:
        return {"error": output[-300:]}
    if "end" not in result:
        return {"error": result.get("error", "no result")}
    return result


def tcp_mbps(result: dict[str, Any]) -> float:
    if "error" in result:
        return float("nan")
    return float(result["end"]["sum_received"]["bits_per_second"]) / 1e6


def udp_pps(result: dict[str, Any]) -> tuple[float, float]:
    """(datagrams delivered per second, % lost)."""
    if "error" in result:
        return float("nan"), float("nan")
    received = result["end"].get("sum_received", result["end"]["sum"])
    delivered = received["bytes"] / UDP_PAYLOAD / (received["seconds"] or 1)
    return delivered, float(received["lost_percent"])


def measure(topo: Topology, namespace: str, pings: int, seconds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"ping": ping_stats(topo, namespace, pings)}
    figures["tcp_up_mbps"] = tcp_mbps(iperf(topo, namespace, seconds))
    figures["tcp_down_mbps"] = tcp_mbps(iperf(topo, namespace, seconds, "-R"))
    pps, lost = udp_pps(iperf(topo, namespace, seconds, "-u", "-l", str(UDP_PAYLOAD), "-b", "0"))
    figures["udp_pps"], figures["udp_lost_percent"] = pps, lost
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--client-bps", metavar="RATE",
        help="the relay's per-client limit (its default, 100M, caps player -> LAN)",
    )  # fmt: skip
    args = parser.parse_args()
    for tool in ("ping", "iperf3"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is missing (Debian: apt-get install iputils-ping iperf3)", file=sys.stderr
            )
            return 2
    # Lifting the bits/s limit lifts the datagrams/s one too: it would cap bulk TCP instead.
    relay_args = (
        ["--client-bps", args.client_bps, "--client-pps", "1e7", "--client-pps-burst", "1e7"]
        if args.client_bps
        else []
    )
    with tempfile.TemporaryDirectory(prefix="lanparty-e2e-") as state, running_bridge(
        Path(state), relay_args=relay_args
    ) as bridge, direct_host(bridge.topo) as direct:  # fmt: skip
        topo = bridge.topo
        server = topo.popen(topo.lanhost, ["iperf3", "-s", "-B", LAN_HOST_IP],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        client = ClientProcess(bridge, Path(state), "--status-interval-s", "3600")
        try:
            client.wait_for_tap()
            topo.exec(topo.client, "ip", "addr", "add", f"{PLAYER_IP}/{LAN_PREFIX}", "dev", TAP)
            wait_for_ping(topo.client, LAN_HOST_IP)
            time.sleep(1)
            results = {"direct": measure(topo, direct, args.pings, args.seconds)}
            assert bridge.gateway is not None
            assert bridge.relay is not None
            pids = {"client": client.process.pid, "gateway": bridge.gateway.pid,
                    "relay": bridge.relay.pid}  # fmt: skip
            cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
            results["lanparty"] = measure(topo, topo.client, args.pings, args.seconds)
            results["lanparty"]["cpu_s"] = {
                name: round(process_cpu_s(pid) - cpu_before[name], 2) for name, pid in pids.items()
            }
        finally:
            client.kill_if_running()
            server.kill()
            server.wait()
    if args.json:
        print(json.dumps({"machine": machine_summary(), **results}, indent=2))
        return 0
    print(machine_summary())
    print(f"{args.pings} pings at 100/s; iperf3 {args.seconds} s per figure; "
          f"UDP {UDP_PAYLOAD} B payloads, unlimited rate\n")  # fmt: skip
    print("| path | ping p50 / p99 / max (ms) | answered | TCP player->LAN / LAN->player "
          "(Mbit/s) | UDP 200 B delivered (pkt/s, lost) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, figures in results.items():
        ping = figures["ping"]
        print(f"| {name} | {ping['p50_ms']:.3f} / {ping['p99_ms']:.3f} / {ping['max_ms']:.3f} "
              f"| {ping['answered']}/{ping['sent']} | {figures['tcp_up_mbps']:.0f} / "
              f"{figures['tcp_down_mbps']:.0f} | {figures['udp_pps']:.0f} "
              f"({figures['udp_lost_percent']:.1f} %) |")  # fmt: skip
    direct, tunnel = results["direct"], results["lanparty"]
    ping_ratio = tunnel["ping"]["p50_ms"] / direct["ping"]["p50_ms"]
    print(f"\nlanparty / direct: ping p50 x{ping_ratio:.1f}, "
          f"TCP up {tunnel['tcp_up_mbps'] / direct['tcp_up_mbps']:.2f}, "
          f"TCP down {tunnel['tcp_down_mbps'] / direct['tcp_down_mbps']:.2f}, "
          f"UDP {tunnel['udp_pps'] / direct['udp_pps']:.2f}")  # fmt: skip
    print(f"CPU seconds during the lanparty measurements: {tunnel['cpu_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
