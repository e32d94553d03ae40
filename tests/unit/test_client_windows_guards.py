"""The guards on a Windows host: the recording fake with the Windows back end's semantics.

The host: Ethernet (index 3, automatic metric 25) with the default routes,
and the TAP (index 12, automatic metric 35, IPv6 bound unless a test says
otherwise). Windows ranks routes by route metric plus interface metric.
"""

from __future__ import annotations

import copy
import shutil
from contextlib import AbstractAsyncContextManager
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path

import pytest
import trio
import trio.testing

from lanparty.client.guards import UNTRUSTING, ClientGuards, apply_guards
from lanparty.client.hostnet import Family, InterfaceNotFoundError, Route
from lanparty.client.journal import (
    Journal,
    RestoreDns,
    RestoreMetric,
    RestoreMtu,
    RestoreRouterTrust,
    restore_pending,
)
from lanparty.client.service import TAP_METRIC
from lanparty.client.tap_dns import NO_DNS, DnsRegistration, InterfaceDns
from lanparty.client.windows import routes
from lanparty.errors import HostNetworkError
from tests.fakes.hostnet import Call
from tests.fakes.windows_hostnet import WINDOWS_DEFAULT_TRUST, WindowsFakeHostNetwork

ETH, TAP = 3, 12
ROOM_MTU = 1380
RELAY = ip_address("198.18.5.9")
ETH_GATEWAY = ip_address("198.18.0.1")
ETH_DEFAULT = Route(ip_network("0.0.0.0/0"), ETH_GATEWAY, ETH, 0)
ETH_DEFAULT_V6 = Route(ip_network("::/0"), ip_address("fe80::1"), ETH, 0)
RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ETH_GATEWAY, ETH, 0)
TAP_DEFAULT = Route(ip_network("0.0.0.0/0"), ip_address("198.19.0.1"), TAP, 0)
TAP_DEFAULT_V6 = Route(ip_network("::/0"), ip_address("fe80::2"), TAP, 0)
TAP_SUBNET = Route(ip_network("198.19.0.0/16"), None, TAP, 256)
BROADCAST = ip_address("255.255.255.255")
MUTATING = {"set_mtu", "set_metric", "add_route", "delete_route"}
ENTRIES = 9  # relay route; MTU, metric, router trust and DNS for both families
PARTY_DNS = ip_address("198.19.0.1")
PARTY_DNS_V6 = ip_address("fd19::1")


@pytest.fixture
def net() -> WindowsFakeHostNetwork:
    net = WindowsFakeHostNetwork()
    net.add_interface(ETH, metric=None, automatic_metric=25)
    net.add_interface(TAP, metric=None, automatic_metric=35)
    net.routes += [
        ETH_DEFAULT,
        Route(ip_network("198.18.0.0/24"), None, ETH, 256),
        ETH_DEFAULT_V6,
        # Windows puts the limited broadcast on every interface, with the same route metric
        Route(ip_network("255.255.255.255/32"), None, ETH, 256),
        Route(ip_network("255.255.255.255/32"), None, TAP, 256),
    ]
    return net


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.json")


def guards(
    net: WindowsFakeHostNetwork, journal: Journal, *, mtu: int = ROOM_MTU, party_dns: bool = False
) -> AbstractAsyncContextManager[ClientGuards]:
    return apply_guards(
        net,
        journal,
        tap_index=TAP,
        tap_mtu=mtu,
        tap_metric=TAP_METRIC,
        relay_address=RELAY,
        party_dns=party_dns,
    )


def changes(calls: list[Call]) -> list[Call]:
    return [call for call in calls if call.method in MUTATING]


