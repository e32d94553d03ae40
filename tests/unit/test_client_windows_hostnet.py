"""``WindowsHostNetwork`` on a fake iphlpapi.dll, and the fake guard tests use, compared with it.

Interfaces are named by LUID, as the Windows back end names them (an index
changes when an adapter restarts; a LUID does not).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterator
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from lanparty.client.guards import UNTRUSTING, apply_guards
from lanparty.client.hostnet import (
    Family,
    HostNetwork,
    InterfaceNotFoundError,
    InterfaceUnavailableError,
    Route,
    RouteNotFoundError,
)
from lanparty.client.journal import (
    Journal,
    RestoreDns,
    RestoreMetric,
    RestoreMtu,
    restore_pending,
)
from lanparty.client.tap_dns import (
    NO_DNS,
    DnsRegistration,
    InterfaceDns,
    TapDnsHost,
    tap_dns_host,
)
from lanparty.errors import HostNetworkError
from tests.fakes.windows_hostnet import (
    FakeDnsRegistry,
    FakeIphlpapi,
    FakeNetsh,
    WindowsFakeHostNetwork,
    luid_of,
    windows_only_modules,
)

ETH_INDEX, TAP_INDEX = 3, 12
ETH, TAP = luid_of(ETH_INDEX), luid_of(TAP_INDEX)
RELAY = ip_address("198.18.5.9")
ETH_DEFAULT = Route(ip_network("0.0.0.0/0"), ip_address("198.18.0.1"), ETH, 0)
ETH_DEFAULT_V6 = Route(ip_network("::/0"), ip_address("fe80::1"), ETH, 0)
ETH_SUBNET = Route(ip_network("198.18.0.0/24"), None, ETH, 256)
RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ip_address("198.18.0.1"), ETH, 0)
RELAY_ROUTE_METRIC_5 = Route(RELAY_ROUTE.destination, RELAY_ROUTE.gateway, ETH, 5)
TAP_DEFAULT = Route(ip_network("0.0.0.0/0"), ip_address("198.19.0.1"), TAP, 0)
PARTY_DNS = ip_address("198.19.0.1")
STATIC_DNS = InterfaceDns((ip_address("192.0.2.53"), ip_address("198.51.100.53")))
DHCP_DNS = InterfaceDns(None, DnsRegistration.BOTH)


def netsh_arguments(line: str) -> list[str]:
    return line.split()


def dns_host(hostnet: HostNetwork) -> TapDnsHost:
    found = tap_dns_host(hostnet)
    assert found is not None
    return found


def host(*, tap_ipv6: bool = True) -> WindowsFakeHostNetwork:
    net = WindowsFakeHostNetwork()
    net.add_interface(ETH, metric=None, addresses=("198.18.0.7/24",))
    net.add_interface(TAP, metric=None, automatic_metric=35, ipv6=tap_ipv6)
    net.routes += [ETH_DEFAULT, ETH_SUBNET, ETH_DEFAULT_V6]
    return net


@pytest.fixture
def windows_hostnet_module() -> Iterator[ModuleType]:
    with windows_only_modules(
        "lanparty.client.windows.iphlpapi", "lanparty.client.windows.hostnet"
    ) as (_, module):
        yield module


def open_backend(module: ModuleType, net: WindowsFakeHostNetwork) -> tuple[Any, FakeIphlpapi]:
    """A ``WindowsHostNetwork`` whose iphlpapi.dll is a ``FakeIphlpapi`` over ``net``."""
    backend, dll, _, _ = open_backend_with_dns(module, net)
    return backend, dll


def open_backend_with_dns(
    module: ModuleType, net: WindowsFakeHostNetwork
) -> tuple[Any, FakeIphlpapi, FakeDnsRegistry, FakeNetsh]:
    """``open_backend``, and the registry and netsh of its DNS settings, fakes over ``net``."""
    dll = FakeIphlpapi(net)
    module.iphlpapi.library = lambda: dll
    registry, netsh = FakeDnsRegistry(net), FakeNetsh(net)
    return module.WindowsHostNetwork(registry=registry, netsh=netsh), dll, registry, netsh


def test_importing_it_elsewhere_than_windows_is_a_clear_error() -> None:
    with pytest.raises(ImportError, match="is for Windows, not linux"):
        importlib.import_module("lanparty.client.windows.hostnet")


async def test_mtu_and_metric(windows_hostnet_module: ModuleType) -> None:
    net = host()
    with open_backend(windows_hostnet_module, net)[0] as hostnet:
        assert await hostnet.get_mtu(TAP, Family.IPV4) == 1500
        await hostnet.set_mtu(TAP, Family.IPV6, 1380)
        assert net.interfaces[TAP].mtu == {Family.IPV4: 1500, Family.IPV6: 1380}
        assert await hostnet.get_metric(TAP, Family.IPV4) is None  # automatic
        await hostnet.set_metric(TAP, Family.IPV4, 10)
        assert await hostnet.get_metric(TAP, Family.IPV4) == 10
        await hostnet.set_metric(TAP, Family.IPV4, None)
        assert net.interfaces[TAP].metric == {Family.IPV4: None, Family.IPV6: None}


async def test_routes_are_known_by_all_four_fields(windows_hostnet_module: ModuleType) -> None:
    net = host()
    hostnet, dll = open_backend(windows_hostnet_module, net)
    assert await hostnet.list_routes(Family.IPV4) == [ETH_DEFAULT, ETH_SUBNET]
    await hostnet.add_route(RELAY_ROUTE)
    assert await hostnet.best_route(RELAY) == RELAY_ROUTE
    other_metric = Route(RELAY_ROUTE.destination, RELAY_ROUTE.gateway, ETH, 7)
    with pytest.raises(RouteNotFoundError):
        await hostnet.delete_route(other_metric)
    assert RELAY_ROUTE in net.routes
    await hostnet.delete_route(RELAY_ROUTE)
    assert RELAY_ROUTE not in net.routes
    assert dll.live_tables == 0


async def test_a_route_that_vanishes_between_list_and_delete_is_not_found(
    windows_hostnet_module: ModuleType,
) -> None:
    net = host()
    hostnet, dll = open_backend(windows_hostnet_module, net)
    deleted_meanwhile = dll.DeleteIpForwardEntry2

    def delete(row: Any) -> int:
        net.routes.remove(ETH_SUBNET)
        return deleted_meanwhile(row)

    dll.DeleteIpForwardEntry2 = delete
    with pytest.raises(
        RouteNotFoundError, match=r"198\.18\.0\.0/24 on-link on interface LUID 0x0006000003000000"
    ):
        await hostnet.delete_route(ETH_SUBNET)


Operation = Callable[[HostNetwork], Awaitable[object]]

OPERATIONS: list[tuple[str, Operation]] = [
    ("get IPv4 MTU", lambda h: h.get_mtu(TAP, Family.IPV4)),
    ("get IPv6 MTU", lambda h: h.get_mtu(TAP, Family.IPV6)),
    ("set IPv4 MTU", lambda h: h.set_mtu(TAP, Family.IPV4, 1380)),
    ("set IPv6 MTU", lambda h: h.set_mtu(TAP, Family.IPV6, 1380)),
    ("set IPv6 MTU 1200", lambda h: h.set_mtu(TAP, Family.IPV6, 1200)),
    ("set MTU, no such interface", lambda h: h.set_mtu(99, Family.IPV4, 1380)),
    ("set MTU, no interface of that LUID", lambda h: h.set_mtu(luid_of(99), Family.IPV4, 1380)),
    ("set the TAP's MTU by index", lambda h: h.set_mtu(TAP_INDEX, Family.IPV4, 1390)),
    ("get IPv4 metric", lambda h: h.get_metric(TAP, Family.IPV4)),
    ("set IPv4 metric", lambda h: h.set_metric(TAP, Family.IPV4, 10)),
    ("set IPv6 metric", lambda h: h.set_metric(TAP, Family.IPV6, 10)),
    ("get IPv6 metric", lambda h: h.get_metric(TAP, Family.IPV6)),
    ("automatic IPv4 metric", lambda h: h.set_metric(TAP, Family.IPV4, None)),
    ("list IPv4 routes", lambda h: h.list_routes(Family.IPV4)),
    ("add the relay route", lambda h: h.add_route(RELAY_ROUTE)),
    ("add it again", lambda h: h.add_route(RELAY_ROUTE)),
    ("add it with another metric", lambda h: h.add_route(RELAY_ROUTE_METRIC_5)),
    ("add through no interface", lambda h: h.add_route(Route(ip_network("10.9.0.0/16"), None, 99))),
    ("best route to the relay", lambda h: h.best_route(RELAY)),
    ("add a TAP default route", lambda h: h.add_route(TAP_DEFAULT)),
    ("best route to the internet", lambda h: h.best_route(ip_address("192.0.2.1"))),
    ("lower the TAP metric", lambda h: h.set_metric(TAP, Family.IPV4, 5)),
    ("best route now: the TAP's", lambda h: h.best_route(ip_address("192.0.2.1"))),
    ("delete the TAP default route", lambda h: h.delete_route(TAP_DEFAULT)),
    ("delete it again", lambda h: h.delete_route(TAP_DEFAULT)),
    ("delete the relay route", lambda h: h.delete_route(RELAY_ROUTE)),
    ("delete the IPv6 default route", lambda h: h.delete_route(ETH_DEFAULT_V6)),
    ("best IPv6 route", lambda h: h.best_route(ip_address("2001:db8:5::9"))),
    ("get IPv4 DNS", lambda h: dns_host(h).get_dns(TAP, Family.IPV4)),
    ("no IPv4 DNS", lambda h: dns_host(h).set_dns(TAP, Family.IPV4, NO_DNS)),
    ("get IPv4 DNS again", lambda h: dns_host(h).get_dns(TAP, Family.IPV4)),
    ("no IPv6 DNS", lambda h: dns_host(h).set_dns(TAP, Family.IPV6, NO_DNS)),
    ("get IPv6 DNS", lambda h: dns_host(h).get_dns(TAP, Family.IPV6)),
    ("IPv4 DNS servers", lambda h: dns_host(h).set_dns(TAP, Family.IPV4, STATIC_DNS)),
    ("get them", lambda h: dns_host(h).get_dns(TAP, Family.IPV4)),
    ("IPv4 DNS by DHCP", lambda h: dns_host(h).set_dns(TAP, Family.IPV4, DHCP_DNS)),
    ("DNS by the TAP's index", lambda h: dns_host(h).set_dns(TAP_INDEX, Family.IPV4, NO_DNS)),
    ("DNS, no such interface", lambda h: dns_host(h).set_dns(luid_of(99), Family.IPV4, NO_DNS)),
    ("get DNS, no such interface", lambda h: dns_host(h).get_dns(99, Family.IPV4)),
]


async def outcome(operation: Operation, hostnet: HostNetwork) -> object:
    try:
        return await operation(hostnet)
    except HostNetworkError as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("elevated", [True, False])
@pytest.mark.parametrize("tap_ipv6", [True, False])
async def test_the_fake_the_guard_tests_use_behaves_as_the_back_end(
    windows_hostnet_module: ModuleType, elevated: bool, tap_ipv6: bool
) -> None:
    """Each operation, in turn, on both: same results, same errors, same host state after."""
    direct, behind_dll = host(tap_ipv6=tap_ipv6), host(tap_ipv6=tap_ipv6)
    direct.elevated = behind_dll.elevated = elevated
    backend, _ = open_backend(windows_hostnet_module, behind_dll)
    outcomes = []
    for name, operation in OPERATIONS:
        expected = await outcome(operation, direct)
        assert await outcome(operation, backend) == expected, name
        assert behind_dll.snapshot() == direct.snapshot(), name
        outcomes.append(expected)
    errors = [result for result in outcomes if isinstance(result, tuple)]
    if not elevated:
        assert any("ERROR_ACCESS_DENIED" in message for _, message in errors)
    if not tap_ipv6:
        assert isinstance(outcomes[1], tuple)
        assert outcomes[1][0] is InterfaceNotFoundError


async def test_the_guards_through_the_back_end_put_everything_back(
    windows_hostnet_module: ModuleType, tmp_path: Path
) -> None:
    """Through the fake DLL: DisableDefaultRoutes keeps the lease's default route out, and an
    option-121 half of the internet is removed as NotifyRouteChange2 tells of it."""
    net = host(tap_ipv6=False)
    net.dhcp_offers_dns(TAP, PARTY_DNS)
    before = net.snapshot()
    hostnet, dll, _, netsh = open_backend_with_dns(windows_hostnet_module, net)
    journal = Journal(tmp_path / "journal.json")
    half = Route(ip_network("0.0.0.0/1"), ip_address("198.19.0.1"), TAP, 0)
    tap_subnet = Route(ip_network("198.19.0.0/16"), None, TAP, 256)
    async with (
        apply_guards(
            hostnet, journal, tap_index=TAP, tap_mtu=1380, tap_metric=10, relay_address=RELAY
        ) as guards,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(guards.tap_routes.run)
        assert net.interfaces[TAP].trust[Family.IPV4] == UNTRUSTING
        net.addresses[TAP] = [ip_interface("198.19.0.57/16")]  # Windows' DHCP client
        for route in (tap_subnet, TAP_DEFAULT, half):  # DHCP across the tunnel, option 121
            dll.notify_route(route)  # from Windows' thread
        assert TAP_DEFAULT not in net.routes  # DisableDefaultRoutes: Windows added none
        await trio.testing.wait_all_tasks_blocked()
        assert guards.tap_routes.removed == [half]
        assert tap_subnet in net.routes
        assert RELAY_ROUTE in net.routes
        assert net.interfaces[TAP].mtu[Family.IPV4] == 1380
        assert net.interfaces[TAP].metric[Family.IPV4] == 10
        assert net.resolver_servers(TAP, Family.IPV4) == ()  # not the party's DNS server
        # relay route, IPv4 MTU, metric, router trust and DNS: no IPv6 here
        assert len(journal.pending()) == 5
        assert netsh.commands == [
            netsh_arguments(
                "interface ipv4 set dnsservers name=12 source=static address=none register=none "
                "validate=no"
            )
        ]
        net.routes.remove(tap_subnet)
        nursery.cancel_scope.cancel()
    assert net.snapshot() == before
    assert net.resolver_servers(TAP, Family.IPV4) == (PARTY_DNS,)
    assert netsh.commands[1:] == [
        netsh_arguments("interface ipv4 set dnsservers name=12 source=dhcp register=primary")
    ]
    assert journal.pending() == []
    assert dll.live_tables == 0
    assert dll.route_callbacks == {}  # CancelMibChangeNotify2


async def test_routes_name_their_interface_by_luid_and_old_index_ones_still_go(
    windows_hostnet_module: ModuleType,
) -> None:
    net = host()
    hostnet, _ = open_backend(windows_hostnet_module, net)
    assert {route.interface_index for route in await hostnet.list_routes(Family.IPV4)} == {ETH}
    assert (await hostnet.best_route(RELAY)).interface_index == ETH
    await hostnet.add_route(RELAY_ROUTE)
    # A route an older lanparty journaled by interface index.
    await hostnet.delete_route(Route(RELAY_ROUTE.destination, RELAY_ROUTE.gateway, ETH_INDEX, 0))
    assert RELAY_ROUTE not in net.routes


def crashed_run(net: WindowsFakeHostNetwork, tmp_path: Path) -> Journal:
    """What a killed client left: the TAP's IPv4 MTU and metric changed, and journaled."""
    journal = Journal(tmp_path / "journal.json")
    journal.record(RestoreMtu(TAP, Family.IPV4, 1500))
    journal.record(RestoreMetric(TAP, Family.IPV4, None))
    net.interfaces[TAP].mtu[Family.IPV4] = 1380
    net.interfaces[TAP].metric[Family.IPV4] = 10
    return journal


