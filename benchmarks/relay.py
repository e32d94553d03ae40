"""Relay benchmark: endpoints on loopback talking through one relay process.

Not a test. The relay runs as ``python -m lanparty.relay`` pinned to CPU 0;
the endpoint sessions run in this process, pinned to CPU 1. Reports:

- forwarded frames/s: client A floods 1200-byte frames to client B through
  the relay for --seconds; relay CPU microseconds per forwarded frame, and
  the one-core ceiling that implies (1e6 / that);
- RTT through the relay (A -> relay -> B -> relay -> A) at 1000 frames/s;
- relay RSS with 1000 idle peers in 100 rooms, per peer.

    python -m benchmarks.relay [--seconds 5] [--peers 1000] [--json]

Every phase is bounded in time and count.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import (
    client_credentials,
    gateway_credentials,
    launch_relay,
    machine_summary,
    percentile,
    pin_to_cpu,
    process_cpu_s,
    stop_child,
)
from lanparty.endpoint.session import RelayEndpoint, Session, open_session
from lanparty.obs import configure_logging
from lanparty.proto import parse_mac

FRAME_BYTES = 1200
RTT_RATE_PPS = 1000
MAX_FLOOD_FRAMES = 5_000_000
IN_FLIGHT_FRAMES = 512
BATCH_FRAMES = 64
MAC_A, MAC_B = parse_mac("02:00:00:00:00:0a"), parse_mac("02:00:00:00:00:0b")
GATEWAY_MAC = parse_mac("00:16:3e:00:00:01")
_STAMP = struct.Struct("!Qd")
_ETHERTYPE = b"\x88\xb5"


def start_relay(
    state_dir: str, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], RelayEndpoint]:
    """A relay on CPU 0 with the per-client limits lifted: this measures forwarding."""
    lifted = ["--client-bps", "100G", "--client-burst-bytes", str(64 * 2**20),
              "--client-pps", "1e7", "--client-pps-burst", "1e7",
              "--max-rooms-per-source", "100000"]  # fmt: skip
    return launch_relay(state_dir, [*lifted, *extra])


def relay_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@asynccontextmanager
async def pair(relay: RelayEndpoint) -> AsyncIterator[tuple[Session, Session]]:
    """Two players in a room its gateway opened (the gateway gets none of their unicast)."""
    async with (
        open_session(relay, credentials=gateway_credentials(), mac=GATEWAY_MAC),
        open_session(relay, credentials=client_credentials(MAC_A), mac=MAC_A) as a,
        open_session(relay, credentials=client_credentials(MAC_B), mac=MAC_B) as b,
    ):
        yield a, b


async def measure_forwarding(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        relay, endpoint = start_relay(state)
        try:
            async with pair(endpoint) as (a, b):
                frame = MAC_B + MAC_A + _ETHERTYPE + bytes(FRAME_BYTES - 14)
                received = 0
                progress = trio.Event()

                async def count() -> None:
                    nonlocal received, progress
                    while True:
                        received += len(await b.receive_frames())
                        progress.set()
                        progress = trio.Event()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(count)
                    await trio.sleep(0.2)
                    before, cpu_before = received, process_cpu_s(relay.pid)
                    start = time.perf_counter()
                    sent = 0
                    # Closed loop: at most IN_FLIGHT_FRAMES between A's send and B's
                    # receive, so the relay forwards rather than drops for a full queue.
                    while sent < MAX_FLOOD_FRAMES and time.perf_counter() - start < seconds:
                        room = IN_FLIGHT_FRAMES - (sent - (received - before))
                        if room >= BATCH_FRAMES:
                            sent += a.send_frames([frame] * BATCH_FRAMES)
                            await trio.lowlevel.checkpoint()
                        else:
                            with trio.move_on_after(0.05):
                                await progress.wait()
                            if room <= 0 and not progress.is_set():
                                sent = received - before  # lost frames: reopen the window
                    await trio.sleep(0.3)
                    duration = time.perf_counter() - start
                    forwarded = received - before
                    relay_cpu = process_cpu_s(relay.pid) - cpu_before
                    nursery.cancel_scope.cancel()
        finally:
            stop_child(relay)
    us_per_frame = 1e6 * relay_cpu / max(forwarded, 1)
    return {
        "offered": sent,
        "forwarded": forwarded,
        "forwarded_per_s": forwarded / duration,
        "relay_cpu_pct": 100 * relay_cpu / duration,
        "relay_us_per_frame": us_per_frame,
        "relay_ceiling_frames_per_s": 1e6 / us_per_frame,
    }


async def measure_rtt(seconds: float) -> dict[str, Any]:
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as state:
        relay, endpoint = start_relay(state)
        try:
            async with pair(endpoint) as (a, b):
                count = int(seconds * RTT_RATE_PPS)
                padding = bytes(FRAME_BYTES - 14 - _STAMP.size)

                async def echo() -> None:
                    while True:
                        frames = await b.receive_frames()
                        b.send_frames([MAC_A + MAC_B + f[12:] for f in frames])

                async def collect() -> None:
                    while len(samples) < count:
                        for f in await a.receive_frames():
                            samples.append(time.perf_counter() - _STAMP.unpack_from(f, 14)[1])

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(echo)
                    nursery.start_soon(collect)
                    start = trio.current_time()
                    for n in range(count):
                        await trio.sleep_until(start + n / RTT_RATE_PPS)
                        stamp = _STAMP.pack(n, time.perf_counter())
                        a.send_frame(MAC_B + MAC_A + _ETHERTYPE + stamp + padding)
                    with trio.move_on_after(2):
                        while len(samples) < count:
                            await trio.sleep(0.05)
                    nursery.cancel_scope.cancel()
        finally:
            stop_child(relay)
    return {
        "rtt_samples": len(samples),
        "rtt_p50_us": 1e6 * percentile(samples, 0.50),
        "rtt_p99_us": 1e6 * percentile(samples, 0.99),
    }


async def measure_idle_rss(peers: int, rooms: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        relay, endpoint = start_relay(state)
        try:
            await trio.sleep(0.5)
            baseline = relay_rss_bytes(relay.pid)
            async with AsyncExitStack() as stack:
                for n in range(rooms):  # gateways open the rooms; they count as peers too
                    mac = bytes([0x00, 0x16, 0x3E, 0, n >> 8, n & 0xFF])
                    await stack.enter_async_context(
                        open_session(endpoint, credentials=gateway_credentials(f"room{n}"), mac=mac)
                    )
                for n in range(peers - rooms):
                    mac = bytes([0x02, 0, 0, 0, n >> 8, n & 0xFF])
                    room = f"room{n % rooms}"
                    await stack.enter_async_context(
                        open_session(endpoint, credentials=client_credentials(mac, room), mac=mac)
                    )
                await trio.sleep(1.0)
                loaded = relay_rss_bytes(relay.pid)
        finally:
            stop_child(relay)
    return {
        "idle_peers": peers,
        "rooms": rooms,
        "relay_rss_baseline_mib": baseline / 2**20,
        "relay_rss_loaded_mib": loaded / 2**20,
        "rss_per_idle_peer_kib": (loaded - baseline) / peers / 1024,
    }


async def run(seconds: float, peers: int) -> dict[str, Any]:
    return {
        "machine": machine_summary(),
        **await measure_forwarding(seconds),
        **await measure_rtt(min(seconds, 3.0)),
        **await measure_idle_rss(peers, max(1, peers // 10)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="relay benchmark (not a test)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")
    pin_to_cpu(1)
    results = trio.run(run, args.seconds, args.peers)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(results["machine"])
    print(
        f"forwarded 1200-byte frames/s:   {results['forwarded_per_s']:,.0f} "
        f"(relay CPU {results['relay_cpu_pct']:.0f} %)"
    )
    print(
        f"relay CPU per forwarded frame:  {results['relay_us_per_frame']:.1f} us "
        f"-> one-core ceiling {results['relay_ceiling_frames_per_s']:,.0f} frames/s"
    )
    print(
        f"RTT through the relay @1000/s:  p50 {results['rtt_p50_us']:.0f} us, "
        f"p99 {results['rtt_p99_us']:.0f} us"
    )
    print(
        f"relay RSS, {results['idle_peers']} idle peers in {results['rooms']} rooms: "
        f"{results['relay_rss_loaded_mib']:.1f} MiB (baseline "
        f"{results['relay_rss_baseline_mib']:.1f} MiB), "
        f"{results['rss_per_idle_peer_kib']:.0f} KiB per peer"
    )


if __name__ == "__main__":
    main()
