"""Helpers shared by the benchmarks: child processes, CPU time, percentiles."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lanparty.credentials import ClientCredentials, GatewayCredentials

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pin_to_cpu(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_child(args: Sequence[str], cpu: int | None) -> tuple[subprocess.Popen[str], Any]:
    """Start a Python child (optionally pinned) that prints one JSON line, and read it."""
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None and _has_taskset() else []
    child = subprocess.Popen(
        [*prefix, sys.executable, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.kill()
        raise RuntimeError(f"child {args} printed nothing")
    return child, json.loads(line)


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True, check=False).returncode == 0


def stop_child(child: subprocess.Popen[str]) -> None:
    child.terminate()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def machine_summary() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )


def marked_frames(destination: bytes, source: bytes, size: int, count: int) -> list[bytes]:
    """``count`` frames of ``size`` bytes with the test ethertype, numbered."""
    head = destination + source + b"\x88\xb5"
    return [head + n.to_bytes(4, "big") + bytes(size - 18) for n in range(count)]


class Totals:
    """Frames moved and the wall and CPU seconds they took (CPU of ``cpu_clock``)."""

    def __init__(self, cpu_clock: Callable[[], float] = time.process_time) -> None:
        self.frames = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self._cpu_clock = cpu_clock

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), self._cpu_clock()
        yield
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += self._cpu_clock() - cpu

    def per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0

    def cpu_us(self) -> float:
        return self.cpu_s * 1e6 / self.frames if self.frames else float("nan")


def gateway_credentials(room: str = "bench") -> GatewayCredentials:
    """Fixed keys for a benchmark's room (invite-only rooms, PROTOCOL.md 10)."""
    return GatewayCredentials(
        gateway_key=hashlib.sha256(f"bench gateway key {room}".encode()).digest(),
        client_key=hashlib.sha256(f"bench client key {room}".encode()).digest(),
        room_name=room,
    )


def client_credentials(mac: bytes, room: str = "bench") -> ClientCredentials:
    """A benchmark player of ``room``: the room's invite key, an identity of its own."""
    return ClientCredentials(
        room_id=gateway_credentials(room).room_id,
        client_key=gateway_credentials(room).client_key,
        identity_secret=hashlib.sha256(b"bench identity " + mac).digest(),
    )
