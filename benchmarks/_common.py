"""Helpers shared by the benchmarks: child processes, CPU time, percentiles."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lanparty.credentials import ClientCredentials, GatewayCredentials
from lanparty.endpoint.session import RelayEndpoint
from lanparty.transport import SpkiPin
from lanparty.transport import client as client_module
from lanparty.transport.udp import UdpSocket

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


def launch_relay(
    state_dir: str, extra: Sequence[str] = (), *, cpu: int = 0
) -> tuple[subprocess.Popen[str], RelayEndpoint]:
    """``python -m lanparty.relay`` on 127.0.0.1 (pinned to ``cpu``), with ``extra`` options.

    ``benchmarks.relay.start_relay`` lifts the per-client limits on top of it.
    """
    prefix = ["taskset", "-c", str(cpu)] if _has_taskset() else []
    command = [
        *prefix, sys.executable, "-m", "lanparty.relay", "--listen", "127.0.0.1:0",
        "--state-dir", state_dir, "--log-level", "warning", *extra,
    ]  # fmt: skip
    relay = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert relay.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("gateway:"):
        line = relay.stdout.readline()
        if not line:
            raise RuntimeError(f"the relay did not start: {lines}")
        lines.append(line.strip())
    text = "\n".join(lines)
    port = re.search(r"listening on [\d.]+:(\d+)", text)
    pin = re.search(r"^pin: (\S+)$", text, re.MULTILINE)
    if port is None or pin is None:
        raise RuntimeError(f"unexpected relay banner: {text}")
    return relay, RelayEndpoint("127.0.0.1", int(port.group(1)), SpkiPin.parse(pin.group(1)))


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds (/proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


# The local address the next endpoint socket of this task binds (None: any).
_SOURCE_HOST: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bench_source_host", default=None
)


class _SourceBoundUdpSocket(UdpSocket):
    @classmethod
    def bind(cls, host: str, port: int, *, batch_io: bool = True) -> UdpSocket:
        return UdpSocket.bind(_SOURCE_HOST.get() or host, port, batch_io=batch_io)


@contextlib.contextmanager
def source_host(host: str) -> Iterator[None]:
    """Endpoint sessions opened in this context send from ``host`` (a 127.0.0.0/8 address).

    The relay counts connections, pending hellos and rooms per source address;
    many players or parties on loopback look like one address unless each
    binds its own. Linux accepts any 127.0.0.0/8 address without configuring it.
    """
    client_module.UdpSocket = _SourceBoundUdpSocket  # type: ignore[attr-defined]
    token = _SOURCE_HOST.set(host)
    try:
        yield
    finally:
        _SOURCE_HOST.reset(token)
