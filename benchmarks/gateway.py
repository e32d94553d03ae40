"""Gateway benchmark: frames through the gateway, native shim vs pure Python.

Not a test. Builds the namespace topology of tests/netns (relay, gateway,
LAN switch and host, client), then for each packet path of the gateway
(``native`` shim, ``python``) measures, for 1200-byte frames:

- LAN -> relay: the LAN host sends frames to the client's MAC as fast as a
  raw socket can; the client session counts what arrives;
- relay -> LAN: the client session sends frames to the LAN host's MAC; a
  raw socket on the LAN host counts what arrives;

with the gateway's CPU microseconds per frame. Root only; every phase is
bounded in time and count; the namespaces are removed at the end.

    python -m benchmarks.gateway [--seconds 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import machine_summary, process_cpu_s
from lanparty.credentials import ClientCredentials
from lanparty.ctrl import Role
from lanparty.demo.world import wait_for_invite
from lanparty.endpoint.session import RejectedError, RelayEndpoint, Session, open_session
from lanparty.gateway.packet_socket import PacketSocket
from lanparty.invite import Invite
from lanparty.obs import configure_logging
from lanparty.proto import parse_mac
from lanparty.transport import SpkiPin
from tests.netns.lan import marked_frame
from tests.netns.netns import inside
from tests.netns.topology import (
    RELAY_FOR_CLIENT,
    RELAY_FOR_GATEWAY,
    RELAY_PORT,
    Topology,
    topology,
)

FRAME_BYTES = 1200
MAX_FRAMES = 2_000_000
IN_FLIGHT_FRAMES = 512
CLIENT_MAC = parse_mac("02:00:00:00:00:0a")


def start(
    topo: Topology, state: Path, native: bool
) -> tuple[subprocess.Popen[str], subprocess.Popen[str], str]:
    relay = topo.popen(
        topo.relay,
        [sys.executable, "-m", "lanparty.relay", "--listen", f"0.0.0.0:{RELAY_PORT}",
         "--state-dir", str(state), "--log-level", "warning", "--client-bps", "100G",
         "--client-burst-bytes", str(64 * 2**20)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert relay.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("gateway:"):
        lines.append(relay.stdout.readline().strip())
        assert lines[-1] or relay.poll() is None
    pin = re.search(r"^pin: (\S+)$", "\n".join(lines), re.MULTILINE)
    assert pin is not None
    gateway = topo.popen(
        topo.gateway,
        [sys.executable, "-m", "lanparty.gateway", "lan0", "--relay",
         f"{RELAY_FOR_GATEWAY}:{RELAY_PORT}", "--relay-pin", pin.group(1),
         "--state-dir", str(state / "gateway"), "--room-name", "bench",
         "--log-level", "warning", *([] if native else ["--no-native"])],
        stdout=(state / "gateway.out").open("w"),
    )  # fmt: skip
    return relay, gateway, wait_for_invite(state / "gateway.out", gateway)


def stop(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def joined(topo: Topology, invite_text: str) -> tuple[Any, Session]:
    invite = Invite.parse(invite_text)
    assert invite.pin is not None
    relay = RelayEndpoint(RELAY_FOR_CLIENT, RELAY_PORT, SpkiPin.parse(invite.pin))
    credentials = ClientCredentials(
        room_id=invite.room, client_key=invite.client_key, identity_secret=b"bench".ljust(32)
    )
    for _ in range(100):
        try:
            with inside(topo.client):
                context = open_session(relay, credentials=credentials, mac=CLIENT_MAC)
                session = await context.__aenter__()
        except RejectedError:  # room_not_open: the gateway is still connecting
            await trio.sleep(0.1)
            continue
        if any(p.role is Role.GATEWAY for p in session.peers.values()):
            return context, session
        await context.__aexit__(None, None, None)
        await trio.sleep(0.1)
    raise RuntimeError("the gateway did not join")


async def measure_path(topo: Topology, native: bool, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        relay, gateway, invite = start(topo, Path(state), native)
        try:
            context, session = await joined(topo, invite)
            try:
                with inside(topo.lanhost):
                    # The LAN side batches through the shim too, so it outpaces the
                    # gateway and the gateway's batches fill up as on a busy LAN.
                    lan = PacketSocket.open("eth0", native=True)
                lan_mac = lan.interface_mac
                results = {
                    "lan_to_relay": await lan_to_relay(session, lan, lan_mac, gateway.pid, seconds),
                    "relay_to_lan": await relay_to_lan(session, lan, lan_mac, gateway.pid, seconds),
                }
                lan.close()
            finally:
                await context.__aexit__(None, None, None)
        finally:
            stop(gateway, relay)
    return results


async def lan_to_relay(
    session: Session, lan: PacketSocket, lan_mac: bytes, gateway_pid: int, seconds: float
) -> dict[str, float]:
    frame = marked_frame(CLIENT_MAC, lan_mac, b"bench", size=FRAME_BYTES)
    received = 0

    async def count() -> None:
        nonlocal received
        while True:
            received += len(await session.receive_frames())

    batch = [frame] * 64
    async with trio.open_nursery() as nursery:
        nursery.start_soon(count)
        cpu0, start, sent = process_cpu_s(gateway_pid), time.perf_counter(), 0
        while sent < MAX_FRAMES and time.perf_counter() - start < seconds:
            # Closed loop: at most IN_FLIGHT_FRAMES on their way, so the gateway
            # forwards what it reads instead of dropping it at a full queue.
            if sent - received < IN_FLIGHT_FRAMES:
                sent += lan.write_batch(batch)
            await trio.lowlevel.checkpoint()
        await trio.sleep(0.5)
        duration, cpu = time.perf_counter() - start, process_cpu_s(gateway_pid) - cpu0
        nursery.cancel_scope.cancel()
    return {"sent": sent, "delivered": received, "frames_per_s": received / duration,
            "gateway_us_per_frame": 1e6 * cpu / max(received, 1)}  # fmt: skip


async def relay_to_lan(
    session: Session, lan: PacketSocket, lan_mac: bytes, gateway_pid: int, seconds: float
) -> dict[str, float]:
    frame = marked_frame(lan_mac, CLIENT_MAC, b"bench", size=FRAME_BYTES)
    _drain(lan)
    received = 0
    cpu0, start, sent = process_cpu_s(gateway_pid), time.perf_counter(), 0
    connection = session.connection
    while sent < MAX_FRAMES and time.perf_counter() - start < seconds:
        sent += session.send_frames([frame] * 64)
        await connection.wait_send_room()
        received += _drain(lan)
    await trio.sleep(0.5)
    received += _drain(lan)
    duration, cpu = time.perf_counter() - start, process_cpu_s(gateway_pid) - cpu0
    return {"sent": sent, "delivered": received, "frames_per_s": received / duration,
            "gateway_us_per_frame": 1e6 * cpu / max(received, 1)}  # fmt: skip


def _drain(lan: PacketSocket) -> int:
    total = 0
    while batch := lan.read_batch():
        total += len(batch)
    return total


async def run(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_summary(), "frame_bytes": FRAME_BYTES}
    with topology() as topo:
        for native in (True, False):
            results["native" if native else "python"] = await measure_path(topo, native, seconds)
    for direction in ("lan_to_relay", "relay_to_lan"):
        results[f"{direction}_native_cpu_advantage"] = (
            results["python"][direction]["gateway_us_per_frame"]
            / results["native"][direction]["gateway_us_per_frame"]
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway benchmark (not a test; root)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")
    results = trio.run(run, args.seconds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(results["machine"])
    print(f"{'path':8} {'direction':14} {'frames/s':>10} {'gateway us/frame':>17}")
    for path in ("native", "python"):
        for direction in ("lan_to_relay", "relay_to_lan"):
            rate = results[path][direction]["frames_per_s"]
            cost = results[path][direction]["gateway_us_per_frame"]
            print(f"{path:8} {direction:14} {rate:10.0f} {cost:17.1f}")
    for direction in ("lan_to_relay", "relay_to_lan"):
        print(
            f"{direction}: pure Python CPU / native CPU per frame = "
            f"{results[f'{direction}_native_cpu_advantage']:.2f}x"
        )


if __name__ == "__main__":
    main()
