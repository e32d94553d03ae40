"""Transport benchmark: QUIC datagrams on loopback, qh3 and aioquic in one run.

Not a test. For each backend, an echo server runs in a child process pinned
to CPU 0 and this process (pinned to CPU 1) measures:

- delivered frames/s one way (client -> server sink) for 1200-byte frames,
  sent as fast as the transport takes them, with CPU microseconds per
  delivered frame on each side;
- echo RTT p50/p99 at 1000 frames/s.

    python benchmarks/transport.py [--seconds 5] [--json]

Bounded: each phase stops after --seconds (default 5) and a frame budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import tempfile
import time
from typing import Any

import trio

from benchmarks._common import (
    machine_summary,
    percentile,
    pin_to_cpu,
    process_cpu_s,
    start_child,
    stop_child,
)
from lanparty.ctrl import Disconnect, Stats
from lanparty.obs import configure_logging
from lanparty.transport import Connection, QuicBackend, SpkiPin, TransportSettings, open_connection

FRAME_BYTES = 1200
RTT_RATE_PPS = 1000
MAX_FLOOD_FRAMES = 5_000_000
SEND_QUEUE_FRAMES = 256
_STAMP = struct.Struct("!Qd")
BACKENDS = (QuicBackend.QH3, QuicBackend.AIOQUIC)
THROUGHPUT_KEYS = (
    "delivered_per_s",
    "lost_pct",
    "sender_us_per_frame",
    "receiver_us_per_frame",
    "sender_cpu_pct",
    "receiver_cpu_pct",
)
RTT_KEYS = ("rtt_p50_us", "rtt_p99_us")


async def _server_stats(connection: Connection) -> Stats:
    connection.send_control(Disconnect(reason="stats please"))
    with trio.fail_after(10):
        while True:
            message = await connection.receive_control()
            if isinstance(message, Stats):
                return message


async def flood(connection: Connection, seconds: float) -> tuple[int, float]:
    """Send 1200-byte frames as fast as the transport takes them; return (offered, duration)."""
    frame = b"\x10" + bytes(FRAME_BYTES - 1)
    offered = 0
    start = time.perf_counter()
    deadline = start + seconds
    while offered < MAX_FLOOD_FRAMES and time.perf_counter() < deadline:
        room = SEND_QUEUE_FRAMES - connection.send_queue_length
        for _ in range(room):
            connection.queue_datagram(frame)
        offered += room
        connection.flush()
        await connection.wait_send_room()
    return offered, time.perf_counter() - start


async def measure_throughput(backend: QuicBackend, seconds: float) -> dict[str, Any]:
    settings = TransportSettings(backend=backend, send_queue_frames=SEND_QUEUE_FRAMES)
    with tempfile.TemporaryDirectory() as state:
        child, info = start_child(
            [
                "examples/echo_server.py",
                "--state-dir",
                state,
                "--backend",
                backend.value,
                "--mode",
                "sink",
            ],
            cpu=0,
        )
        try:
            async with open_connection(
                info["host"], info["port"], SpkiPin.parse(info["pin"]), settings=settings
            ) as connection:
                before = await _server_stats(connection)
                server_cpu0, client_cpu0 = process_cpu_s(child.pid), time.process_time()
                offered, duration = await flood(connection, seconds)
                await trio.sleep(0.3)  # let the last frames land
                server_cpu = process_cpu_s(child.pid) - server_cpu0
                client_cpu = time.process_time() - client_cpu0
                after = await _server_stats(connection)
                delivered = after.rx_frames - before.rx_frames
                sent = connection.counters.tx_frames
        finally:
            stop_child(child)
    return {
        "backend": backend.value,
        "offered": offered,
        "sent": sent,
        "delivered": delivered,
        "delivered_per_s": delivered / duration,
        "lost_pct": 100.0 * (sent - delivered) / sent if sent else 0.0,
        "sender_us_per_frame": 1e6 * client_cpu / max(delivered, 1),
        "receiver_us_per_frame": 1e6 * server_cpu / max(delivered, 1),
        "receiver_drops": after.drops_by_reason(),
        "sender_cpu_pct": 100.0 * client_cpu / duration,
        "receiver_cpu_pct": 100.0 * server_cpu / duration,
    }


async def measure_rtt(backend: QuicBackend, seconds: float) -> dict[str, Any]:
    settings = TransportSettings(backend=backend)
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as state:
        child, info = start_child(
            ["examples/echo_server.py", "--state-dir", state, "--backend", backend.value],
            cpu=0,
        )
        try:
            async with open_connection(
                info["host"], info["port"], SpkiPin.parse(info["pin"]), settings=settings
            ) as connection:
                count = int(seconds * RTT_RATE_PPS)
                padding = bytes(FRAME_BYTES - _STAMP.size)

                async def receive() -> None:
                    while len(samples) < count:
                        for frame in await connection.receive_datagrams():
                            _, sent_at = _STAMP.unpack_from(frame)
                            samples.append(time.perf_counter() - sent_at)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    start = trio.current_time()
                    for sequence in range(count):
                        await trio.sleep_until(start + sequence / RTT_RATE_PPS)
                        connection.send_datagram(
                            _STAMP.pack(sequence, time.perf_counter()) + padding
                        )
                    with trio.move_on_after(2):
                        while len(samples) < count:
                            await trio.sleep(0.05)
                    nursery.cancel_scope.cancel()
        finally:
            stop_child(child)
    return {
        "backend": backend.value,
        "rtt_samples": len(samples),
        "rtt_p50_us": 1e6 * percentile(samples, 0.50),
        "rtt_p99_us": 1e6 * percentile(samples, 0.99),
    }


async def run(seconds: float, rounds: int) -> dict[str, Any]:
    """Alternate the backends ``rounds`` times; keep every round, report medians."""
    results: dict[str, Any] = {
        "machine": machine_summary(),
        "frame_bytes": FRAME_BYTES,
        "rounds": rounds,
    }
    for backend in BACKENDS:
        results[backend.value] = {"throughput": [], "rtt": []}
    for _ in range(rounds):
        for backend in BACKENDS:
            results[backend.value]["throughput"].append(await measure_throughput(backend, seconds))
            results[backend.value]["rtt"].append(await measure_rtt(backend, min(seconds, 3.0)))
    for backend in BACKENDS:
        entry = results[backend.value]
        entry["median"] = {
            key: statistics.median(r[key] for r in entry[kind])
            for kind, keys in (("throughput", THROUGHPUT_KEYS), ("rtt", RTT_KEYS))
            for key in keys
        }
    qh3, aioquic = results["qh3"]["median"], results["aioquic"]["median"]
    results["qh3_over_aioquic_frames_per_s"] = qh3["delivered_per_s"] / aioquic["delivered_per_s"]
    results["qh3_over_aioquic_cpu_per_frame"] = (
        aioquic["sender_us_per_frame"] + aioquic["receiver_us_per_frame"]
    ) / (qh3["sender_us_per_frame"] + qh3["receiver_us_per_frame"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="QUIC datagram transport benchmark")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per backend")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = parser.parse_args()
    configure_logging("warning")
    pin_to_cpu(1)
    results = trio.run(run, args.seconds, args.rounds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(results["machine"])
    print(f"median of {args.rounds} alternating rounds; [min-max] of delivered/s")
    print(
        f"{'backend':8} {'delivered/s':>12} {'[min-max]':>17} {'lost %':>7} {'send us/f':>10} "
        f"{'recv us/f':>10} {'RTT p50 us':>11} {'RTT p99 us':>11}"
    )
    for backend in BACKENDS:
        entry = results[backend.value]
        m = entry["median"]
        rates = [r["delivered_per_s"] for r in entry["throughput"]]
        spread = f"[{min(rates):.0f}-{max(rates):.0f}]"
        print(
            f"{backend.value:8} {m['delivered_per_s']:12.0f} {spread:>17} {m['lost_pct']:7.2f} "
            f"{m['sender_us_per_frame']:10.1f} {m['receiver_us_per_frame']:10.1f} "
            f"{m['rtt_p50_us']:11.0f} {m['rtt_p99_us']:11.0f}"
        )
    print(f"qh3 / aioquic delivered frames/s: {results['qh3_over_aioquic_frames_per_s']:.2f}x")
    print(f"aioquic / qh3 CPU per frame:      {results['qh3_over_aioquic_cpu_per_frame']:.2f}x")


if __name__ == "__main__":
    main()
