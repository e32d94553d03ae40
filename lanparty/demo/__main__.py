"""``python -m lanparty.demo`` (root, Linux): a LAN party in network namespaces, shown.

Builds the namespaces of ``lanparty.demo.world`` (relay, gateway, a LAN
switch, a LAN host running dnsmasq as the party's DHCP server, a remote
player), starts the three programs, waits for the client to take its TAP's
DHCP lease through the bridge (a default route another DHCP client would
add through the TAP is removed at once), pings both ways, exchanges a game-style broadcast
announcement both ways, prints a short report and removes everything.
Exit code 0 when every step worked, 1 when one failed, 2 when this host cannot run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lanparty.demo.netns import run
from lanparty.demo.probes import (
    announce,
    broadcast_listener,
    hear_announcement,
    ping_rtts,
    wait_for_ping,
)
from lanparty.demo.world import (
    INTERNET_PROBE,
    LAN_HOST_IP,
    LAN_ROUTER,
    TAP,
    ClientProcess,
    dhcp_server,
    link,
    running_bridge,
)
from lanparty.errors import ExitCode
from lanparty.invite import redact_invite


class _Report:
    def __init__(self) -> None:
        self.lines: list[tuple[str, bool, str]] = []

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        """Run one step; what it says and whether it failed go to the report."""
        print(f"... {title}", flush=True)
        started = time.monotonic()
        details: list[str] = []
        try:
            yield details.append
        except Exception as exc:  # the report says what failed; later steps still run
            self.lines.append((title, False, f"{type(exc).__name__}: {exc}"))
            print(f"    FAILED: {exc}", flush=True)
            raise _StepFailedError from exc
        took = time.monotonic() - started
        detail = "; ".join(details)
        self.lines.append((title, True, f"{detail} ({took:.1f} s)" if detail else f"{took:.1f} s"))
        print(f"    ok{': ' + detail if detail else ''}", flush=True)

    def print(self) -> bool:
        print("\nlanparty demo report")
        for title, ok, detail in self.lines:
            print(f"  [{'ok' if ok else 'FAILED'}] {title}: {detail}")
        return all(ok for _, ok, _ in self.lines)


class _StepFailedError(Exception):
    pass


def _ms(rtts: Sequence[float | None]) -> str:
    answered = [rtt * 1000 for rtt in rtts if rtt is not None]
    if not answered:
        return f"0/{len(rtts)} answered"
    return (
        f"{len(answered)}/{len(rtts)} answered, median {statistics.median(answered):.2f} ms, "
        f"max {max(answered):.2f} ms"
    )


def _check_host() -> str | None:
    if sys.platform != "linux":
        return "the demo builds Linux network namespaces; run it on Linux"
    if os.geteuid() != 0:
        return "the demo creates network namespaces: run it as root (sudo)"
    for tool in ("ip", "dnsmasq"):
        if shutil.which(tool) is None:
            return (
                f"{tool} is not installed (Debian: apt-get install iproute2 dnsmasq-base, "
                "or run scripts/test.sh once as root)"
            )
    return None


def demo(state_dir: Path) -> bool:
    report = _Report()
    try:
        with running_bridge(state_dir) as bridge, dhcp_server(bridge.topo, state_dir):
            topo = bridge.topo
            client = ClientProcess(bridge, state_dir)
            try:
                _player_session(report, topo.client, topo.lanhost, client)
            finally:
                with report.step("the player quits (SIGTERM): the host is put back"):
                    code = client.stop()
                    if code != 0 or link(topo.client, TAP) is not None:
                        raise RuntimeError(f"exit code {code}; see {client.log_path}")
    except _StepFailedError:
        pass
    return report.print()


def _player_session(report: _Report, player: str, lanhost: str, client: ClientProcess) -> None:
    with report.step("relay, gateway and client start; the player's TAP comes up") as say:
        say(f"the gateway's invite: {redact_invite(client.invite)} (key hidden here)")
        tap = client.wait_for_tap()
        say(f"{TAP} {tap['address']} MTU {tap['mtu']}")
    with report.step("the player's TAP gets a DHCP lease from the party LAN") as say:
        lease = client.wait_for_address()
        say(f"{lease} (the client took it itself; no route, no DNS from the lease)")
    with report.step("the lease's default route does not take the player's internet") as say:
        # as another DHCP client would: a default route through the TAP, preferred
        run("ip", "-n", player, "route", "add", "default", "via", LAN_ROUTER,
            "dev", TAP, "metric", "10")  # fmt: skip
        deadline = time.monotonic() + 15
        while _route_device(player, INTERNET_PROBE) != "uplink":
            if time.monotonic() > deadline:
                raise RuntimeError("the default route through the TAP stayed")
            time.sleep(0.05)
        say("removed by the client's guard; the internet still goes out of the uplink")
    address = str(lease.ip)
    with report.step("ping: player -> LAN host and LAN host -> player") as say:
        wait_for_ping(player, LAN_HOST_IP)
        say(f"to {LAN_HOST_IP}: {_ms(ping_rtts(player, LAN_HOST_IP, 20, interval_s=0.05))}")
        say(f"back: {_ms(ping_rtts(lanhost, address, 20, interval_s=0.05))}")
    with (
        report.step("game discovery: broadcasts to 255.255.255.255 both ways") as say,
        broadcast_listener(lanhost) as lan_side,
        broadcast_listener(player) as remote,
    ):
        remote_server, lan_server = b"LANPARTY-SERVER remote", b"LANPARTY-SERVER lan"
        heard = hear_announcement(
            lan_side, remote_server, lambda: announce(player, address, remote_server)
        )
        say(f"the LAN heard the player's server ({heard})")
        heard = hear_announcement(
            remote, lan_server, lambda: announce(lanhost, LAN_HOST_IP, lan_server)
        )
        say(f"the player heard the LAN's server ({heard})")
    status = client.events("client_status")
    if status:
        print(f"\nthe client's last status line: {status[-1]['status']}")


def _route_device(namespace: str, address: str) -> str:
    found = json.loads(run("ip", "-n", namespace, "-j", "route", "get", address))
    return str(found[0]["dev"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lanparty.demo",
        description="A LAN party in network namespaces: DHCP, pings and game discovery "
        "through relay and gateway, then everything removed (root, Linux).",
    )
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR",
        help="write the programs' logs to DIR (default: a temporary directory, removed)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    problem = _check_host()
    if problem is not None:
        print(f"lanparty demo: {problem}", file=sys.stderr)
        return ExitCode.CONFIG
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        return ExitCode.OK if demo(args.keep_logs) else ExitCode.FAILED
    with tempfile.TemporaryDirectory(prefix="lanparty-demo-") as state_dir:
        return ExitCode.OK if demo(Path(state_dir)) else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
