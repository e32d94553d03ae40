"""TAP benchmark: the client's TapDevice, C shim against pure Python, read and write.

Not a test. Needs root: it makes a network namespace, opens the TAP device
``lanparty0`` there (MTU 1400) and a raw packet socket on its interface (the
PC's side), and deletes the namespace at the end. Pinned to CPU 1; the two
paths alternate, --rounds rounds each, the table shows the median.

- **read**: the raw socket sends a burst of 512 frames onto the interface
  (the TAP queues each one inside the send call; its queue holds 1000),
  then ``read_batch`` drains them, ``BATCH_FRAMES`` at a time. Only the
  drain is timed: wall time and this thread's CPU time.
- **write**: ``write_batch`` of ``BATCH_FRAMES`` frames at a time; the
  kernel takes each frame through the interface's receive path inside the
  ``write`` (addressed to a MAC nobody has, so dropped there), the same
  work for both paths.

Frames are 1200 bytes (Ethernet header included). Bounded: each case stops
after --seconds or --frames frames.

    python -m benchmarks.tap [--seconds 0.4] [--rounds 5] [--frames 200000] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator

from benchmarks._common import Totals, machine_summary, marked_frames, pin_to_cpu
from lanparty._native_loader import native_available
from lanparty.client.linux.tap import BATCH_FRAMES, TapDevice, read_slot_bytes
from lanparty.demo.netns import inside

ETH_P_ALL = 0x0003
FRAME_BYTES = 1200
MTU = 1400
BURST_FRAMES = 512
TAP_MAC = bytes.fromhex("02aabbccdd01")
PC_MAC = bytes.fromhex("02aabbccdd02")
NOBODY_MAC = bytes.fromhex("02aabbccdd09")
PATHS = ("native", "python")


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    name = f"lp-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "sysctl", "-q", "-w",
             "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
            check=True,
        )  # fmt: skip
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def bench_read(tap: TapDevice, pc: socket.socket, args: argparse.Namespace) -> Totals:
    burst = marked_frames(TAP_MAC, PC_MAC, FRAME_BYTES, BURST_FRAMES)
    drained = Totals(time.thread_time)
    while drained.frames < args.frames and drained.wall_s < args.seconds:
        for frame in burst:
            pc.send(frame)
        got = 0
        with drained.timing():
            for _ in range(BURST_FRAMES):  # bounded: a batch is at least one frame
                batch = tap.read_batch()
                if not batch:
                    break
                got += len(batch)
        if got != BURST_FRAMES:
            raise SystemExit(f"read {got} of {BURST_FRAMES} frames ({tap.native=})")
        drained.frames += got
    return drained


def bench_write(tap: TapDevice, args: argparse.Namespace) -> Totals:
    batch = marked_frames(NOBODY_MAC, PC_MAC, FRAME_BYTES, BATCH_FRAMES)
    written = Totals(time.thread_time)
    while written.frames < args.frames and written.wall_s < args.seconds:
        with written.timing():
            for _ in range(16):
                written.frames += tap.write_batch(batch)
    if tap.dropped_frames:
        raise SystemExit(f"{tap.dropped_frames} frames dropped ({tap.native=})")
    return written


def run(name: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Every case, --rounds times, the paths alternating; per-round values."""
    results: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    for _ in range(args.rounds):
        for path in PATHS:
            with inside(name):
                tap = TapDevice.open(mac=TAP_MAC, mtu=MTU, native=path == "native")
                pc = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            with tap, pc:
                pc.bind((tap.name, ETH_P_ALL))
                read = bench_read(tap, pc, args)
                record(f"{path} read/s", read.per_s())
                record(f"{path} read us", read.cpu_us())
                written = bench_write(tap, args)
                record(f"{path} write/s", written.per_s())
                record(f"{path} write us", written.cpu_us())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="time limit per case")
    parser.add_argument("--frames", type=int, default=200_000, help="frame budget per case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="every round, as JSON")
    args = parser.parse_args()
    if not native_available():
        raise SystemExit("the shim is not built: pip install -e . with a C compiler present")
    if os.geteuid() != 0:
        raise SystemExit("needs root (a network namespace, a TAP device, a raw socket)")
    pin_to_cpu(1)
    with namespace() as name:
        results = run(name, args)
    if args.json:
        print(json.dumps(results))
        return
    median = {key: statistics.median(values) for key, values in results.items()}
    print(machine_summary())
    print(
        f"TAP MTU {MTU} (read slots {read_slot_bytes(MTU)} B), frames {FRAME_BYTES} B, batch "
        f"{BATCH_FRAMES}; median of {args.rounds} rounds, each case {args.seconds} s or "
        f"{args.frames} frames"
    )
    columns = ("read/s", "read us", "write/s", "write us")
    print(f"{'path':<10}" + "".join(f"{column:>14}" for column in columns))
    for path in PATHS:
        cells = [median[f"{path} {column}"] for column in columns]
        print(f"{path:<10}" + "".join(f"{c:>14,.0f}" if c > 100 else f"{c:>14.2f}" for c in cells))
    read_ratio = median["python read us"] / median["native read us"]
    write_ratio = median["python write us"] / median["native write us"]
    print(f"shim: x{read_ratio:.2f} less CPU per frame read, x{write_ratio:.2f} per frame written")


if __name__ == "__main__":
    main()
