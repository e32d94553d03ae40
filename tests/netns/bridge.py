"""The relay and gateway as real processes on a topology (tests/netns/topology.py).

with running_bridge(tmp_path, "--stats-interval-s", "0.5") as bridge:
    bridge.pin            # the relay's pin, for endpoints
    bridge.topo.client    # the namespace an endpoint runs in
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netns.topology import RELAY_FOR_GATEWAY, RELAY_PORT, Topology, topology


class Bridge:
    """The relay and gateway processes running on a topology."""

    def __init__(self, topo: Topology, state_dir: Path, gateway_args: list[str]) -> None:
        self.topo = topo
        self.state_dir = state_dir
        self.gateway_args = gateway_args
        self.gateway_log = state_dir / "gateway.log"
        self.relay: subprocess.Popen[str] | None = None
        self.gateway: subprocess.Popen[str] | None = None
        self.pin = ""

    def start_relay(self) -> None:
        self.relay = self.topo.popen(
            self.topo.relay,
            [sys.executable, "-m", "lanparty.relay", "--listen", f"0.0.0.0:{RELAY_PORT}",
             "--state-dir", str(self.state_dir / "relay"), "--log-level", "warning"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.relay.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("endpoints use:"):
            line = self.relay.stdout.readline()
            assert line, f"the relay did not start: {lines}"
            lines.append(line.strip())
        pin = re.search(r"^pin: (\S+)$", "\n".join(lines), re.MULTILINE)
        assert pin
        self.pin = pin.group(1)

    def stop_relay(self) -> None:
        assert self.relay is not None
        self.relay.send_signal(signal.SIGTERM)
        assert self.relay.wait(timeout=15) == 0

    def start_gateway(self) -> None:
        log = self.gateway_log.open("a")
        self.gateway = self.topo.popen(
            self.topo.gateway,
            [sys.executable, "-m", "lanparty.gateway", "lan0",
             "--relay", f"{RELAY_FOR_GATEWAY}:{RELAY_PORT}", "--relay-pin", self.pin,
             "--room", "party", "--log-level", "info", *self.gateway_args],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    def gateway_stats(self) -> list[dict[str, object]]:
        stats = []
        for line in self.gateway_log.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "stats":
                    stats.append(record)
        return stats

    def stop(self) -> None:
        for process in (self.gateway, self.relay):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def running_bridge(tmp_path: Path, *gateway_args: str, ageing_s: float = 300.0) -> Iterator[Bridge]:
    with topology(bridge_ageing_s=ageing_s) as topo:
        bridge = Bridge(topo, tmp_path, list(gateway_args))
        try:
            bridge.start_relay()
            bridge.start_gateway()
            yield bridge
        finally:
            bridge.stop()
