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
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
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
    ping,
    ping_rtts,
    tcp_transfer,
    wait_for_ping,
)
from lanparty.demo.world import (
    DHCP_POOL,
    HOSTILE_DHCP_OPTIONS,
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
from lanparty.endpoint.session import RelayEndpoint
from lanparty.invite import Invite
from lanparty.obs import events
from lanparty.proto import parse_mac
from lanparty.proto.mtu import DEFAULT_RELAY_MTU
from lanparty.transport import SpkiPin

pytestmark = pytest.mark.netns

__all__ = ["CLIENT_IP", "TAP", "ClientProcess", "ping", "wait_for_ping"]

ROOM_MTU = DEFAULT_RELAY_MTU
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
    """The client's own DHCP lease, a default route through the TAP removed as it appears,
    pings, discovery, TCP, IPv6, and the lease released on exit."""
    with running_bridge(tmp_path) as bridge, dhcp_server(bridge.topo, tmp_path):
        namespace, lanhost = bridge.topo.client, bridge.topo.lanhost
        own_defaults = default_routes(namespace)
        client = ClientProcess(bridge, tmp_path)
        try:
            client.wait_for_tap()
            address = client.wait_for_address()
            assert address.network.prefixlen == 16
            first, last = (IPv4Address(bound) for bound in DHCP_POOL)
            assert first <= address.ip <= last
            assert default_routes(namespace) == own_defaults  # the lease's router: not taken
            wait_until(
                lambda: f"TAP {address.ip};" in last_status(client), "the status line's address"
            )
            # What another DHCP client's script would do with the lease:
            run("ip", "-n", namespace, "route", "add", "default", "via", LAN_ROUTER,
                "dev", TAP, "metric", str(DHCP_STYLE_METRIC))  # fmt: skip
            wait_until(lambda: default_routes(namespace) == own_defaults, "its removal", 5)
            assert route_to(namespace, INTERNET_PROBE) == "uplink"
            client_ip = str(address.ip)

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
        wait_until(lambda: "DHCPRELEASE" in (tmp_path / "dnsmasq.log").read_text(), "release", 5)


def last_status(client: ClientProcess) -> str:
    statuses = client.events(events.CLIENT_STATUS)
    return str(statuses[-1]["status"]) if statuses else ""


def routes_not_through_the_tap(namespace: str) -> dict[str, list[Any]]:
    """Both families' routes of every table, those through the TAP and the client's pinned
    route to the relay left out."""
    return {
        family: [
            route
            for route in json.loads(
                run("ip", "-n", namespace, "-j", family, "route", "show", "table", "all")
            )
            if route.get("dev") != TAP and route.get("dst") != RELAY_FOR_CLIENT
        ]
        for family in ("-4", "-6")
    }


def main_routes_through_the_tap(namespace: str, family: str) -> list[str]:
    routes = json.loads(run("ip", "-n", namespace, "-j", family, "route", "show", "dev", TAP))
    return sorted(str(route["dst"]) for route in routes)


def resolv_conf(namespace: str) -> str:
    return run("ip", "netns", "exec", namespace, "cat", "/etc/resolv.conf")


ROUTER_ADVERTISER = """
import socket, struct, sys, time
interface, count = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
# type 134, code 0, checksum (the kernel's), hop limit 64, flags 0, router lifetime 1800 s,
# reachable time 0, retransmit timer 0: "I am a default router"
advertisement = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
index = socket.if_nametoindex(interface)
for _ in range(count):
    sock.sendto(advertisement, ("ff02::1", 0, 0, index))
    time.sleep(0.2)
"""


def advertise_a_router(namespace: str, interface: str, count: int) -> None:
    """``count`` router advertisements (a default route) on ``interface``, 0.2 s apart."""
    run("ip", "netns", "exec", namespace, sys.executable, "-c", ROUTER_ADVERTISER,
        interface, str(count))  # fmt: skip


def heard_router_advertisements(namespace: str, interface: str, timeout_s: float) -> int:
    """How many router advertisements arrived on ``interface`` within ``timeout_s``."""
    with inside(namespace):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    heard = 0
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, 25, interface.encode())  # SO_BINDTODEVICE
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                packet = sock.recv(2048)
            except TimeoutError:
                break
            heard += packet[:1] == b"\x86"
    return heard


def test_a_hostile_party_lan_changes_nothing_on_the_players_pc(tmp_path: Path) -> None:
    """Option 121 /1 routes, a DNS server, router advertisements: the player's routes and
    resolv.conf stay exactly as they were, and its internet leaves by the uplink."""
    with (
        running_bridge(tmp_path) as bridge,
        dhcp_server(bridge.topo, tmp_path, *HOSTILE_DHCP_OPTIONS),
    ):
        namespace, lanhost = bridge.topo.client, bridge.topo.lanhost
        before = snapshot(namespace)
        routes_before = routes_not_through_the_tap(namespace)
        resolv_before = resolv_conf(namespace)
        client = ClientProcess(bridge, tmp_path)
        try:
            client.wait_for_tap()
            address = client.wait_for_address()
            dns = client.events("party_dns")
            assert dns, "the party's DNS servers were not reported"
            assert dns[-1]["servers"] == [LAN_HOST_IP]
            assert not dns[-1]["installed"]
            assert "DHCPACK" in (tmp_path / "dnsmasq.log").read_text()
            link_local(lanhost, "eth0")  # the advertiser's source address is ready
            with in_a_thread(heard_router_advertisements, namespace, TAP, 4.0) as heard:
                advertise_a_router(lanhost, "eth0", 10)
            assert heard() >= 1, "the router advertisements never reached the TAP"
            # What a DHCP client that takes option 121 would add (ours does not):
            for half in ("0.0.0.0/1", "128.0.0.0/1"):
                run("ip", "-n", namespace, "route", "add", half, "via", LAN_ROUTER, "dev", TAP)
            wait_until(
                lambda: main_routes_through_the_tap(namespace, "-4") == [str(address.network)],
                "the /1 routes' removal", 5,
            )  # fmt: skip
            removed = {record["route"] for record in client.events("host_change_applied")
                       if record.get("change") == "tap_route_removed"}  # fmt: skip
            assert sum("/1" in route for route in removed) == 2, removed
            assert main_routes_through_the_tap(namespace, "-6") == ["fe80::/64"]
            assert routes_not_through_the_tap(namespace) == routes_before
            assert resolv_conf(namespace) == resolv_before
            assert route_to(namespace, INTERNET_PROBE) == "uplink"
            assert read_accept_ra(namespace) == "0"
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
        assert snapshot(namespace) == before
        assert resolv_conf(namespace) == resolv_before


def read_accept_ra(namespace: str) -> str:
    return run(
        "ip", "netns", "exec", namespace, "cat", f"/proc/sys/net/ipv6/conf/{TAP}/accept_ra"
    ).strip()


@contextmanager
def in_a_thread(function: Any, *args: Any) -> Iterator[Any]:
    """Run ``function(*args)`` in a thread during the block; yields a getter of its result."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function(*args)), daemon=True)
    thread.start()

    def outcome() -> Any:
        thread.join(timeout=30)
        return result[0]

    try:
        yield outcome
    finally:
        thread.join(timeout=30)


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
