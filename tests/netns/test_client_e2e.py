"""The client program end to end: TAP <-> relay <-> gateway <-> LAN switch <-> LAN host.

The relay, the gateway and ``python -m lanparty.client --tap lp0`` run as
processes in the namespaces of ``lanparty.demo.world``. The client must
leave the client namespace's routes and links exactly as it found them,
whichever way it ends (SIGINT, SIGTERM, SIGKILL and a new run, a Trio
cancellation in process). Root only; CI runs as root.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from lanparty.client.service import ClientConfig, run_client
from lanparty.credentials import b64url
from lanparty.demo.netns import inside, run
from lanparty.demo.probes import (
    announce,
    broadcast_listener,
    hear_announcement,
    obtain_lease,
    ping,
    ping_rtts,
    tcp_transfer,
    wait_for_ping,
)
from lanparty.demo.world import (
    INTERNET_PROBE,
    LAN_HOST_IP,
    LAN_ROUTER,
    RELAY_FOR_CLIENT,
    RELAY_PORT,
    TAP,
    ClientProcess,
    dhcp_server,
    link,
    running_bridge,
)
from lanparty.invite import Invite
from lanparty.obs import events
from lanparty.proto import parse_mac
from lanparty.session import RelayEndpoint
from lanparty.transport import SpkiPin

pytestmark = pytest.mark.netns

__all__ = ["CLIENT_IP", "TAP", "ClientProcess", "ping", "wait_for_ping"]

ROOM_MTU = 1389
CLIENT_IP = "198.19.0.50"
DHCP_STYLE_METRIC = 10
"""Lower than the player's own default route (100): this one would win."""


def snapshot(namespace: str, timeout_s: float = 15) -> dict[str, Any]:
    """The namespace's routes (every table, both families) and links (name, MTU, flags).

    Taken once no IPv6 address is tentative: duplicate address detection
    adds its local routes a moment after a link comes up.
    """
    deadline = time.monotonic() + timeout_s
    while run("ip", "-n", namespace, "-6", "addr", "show", "tentative").strip():
        assert time.monotonic() < deadline, "IPv6 addresses stayed tentative"
        time.sleep(0.1)
    links = json.loads(run("ip", "-n", namespace, "-j", "link", "show"))
    return {
        "ipv4": json.loads(run("ip", "-n", namespace, "-j", "-4", "route", "show", "table", "all")),
        "ipv6": json.loads(run("ip", "-n", namespace, "-j", "-6", "route", "show", "table", "all")),
        "links": sorted((item["ifname"], item["mtu"], tuple(item["flags"])) for item in links),
    }


def relay_route_present(namespace: str) -> bool:
    routes = json.loads(run("ip", "-n", namespace, "-j", "-4", "route", "show", "table", "main"))
    return any(route["dst"] == RELAY_FOR_CLIENT for route in routes)


def default_routes(namespace: str) -> list[dict[str, Any]]:
    routes = json.loads(run("ip", "-n", namespace, "-j", "-4", "route", "show", "default"))
    return list(routes)


def route_to(namespace: str, address: str) -> str:
    """The device ``ip route get`` picks for ``address``."""
    found: list[dict[str, Any]] = json.loads(
        run("ip", "-n", namespace, "-j", "route", "get", address)
    )
    return str(found[0]["dev"])


def wait_until(condition: Any, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.1)


def tap_mac(namespace: str) -> bytes:
    found = link(namespace, TAP)
    assert found is not None
    return parse_mac(found["address"])


