"""Flood benchmark: a relay under junk Initials, replayed ClientHellos and a greedy member.

Not a test. Each scenario starts a fresh relay (``python -m lanparty.relay``,
default limits, pinned to CPU 0, ``--retry`` as asked). This process (pinned
to CPU 1) opens a room with its gateway and puts a pair of members in it: A
sends B a 1200-byte frame every millisecond carrying a sequence number and a
timestamp, B echoes it at once; every frame's loss and round trip is known.
After a 5 s baseline the attack runs for --seconds, from a separate process
pinned to CPU 1 at the idle scheduling class (SCHED_IDLE: it takes whatever
CPU 1 has left after the measuring process, so the pair's numbers are the
relay's, not CPU 1's):

- ``junk``: 1200-byte QUIC v1 Initials with random connection IDs and a
  random payload (no crypto on the sender's side), sendmmsg batches of 64 from
  64 sockets (random source ports) on 127.0.0.2, as fast as the core sends;
- ``junk2000``: the same at 2000 datagrams/s (any ``junkN``: N datagrams/s);
- ``replay``: one real client Initial (our own client's first datagram,
  captured on a socket of ours) replayed as fast as the core sends, from the
  same 64 source ports;
- ``replay-spoofed``: the same from 256 source addresses (127.0.2.x), as an
  attacker spoofing its address would; the per-address caps do not see them
  as one source;
- ``greedy``: a member of another room (its own process: a gateway, the
  greedy member and its target) sends 28-byte frames (14 bytes of header and
  14 of payload) to its target as fast as its QUIC connection takes them.

During the attack a new member joins about every 2.5 s (open_session to
``welcome``, then leaves); one joins 5 s after it, and the relay is watched
for 10 s after it. Reported per scenario: relay RSS before / max during /
10 s after (VmRSS), relay CPU % during, the pair's round-trip loss and RTT
p50/p99 before, during and after, join times, whether the relay is alive, and
the relay's own counters (frames dropped by reason, Retries sent, Initials
dropped), scraped from its ``--metrics`` endpoint.

On a shared machine others' work would be measured as the relay's: before
each scenario the benchmark waits (up to 10 minutes) until both CPUs are at
least 90 % idle, and it reports how long the relay was runnable but waiting
for CPU 0 (/proc/PID/schedstat) during the attack.

    python -m benchmarks.flood [--scenarios junk junk2000 replay replay-spoofed greedy]
                               [--retry auto always] [--seconds 10] [--json]

prints each scenario as it ends (stderr) and a Markdown table (* met, ! missed).

Every flood is bounded in time (--seconds) and count (--max-datagrams), and
sends only to the relay on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import (
    REPO,
    client_credentials,
    gateway_credentials,
    launch_relay,
    machine_summary,
    percentile,
    pin_to_cpu,
    process_cpu_s,
    rss_bytes,
    stop_child,
)
from lanparty.endpoint.session import RelayEndpoint, Session, open_session
from lanparty.errors import LanpartyError
from lanparty.obs import configure_logging
from lanparty.proto import parse_mac
from lanparty.transport import SpkiPin, open_connection

SCENARIOS = ("junk", "junk2000", "replay", "replay-spoofed", "greedy")
_SCENARIO = re.compile(r"junk(\d+)?|replay|replay-spoofed|greedy")
DATAGRAM_BYTES = 1200
FRAME_BYTES = 1200
PAIR_RATE_PPS = 1000
BASELINE_S = 5.0
AFTER_S = 10.0
JOIN_EVERY_S = 2.5
JOIN_TIMEOUT_S = 10.0
MAX_DATAGRAMS = 20_000_000
BATCH = 64
POOL_DATAGRAMS = 16_384
SOURCE_PORTS = 64
SPOOFED_SOURCES = 256
ATTACKER_HOST = "127.0.0.2"
GREEDY_FRAME_BYTES = 28
# Before each scenario: wait up to QUIET_WAIT_S for every CPU to be this idle.
QUIET_IDLE_PCT = 90.0
QUIET_WAIT_S = 600.0

MAC_A, MAC_B = parse_mac("02:00:00:00:00:0a"), parse_mac("02:00:00:00:00:0b")
GATEWAY_MAC = parse_mac("00:16:3e:00:00:01")
GREEDY_GATEWAY_MAC = parse_mac("00:16:3e:00:00:02")
GREEDY_MAC, TARGET_MAC = parse_mac("02:00:00:00:01:0a"), parse_mac("02:00:00:00:01:0b")
PAIR_ROOM, GREEDY_ROOM = "pair", "greedy"
_ETHERTYPE = b"\x88\xb5"
_STAMP = struct.Struct("!Qd")

# ------------------------------------------------------------------ datagrams


def junk_initials(count: int) -> list[bytes]:
    """``count`` 1200-byte QUIC v1 Initials: random IDs and payload, no valid protection."""
    # Long header, fixed bit, type Initial, 4-byte packet number; version 1.
    length = DATAGRAM_BYTES - 26  # what follows the 2-byte Length field
    randomness = os.urandom(count * (16 + length))
    datagrams = []
    for n in range(count):
        chunk = randomness[n * (16 + length) : (n + 1) * (16 + length)]
        header = (
            b"\xc3\x00\x00\x00\x01"
            + b"\x08" + chunk[:8]  # DCID
            + b"\x08" + chunk[8:16]  # SCID
            + b"\x00"  # no token
            + (0x4000 | length).to_bytes(2, "big")
        )  # fmt: skip
        datagrams.append(header + chunk[16:])
    return datagrams


async def capture_client_initial() -> bytes:
    """Our client's first datagram towards a 'relay' that is a plain socket of ours."""
    sink = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    pin = SpkiPin.parse("sha256:" + "00" * 32)

    async def connect() -> None:
        with contextlib.suppress(LanpartyError):
            async with open_connection("127.0.0.1", port, pin):
                pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect)
        with trio.fail_after(5):
            data, _ = await sink.recvfrom(65535)
        nursery.cancel_scope.cancel()
    sink.close()
    return data


