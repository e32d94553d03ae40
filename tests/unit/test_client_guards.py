"""The guards against the recording fake: every change is put back, on every exit path."""

from __future__ import annotations

import copy
import math
import shutil
from contextlib import AbstractAsyncContextManager
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
import trio
import trio.testing

from lanparty.client.guards import (
    RESTORE_TIMEOUT_S,
    UNTRUSTING,
    ClientGuards,
    apply_guards,
    metric_guard,
    mtu_guard,
    relay_route_guard,
    router_trust_guard,
    tap_route_guard,
)
from lanparty.client.hostnet import Family, Route
from lanparty.client.journal import Journal, RestoreMtu, restore_pending
from lanparty.errors import HostNetworkError
from tests.fakes.hostnet import Call, FakeHostNetwork

ETH, TAP, WIFI = 2, 7, 3
RELAY = ip_address("198.18.5.9")
ETH_GATEWAY = ip_address("198.18.0.1")
ETH_DEFAULT = Route(ip_network("0.0.0.0/0"), ETH_GATEWAY, ETH, 100)
ETH_DEFAULT_V6 = Route(ip_network("::/0"), ip_address("2001:db8::1"), ETH, 100)
RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ETH_GATEWAY, ETH, 0)
TAP_DEFAULT = Route(ip_network("0.0.0.0/0"), ip_address("198.19.0.1"), TAP, 0)
TAP_DEFAULT_V6 = Route(ip_network("::/0"), ip_address("fe80::1"), TAP, 0)
MUTATING = {"set_mtu", "set_metric", "set_router_trust", "add_route", "delete_route"}


@pytest.fixture
def net() -> FakeHostNetwork:
    net = FakeHostNetwork()
    net.add_interface(ETH, mtu=1500, metric=25)
    net.add_interface(TAP, mtu=1500, metric=None)
    net.routes += [
        ETH_DEFAULT,
        Route(ip_network("198.18.0.0/24"), None, ETH, 100),
        ETH_DEFAULT_V6,
    ]
    return net


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.json")


def guards(net: FakeHostNetwork, journal: Journal) -> AbstractAsyncContextManager[ClientGuards]:
    return apply_guards(
        net, journal, tap_index=TAP, tap_mtu=1380, tap_metric=5, relay_address=RELAY
    )


def changes(calls: list[Call]) -> list[Call]:
    return [call for call in calls if call.method in MUTATING]


def assert_all_applied(net: FakeHostNetwork) -> None:
    assert net.interfaces[TAP].mtu == {Family.IPV4: 1380, Family.IPV6: 1380}
    assert net.interfaces[TAP].metric == {Family.IPV4: 5, Family.IPV6: 5}
    assert RELAY_ROUTE in net.routes