async def test_after_the_tap_restarts_with_another_index_its_settings_are_restored(
    windows_hostnet_module: ModuleType, tmp_path: Path
) -> None:
    """A crash, then set-adapter-mac restarts the adapter: Windows gives it a new index."""
    net = host()
    before = net.snapshot()
    journal = crashed_run(net, tmp_path)
    net.if_index[TAP] = 40
    net.if_index[luid_of(7)] = TAP_INDEX  # and another adapter the old one
    net.add_interface(luid_of(7), mtu=9000, metric=5)
    hostnet, _ = open_backend(windows_hostnet_module, net)
    assert await restore_pending(Journal(journal.path), hostnet) == 2
    assert net.interfaces[TAP].mtu[Family.IPV4] == 1500
    assert net.interfaces[TAP].metric[Family.IPV4] is None
    assert net.interfaces[luid_of(7)].mtu[Family.IPV4] == 9000  # untouched
    del net.interfaces[luid_of(7)]
    assert net.snapshot() == before


@pytest.mark.parametrize("how", ["disabled", "absent"])
async def test_the_entries_of_a_tap_disabled_or_absent_wait_for_it(
    windows_hostnet_module: ModuleType, tmp_path: Path, how: str
) -> None:
    net = host()
    journal = crashed_run(net, tmp_path)
    away = net.interfaces.pop(TAP) if how == "absent" else None
    if how == "disabled":
        net.disabled.add(TAP)
    hostnet, _ = open_backend(windows_hostnet_module, net)
    with structlog.testing.capture_logs() as logs:
        assert await restore_pending(Journal(journal.path), hostnet) == 0  # the client starts
    assert len(Journal(journal.path).pending()) == 2
    said = [log["error"] for log in logs if log.get("pending")]
    assert len(said) == 2
    assert all("disabled or not there" in error and "Enable" in error for error in said)
    with pytest.raises(InterfaceUnavailableError):  # not InterfaceNotFoundError: not done
        await hostnet.set_mtu(TAP, Family.IPV4, 1500)
    if away is not None:
        net.interfaces[TAP] = away
    net.disabled.clear()
    assert await restore_pending(Journal(journal.path), hostnet) == 2
    assert net.interfaces[TAP].mtu[Family.IPV4] == 1500


