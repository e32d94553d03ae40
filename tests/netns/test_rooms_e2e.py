"""Invite-only rooms end to end (PROTOCOL.md 10): strangers, crashes and a rotated invite.

The relay, the real gateway (its keys in its own state directory), a
stranger's gateway (other keys, the same --room-name) and players as
processes in the namespaces of ``lanparty.demo.world``. The stranger's
"LAN" is the gateway namespace's uplink, where a DHCP server of its own
(dnsmasq in the relay namespace) would answer players it could reach.
Root only; CI runs as root.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lanparty.demo.netns import run
from lanparty.demo.probes import obtain_lease, ping, wait_for_ping
from lanparty.demo.world import (
    LAN_HOST_IP,
    RELAY_FOR_GATEWAY,
    RELAY_PORT,
    ROOM,
    TAP,
    Bridge,
    ClientProcess,
    Topology,
    _stop,
    dhcp_server,
    running_bridge,
    topology,
    wait_for_invite,
)
from lanparty.invite import Invite
from lanparty.obs import events
from lanparty.proto import parse_mac

pytestmark = pytest.mark.netns

CLIENT_IP = "198.19.0.60"
STRANGER_POOL = ("198.18.1.100", "198.18.1.150")


@contextmanager
def strangers_lan(topo: Topology, state_dir: Path) -> Iterator[None]:
    """A DHCP server on the stranger's side (the relay namespace's link to the gateway ns)."""
    log = (state_dir / "stranger-dnsmasq.log").open("a")
    process = topo.popen(
        topo.relay,
        ["dnsmasq", "--keep-in-foreground", "--no-daemon", "--conf-file=/dev/null",
         "--port=0", "--interface=to-gw", "--bind-interfaces", "--no-hosts", "--no-resolv",
         f"--dhcp-range={STRANGER_POOL[0]},{STRANGER_POOL[1]},255.255.255.0,10m",
         f"--dhcp-leasefile={state_dir / 'stranger.leases'}", "--pid-file", "--user=root"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield
    finally:
        _stop(process, timeout_s=5)


@contextmanager
def stranger_gateway(bridge: Bridge, state_dir: Path) -> Iterator[str]:
    """A gateway with keys of its own and the real room's label; yields its invite."""
    output = state_dir / "stranger.out"
    process = bridge.topo.popen(
        bridge.topo.gateway,
        [sys.executable, "-m", "lanparty.gateway", "--interface", "uplink",
         "--relay", f"{RELAY_FOR_GATEWAY}:{RELAY_PORT}", "--relay-pin", bridge.pin,
         "--state-dir", str(state_dir / "stranger-keys"), "--room-name", ROOM,
         "--log-level", "warning"],
        stdout=output.open("w"), stderr=(state_dir / "stranger.log").open("a"),
    )  # fmt: skip
    try:
        yield wait_for_invite(output, process)
    finally:
        _stop(process)


@pytest.mark.parametrize("stranger_first", [True, False])
def test_a_stranger_gateway_never_serves_the_real_players(
    tmp_path: Path, stranger_first: bool
) -> None:
    with topology() as topo:
        bridge = Bridge(topo, tmp_path)
        try:
            bridge.start_relay()
            with (
                dhcp_server(topo, tmp_path),
                strangers_lan(topo, tmp_path),
                stranger_gateway(bridge, tmp_path) if stranger_first else _nothing(),
            ):
                bridge.start_gateway()
                real_invite = Invite.parse(bridge.invite)
                with stranger_gateway(bridge, tmp_path) if not stranger_first else _nothing():
                    stranger_invite = _stranger_invite(tmp_path)
                    assert stranger_invite.name == real_invite.name  # the same label
                    assert stranger_invite.room != real_invite.room
                    client = ClientProcess(bridge, tmp_path)
                    try:
                        tap = client.wait_for_tap()
                        lease = obtain_lease(topo.client, TAP, parse_mac(tap["address"]))
                        assert str(lease.server) == LAN_HOST_IP
                        assert str(lease.address.ip).startswith("198.19.")
                        assert client.stop() == 0, client.log_path.read_text()
                    finally:
                        client.kill_if_running()
            assert bridge.gateway is not None
            assert bridge.gateway.poll() is None  # never refused, never replaced
        finally:
            bridge.stop()


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""


def _stranger_invite(state_dir: Path) -> Invite:
    return Invite.parse(wait_for_invite(state_dir / "stranger.out", None))


def test_a_killed_gateway_is_back_at_once_and_its_players_stay(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        client = ClientProcess(bridge, tmp_path)
        try:
            client.wait_for_tap()
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            assert bridge.gateway is not None
            bridge.gateway.send_signal(signal.SIGKILL)
            bridge.gateway.wait(timeout=10)
            bridge.start_gateway()  # the same keys: the same room, replacing its dead session
            wait_for_ping(namespace, LAN_HOST_IP)
            assert ping(bridge.topo.lanhost, CLIENT_IP, 3)
            # the player never had to reconnect
            assert client.process.poll() is None
            assert len(client.events(events.SESSION_STARTED)) == 1
            assert not client.events(events.SESSION_RECONNECTING)
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()


def test_a_rotated_invite_sends_old_players_away_and_admits_new_ones(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        old_invite = bridge.invite
        old_player = ClientProcess(bridge, tmp_path)
        try:
            old_player.wait_for_tap()
            assert bridge.gateway is not None
            bridge.gateway.send_signal(signal.SIGTERM)
            assert bridge.gateway.wait(timeout=15) == 0
            bridge.start_gateway("--rotate-invite")
            new_invite = bridge.invite
            assert new_invite != old_invite
            assert Invite.parse(new_invite).room == Invite.parse(old_invite).room
            assert old_player.process.wait(timeout=30) == 3
            said = old_player.log_path.read_text()
            assert "made a new invite" in said
        finally:
            old_player.kill_if_running()
        assert "new invite key" in bridge.gateway_output.read_text()
        new_dir = tmp_path / "new-player"
        new_dir.mkdir()
        new_player = ClientProcess(bridge, new_dir, invite=new_invite)
        try:
            new_player.wait_for_tap()
            assert new_player.stop() == 0, new_player.log_path.read_text()
        finally:
            new_player.kill_if_running()
        # no key reached a log: the gateway's, the players'
        keys = [(tmp_path / "gateway-state" / name).read_text().strip()
                for name in ("gateway_key", "client_key")]  # fmt: skip
        keys.append(Invite.parse(old_invite).format().split("key=")[1].split("&")[0])
        logs = [bridge.gateway_log, old_player.log_path, new_player.log_path]
        for log in logs:
            text = log.read_text()
            assert "session_started" in text or "gateway_started" in text
            for key in keys:
                assert key not in text
        stale_dir = tmp_path / "stale-player"
        stale_dir.mkdir()
        stale = ClientProcess(bridge, stale_dir, invite=old_invite)
        try:
            assert stale.process.wait(timeout=30) == 3
            assert "not_authorized" in stale.log_path.read_text()
        finally:
            stale.kill_if_running()
