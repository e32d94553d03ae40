"""Packet socket benchmark: the C shim against pure Python, receive and send, in one run.

Not a test. Needs root: it makes a network namespace with a veth pair
(``lan0``, where the PacketSocket under test sits, and ``peer0``, the wire)
and deletes it at the end. Pinned to CPU 1; the paths alternate, --rounds
rounds each, the table shows the median.

- **receive**: the shim's socket on ``peer0`` sends a burst of 2000 frames
  (fewer than the receive buffer holds; the veth delivers each one, softirq
  included, before the send call returns), then ``read_batch`` drains
  them. *thread* CPU is the drain's; *machine* CPU adds what the delivery to
  our socket cost inside the sender's system call (the burst's CPU minus
  the same burst with no socket on ``lan0``): on a real NIC that part is
  spent in softirq, so it is the honest total.
- **send**: ``write_batch`` of ``BATCH_FRAMES`` frames at a time out of
  ``lan0``; its CPU includes the veth delivering them to ``peer0`` (the
  same for both paths).

Bounded: each case stops after --seconds or --frames frames.

    python -m benchmarks.packet_socket [--seconds 0.4] [--rounds 3] [--frames 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import os
import secrets
import select
import statistics
import subprocess
from collections.abc import Callable, Iterator

from benchmarks._common import Totals, machine_summary, marked_frames, pin_to_cpu
from lanparty.gateway import packet_socket
from lanparty.gateway.packet_socket import PacketSocket

ETH_P_ALL = 0x0003
FRAME_SIZES = (60, 1514)
SOURCE_MAC = bytes.fromhex("020000000002")
BURST_FRAMES = 2000  # fits the 4 MiB receive buffer even for 1514-byte frames
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def namespace_with_veth() -> Iterator[str]:
    name = f"lp-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            "sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
            "ip link add lan0 type veth peer name peer0",
            "ip link set lan0 up",
            "ip link set peer0 up",
        ):
            subprocess.run(["ip", "netns", "exec", name, *command.split()], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """Enter network namespace ``name`` for this thread (sockets made here stay there)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        _libc.setns(original, 0x40000000)
        os.close(target)
        os.close(original)


def queue_bursts(
    peer: PacketSocket, size: int, until: Callable[[Totals], bool], drain: Callable[[], int]
) -> tuple[Totals, Totals]:
    """Send bursts from the peer and drain each; return (fill, drain) totals."""
    burst = marked_frames(bytes.fromhex("020000000001"), SOURCE_MAC, size, BURST_FRAMES)
    batches = [burst[i : i + 64] for i in range(0, len(burst), 64)]
    fill, drained = Totals(), Totals()
    while not until(fill):
        with fill.timing():
            for batch in batches:
                fill.frames += peer.write_batch(batch)
        with drained.timing():
            drained.frames += drain()
    return fill, drained


def drain_burst(sock: PacketSocket) -> int:
    got = 0
    for _ in range(BURST_FRAMES * 2):
        batch = sock.read_batch()
        got += len(batch)
        if got >= BURST_FRAMES:
            break
        if not batch and not select.select([sock], [], [], 1.0)[0]:
            break
    return got


def bench_send(sock: PacketSocket, size: int, until: Callable[[Totals], bool]) -> Totals:
    batch = marked_frames(
        bytes.fromhex("020000000002"), SOURCE_MAC, size, packet_socket.BATCH_FRAMES
    )
    sent = Totals()
    while not until(sent):
        with sent.timing():
            for _ in range(30):
                sent.frames += sock.write_batch(batch)
    return sent


def run(namespace: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Every case, --rounds times; each result is a list of per-round values."""
    results: dict[str, list[float]] = {}

    def until(totals: Totals) -> bool:
        return totals.frames >= args.frames or totals.wall_s >= args.seconds

    def record(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    with inside(namespace):
        peer = PacketSocket.open("peer0", native=True)
    with peer:
        for _ in range(args.rounds):
            for size in FRAME_SIZES:
                baseline, _ = queue_bursts(peer, size, until, lambda: BURST_FRAMES)
                for path in ("shim", "python"):
                    with inside(namespace):
                        sock = PacketSocket.open("lan0", native=path == "shim")
                    with sock:
                        fill, drained = queue_bursts(
                            peer, size, until, functools.partial(drain_burst, sock)
                        )
                        lost = fill.frames - drained.frames
                        if lost:
                            raise SystemExit(f"{lost} frames lost ({path}, {size} B)")
                        delivery_us = fill.cpu_us() - baseline.cpu_us()
                        record(f"{path} {size} receive/s", drained.per_s())
                        record(f"{path} {size} receive thread us", drained.cpu_us())
                        record(f"{path} {size} receive machine us", drained.cpu_us() + delivery_us)
                        sent = bench_send(sock, size, until)
                        record(f"{path} {size} send/s", sent.per_s())
                        record(f"{path} {size} send us", sent.cpu_us())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="time limit per case")
    parser.add_argument("--frames", type=int, default=100_000, help="frame budget per case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="every round, as JSON")
    args = parser.parse_args()
    if not packet_socket.native_available():
        raise SystemExit("the shim is not built: pip install -e . with a C compiler present")
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, raw sockets)")
    pin_to_cpu(1)
    with namespace_with_veth() as namespace:
        results = run(namespace, args)
    if args.json:
        print(json.dumps(results))
        return
    median = {key: statistics.median(values) for key, values in results.items()}
    print(machine_summary())
    print(
        f"batch {packet_socket.BATCH_FRAMES} frames, receive slots "
        f"{packet_socket.MAX_PACKET_BYTES} B, frames up to {packet_socket.MAX_FRAME_BYTES} B, "
        "PACKET_VNET_HDR (no offloads in these frames); "
        f"median of {args.rounds} rounds, each case {args.seconds} s or {args.frames} frames"
    )
    columns = ("receive/s", "receive thread us", "receive machine us", "send/s", "send us")
    print(f"{'path':<14}" + "".join(f"{column:>20}" for column in columns))
    for size in FRAME_SIZES:
        for path in ("shim", "python"):
            cells = [median[f"{path} {size} {column}"] for column in columns]
            print(
                f"{path + f' {size} B':<14}"
                + "".join(f"{c:>20,.0f}" if c > 100 else f"{c:>20.2f}" for c in cells)
            )
        ratios = [
            median[f"python {size} {column}"] / median[f"shim {size} {column}"]
            for column in columns[1:3] + columns[4:]
        ]
        print(
            f"{'shim saves':<14}{'':>20}"
            + "".join(f"{f'x{r:.2f} less CPU':>20}" for r in ratios[:2])
            + f"{'':>20}{f'x{ratios[2]:.2f} less CPU':>20}"
        )


if __name__ == "__main__":
    main()