async def test_a_family_unbound_from_a_present_tap_counts_as_restored(
    windows_hostnet_module: ModuleType, tmp_path: Path
) -> None:
    net = host(tap_ipv6=False)
    journal = Journal(tmp_path / "journal.json")
    journal.record(RestoreMtu(TAP, Family.IPV6, 1500))
    hostnet, _ = open_backend(windows_hostnet_module, net)
    assert await restore_pending(journal, hostnet) == 1
    assert journal.pending() == []


async def test_dns_settings_are_read_from_the_registry_and_set_with_netsh(
    windows_hostnet_module: ModuleType,
) -> None:
    net = host()
    tap_guid = net.guid_of(TAP)
    hostnet, dll, registry, netsh = open_backend_with_dns(windows_hostnet_module, net)
    assert await hostnet.get_dns(TAP, Family.IPV4) == InterfaceDns(None, DnsRegistration.PRIMARY)
    key = f"SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\\{{{tap_guid}}}"
    assert registry.reads == [
        (key, "NameServer"),
        (key, "RegistrationEnabled"),
        (key, "RegisterAdapterName"),
    ]
    assert "ConvertInterfaceLuidToGuid" in dll.calls
    await hostnet.set_dns(TAP, Family.IPV6, NO_DNS)
    await hostnet.set_dns(TAP, Family.IPV4, STATIC_DNS)
    assert netsh.commands == [
        netsh_arguments(
            "interface ipv6 set dnsservers name=12 source=static address=none register=none "
            "validate=no"
        ),
        netsh_arguments(
            "interface ipv4 set dnsservers name=12 source=static address=192.0.2.53 "
            "register=primary validate=no"
        ),
        netsh_arguments(
            "interface ipv4 add dnsservers name=12 address=198.51.100.53 index=2 validate=no"
        ),
    ]
    assert net.resolver_servers(TAP, Family.IPV4) == STATIC_DNS.servers
    assert await hostnet.get_dns(TAP, Family.IPV4) == STATIC_DNS