async def test_everything_is_applied_then_restored_in_reverse_order(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    async with guards(net, journal):
        assert net.interfaces[TAP].mtu == {Family.IPV4: ROOM_MTU, Family.IPV6: ROOM_MTU}
        assert net.interfaces[TAP].metric == {Family.IPV4: TAP_METRIC, Family.IPV6: TAP_METRIC}
        assert RELAY_ROUTE in net.routes
        applied = changes(net.calls)
        mark = len(net.calls)
    restored = changes(net.calls[mark:])

    assert applied == [
        Call("add_route", (RELAY_ROUTE,)),
        Call("set_mtu", (TAP, Family.IPV4, ROOM_MTU)),
        Call("set_mtu", (TAP, Family.IPV6, ROOM_MTU)),
        Call("set_metric", (TAP, Family.IPV4, TAP_METRIC)),
        Call("set_metric", (TAP, Family.IPV6, TAP_METRIC)),
    ]
    assert restored == [
        Call("set_metric", (TAP, Family.IPV6, None)),  # back to UseAutomaticMetric
        Call("set_metric", (TAP, Family.IPV4, None)),
        Call("set_mtu", (TAP, Family.IPV6, 1500)),
        Call("set_mtu", (TAP, Family.IPV4, 1500)),
        Call("delete_route", (RELAY_ROUTE,)),
    ]
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_ipv6_unbound_from_the_tap_is_tolerated(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    net.without_ipv6.add(TAP)
    before = net.snapshot()
    async with guards(net, journal):
        assert net.interfaces[TAP].mtu[Family.IPV4] == ROOM_MTU
        assert net.interfaces[TAP].metric[Family.IPV4] == TAP_METRIC
        assert [entry.undo for entry in journal.pending()][1:] == [
            RestoreMtu(TAP, Family.IPV4, 1500),
            RestoreMetric(TAP, Family.IPV4, None),
            RestoreRouterTrust(TAP, Family.IPV4, WINDOWS_DEFAULT_TRUST),
            RestoreDns(TAP, Family.IPV4, InterfaceDns(None, DnsRegistration.PRIMARY)),
        ]
    assert not any(call.args[1:2] == (Family.IPV6,) for call in changes(net.calls))
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_an_ipv6_mtu_windows_refuses_is_tolerated(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    async with guards(net, journal, mtu=1200):  # under IPv6's minimum of 1280
        assert net.interfaces[TAP].mtu == {Family.IPV4: 1200, Family.IPV6: 1500}
        assert Call("set_mtu", (TAP, Family.IPV6, 1200)) in net.calls
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_an_ipv4_mtu_failure_is_fatal_and_the_relay_route_goes(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    net.refuse("set_mtu", routes.ERROR_ACCESS_DENIED)
    with pytest.raises(HostNetworkError, match=r"\(IPv4\).*ERROR_ACCESS_DENIED.*administrator"):
        async with guards(net, journal):
            pytest.fail("the guards should not have been entered")
    assert changes(net.calls) == [
        Call("add_route", (RELAY_ROUTE,)),
        Call("set_mtu", (TAP, Family.IPV4, ROOM_MTU)),
        Call("delete_route", (RELAY_ROUTE,)),
    ]
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_not_elevated_nothing_is_changed(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    net.elevated = False
    with pytest.raises(HostNetworkError, match=r"add the route 198\.18\.5\.9/32.*administrator"):
        async with guards(net, journal):
            pytest.fail("the guards should not have been entered")
    assert changes(net.calls) == [Call("add_route", (RELAY_ROUTE,))]
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_a_cancellation_restores_everything(
    net: WindowsFakeHostNetwork, journal: Journal, autojump_clock: trio.testing.MockClock
) -> None:
    before = net.snapshot()
    async with trio.open_nursery() as nursery:

        async def run_client() -> None:
            async with guards(net, journal):
                await trio.sleep_forever()

        nursery.start_soon(run_client)
        await trio.sleep(1)
        assert RELAY_ROUTE in net.routes
        assert net.snapshot() != before
        nursery.cancel_scope.cancel()
    assert net.snapshot() == before
    assert journal.pending() == []


async def crash_inside(
    net: WindowsFakeHostNetwork, journal: Journal
) -> tuple[WindowsFakeHostNetwork, Path]:
    """The host and journal file as a process killed inside the guards leaves them."""
    async with guards(net, journal):
        crashed = copy.deepcopy(net)
        crashed_journal = journal.path.with_name("crashed.json")
        shutil.copyfile(journal.path, crashed_journal)
    return crashed, crashed_journal


async def test_a_crash_is_put_back_by_the_next_run(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    crashed, crashed_journal = await crash_inside(net, journal)
    assert crashed.interfaces[TAP].metric == {Family.IPV4: TAP_METRIC, Family.IPV6: TAP_METRIC}

    crashed.calls.clear()
    assert await restore_pending(Journal(crashed_journal), crashed) == ENTRIES
    assert crashed.snapshot() == before
    assert crashed.interfaces[TAP].metric == {Family.IPV4: None, Family.IPV6: None}
    assert [call.method for call in changes(crashed.calls)] == [
        *("set_metric", "set_metric", "set_mtu", "set_mtu", "delete_route"),
    ]
    assert not crashed_journal.exists()


async def test_a_crash_then_ipv6_unbound_does_not_block_the_next_run(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    crashed, crashed_journal = await crash_inside(net, journal)
    crashed.without_ipv6.add(TAP)  # the player unticked IPv6 on the adapter meanwhile
    assert await restore_pending(Journal(crashed_journal), crashed) == ENTRIES
    expected = net.snapshot()
    assert crashed.snapshot().routes == expected.routes
    assert crashed.interfaces[TAP].mtu[Family.IPV4] == 1500
    assert crashed.interfaces[TAP].metric[Family.IPV4] is None
    assert not crashed_journal.exists()


async def test_a_crash_then_the_adapter_removed(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    crashed, crashed_journal = await crash_inside(net, journal)
    crashed.remove_interface(TAP)
    with pytest.raises(InterfaceNotFoundError):
        await crashed.get_mtu(TAP, Family.IPV4)
    assert await restore_pending(Journal(crashed_journal), crashed) == ENTRIES
    net.remove_interface(TAP)
    assert crashed.snapshot() == net.snapshot()


async def test_the_next_run_restores_before_it_changes_anything(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    crashed, crashed_journal = await crash_inside(net, journal)
    crashed.calls.clear()
    async with guards(crashed, Journal(crashed_journal)):
        assert [call.method for call in changes(crashed.calls)] == [
            *("set_metric", "set_metric", "set_mtu", "set_mtu", "delete_route"),
            *("add_route", "set_mtu", "set_mtu", "set_metric", "set_metric"),
        ]
        assert crashed.routes.count(RELAY_ROUTE) == 1
    assert crashed.snapshot() == before


async def test_the_watchdog_repairs_a_deleted_relay_route(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    async with guards(net, journal) as client_guards:
        relay_route = client_guards.relay_route
        net.routes += [TAP_DEFAULT, TAP_SUBNET]  # the party's DHCP server answered
        # the TAP's default route wins for everything else (metric 0 + 10 < 0 + 25) ...
        assert await net.best_route(ip_address("192.0.2.1")) == TAP_DEFAULT
        # ... but not for the relay: the pinned /32 wins by prefix length
        await relay_route.verify()

        net.routes.remove(RELAY_ROUTE)  # e.g. a network change flushed it
        with pytest.raises(HostNetworkError, match="would go through interface 12"):
            await relay_route.verify()
        assert not await relay_route.is_present()
        assert await relay_route.repair()
        await relay_route.verify()
        assert not await relay_route.repair()
        assert net.routes.count(RELAY_ROUTE) == 1
        assert len(journal.pending()) == ENTRIES  # the entry from the start still undoes it
        net.routes.remove(TAP_DEFAULT)
        net.routes.remove(TAP_SUBNET)
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_the_party_lan_gets_no_route_beyond_its_subnet(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    internet = ip_address("192.0.2.1")
    half = Route(ip_network("128.0.0.0/1"), ip_address("198.19.0.1"), TAP, 0)  # option 121
    async with guards(net, journal) as client_guards, trio.open_nursery() as nursery:
        nursery.start_soon(client_guards.tap_routes.run)
        assert net.interfaces[TAP].trust[Family.IPV4] == UNTRUSTING  # DisableDefaultRoutes
        net.addresses[TAP] = [ip_interface("198.19.0.57/16")]  # Windows' DHCP client
        for route in (TAP_SUBNET, TAP_DEFAULT, TAP_DEFAULT_V6, half):
            net.os_adds_route(route)
        assert TAP_DEFAULT not in net.routes  # DisableDefaultRoutes: never added
        assert TAP_DEFAULT_V6 not in net.routes
        await trio.testing.wait_all_tasks_blocked()
        assert client_guards.tap_routes.removed == [half]  # told by the OS, not polled
        assert await net.best_route(internet) == ETH_DEFAULT
        assert TAP_SUBNET in net.routes  # the party LAN stays reachable
        net.routes.remove(TAP_SUBNET)
        nursery.cancel_scope.cancel()
    assert half not in net.routes  # never put back
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_lan_broadcasts_go_through_the_tap_while_it_runs(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    """Games look for servers by broadcast on the lowest-metric interface."""
    assert (await net.best_route(BROADCAST)).interface_index == ETH  # 256 + 25 < 256 + 35
    async with guards(net, journal):
        assert (await net.best_route(BROADCAST)).interface_index == TAP  # 256 + 10
    assert (await net.best_route(BROADCAST)).interface_index == ETH


async def test_pinned_while_the_tap_is_disconnected_the_relay_route_stays_off_the_tap(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    """The order for Windows: pin the relay route while the TAP's media is disconnected
    (its routes inactive), connect the media, then check the pin (issue 13, item 2).

    A route left on the TAP (a static address's prefix, a persistent route) covers the
    relay: asked once the TAP is connected, the best route would be that one, and the
    pin would send the tunnel's own traffic into the tunnel.
    """
    leftover = Route(ip_network("198.18.5.0/24"), None, TAP, 0)
    net.routes.append(leftover)
    net.addresses[TAP] = [ip_interface("198.18.5.7/24")]  # its LAN: the route guard keeps it
    net.disconnected.add(TAP)  # open_adapter(..., connect_media=False)
    async with guards(net, journal) as applied:
        assert applied.relay_route.route == RELAY_ROUTE  # through Ethernet
        net.disconnected.discard(TAP)  # tap.connect_media()
        await applied.relay_route.verify()
        assert (await net.best_route(RELAY)).interface_index == ETH

    net.routes.remove(leftover)
    net.routes.append(Route(ip_network("198.18.5.9/32"), None, TAP, 0))  # a leftover host route
    net.disconnected.add(TAP)
    async with guards(net, journal) as applied:
        net.disconnected.discard(TAP)
        with pytest.raises(HostNetworkError, match="not the pinned route"):
            await applied.relay_route.verify()  # the TAP's route wins on metric: refuse to go on


async def test_pinned_after_the_media_connects_the_relay_route_goes_through_the_tap(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    """What the old order did: the leftover TAP route was the best route when pinning."""
    net.routes.append(Route(ip_network("198.18.5.0/24"), None, TAP, 0))
    async with guards(net, journal) as applied:
        assert applied.relay_route.route.interface_index == TAP


async def test_the_party_dns_servers_answer_no_lookup_while_it_runs(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    """Windows' DHCP client puts the party's DNS servers on the TAP; the TAP uses none."""
    net.dhcp_offers_dns(TAP, PARTY_DNS)  # a lease left from the last party
    before = net.snapshot()
    assert net.resolver_servers(TAP, Family.IPV4) == (PARTY_DNS,)
    async with guards(net, journal):
        net.dhcp_offers_dns(TAP, PARTY_DNS, PARTY_DNS_V6)  # this party's lease
        for family in Family:
            assert net.resolver_servers(TAP, family) == ()
        assert net.dns_registration[TAP] is DnsRegistration.NONE
        assert [
            entry.undo for entry in journal.pending() if isinstance(entry.undo, RestoreDns)
        ] == [
            RestoreDns(TAP, family, InterfaceDns(None, registration))
            for family, registration in (
                (Family.IPV4, DnsRegistration.PRIMARY),
                (Family.IPV6, DnsRegistration.NONE),  # one registration per interface
            )
        ]
        assert net.resolver_servers(ETH, Family.IPV4) == ()  # only the TAP's are touched
        assert [call.args[0] for call in net.calls if call.method == "set_dns"] == [TAP, TAP]
    assert net.resolver_servers(TAP, Family.IPV4) == (PARTY_DNS,)  # Windows' own again
    assert net.dns_registration[TAP] is DnsRegistration.PRIMARY
    net.dhcp_dns[TAP][Family.IPV6] = ()
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_with_use_party_dns_windows_keeps_the_party_dns_servers(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    net.dhcp_offers_dns(TAP, PARTY_DNS)
    async with guards(net, journal, party_dns=True):
        assert net.resolver_servers(TAP, Family.IPV4) == (PARTY_DNS,)
        assert not any(
            entry.undo for entry in journal.pending() if isinstance(entry.undo, RestoreDns)
        )
    assert "get_dns" not in net.methods_called()
    assert "set_dns" not in net.methods_called()


async def test_dns_servers_the_player_set_on_the_tap_come_back(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    own = (ip_address("192.0.2.53"), ip_address("198.51.100.53"))
    net.dns_servers[TAP][Family.IPV4] = own
    net.dns_registration[TAP] = DnsRegistration.BOTH
    before = net.snapshot()
    async with guards(net, journal):
        assert net.resolver_servers(TAP, Family.IPV4) == ()
        assert Call("set_dns", (TAP, Family.IPV4, NO_DNS)) in net.calls
    assert net.dns_servers[TAP][Family.IPV4] == own
    assert net.dns_registration[TAP] is DnsRegistration.BOTH
    assert net.snapshot() == before


async def test_an_ipv4_dns_failure_is_fatal_and_names_use_party_dns(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    net.refuse("set_dns", routes.ERROR_ACCESS_DENIED)
    with pytest.raises(HostNetworkError, match=r"requires elevation.*--use-party-dns"):
        async with guards(net, journal):
            pytest.fail("the guards should not have been entered")
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_an_ipv6_dns_failure_is_tolerated(
    net: WindowsFakeHostNetwork, journal: Journal
) -> None:
    net.fail("set_dns", family=Family.IPV6)
    net.dhcp_offers_dns(TAP, PARTY_DNS)
    async with guards(net, journal):
        assert net.resolver_servers(TAP, Family.IPV4) == ()
    assert net.resolver_servers(TAP, Family.IPV4) == (PARTY_DNS,)
    assert journal.pending() == []