# ------------------------------------------------ the attacker's process


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


class MmsgSender:
    """sendmmsg batches of prepared datagrams from a pool of connected sockets."""

    def __init__(self, datagrams: Sequence[bytes], sources: Sequence[str], port: int) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._buffers = [ctypes.create_string_buffer(d, len(d)) for d in datagrams]
        batches = max(1, len(datagrams) // BATCH)
        self._iovecs = (_Iovec * (batches * BATCH))()
        self._batches = []
        for b in range(batches):
            messages = (_Mmsghdr * BATCH)()
            for i in range(BATCH):
                index = b * BATCH + i
                buffer = self._buffers[index % len(self._buffers)]
                self._iovecs[index].iov_base = ctypes.cast(buffer, ctypes.c_void_p)
                self._iovecs[index].iov_len = len(buffer)
                messages[i].msg_hdr.msg_iov = ctypes.pointer(self._iovecs[index])
                messages[i].msg_hdr.msg_iovlen = 1
            self._batches.append(messages)
        self.sockets = []
        for n in range(SOURCE_PORTS if len(set(sources)) == 1 else len(sources)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((sources[n % len(sources)], 0))
            sock.connect(("127.0.0.1", port))
            self.sockets.append(sock)
        self._next = 0
        self.errors = 0

    def send(self, count: int) -> int:
        """Send up to ``count`` (at most one batch) datagrams; return how many went."""
        n = self._next
        self._next += 1
        sock = self.sockets[n % len(self.sockets)]
        messages = self._batches[n % len(self._batches)]
        sent = int(self._libc.sendmmsg(sock.fileno(), messages, min(count, BATCH), 0))
        if sent < 0:
            self.errors += 1
            return 0
        return sent


def run_sender(args: argparse.Namespace) -> dict[str, Any]:
    """The attacker's process: send for ``args.seconds`` or ``args.max_datagrams``."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    if args.send == "junk":
        datagrams = junk_initials(POOL_DATAGRAMS)
    else:
        datagrams = [Path(args.packet_file).read_bytes()] * BATCH
    sources = (
        [f"127.0.2.{n + 1}" for n in range(SPOOFED_SOURCES - 1)] + ["127.0.3.1"]
        if args.spoofed
        else [ATTACKER_HOST]
    )
    sender = MmsgSender(datagrams, sources, args.port)
    print(json.dumps({"ready": True}), flush=True)
    sent = 0
    start = time.perf_counter()
    elapsed = 0.0
    while sent < args.max_datagrams and elapsed < args.seconds:
        elapsed = time.perf_counter() - start
        if args.rate > 0:
            due = min(int(elapsed * args.rate), args.max_datagrams) - sent
            if due <= 0:
                time.sleep(0.0005)
                continue
            sent += sender.send(due)
        else:
            sent += sender.send(args.max_datagrams - sent)
    elapsed = time.perf_counter() - start
    return {"sent": sent, "seconds": elapsed, "per_s": sent / elapsed, "errors": sender.errors}


async def run_greedy(args: argparse.Namespace) -> dict[str, Any]:
    """The greedy member's process: a room of its own, 28-byte frames flat out to a target."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    relay = RelayEndpoint("127.0.0.1", args.port, SpkiPin.parse(args.pin))
    received = 0

    def count(frames: list[bytes]) -> None:
        nonlocal received
        received += len(frames)

    async with (
        open_session(relay, credentials=gateway_credentials(GREEDY_ROOM), mac=GREEDY_GATEWAY_MAC),
        open_session(
            relay, credentials=client_credentials(TARGET_MAC, GREEDY_ROOM), mac=TARGET_MAC
        ) as target,
        open_session(
            relay, credentials=client_credentials(GREEDY_MAC, GREEDY_ROOM), mac=GREEDY_MAC
        ) as greedy,
    ):
        target.deliver_frames_to(count)
        print(json.dumps({"ready": True}), flush=True)
        frame = TARGET_MAC + GREEDY_MAC + _ETHERTYPE + bytes(GREEDY_FRAME_BYTES - 14)
        batch = [frame] * BATCH
        sent = 0
        start = time.perf_counter()
        while sent < args.max_datagrams and time.perf_counter() - start < args.seconds:
            await greedy.connection.wait_send_room()
            sent += greedy.send_frames(batch)
            await trio.lowlevel.checkpoint()
        elapsed = time.perf_counter() - start
        await trio.sleep(0.5)
    return {
        "sent": sent,
        "seconds": elapsed,
        "per_s": sent / elapsed,
        "delivered_to_target": received,
        "greedy_tx_frames": greedy.connection.counters.tx_frames,
    }


# ------------------------------------------------------ the measured side


class PairProbe:
    """A sends B a stamped frame every millisecond; B echoes it; each frame's fate is kept."""

    def __init__(self, a: Session, b: Session, count: int) -> None:
        self.a, self.b = a, b
        self.count = count
        self.sent_at: list[float] = []
        self.rtt: dict[int, float] = {}
        self.reached_b = bytearray(count)
        self.padding = bytes(FRAME_BYTES - 14 - _STAMP.size)
        self.stop = False

        def echo(frames: list[bytes]) -> None:
            for frame in frames:
                number = _STAMP.unpack_from(frame, 14)[0]
                if number < count:
                    self.reached_b[number] = 1
            b.send_frames([MAC_A + MAC_B + frame[12:] for frame in frames])

        def collect(frames: list[bytes]) -> None:
            now = time.perf_counter()
            for frame in frames:
                number, stamp = _STAMP.unpack_from(frame, 14)
                self.rtt[number] = now - stamp

        b.deliver_frames_to(echo)
        a.deliver_frames_to(collect)

    async def run(self) -> None:
        start = trio.current_time()
        head = MAC_B + MAC_A + _ETHERTYPE
        for number in range(self.count):
            if self.stop:
                break
            await trio.sleep_until(start + number / PAIR_RATE_PPS)
            self.sent_at.append(time.perf_counter())
            self.a.send_frame(head + _STAMP.pack(number, time.perf_counter()) + self.padding)

    def window(self, start: float, end: float) -> dict[str, Any]:
        """Frames sent between two perf_counter instants: loss, RTT percentiles."""
        numbers = [n for n, at in enumerate(self.sent_at) if start <= at < end]
        rtts = [self.rtt[n] for n in numbers if n in self.rtt]
        lost = len(numbers) - len(rtts)
        lost_to_b = sum(1 for n in numbers if not self.reached_b[n])
        return {
            "frames": len(numbers),
            "loss_pct": 100 * lost / len(numbers) if numbers else float("nan"),
            "loss_a_to_b_pct": 100 * lost_to_b / len(numbers) if numbers else float("nan"),
            "rtt_p50_ms": 1000 * percentile(rtts, 0.50),
            "rtt_p99_ms": 1000 * percentile(rtts, 0.99),
            "rtt_max_ms": 1000 * max(rtts, default=float("nan")),
        }


async def timed_join(relay: RelayEndpoint, number: int) -> float | None:
    """Seconds from open_session to welcome for a new member; None if it failed in time."""
    mac = bytes([0x02, 0x00, 0x00, 0x00, 0x02, number])
    started = time.perf_counter()
    try:
        with trio.fail_after(JOIN_TIMEOUT_S):
            async with open_session(relay, credentials=client_credentials(mac, PAIR_ROOM), mac=mac):
                return time.perf_counter() - started
    except (LanpartyError, trio.TooSlowError):
        return None


@contextlib.asynccontextmanager
async def the_pair(relay: RelayEndpoint) -> AsyncIterator[tuple[Session, Session]]:
    async with (
        open_session(relay, credentials=gateway_credentials(PAIR_ROOM), mac=GATEWAY_MAC),
        open_session(relay, credentials=client_credentials(MAC_A, PAIR_ROOM), mac=MAC_A) as a,
        open_session(relay, credentials=client_credentials(MAC_B, PAIR_ROOM), mac=MAC_B) as b,
    ):
        yield a, b


def runqueue_wait_s(pid: int) -> float:
    """Seconds a process was runnable but waiting for its CPU (/proc/PID/schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_idle_pct(interval_s: float) -> list[float]:
    """Each CPU's idle share over ``interval_s`` (/proc/stat; blocks)."""

    def read() -> list[list[int]]:
        lines = Path("/proc/stat").read_text().splitlines()
        return [
            [int(field) for field in line.split()[1:]]
            for line in lines
            if line.startswith("cpu") and line[3].isdigit()
        ]

    first = read()
    time.sleep(interval_s)
    second = read()
    idle = []
    for a, b in zip(first, second, strict=True):
        total = sum(b) - sum(a)
        idle.append(100 * ((b[3] - a[3]) + (b[4] - a[4])) / total if total else 100.0)
    return idle


async def wait_for_quiet(max_wait_s: float, min_idle_pct: float) -> list[float]:
    """Wait (at most ``max_wait_s``) until every CPU is idle enough for 2 s: others' work
    on a shared machine would be measured as the relay's otherwise. Returns the idle %."""
    deadline = time.monotonic() + max_wait_s
    while True:
        idle = await trio.to_thread.run_sync(cpu_idle_pct, 2.0)
        if min(idle) >= min_idle_pct or time.monotonic() >= deadline:
            return idle
        print(f"waiting for a quiet machine (idle % {idle})", file=sys.stderr, flush=True)
        await trio.sleep(3.0)


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_counters(port: int) -> dict[str, int]:
    """The relay's dropped frames (by reason) and QUIC endpoint events, from its metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    counters = {}
    for line in text.splitlines():
        for family, label in (
            ("lanparty_dropped_frames_total", "reason"),
            ("lanparty_transport_events_total", "kind"),
        ):
            if line.startswith(family + "{"):
                name = line.split(f'{label}="', 1)[1].split('"', 1)[0]
                counters[name] = int(float(line.rsplit(" ", 1)[1]))
    return counters


async def start_attack(
    scenario: str, relay: RelayEndpoint, seconds: float, max_datagrams: int, packet_file: str
) -> subprocess.Popen[str]:
    """Start the attacker's process; return once it is ready to send."""
    common = ["--port", str(relay.port), "--seconds", str(seconds)]
    common += ["--max-datagrams", str(max_datagrams)]
    if scenario == "greedy":
        extra = ["--greedy", "--pin", relay.trust.describe()]
    elif scenario.startswith("junk"):
        extra = ["--send", "junk", "--rate", scenario.removeprefix("junk") or "0"]
    else:
        extra = ["--send", "replay", "--packet-file", packet_file]
        extra += ["--spoofed"] if scenario == "replay-spoofed" else []
    child = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "benchmarks.flood", *common, *extra],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    ready = await trio.to_thread.run_sync(child.stdout.readline)
    if not ready:
        raise RuntimeError(f"the {scenario} attacker did not start")
    return child


async def run_scenario(
    scenario: str, retry: str, seconds: float, max_datagrams: int, packet_file: str
) -> dict[str, Any]:
    metrics_port = free_tcp_port()
    result: dict[str, Any] = {"scenario": scenario, "retry": retry}
    result["idle_before_pct"] = await wait_for_quiet(QUIET_WAIT_S, QUIET_IDLE_PCT)
    with tempfile.TemporaryDirectory() as state:
        relay, endpoint = launch_relay(
            state, ["--retry", retry, "--metrics", f"127.0.0.1:{metrics_port}"]
        )
        try:
            async with the_pair(endpoint) as (a, b), trio.open_nursery() as nursery:
                total_s = 1 + BASELINE_S + seconds + 5 + AFTER_S + 5
                probe = PairProbe(a, b, int(total_s * PAIR_RATE_PPS))
                nursery.start_soon(probe.run)
                await trio.sleep(1.0)
                base_start = time.perf_counter()
                base_cpu = process_cpu_s(relay.pid)
                base_sched = runqueue_wait_s(relay.pid)
                result["join_before_s"] = await timed_join(endpoint, 1)
                await trio.sleep(max(0.0, BASELINE_S - (time.perf_counter() - base_start)))
                result["rss_before_mib"] = rss_bytes(relay.pid) / 2**20
                flood_cpu = process_cpu_s(relay.pid)
                result["relay_cpu_before_pct"] = (
                    100 * (flood_cpu - base_cpu) / (time.perf_counter() - base_start)
                )
                result["relay_runqueue_wait_before_pct"] = (
                    100
                    * (runqueue_wait_s(relay.pid) - base_sched)
                    / (time.perf_counter() - base_start)
                )
                counters_before = await trio.to_thread.run_sync(scrape_counters, metrics_port)
                attack = await start_attack(scenario, endpoint, seconds, max_datagrams, packet_file)
                flood_start = time.perf_counter()
                flood_cpu = process_cpu_s(relay.pid)
                flood_sched = runqueue_wait_s(relay.pid)
                rss_during = [rss_bytes(relay.pid)]
                joins: list[float | None] = []

                async def join_during() -> None:
                    await trio.sleep(1.0)
                    while attack.poll() is None and len(joins) < 8:
                        joins.append(await timed_join(endpoint, 10 + len(joins)))
                        await trio.sleep(JOIN_EVERY_S)

                nursery.start_soon(join_during)
                while attack.poll() is None and time.perf_counter() - flood_start < seconds + 30:
                    await trio.sleep(0.25)
                    if relay.poll() is not None:
                        break
                    rss_during.append(rss_bytes(relay.pid))
                flood_end = time.perf_counter()
                if relay.poll() is not None:
                    attack.kill()
                    raise RuntimeError(f"the relay died during {scenario}: {relay.returncode}")
                result["relay_cpu_during_pct"] = (
                    100 * (process_cpu_s(relay.pid) - flood_cpu) / (flood_end - flood_start)
                )
                result["relay_runqueue_wait_during_pct"] = (
                    100 * (runqueue_wait_s(relay.pid) - flood_sched) / (flood_end - flood_start)
                )
                out, _ = attack.communicate(timeout=30)
                result["attack"] = json.loads(out.strip().splitlines()[-1])
                result["rss_max_during_mib"] = max(rss_during) / 2**20
                rss_after: list[tuple[float, int]] = []
                join_after: float | None = None
                while time.perf_counter() - flood_end < AFTER_S and relay.poll() is None:
                    await trio.sleep(0.5)
                    rss_after.append((time.perf_counter() - flood_end, rss_bytes(relay.pid)))
                    if join_after is None and rss_after[-1][0] >= 5.0:
                        join_after = await timed_join(endpoint, 100)
                result["rss_after_10s_mib"] = rss_after[-1][1] / 2**20 if rss_after else None
                result["rss_after_max_mib"] = max(r for _, r in rss_after) / 2**20
                result["joins_during_s"] = joins
                result["join_after_s"] = join_after
                probe.stop = True
                await trio.sleep(2.0)  # late echoes
                counters_after = await trio.to_thread.run_sync(scrape_counters, metrics_port)
                result["relay_counters_during"] = {
                    reason: count - counters_before.get(reason, 0)
                    for reason, count in counters_after.items()
                    if count != counters_before.get(reason, 0)
                }
                result["pair_before"] = probe.window(base_start, flood_start)
                result["pair_during"] = probe.window(flood_start, flood_end)
                result["pair_after"] = probe.window(flood_end, flood_end + AFTER_S)
                nursery.cancel_scope.cancel()
        finally:
            result["relay_alive"] = relay.poll() is None
            stop_child(relay)
    return result


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    joins = r["joins_during_s"]
    return {
        "rss_growth_lt_100mb": (r["rss_max_during_mib"] - r["rss_before_mib"]) * 2**20 < 100e6,
        "pair_loss_lt_1pct": r["pair_during"]["loss_pct"] < 1.0,
        "join_lt_2s": bool(joins) and all(j is not None and j < 2.0 for j in joins),
        "alive": r["relay_alive"] and r["join_after_s"] is not None,
        "rss_back_within_10pct": r["rss_after_10s_mib"] is not None
        and r["rss_after_10s_mib"] <= 1.1 * r["rss_before_mib"],
    }


async def run(
    scenarios: Sequence[str], retries: Sequence[str], seconds: float, max_datagrams: int
) -> list[dict[str, Any]]:
    results = []
    with tempfile.NamedTemporaryFile(suffix=".quic") as packet:
        initial = await capture_client_initial()
        packet.write(initial)
        packet.flush()
        for retry in retries:
            for scenario in scenarios:
                try:
                    result = await run_scenario(
                        scenario, retry, seconds, max_datagrams, packet.name
                    )
                except (RuntimeError, LanpartyError) as exc:
                    # A relay that dies is a finding: say so and go on with the others.
                    print(f"== {scenario} (--retry {retry}): {exc}", file=sys.stderr, flush=True)
                    results.append({"scenario": scenario, "retry": retry, "error": str(exc)})
                    continue
                result["captured_initial_bytes"] = len(initial)
                result["met"] = verdicts(result)
                print(render_one(result), file=sys.stderr, flush=True)
                results.append(result)
    return results


def _ms(value: float | None) -> str:
    return "failed" if value is None else f"{1000 * value:.0f}"


def render_one(r: dict[str, Any]) -> str:
    before, during, after = r["pair_before"], r["pair_during"], r["pair_after"]
    joins = r["joins_during_s"]
    done = [j for j in joins if j is not None]
    attack = r["attack"]
    lines = [
        f"== {r['scenario']} (--retry {r['retry']}): attacker sent {attack['sent']:,} in "
        f"{attack['seconds']:.1f} s = {attack['per_s']:,.0f}/s",
        f"relay RSS before {r['rss_before_mib']:.1f} MiB, max during "
        f"{r['rss_max_during_mib']:.1f}, 10 s after {r['rss_after_10s_mib']:.1f}; "
        f"CPU before {r['relay_cpu_before_pct']:.0f} %, during {r['relay_cpu_during_pct']:.0f} % "
        f"(runnable but waiting for CPU 0: before {r['relay_runqueue_wait_before_pct']:.0f} %, "
        f"during {r['relay_runqueue_wait_during_pct']:.0f} %; idle % of the CPUs before the "
        f"relay started {', '.join(f'{i:.0f}' for i in r['idle_before_pct'])})",
        f"pair loss % before {before['loss_pct']:.2f}, during {during['loss_pct']:.2f} "
        f"(A->B {during['loss_a_to_b_pct']:.2f}), after {after['loss_pct']:.2f}",
        f"pair RTT ms p50/p99 before {before['rtt_p50_ms']:.2f}/{before['rtt_p99_ms']:.2f}, "
        f"during {during['rtt_p50_ms']:.2f}/{during['rtt_p99_ms']:.2f}, "
        f"after {after['rtt_p50_ms']:.2f}/{after['rtt_p99_ms']:.2f}",
        f"join ms before {_ms(r['join_before_s'])}, during "
        f"[{', '.join(_ms(j) for j in joins)}] (max "
        f"{_ms(max(done)) if done else '-'}, median "
        f"{_ms(statistics.median(done)) if done else '-'}), 5 s after {_ms(r['join_after_s'])}; "
        f"alive {r['relay_alive']}",
        f"relay counters during (frames dropped, QUIC endpoint): {r['relay_counters_during']}",
        f"met: {r['met']}",
    ]
    return "\n".join(lines)


def _thousands(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def render_table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table (targets: * met, ! missed)."""
    head = (
        "| scenario | --retry | attacker sent/s | relay CPU % (waiting for its CPU %) | "
        "relay RSS MiB before / max / +10 s | pair loss % before / during | "
        "pair RTT ms p50 / p99 before | during | "
        "joins during, ms | join +5 s, ms | alive |\n|" + "---|" * 11
    )
    rows = [head]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['scenario']} | {r['retry']} | {r['error']} |" + " |" * 8)
            continue
        met = {k: ("*" if v else "!") for k, v in r["met"].items()}
        before, during = r["pair_before"], r["pair_during"]
        joins = ", ".join(_ms(j) for j in r["joins_during_s"]) or "-"
        rows.append(
            f"| {r['scenario']} | {r['retry']} | {_thousands(r['attack']['per_s'])} | "
            f"{r['relay_cpu_during_pct']:.0f} ({r['relay_runqueue_wait_during_pct']:.0f}) | "
            f"{r['rss_before_mib']:.1f} / "
            f"{r['rss_max_during_mib']:.1f}{met['rss_growth_lt_100mb']} / "
            f"{r['rss_after_10s_mib']:.1f}{met['rss_back_within_10pct']} | "
            f"{before['loss_pct']:.2f} / {during['loss_pct']:.2f}{met['pair_loss_lt_1pct']} | "
            f"{before['rtt_p50_ms']:.2f} / {before['rtt_p99_ms']:.2f} | "
            f"{during['rtt_p50_ms']:.2f} / {during['rtt_p99_ms']:.2f} | "
            f"{joins}{met['join_lt_2s']} | {_ms(r['join_after_s'])} | "
            f"{'yes' if r['relay_alive'] else 'NO'}{met['alive']} |"
        )
    return "\n".join(rows)


def scenario_name(text: str) -> str:
    if _SCENARIO.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"unknown scenario {text!r}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description="relay flood benchmark (not a test)")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        type=scenario_name,
        default=list(SCENARIOS),
        help="junk (flat out), junkN (N datagrams/s), replay, replay-spoofed, greedy "
        "(default: %(default)s)",
    )
    parser.add_argument("--retry", nargs="+", choices=("auto", "always", "never"), default=["auto"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-datagrams", type=int, default=MAX_DATAGRAMS)
    parser.add_argument("--json", action="store_true")
    # The attacker's processes (started by the benchmark itself).
    parser.add_argument("--send", choices=("junk", "replay"), help=argparse.SUPPRESS)
    parser.add_argument("--greedy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pin", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--packet-file", help=argparse.SUPPRESS)
    parser.add_argument("--spoofed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        print(json.dumps(run_sender(args)), flush=True)
        return
    configure_logging("error")
    if args.greedy:
        print(json.dumps(trio.run(run_greedy, args)), flush=True)
        return
    pin_to_cpu(1)
    print(machine_summary(), file=sys.stderr, flush=True)
    results = trio.run(run, args.scenarios, args.retry, args.seconds, args.max_datagrams)
    if args.json:
        print(json.dumps({"machine": machine_summary(), "results": results}, indent=2))
    else:
        print(render_table(results))


if __name__ == "__main__":
    main()