async def test_a_registry_value_that_is_no_address_list_is_an_error(
    windows_hostnet_module: ModuleType,
) -> None:
    net = host()
    hostnet, _, registry, _ = open_backend_with_dns(windows_hostnet_module, net)
    guid = net.guid_of(TAP)
    key = f"SYSTEM\\CurrentControlSet\\Services\\Tcpip6\\Parameters\\Interfaces\\{{{guid}}}"
    registry.values[key, "NameServer"] = "192.0.2.53"  # an IPv4 address in the IPv6 key
    with pytest.raises(HostNetworkError, match=r"Tcpip6.*NameServer is '192\.0\.2\.53'"):
        await hostnet.get_dns(TAP, Family.IPV6)
    registry.values[key, "NameServer"] = "fd19::1 fd19::2,fd19::3"
    got = await hostnet.get_dns(TAP, Family.IPV6)
    assert got.servers == tuple(ip_address(f"fd19::{n}") for n in (1, 2, 3))


async def test_a_failed_netsh_says_what_it_said(windows_hostnet_module: ModuleType) -> None:
    net = host()
    hostnet, _ = open_backend(windows_hostnet_module, net)
    net.elevated = False
    with pytest.raises(
        HostNetworkError,
        match=r"\(IPv4\): cannot set no DNS servers.*netsh interface ipv4 set dnsservers name=12 "
        r".*exit code 1: The requested operation requires elevation",
    ):
        await hostnet.set_dns(TAP, Family.IPV4, NO_DNS)


async def test_a_crash_leaves_the_tap_without_dns_until_the_next_start(
    windows_hostnet_module: ModuleType, tmp_path: Path
) -> None:
    net = host()
    net.dhcp_offers_dns(TAP, PARTY_DNS)
    journal = Journal(tmp_path / "journal.json")
    journal.record(RestoreDns(TAP, Family.IPV4, InterfaceDns(None)))
    net.dns_servers[TAP][Family.IPV4] = ()
    net.dns_registration[TAP] = DnsRegistration.NONE
    net.disabled.add(TAP)
    hostnet, _, _, netsh = open_backend_with_dns(windows_hostnet_module, net)
    assert await restore_pending(Journal(journal.path), hostnet) == 0  # disabled: it waits
    assert netsh.commands == []
    net.disabled.clear()
    assert await restore_pending(Journal(journal.path), hostnet) == 1
    assert net.resolver_servers(TAP, Family.IPV4) == (PARTY_DNS,)
    assert net.dns_registration[TAP] is DnsRegistration.PRIMARY
