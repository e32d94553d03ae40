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
    ClientGuards,
    apply_guards,
    default_route_suppression,
    metric_guard,
    mtu_guard,
    relay_route_guard,
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
MUTATING = {"set_mtu", "set_metric", "add_route", "delete_route"}


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
        assert len(journal.pending()) == 5
        mark = len(net.calls)
    restored = changes(net.calls[mark:])

    assert applied == [
        Call("add_route", (RELAY_ROUTE,)),
        Call("set_mtu", (TAP, Family.IPV4, 1380)),
        Call("set_mtu", (TAP, Family.IPV6, 1380)),
        Call("set_metric", (TAP, Family.IPV4, 5)),
        Call("set_metric", (TAP, Family.IPV6, 5)),
    ]
    assert [(call.method, call.args[:2]) for call in restored] == [
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
    # five restores of one (virtual) second each all ran to the end
    assert trio.current_time() - cancelled_at == pytest.approx(5.0)
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

    assert await restore_pending(Journal(crashed_journal), crashed) == 5
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
        assert [call.method for call in changes(crashed.calls)[:6]] == [
            *("set_metric", "set_metric", "set_mtu", "set_mtu", "delete_route"),
            "add_route",
        ]
        assert crashed.routes.count(RELAY_ROUTE) == 1
    assert crashed.snapshot() == before


async def test_default_routes_through_the_tap_are_suppressed(
    net: FakeHostNetwork, journal: Journal
) -> None:
    wifi_default = Route(ip_network("0.0.0.0/0"), ip_address("198.18.1.1"), WIFI, 50)
    net.add_interface(WIFI)
    net.routes += [wifi_default, TAP_DEFAULT]
    async with default_route_suppression(net, TAP) as suppression:
        assert TAP_DEFAULT not in net.routes
        tap_subnet = Route(ip_network("198.19.0.0/16"), None, TAP, 0)
        net.routes += [TAP_DEFAULT_V6, tap_subnet]  # a DHCP client, later
        assert await suppression.check_once() == [TAP_DEFAULT_V6]
        assert await suppression.check_once() == []
        assert tap_subnet in net.routes
        assert {ETH_DEFAULT, ETH_DEFAULT_V6, wifi_default} <= set(net.routes)
        assert suppression.removed == [TAP_DEFAULT, TAP_DEFAULT_V6]
    assert TAP_DEFAULT not in net.routes
    assert TAP_DEFAULT_V6 not in net.routes
    assert "add_route" not in net.methods_called()
    assert await suppression.check_once() == []
    assert journal.pending() == []


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