async def test_every_guard_applies_and_restores_in_reverse_order(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    async with guards(net, journal):
        assert_all_applied(net)
        applied = changes(net.calls)
        assert len(journal.pending()) == 7
        mark = len(net.calls)
    restored = changes(net.calls[mark:])

    assert applied == [
        Call("add_route", (RELAY_ROUTE,)),
        Call("set_mtu", (TAP, Family.IPV4, 1380)),
        Call("set_mtu", (TAP, Family.IPV6, 1380)),
        Call("set_metric", (TAP, Family.IPV4, 5)),
        Call("set_metric", (TAP, Family.IPV6, 5)),
        Call("set_router_trust", (TAP, Family.IPV4, UNTRUSTING)),
        Call("set_router_trust", (TAP, Family.IPV6, UNTRUSTING)),
    ]
    assert [(call.method, call.args[:2]) for call in restored] == [
        ("set_router_trust", (TAP, Family.IPV6)),
        ("set_router_trust", (TAP, Family.IPV4)),
        ("set_metric", (TAP, Family.IPV6)),
        ("set_metric", (TAP, Family.IPV4)),
        ("set_mtu", (TAP, Family.IPV6)),
        ("set_mtu", (TAP, Family.IPV4)),
        ("delete_route", (RELAY_ROUTE,)),
    ]
    assert net.snapshot() == before
    assert journal.pending() == []
    assert not journal.path.exists()


async def test_an_exception_in_the_block_restores_everything(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    with pytest.raises(KeyError, match="boom"):
        async with guards(net, journal):
            raise KeyError("boom")
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_a_cancellation_in_the_block_restores_everything(
    net: FakeHostNetwork, journal: Journal, autojump_clock: trio.testing.MockClock
) -> None:
    before = net.snapshot()
    with trio.move_on_after(10) as scope:
        async with guards(net, journal):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_restores_are_shielded_from_the_cancellation_they_run_in(
    net: FakeHostNetwork, journal: Journal, autojump_clock: trio.testing.MockClock
) -> None:
    before = net.snapshot()
    async with trio.open_nursery() as nursery:

        async def run_client() -> None:
            async with guards(net, journal):
                for method in MUTATING:
                    net.delay_s[method] = 1.0
                await trio.sleep_forever()

        nursery.start_soon(run_client)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
        cancelled_at = trio.current_time()
    # seven restores of one (virtual) second each all ran to the end
    assert trio.current_time() - cancelled_at == pytest.approx(7.0)
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_a_cancellation_during_a_change_undoes_it(
    net: FakeHostNetwork, journal: Journal, autojump_clock: trio.testing.MockClock
) -> None:
    before = net.snapshot()
    net.delay_s["set_metric"] = 4.0  # the undo takes as long, within its deadline
    with trio.move_on_after(2):
        async with guards(net, journal):
            pytest.fail("the guards should not have been entered")
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_a_hanging_restore_is_abandoned_to_the_journal(
    net: FakeHostNetwork, journal: Journal, autojump_clock: trio.testing.MockClock
) -> None:
    before = net.snapshot()
    async with guards(net, journal):
        net.delay_s["set_mtu"] = math.inf
        started = trio.current_time()
    assert trio.current_time() - started == pytest.approx(2 * RESTORE_TIMEOUT_S)
    assert [entry.undo for entry in journal.pending()] == [
        RestoreMtu(TAP, Family.IPV4, 1500),
        RestoreMtu(TAP, Family.IPV6, 1500),
    ]
    assert net.snapshot() != before

    net.delay_s.clear()
    assert await restore_pending(Journal(journal.path), net) == 2
    assert net.snapshot() == before


async def test_a_failed_restore_stays_in_the_journal_and_masks_nothing(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    net.fail("set_mtu", family=Family.IPV4, skip=1, times=1)
    with pytest.raises(KeyError, match="boom"):
        async with guards(net, journal):
            raise KeyError("boom")
    assert len(journal.pending()) == 1
    assert net.interfaces[TAP].mtu[Family.IPV4] == 1380
    assert RELAY_ROUTE not in net.routes  # the later restores still ran

    await restore_pending(journal, net)
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_an_ipv6_mtu_failure_is_tolerated(net: FakeHostNetwork, journal: Journal) -> None:
    before = net.snapshot()
    net.fail("set_mtu", family=Family.IPV6)
    async with mtu_guard(net, journal, TAP, 1380):
        assert net.interfaces[TAP].mtu == {Family.IPV4: 1380, Family.IPV6: 1500}
        assert len(journal.pending()) == 1
    assert net.snapshot() == before
    assert changes(net.calls).count(Call("set_mtu", (TAP, Family.IPV6, 1500))) == 0
    assert journal.pending() == []


async def test_an_ipv4_mtu_failure_is_fatal_and_leaves_nothing_applied(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    net.fail("set_mtu", family=Family.IPV4)
    with pytest.raises(HostNetworkError, match="refused"):
        async with guards(net, journal):
            pytest.fail("the guards should not have been entered")
    assert Call("add_route", (RELAY_ROUTE,)) in net.calls
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_an_ipv4_metric_failure_undoes_the_mtu_and_relay_route(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    net.fail("set_metric", family=Family.IPV4)
    with pytest.raises(HostNetworkError):
        async with guards(net, journal):
            pytest.fail("the guards should not have been entered")
    assert Call("set_mtu", (TAP, Family.IPV4, 1500)) in net.calls
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_the_metric_guard_restores_automatic(net: FakeHostNetwork, journal: Journal) -> None:
    async with metric_guard(net, journal, ETH, None):
        assert net.interfaces[ETH].metric == {Family.IPV4: None, Family.IPV6: None}
    assert net.interfaces[ETH].metric == {Family.IPV4: 25, Family.IPV6: 25}


async def test_an_unchanged_value_is_neither_journaled_nor_set(
    net: FakeHostNetwork, journal: Journal
) -> None:
    async with mtu_guard(net, journal, TAP, 1500), metric_guard(net, journal, ETH, 25):
        assert journal.pending() == []
    assert changes(net.calls) == []


async def crash_inside(net: FakeHostNetwork, journal: Journal) -> tuple[FakeHostNetwork, Path]:
    """The host's state and journal file as a SIGKILL inside the guards would leave them."""
    async with guards(net, journal):
        crashed = copy.deepcopy(net)
        crashed_journal = journal.path.with_name("crashed.json")
        shutil.copyfile(journal.path, crashed_journal)
    return crashed, crashed_journal


async def test_a_crash_is_restored_on_the_next_start(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    crashed, crashed_journal = await crash_inside(net, journal)
    assert_all_applied(crashed)

    assert await restore_pending(Journal(crashed_journal), crashed) == 7
    assert crashed.snapshot() == before
    assert not crashed_journal.exists()


async def test_a_crash_is_restored_when_the_tap_went_away(
    net: FakeHostNetwork, journal: Journal
) -> None:
    crashed, crashed_journal = await crash_inside(net, journal)
    crashed.remove_interface(TAP)
    net.remove_interface(TAP)
    await restore_pending(Journal(crashed_journal), crashed)
    assert crashed.snapshot() == net.snapshot()


async def test_apply_guards_restores_a_crash_before_changing_anything(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    crashed, crashed_journal = await crash_inside(net, journal)
    crashed.calls.clear()
    async with guards(crashed, Journal(crashed_journal)):
        assert_all_applied(crashed)
        assert [call.method for call in changes(crashed.calls)[:8]] == [
            *("set_router_trust", "set_router_trust", "set_metric", "set_metric"),
            *("set_mtu", "set_mtu", "delete_route"),
            "add_route",
        ]
        assert crashed.routes.count(RELAY_ROUTE) == 1
    assert crashed.snapshot() == before


async def test_routes_through_the_tap_beyond_the_lan_are_removed_when_they_appear(
    net: FakeHostNetwork, journal: Journal
) -> None:
    wifi_default = Route(ip_network("0.0.0.0/0"), ip_address("198.18.1.1"), WIFI, 50)
    net.add_interface(WIFI)
    net.routes += [wifi_default, TAP_DEFAULT]
    lan_router = ip_address("198.19.0.1")
    half_low = Route(ip_network("0.0.0.0/1"), lan_router, TAP, 0)
    half_high = Route(ip_network("128.0.0.0/1"), lan_router, TAP, 0)
    tap_subnet = Route(ip_network("198.19.0.0/16"), None, TAP, 0)
    inside = Route(ip_network("198.19.7.0/24"), lan_router, TAP, 0)
    link_local = Route(ip_network("fe80::/64"), None, TAP, 256)
    async with trio.open_nursery() as nursery, tap_route_guard(net, TAP) as guard:
        assert TAP_DEFAULT not in net.routes  # the sweep at the start
        nursery.start_soon(guard.run)
        net.networks[TAP] = [ip_network("198.19.0.0/16")]  # the lease's address
        for route in (tap_subnet, link_local, half_low, half_high, inside, TAP_DEFAULT_V6):
            net.os_adds_route(route)  # a DHCP client, option 121, a router advertisement
        await trio.testing.wait_all_tasks_blocked()
        assert guard.removed == [TAP_DEFAULT, half_low, half_high, TAP_DEFAULT_V6]
        assert {tap_subnet, link_local, inside, ETH_DEFAULT, ETH_DEFAULT_V6, wifi_default} <= set(
            net.routes
        )
        net.os_adds_route(Route(ip_network("10.0.0.0/8"), lan_router, WIFI, 0))
        await trio.testing.wait_all_tasks_blocked()
        assert len(guard.removed) == 4  # not through the TAP: not the guard's business
        nursery.cancel_scope.cancel()
    assert "add_route" not in net.methods_called()
    assert journal.pending() == []
    assert net.watches == []


async def test_routes_the_os_did_not_report_are_found_by_a_sweep(net: FakeHostNetwork) -> None:
    async with trio.open_nursery() as nursery, tap_route_guard(net, TAP) as guard:
        nursery.start_soon(guard.run)
        net.routes.append(TAP_DEFAULT)  # the event queue overflowed: nobody was told
        net.os_loses_route_events()
        await trio.testing.wait_all_tasks_blocked()
        assert guard.removed == [TAP_DEFAULT]
        nursery.cancel_scope.cancel()


async def test_the_tap_takes_nothing_from_routers_until_the_end(
    net: FakeHostNetwork, journal: Journal
) -> None:
    before = net.snapshot()
    async with router_trust_guard(net, journal, TAP):
        assert net.interfaces[TAP].trust == dict.fromkeys(Family, UNTRUSTING)
        assert [type(entry.undo).__name__ for entry in journal.pending()] == [
            "RestoreRouterTrust",
            "RestoreRouterTrust",
        ]
    assert net.snapshot() == before
    assert journal.pending() == []


async def test_router_trust_failures_are_tolerated(net: FakeHostNetwork, journal: Journal) -> None:
    net.fail("set_router_trust")
    async with router_trust_guard(net, journal, TAP):
        assert journal.pending() == []
    assert journal.pending() == []


async def test_a_crashed_tap_whose_index_another_interface_took_is_left_alone(
    net: FakeHostNetwork, journal: Journal
) -> None:
    net.names.update({ETH: "eth0", TAP: "lp0"})
    crashed = copy.deepcopy(net)
    async with guards(crashed, journal):
        snapshot = shutil.copy(journal.path, journal.path.with_name("crash.json"))
    # after the crash: the TAP went with its process, and a new interface has its index
    net.remove_interface(TAP)
    net.add_interface(TAP, mtu=9000)
    net.names[TAP] = "docker0"
    net.routes.append(RELAY_ROUTE)
    after_crash = Journal(Path(snapshot))
    await restore_pending(after_crash, net)
    assert net.interfaces[TAP].mtu == dict.fromkeys(Family, 9000)  # not "restored" to 1500
    assert RELAY_ROUTE not in net.routes  # eth0 is still eth0
    assert after_crash.pending() == []


async def test_the_relay_route_is_pinned_repaired_and_removed(
    net: FakeHostNetwork, journal: Journal
) -> None:
    async with relay_route_guard(net, journal, RELAY) as relay_route:
        assert relay_route.route == RELAY_ROUTE
        assert RELAY_ROUTE in net.routes
        # the TAP comes up with routes that would otherwise take the relay's traffic
        net.routes += [TAP_DEFAULT, Route(ip_network("198.18.0.0/15"), None, TAP, 0)]
        await relay_route.verify()

        assert not await relay_route.repair()
        net.routes.remove(RELAY_ROUTE)
        with pytest.raises(HostNetworkError, match=r"interface 7 .*not the pinned route"):
            await relay_route.verify()
        assert await relay_route.repair()
        await relay_route.verify()
        assert net.routes.count(RELAY_ROUTE) == 1
        assert len(journal.pending()) == 1
    assert RELAY_ROUTE not in net.routes
    assert journal.pending() == []


async def test_the_relay_route_is_pinned_from_the_answer_given_before_the_tap(
    net: FakeHostNetwork, journal: Journal
) -> None:
    """What the host answered before the TAP existed is pinned, even if a TAP route wins now."""
    before_tap = await net.best_route(RELAY)
    net.routes.append(Route(ip_network("198.18.5.0/24"), None, TAP, 0))  # the TAP's, leftover
    net.calls.clear()
    async with relay_route_guard(net, journal, RELAY, before_tap) as relay_route:
        assert relay_route.route == RELAY_ROUTE
        await relay_route.verify()
    assert net.methods_called()[:2] == ["list_routes", "add_route"]  # not asked again
    async with guards(net, journal) as applied:  # asked now: the TAP's route would be pinned
        assert applied.relay_route.route.interface_index == TAP


async def test_a_relay_route_that_was_already_there_is_left_alone(
    net: FakeHostNetwork, journal: Journal
) -> None:
    net.routes.append(RELAY_ROUTE)
    async with relay_route_guard(net, journal, RELAY):
        assert journal.pending() == []
    assert RELAY_ROUTE in net.routes
    assert "add_route" not in net.methods_called()


async def test_the_ipv6_relay_route_uses_the_ipv6_next_hop(
    net: FakeHostNetwork, journal: Journal
) -> None:
    relay = ip_address("2001:db8:5::9")
    async with relay_route_guard(net, journal, relay) as relay_route:
        assert relay_route.route == Route(
            ip_network("2001:db8:5::9/128"), ETH_DEFAULT_V6.gateway, ETH, 0
        )
        await relay_route.verify()
    assert net.routes == [
        ETH_DEFAULT,
        Route(ip_network("198.18.0.0/24"), None, ETH, 100),
        ETH_DEFAULT_V6,
    ]
