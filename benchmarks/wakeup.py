"""What one process hop costs on a cold wake-up, by event loop: a UDP echo on loopback.

Not a test. A server process echoes UDP datagrams on 127.0.0.1; a plain
blocking client sends one 100-byte datagram, waits for the echo, sleeps
``--interval`` (100/s by default, ping's rate in bench-peers), and records
the round trip. Servers, alternating round by round:

- ``blocking``: ``recvfrom`` / ``sendto`` on a blocking socket;
- ``epoll``: a bare ``select.epoll`` loop with non-blocking receives (what
  a data-plane thread outside Trio would run);
- ``trio``: ``trio.lowlevel.wait_readable`` then non-blocking receives (the
  pump's shape);
- ``trio-scoped``: the same inside a cancel scope with a deadline, with a
  second task asleep (closer to a role's nursery).

The difference between ``epoll`` and ``trio`` is what Trio's scheduler adds
to each hop. Bounded: ``--count`` datagrams per server per round.

    python -m benchmarks.wakeup [--count 1000] [--interval 0.01] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import subprocess
import sys
import time

import trio

from benchmarks._common import machine_summary

SERVERS = ("blocking", "epoll", "trio", "trio-scoped")


def _echo_pending(sock: socket.socket) -> None:
    while True:
        try:
            data, address = sock.recvfrom(2048)
        except BlockingIOError:
            return
        sock.sendto(data, address)


def serve(kind: str, sock: socket.socket) -> None:
    if kind == "blocking":
        while True:
            data, address = sock.recvfrom(2048)
            sock.sendto(data, address)
    sock.setblocking(False)
    if kind == "epoll":
        poller = select.epoll()
        poller.register(sock.fileno(), select.EPOLLIN)
        while True:
            poller.poll(-1)
            _echo_pending(sock)

    async def plain() -> None:
        while True:
            await trio.lowlevel.wait_readable(sock)
            _echo_pending(sock)

    async def scoped() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            while True:
                with trio.CancelScope(deadline=trio.current_time() + 3600):
                    while True:
                        await trio.lowlevel.wait_readable(sock)
                        _echo_pending(sock)

    trio.run(plain if kind == "trio" else scoped)


def ping(port: int, count: int, interval_s: float) -> list[float]:
    """Round trips in microseconds, sorted."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2.0)
    payload = bytes(100)
    rtts: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        client.sendto(payload, ("127.0.0.1", port))
        client.recvfrom(2048)
        rtts.append((time.perf_counter_ns() - started) / 1000)
        time.sleep(interval_s)
    client.close()
    return sorted(rtts)


def measure(kind: str, count: int, interval_s: float) -> list[float]:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.wakeup", "--serve", kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        return ping(port, count, interval_s)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1], flush=True)
        serve(args.serve, sock)
        return
    count = max(1, min(args.count, 100_000))
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in SERVERS}
    for _ in range(args.rounds):
        for kind in SERVERS:
            rtts = measure(kind, count, args.interval)
            results[kind].append((rtts[len(rtts) // 2], rtts[int(len(rtts) * 0.99)]))
    if args.json:
        print(json.dumps({"machine": machine_summary(), "rtt_us": results}))
        return
    print(machine_summary())
    print(f"UDP echo on loopback, {count} datagrams at {1 / args.interval:g}/s per round")
    for kind, rounds in results.items():
        shown = ", ".join(f"p50 {p50:.0f} p99 {p99:.0f}" for p50, p99 in rounds)
        print(f"  {kind:12s} RTT us: {shown}")


if __name__ == "__main__":
    main()