def link_local(namespace: str, interface: str) -> str:
    addresses = json.loads(run("ip", "-n", namespace, "-j", "-6", "addr", "show", "dev", interface))
    for info in addresses[0]["addr_info"]:
        if info["scope"] == "link" and "tentative" not in info:
            return f"{info['local']}%{interface}"
    raise AssertionError(f"{interface} has no usable link-local address: {addresses}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_client_carries_the_tap_and_restores_the_host(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        client = ClientProcess(bridge, tmp_path)
        try:
            found = client.wait_for_tap()
            assert found["mtu"] == ROOM_MTU
            assert relay_route_present(namespace)
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            assert ping(namespace, LAN_HOST_IP, 3)
            assert ping(bridge.topo.lanhost, CLIENT_IP, 3)
            assert ping(namespace, RELAY_FOR_CLIENT, 1)  # the uplink still reaches the relay
            assert client.stop(stop_signal) == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
        assert link(namespace, TAP) is None
        assert snapshot(namespace) == before


async def test_a_cancelled_client_restores_the_host(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        invite = Invite.parse(bridge.invite)
        config = ClientConfig(
            relay=RelayEndpoint(RELAY_FOR_CLIENT, RELAY_PORT, SpkiPin.parse(bridge.pin)),
            room=invite.room,
            client_key=invite.client_key,
            tap_name=TAP,
            identity_path=tmp_path / "identity.json",
            journal_path=tmp_path / "journal.json",
        )
        with inside(namespace):  # the TAP and netlink sockets are made in the namespace
            async with trio.open_nursery() as nursery:
                assert await nursery.start(run_client, config) == TAP
                assert relay_route_present(namespace)
                assert link(namespace, TAP) is not None
                nursery.cancel_scope.cancel()
        assert link(namespace, TAP) is None
        assert snapshot(namespace) == before
        assert not (tmp_path / "journal.json").exists()  # nothing left to undo


def test_a_killed_client_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        first = ClientProcess(bridge, tmp_path)
        try:
            first_tap = first.wait_for_tap()
            assert relay_route_present(namespace)
            first.stop(signal.SIGKILL)
        finally:
            first.kill_if_running()
        assert relay_route_present(namespace)  # left behind, in the journal
        # The relay still holds the killed session; the same player (identity, MAC)
        # replaces it at once (PROTOCOL.md 10) instead of waiting for its idle timeout.
        sessions_before = len(first.events(events.SESSION_STARTED))  # one log for both runs
        second = ClientProcess(bridge, tmp_path)
        try:
            tap = second.wait_for_tap()
            assert tap["address"] == first_tap["address"]
            assert not second.events(events.SESSION_RECONNECTING)
            assert len(second.events(events.SESSION_STARTED)) == sessions_before + 1
            assert relay_route_present(namespace)
            assert second.stop() == 0, second.log_path.read_text()
        finally:
            second.kill_if_running()
        assert link(namespace, TAP) is None
        assert snapshot(namespace) == before


def test_a_tampered_invite_exits_3_and_leaves_the_host_alone(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        before = snapshot(namespace)
        real = Invite.parse(bridge.invite)
        tampered = attrs.evolve(real, client_key=bytes(32)).format()
        client = ClientProcess(bridge, tmp_path, invite=tampered)
        try:
            assert client.process.wait(timeout=30) == 3, client.log_path.read_text()
        finally:
            client.kill_if_running()
        said = client.log_path.read_text()
        assert "not_authorized" in said
        assert "ask the party's host" in said
        assert b64url(bytes(32)) not in said
        assert snapshot(namespace) == before


def test_the_watchdog_puts_back_a_deleted_relay_route(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace = bridge.topo.client
        client = ClientProcess(bridge, tmp_path)
        try:
            client.wait_for_tap()
            assert relay_route_present(namespace)
            run("ip", "-n", namespace, "route", "del", f"{RELAY_FOR_CLIENT}/32")
            assert not relay_route_present(namespace)
            wait_until(lambda: relay_route_present(namespace), "the relay route's repair")
            wait_until(lambda: client.events(events.RELAY_ROUTE_REPAIRED), "the repair's log")
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()


def test_a_player_joins_the_party_lan(tmp_path: Path) -> None:
    """DHCP from the LAN's server, its default route suppressed, pings, discovery, TCP, IPv6."""
    with running_bridge(tmp_path) as bridge, dhcp_server(bridge.topo, tmp_path):
        namespace, lanhost = bridge.topo.client, bridge.topo.lanhost
        own_defaults = default_routes(namespace)
        client = ClientProcess(bridge, tmp_path)
        try:
            client.wait_for_tap()
            lease = obtain_lease(namespace, TAP, tap_mac(namespace))
            assert lease.router is not None
            assert (str(lease.router), lease.address.network.prefixlen) == (LAN_ROUTER, 16)
            # What a DHCP client's script does with the lease:
            run("ip", "-n", namespace, "addr", "add", str(lease.address), "dev", TAP)
            run("ip", "-n", namespace, "route", "add", "default", "via", str(lease.router),
                "dev", TAP, "metric", str(DHCP_STYLE_METRIC))  # fmt: skip
            wait_until(lambda: default_routes(namespace) == own_defaults, "suppression")
            assert route_to(namespace, INTERNET_PROBE) == "uplink"
            client_ip = str(lease.address.ip)

            wait_for_ping(namespace, LAN_HOST_IP)
            assert ping(namespace, LAN_HOST_IP, 5)
            assert ping(lanhost, client_ip, 5)

            with broadcast_listener(lanhost) as lan_side, broadcast_listener(namespace) as remote:
                heard_from = hear_announcement(
                    lan_side, b"remote server here",
                    lambda: announce(namespace, client_ip, b"remote server here"),
                )  # fmt: skip
                assert heard_from == client_ip
                heard_from = hear_announcement(
                    remote, b"lan server here",
                    lambda: announce(lanhost, LAN_HOST_IP, b"lan server here"),
                )  # fmt: skip
                assert heard_from == LAN_HOST_IP

            lan_link_local = link_local(lanhost, "eth0").split("%")[0]
            assert all(ping_rtts(namespace, f"{lan_link_local}%{TAP}", 3, timeout_s=5))
            tap_link_local = link_local(namespace, TAP).split("%")[0]
            assert all(ping_rtts(lanhost, f"{tap_link_local}%eth0", 3, timeout_s=5))

            size = 50 << 20
            upload = tcp_transfer(namespace, lanhost, LAN_HOST_IP, size)
            assert upload.intact, upload
            download = tcp_transfer(lanhost, namespace, client_ip, size, port=5002)
            assert download.intact, download

            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
        assert default_routes(namespace) == own_defaults


def test_traffic_resumes_after_the_relay_restarts_mid_transfer(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        namespace, lanhost = bridge.topo.client, bridge.topo.lanhost
        client = ClientProcess(bridge, tmp_path)
        try:
            tap_index = client.wait_for_tap()["ifindex"]
            run("ip", "-n", namespace, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(namespace, LAN_HOST_IP)
            size = 16 << 20
            restarts: list[int] = []

            def restart_relay_once(received: int) -> None:
                if received >= size // 4 and not restarts:
                    restarts.append(received)
                    assert bridge.stop_relay() == 0
                    bridge.start_relay()  # the same state directory: the same pin

            transfer = tcp_transfer(namespace, lanhost, LAN_HOST_IP, size, timeout_s=150,
                                    on_progress=restart_relay_once)  # fmt: skip
            assert len(restarts) == 1  # the relay restarted mid-transfer
            assert transfer.intact, transfer
            assert client.wait_for_tap()["ifindex"] == tap_index  # the same TAP, never reopened
            assert relay_route_present(namespace)
            assert client.events(events.SESSION_RECONNECTING)
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
