"""``LinuxHostNetwork`` against a real kernel, and the client's guards on top of it.

Each test gets a fresh namespace with a veth pair: ``lan0`` stands for the
TAP (IPv4 198.19.1.1/24, IPv6 2001:db8:1::1/64) and ``peer0`` for the
host's uplink (198.18.2.1/24, IPv6 off). Every netlink socket is opened
inside the namespace (``inside``), so nothing touches the host's routes.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from lanparty.client.guards import apply_guards
from lanparty.client.hostnet import Family, InterfaceNotFoundError, Route, RouteNotFoundError
from lanparty.client.journal import Journal
from lanparty.client.linux.hostnet import LinuxHostNetwork
from lanparty.errors import HostNetworkError
from tests.netns.netns import add_veth_pair, inside, ip, new_namespace

pytestmark = pytest.mark.netns

LAN_GATEWAY = ipaddress.ip_address("198.19.1.254")
LAN6_GATEWAY = ipaddress.ip_address("2001:db8:1::fe")
UPLINK_GATEWAY = ipaddress.ip_address("198.18.2.254")
RELAY = ipaddress.ip_address("198.18.9.9")
MISSING_INDEX = 999_999


@attrs.frozen
class Lan:
    namespace: str
    lan_index: int
    peer_index: int


def index_of(namespace: str, name: str) -> int:
    return int(ip("-o", "link", "show", name, namespace=namespace).split(":")[0])


@pytest.fixture
def lan() -> Iterator[Lan]:
    with new_namespace() as name:
        add_veth_pair(name, "lan0", "peer0")
        with inside(name):
            Path("/proc/sys/net/ipv6/conf/lan0/disable_ipv6").write_text("0")
        ip("addr", "add", "198.19.1.1/24", "dev", "lan0", namespace=name)
        ip("addr", "add", "2001:db8:1::1/64", "dev", "lan0", "nodad", namespace=name)
        ip("addr", "add", "198.18.2.1/24", "dev", "peer0", namespace=name)
        yield Lan(name, index_of(name, "lan0"), index_of(name, "peer0"))


def route(destination: str, gateway: str | None, index: int, metric: int = 0) -> Route:
    return Route(
        ipaddress.ip_network(destination),
        None if gateway is None else ipaddress.ip_address(gateway),
        index,
        metric,
    )


async def test_mtu_both_families(lan: Lan) -> None:
    with inside(lan.namespace), LinuxHostNetwork() as hostnet:
        assert await hostnet.get_mtu(lan.lan_index, Family.IPV4) == 1500
        assert await hostnet.get_mtu(lan.lan_index, Family.IPV6) == 1500

        await hostnet.set_mtu(lan.lan_index, Family.IPV6, 1400)
        assert await hostnet.get_mtu(lan.lan_index, Family.IPV6) == 1400
        assert await hostnet.get_mtu(lan.lan_index, Family.IPV4) == 1500
        assert "mtu 1500" in ip("link", "show", "lan0", namespace=lan.namespace)

        # the kernel resets the IPv6 MTU to the link MTU when the latter changes
        await hostnet.set_mtu(lan.lan_index, Family.IPV4, 1450)
        assert await hostnet.get_mtu(lan.lan_index, Family.IPV4) == 1450
        assert await hostnet.get_mtu(lan.lan_index, Family.IPV6) == 1450
        assert "mtu 1450" in ip("link", "show", "lan0", namespace=lan.namespace)

        with pytest.raises(HostNetworkError, match="between 1280 and the link MTU"):
            await hostnet.set_mtu(lan.lan_index, Family.IPV6, 1451)
        for family in Family:
            with pytest.raises(InterfaceNotFoundError):
                await hostnet.get_mtu(MISSING_INDEX, family)
            with pytest.raises(InterfaceNotFoundError):
                await hostnet.set_mtu(MISSING_INDEX, family, 1400)

        # under 1280 the kernel takes IPv6 off the interface
        await hostnet.set_mtu(lan.lan_index, Family.IPV4, 1200)
        with pytest.raises(HostNetworkError, match="has no IPv6"):
            await hostnet.get_mtu(lan.lan_index, Family.IPV6)
        with pytest.raises(HostNetworkError, match="has no IPv6"):
            await hostnet.set_mtu(lan.lan_index, Family.IPV6, 1200)


async def test_metric_round_trips(lan: Lan) -> None:
    with inside(lan.namespace), LinuxHostNetwork() as hostnet:
        before = {family: await hostnet.list_routes(family) for family in Family}
        for family in Family:
            assert await hostnet.get_metric(lan.lan_index, family) is None

        await hostnet.set_metric(lan.lan_index, Family.IPV4, 50)
        await hostnet.set_metric(lan.lan_index, Family.IPV6, 70)
        assert await hostnet.get_metric(lan.lan_index, Family.IPV4) == 50
        assert await hostnet.get_metric(lan.lan_index, Family.IPV6) == 70
        assert "198.19.1.0/24 dev lan0 proto kernel scope link src 198.19.1.1 metric 50" in ip(
            "route", namespace=lan.namespace
        )
        assert "2001:db8:1::/64 dev lan0 proto kernel metric 70" in ip(
            "-6", "route", namespace=lan.namespace
        )
        # other interfaces keep theirs
        assert await hostnet.get_metric(lan.peer_index, Family.IPV4) is None

        await hostnet.set_metric(lan.lan_index, Family.IPV4, 60)
        assert await hostnet.get_metric(lan.lan_index, Family.IPV4) == 60
        for family in Family:
            await hostnet.set_metric(lan.lan_index, family, None)
            assert await hostnet.get_metric(lan.lan_index, family) is None
            assert sorted(await hostnet.list_routes(family), key=str) == sorted(
                before[family], key=str
            )
        with pytest.raises(InterfaceNotFoundError):
            await hostnet.get_metric(MISSING_INDEX, Family.IPV4)
        with pytest.raises(InterfaceNotFoundError):
            await hostnet.set_metric(MISSING_INDEX, Family.IPV4, 5)


async def test_routes_add_list_delete(lan: Lan) -> None:
    default4 = route("0.0.0.0/0", str(LAN_GATEWAY), lan.lan_index)
    host4 = route("198.18.7.7/32", None, lan.lan_index, metric=5)
    default6 = route("::/0", str(LAN6_GATEWAY), lan.lan_index)
    host6 = route("2001:db8:7::7/128", None, lan.lan_index, metric=300)
    with inside(lan.namespace), LinuxHostNetwork() as hostnet:
        assert await hostnet.list_routes(Family.IPV4) == [
            route("198.18.2.0/24", None, lan.peer_index),
            route("198.19.1.0/24", None, lan.lan_index),
        ]
        assert route("2001:db8:1::/64", None, lan.lan_index, 256) in await hostnet.list_routes(
            Family.IPV6
        )

        for added in (default4, host4, default6, host6):
            await hostnet.add_route(added)
            assert added in await hostnet.list_routes(added.family)
            with pytest.raises(HostNetworkError, match="already exists"):
                await hostnet.add_route(added)
        shown = ip("route", namespace=lan.namespace)
        assert "default via 198.19.1.254 dev lan0" in shown
        assert "198.18.7.7 dev lan0 proto static scope link metric 5" in shown
        # IPv6's 0 is the kernel's 1024
        assert "default via 2001:db8:1::fe dev lan0 proto static metric 1024" in ip(
            "-6", "route", namespace=lan.namespace
        )

        with pytest.raises(InterfaceNotFoundError):
            await hostnet.add_route(route("198.18.8.0/24", None, MISSING_INDEX))
        # the kernel would take these as wildcards; they are not the routes
        with pytest.raises(RouteNotFoundError):
            await hostnet.delete_route(attrs.evolve(host4, metric=0))
        with pytest.raises(RouteNotFoundError):
            await hostnet.delete_route(attrs.evolve(default4, gateway=None))

        for deleted in (default4, host4, default6, host6):
            await hostnet.delete_route(deleted)
            assert deleted not in await hostnet.list_routes(deleted.family)
            with pytest.raises(RouteNotFoundError):
                await hostnet.delete_route(deleted)
        assert "default" not in ip("route", namespace=lan.namespace)


async def test_best_route_picks_the_longest_prefix(lan: Lan) -> None:
    default = route("0.0.0.0/0", str(LAN_GATEWAY), lan.lan_index, metric=10)
    uplink = route("198.18.0.0/15", str(UPLINK_GATEWAY), lan.peer_index, metric=20)
    host = route("198.18.7.7/32", None, lan.lan_index, metric=5)
    with inside(lan.namespace), LinuxHostNetwork() as hostnet:
        with pytest.raises(HostNetworkError, match=r"no route to 203\.0\.113\.1"):
            await hostnet.best_route(ipaddress.ip_address("203.0.113.1"))
        for added in (default, uplink, host):
            await hostnet.add_route(added)
        assert await hostnet.best_route(ipaddress.ip_address("198.18.7.7")) == host
        assert await hostnet.best_route(RELAY) == uplink
        assert await hostnet.best_route(ipaddress.ip_address("203.0.113.1")) == default
        assert await hostnet.best_route(ipaddress.ip_address("198.19.1.9")) == route(
            "198.19.1.0/24", None, lan.lan_index
        )
        assert await hostnet.best_route(ipaddress.ip_address("2001:db8:1::9")) == route(
            "2001:db8:1::/64", None, lan.lan_index, 256
        )


Snapshot = tuple[tuple[tuple[int, Family, int | None, int | None], ...], frozenset[Route]]


async def snapshot(hostnet: LinuxHostNetwork, indexes: list[int]) -> Snapshot:
    """Every link's MTU and metric per family, and both families' routes."""
    links = []
    for index in indexes:
        for family in Family:
            try:
                mtu: int | None = await hostnet.get_mtu(index, family)
            except HostNetworkError:
                mtu = None
            links.append((index, family, mtu, await hostnet.get_metric(index, family)))
    routes = frozenset(
        [*await hostnet.list_routes(Family.IPV4), *await hostnet.list_routes(Family.IPV6)]
    )
    return tuple(links), routes


@pytest.mark.parametrize("exit_by", ["normal", "exception", "cancellation"])
async def test_guards_restore_the_host(lan: Lan, tmp_path: Path, exit_by: str) -> None:
    tap_default = route("0.0.0.0/0", str(LAN_GATEWAY), lan.lan_index)  # "from a DHCP server"
    relay_route = route(f"{RELAY}/32", str(UPLINK_GATEWAY), lan.peer_index)
    journal = Journal(tmp_path / "journal.json")
    with inside(lan.namespace), LinuxHostNetwork() as hostnet:
        await hostnet.add_route(route("198.18.0.0/15", str(UPLINK_GATEWAY), lan.peer_index))
        await hostnet.add_route(tap_default)
        indexes = [1, lan.lan_index, lan.peer_index]
        before = await snapshot(hostnet, indexes)

        async def inside_the_guards() -> None:
            async with apply_guards(
                hostnet,
                journal,
                tap_index=lan.lan_index,
                tap_mtu=1400,
                tap_metric=50,
                relay_address=RELAY,
            ) as guards:
                for family in Family:
                    assert await hostnet.get_mtu(lan.lan_index, family) == 1400
                    assert await hostnet.get_metric(lan.lan_index, family) == 50
                routes = await hostnet.list_routes(Family.IPV4)
                assert relay_route in routes
                assert tap_default not in routes
                assert guards.tap_routes.removed == [tap_default]
                await guards.relay_route.verify()
                assert read_accept_ra(lan.namespace, lan.lan_index) == 0
                # relay route, IPv4 MTU, 2 metrics, router trust for both families (IPv4's
                # changes nothing on Linux); setting the link MTU already set the IPv6 one,
                # so the guard had nothing to change there
                assert len(journal.pending()) == 6
                if exit_by == "exception":
                    raise RuntimeError("boom")
                if exit_by == "cancellation":
                    await trio.sleep(10)

        if exit_by == "exception":
            with pytest.raises(RuntimeError, match="boom"):
                await inside_the_guards()
        else:
            with trio.move_on_after(0.5) as scope:
                await inside_the_guards()
            assert scope.cancelled_caught == (exit_by == "cancellation")

        after = await snapshot(hostnet, indexes)
        # the default route through the TAP is removed for good, by design
        assert after == (before[0], before[1] - {tap_default})
        assert journal.pending() == []


def read_accept_ra(namespace: str, index: int) -> int:
    with inside(namespace):
        name = socket.if_indextoname(index)
        return int(Path(f"/proc/sys/net/ipv6/conf/{name}/accept_ra").read_text())
