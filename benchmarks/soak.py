"""Churn soak: members joining and leaving a relay continuously, memory and fds sampled.

Not a test. The relay runs as ``python -m lanparty.relay`` with its default
limits, pinned to CPU 0; this process (pinned to CPU 1) opens one room per
gateway (each gateway from its own loopback address, like parties at
different homes) and runs --concurrency client slots, each from its own
loopback address: join a random room with a MAC never used before, send a
few frames (unicast to the gateway, one broadcast), stay a moment, leave,
pause, repeat. Every --sample-s it prints the relay's RSS (VmRSS), its open
file descriptors (/proc/PID/fd), its CPU over the interval and the joins so
far; at the end a summary, including a sample taken 10 s after the last
client left.

    python -m benchmarks.soak --minutes 30 [--rooms 50] [--concurrency 60] [--returning 4]

``--returning N``: each slot is N players who come back (its own N MACs and
identities) instead of a new MAC per join. Rooms keep their MAC bindings for
their life and refuse newcomers when full (8 per seat), so fresh MACs stop
being admitted after 50 x 512 joins; returning players keep the churn going
with the tables full, which is what shows whether anything else grows.

Bounded: --minutes of churn and at most --max-joins joins.
"""

from __future__ import annotations

import argparse
import collections
import functools
import random
import sys
import tempfile
import time
from typing import Any

import trio

from benchmarks._common import (
    client_credentials,
    gateway_credentials,
    launch_relay,
    machine_summary,
    open_fds,
    pin_to_cpu,
    process_cpu_s,
    rss_bytes,
    source_host,
    stop_child,
)
from lanparty.endpoint.session import RelayEndpoint, Session, open_session
from lanparty.errors import LanpartyError
from lanparty.obs import configure_logging

JOIN_TIMEOUT_S = 15.0
_ETHERTYPE = b"\x88\xb5"
BROADCAST = b"\xff" * 6


def gateway_mac(room: int) -> bytes:
    return bytes([0x00, 0x16, 0x3E, 0x00, room >> 8, room & 0xFF])


class Churn:
    """What the client slots did so far."""

    def __init__(self, rooms: int, returning: int = 0) -> None:
        self.rooms = rooms
        self.returning = returning
        self.joins = 0
        self.leaves = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.join_s: list[float] = []
        self.next_mac = 1


async def keep_gateway(
    relay: RelayEndpoint, room: int, churn: Churn, opened: set[int], ready: trio.Event
) -> None:
    """A room's gateway: open the room, drain its frames and events; reopen if it drops."""

    async def drain_frames(session: Session) -> None:
        while True:
            await session.receive_frames()

    with source_host(f"127.0.1.{room + 1}"):
        while True:
            try:
                async with open_session(
                    relay, credentials=gateway_credentials(f"soak{room}"), mac=gateway_mac(room)
                ) as session:
                    opened.add(room)
                    if len(opened) == churn.rooms:
                        ready.set()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(drain_frames, session)
                        while True:
                            await session.next_event()
            except LanpartyError as exc:
                churn.failures[f"gateway {type(exc).__name__}"] += 1
                await trio.sleep(1.0)


async def client_slot(
    relay: RelayEndpoint, slot: int, churn: Churn, deadline: float, max_joins: int
) -> None:
    """Join, send, stay, leave, pause; until ``deadline`` or ``max_joins`` joins in all."""
    rng = random.Random(slot)
    with source_host(f"127.0.2.{slot % 250 + 1}"):
        while trio.current_time() < deadline and churn.joins < max_joins:
            room = rng.randrange(churn.rooms)
            if churn.returning:
                number = slot * churn.returning + rng.randrange(churn.returning) + 1
            else:
                number = churn.next_mac
                churn.next_mac += 1
            mac = bytes([0x02, 0x00]) + number.to_bytes(4, "big")
            started = trio.current_time()
            try:
                with trio.fail_after(JOIN_TIMEOUT_S):
                    async with open_session(
                        relay, credentials=client_credentials(mac, f"soak{room}"), mac=mac
                    ) as session:
                        churn.joins += 1
                        churn.join_s.append(trio.current_time() - started)
                        payload = number.to_bytes(4, "big") + bytes(96)
                        session.send_frames(
                            [gateway_mac(room) + mac + _ETHERTYPE + payload] * 3
                            + [BROADCAST + mac + _ETHERTYPE + payload]
                        )
                        await trio.sleep(rng.uniform(0.5, 2.0))
                churn.leaves += 1
            except (LanpartyError, trio.TooSlowError) as exc:
                churn.failures[type(exc).__name__] += 1
            await trio.sleep(rng.uniform(0.0, 1.0))


def sample_row(
    pid: int, started: float, churn: Churn, last: dict[str, float], label: str = ""
) -> dict[str, Any]:
    now = time.monotonic()
    cpu = process_cpu_s(pid)
    row = {
        "t_s": now - started,
        "rss_mib": rss_bytes(pid) / 2**20,
        "fds": open_fds(pid),
        "relay_cpu_pct": 100 * (cpu - last["cpu"]) / max(now - last["at"], 1e-9),
        "joins": churn.joins,
        "failures": sum(churn.failures.values()),
        "label": label,
    }
    last["cpu"], last["at"] = cpu, now
    return row


def print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['t_s']:8.0f} {row['rss_mib']:9.1f} {row['fds']:6d} {row['relay_cpu_pct']:8.0f} "
        f"{row['joins']:8d} {row['failures']:8d}  {row['label']}",
        flush=True,
    )


async def soak(
    minutes: float,
    rooms: int,
    concurrency: int,
    sample_s: float,
    max_joins: int,
    *,
    returning: int = 0,
) -> int:
    churn = Churn(rooms, returning)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as state:
        relay, endpoint = launch_relay(state)
        try:
            await trio.sleep(0.5)
            started = time.monotonic()
            last = {"cpu": process_cpu_s(relay.pid), "at": started}
            print(machine_summary(), flush=True)
            print(
                f"relay pid {relay.pid}, {rooms} rooms, {concurrency} client slots, "
                f"{minutes:g} min",
                flush=True,
            )
            print("     t_s   rss_MiB    fds  cpu_pct    joins failures", flush=True)
            rows.append(sample_row(relay.pid, started, churn, last, "before any session"))
            print_row(rows[-1])
            async with trio.open_nursery() as outer:
                ready = trio.Event()
                opened: set[int] = set()
                for room in range(rooms):
                    outer.start_soon(keep_gateway, endpoint, room, churn, opened, ready)
                with trio.fail_after(60):
                    await ready.wait()
                rows.append(sample_row(relay.pid, started, churn, last, f"{rooms} gateways in"))
                print_row(rows[-1])
                deadline = trio.current_time() + 60 * minutes
                async with trio.open_nursery() as clients:
                    for slot in range(concurrency):
                        clients.start_soon(client_slot, endpoint, slot, churn, deadline, max_joins)
                    next_sample = trio.current_time() + sample_s
                    while trio.current_time() < deadline and churn.joins < max_joins:
                        await trio.sleep_until(min(next_sample, deadline))
                        if trio.current_time() >= next_sample:
                            next_sample += sample_s
                            rows.append(sample_row(relay.pid, started, churn, last))
                            print_row(rows[-1])
                        if relay.poll() is not None:
                            print(f"relay exited with {relay.returncode}", flush=True)
                            clients.cancel_scope.cancel()
                            outer.cancel_scope.cancel()
                            break
                # The slots finish their last cycle (at most JOIN_TIMEOUT_S + 3 s).
                await trio.sleep(10)
                rows.append(
                    sample_row(relay.pid, started, churn, last, "10 s after the last leave")
                )
                print_row(rows[-1])
                outer.cancel_scope.cancel()
            alive = relay.poll() is None
        finally:
            stop_child(relay)
    churning = rows[2:-1] or rows
    rss = [row["rss_mib"] for row in churning]
    fds = [row["fds"] for row in churning]
    joins_s = sorted(churn.join_s)
    print(
        f"summary: {churn.joins} joins, {churn.leaves} leaves, failures "
        f"{dict(churn.failures) or 0}; relay alive at the end: {alive}"
    )
    if joins_s:
        print(
            f"join time p50 {1000 * joins_s[len(joins_s) // 2]:.0f} ms, "
            f"p99 {1000 * joins_s[int(0.99 * len(joins_s))]:.0f} ms, "
            f"max {1000 * joins_s[-1]:.0f} ms"
        )
    print(
        f"RSS during churn: first {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, "
        f"max {max(rss):.1f} MiB, min {min(rss):.1f} MiB; "
        f"after: {rows[-1]['rss_mib']:.1f} MiB (before any session {rows[0]['rss_mib']:.1f})"
    )
    print(
        f"fds during churn: first {fds[0]}, last {fds[-1]}, max {max(fds)}, min {min(fds)}; "
        f"after: {rows[-1]['fds']} (before any session {rows[0]['fds']})"
    )
    return 0 if alive else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="relay churn soak (not a test)")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=60)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--max-joins", type=int, default=1_000_000)
    parser.add_argument("--returning", type=int, default=0)
    args = parser.parse_args()
    configure_logging("error")
    pin_to_cpu(1)
    sys.exit(
        trio.run(
            functools.partial(soak, returning=args.returning),
            args.minutes,
            args.rooms,
            args.concurrency,
            args.sample_s,
            args.max_joins,
        )
    )


if __name__ == "__main__":
    main()
