"""The iphlpapi declarations (x64 layouts of windows-facts 2.2) and wrappers (on a fake DLL)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from ipaddress import ip_address, ip_interface, ip_network
from types import ModuleType

import pytest

from lanparty.client.hostnet import Family, InterfaceNotFoundError, Route, RouteNotFoundError
from lanparty.client.windows import _decl_iphlpapi
from lanparty.client.windows._decl_iphlpapi import ffi
from lanparty.errors import HostNetworkError
from tests.fakes.windows_hostnet import (
    QUIRKY_IPV4_SITE_PREFIX_LENGTH,
    FakeIphlpapi,
    WindowsFakeHostNetwork,
    luid_of,
    windows_only_modules,
)

ETH, TAP = 3, 12
TAP_GUID = uuid.UUID("{6A2E3F4B-1C2D-4E5F-8A9B-0C1D2E3F4A5B}")
ETH_DEFAULT = Route(ip_network("0.0.0.0/0"), ip_address("198.18.0.1"), ETH, 0)
RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ip_address("198.18.0.1"), ETH, 0)

# windows-facts 2.2: (type, size, {field: offset})
LAYOUTS = [
    ("NET_LUID", 8, {"Value": 0}),
    ("SOCKADDR_IN", 16, {"sin_family": 0, "sin_port": 2, "sin_addr": 4, "sin_zero": 8}),
    (
        "SOCKADDR_IN6",
        28,
        {"sin6_family": 0, "sin6_port": 2, "sin6_flowinfo": 4, "sin6_addr": 8, "sin6_scope_id": 24},
    ),
    ("SOCKADDR_INET", 28, {"Ipv4": 0, "Ipv6": 0, "si_family": 0}),
    ("IP_ADDRESS_PREFIX", 32, {"Prefix": 0, "PrefixLength": 28}),
    (
        "MIB_IPFORWARD_ROW2",
        104,
        {
            "InterfaceLuid": 0,
            "InterfaceIndex": 8,
            "DestinationPrefix": 12,
            "NextHop": 44,
            "SitePrefixLength": 72,
            "ValidLifetime": 76,
            "PreferredLifetime": 80,
            "Metric": 84,
            "Protocol": 88,
            "Loopback": 92,
            "AutoconfigureAddress": 93,
            "Publish": 94,
            "Immortal": 95,
            "Age": 96,
            "Origin": 100,
        },
    ),
    ("MIB_IPFORWARD_TABLE2", 112, {"NumEntries": 0, "Table": 8}),
    (
        "MIB_IPINTERFACE_ROW",
        168,
        {
            "Family": 0,
            "InterfaceLuid": 8,
            "InterfaceIndex": 16,
            "MaxReassemblySize": 20,
            "InterfaceIdentifier": 24,
            "MinRouterAdvertisementInterval": 32,
            "MaxRouterAdvertisementInterval": 36,
            "AdvertisingEnabled": 40,
            "ForwardingEnabled": 41,
            "WeakHostSend": 42,
            "WeakHostReceive": 43,
            "UseAutomaticMetric": 44,
            "UseNeighborUnreachabilityDetection": 45,
            "ManagedAddressConfigurationSupported": 46,
            "OtherStatefulConfigurationSupported": 47,
            "AdvertiseDefaultRoute": 48,
            "RouterDiscoveryBehavior": 52,
            "DadTransmits": 56,
            "BaseReachableTime": 60,
            "RetransmitTime": 64,
            "PathMtuDiscoveryTimeout": 68,
            "LinkLocalAddressBehavior": 72,
            "LinkLocalAddressTimeout": 76,
            "ZoneIndices": 80,
            "SitePrefixLength": 144,
            "Metric": 148,
            "NlMtu": 152,
            "Connected": 156,
            "SupportsWakeUpPatterns": 157,
            "SupportsNeighborDiscovery": 158,
            "SupportsRouterDiscovery": 159,
            "ReachableTime": 160,
            "TransmitOffload": 164,
            "ReceiveOffload": 165,
            "DisableDefaultRoutes": 166,
        },
    ),
    (
        "MIB_UNICASTIPADDRESS_ROW",
        80,
        {
            "Address": 0,
            "InterfaceLuid": 32,
            "InterfaceIndex": 40,
            "PrefixOrigin": 44,
            "SuffixOrigin": 48,
            "ValidLifetime": 52,
            "PreferredLifetime": 56,
            "OnLinkPrefixLength": 60,
            "SkipAsSource": 61,
            "DadState": 64,
            "ScopeId": 68,
            "CreationTimeStamp": 72,
        },
    ),
    ("GUID", 16, {"Data1": 0, "Data2": 4, "Data3": 6, "Data4": 8}),
]


@pytest.mark.parametrize(("type_name", "size", "offsets"), LAYOUTS, ids=[t[0] for t in LAYOUTS])
def test_the_declarations_have_the_x64_layouts(
    type_name: str, size: int, offsets: dict[str, int]
) -> None:
    assert ffi.sizeof(type_name) == size
    assert {field: ffi.offsetof(type_name, field) for field in offsets} == offsets
    assert type_name in _decl_iphlpapi.STRUCTS


def test_alignments_and_the_table_row_offset() -> None:
    assert ffi.alignof("NET_LUID") == 8
    assert ffi.alignof("SOCKADDR_INET") == 4
    assert ffi.alignof("MIB_IPINTERFACE_ROW") == 8
    assert ffi.offsetof("MIB_UNICASTIPADDRESS_TABLE", "Table") == 8


def test_the_constants_are_the_windows_values() -> None:
    constants = _decl_iphlpapi.CONSTANTS
    assert (constants["AF_INET"], constants["AF_INET6"]) == (2, 23)
    assert constants["ERROR_NOT_FOUND"] == 1168
    assert constants["ERROR_OBJECT_ALREADY_EXISTS"] == 5010
    assert constants["MIB_IPPROTO_NETMGMT"] == 3
    assert set(_decl_iphlpapi.HEADERS) >= {"iphlpapi.h", "ws2ipdef.h"}


def test_importing_it_elsewhere_than_windows_is_a_clear_error() -> None:
    with pytest.raises(ImportError, match="is for Windows, not linux"):
        importlib.import_module("lanparty.client.windows.iphlpapi")


@pytest.fixture
def net() -> WindowsFakeHostNetwork:
    net = WindowsFakeHostNetwork()
    net.add_interface(ETH, metric=None, addresses=("198.18.0.7/24", "2001:db8::7/64"))
    net.add_interface(TAP, metric=None, automatic_metric=35, guid=TAP_GUID)
    net.routes += [ETH_DEFAULT, Route(ip_network("198.18.0.0/24"), None, ETH, 256)]
    return net


@pytest.fixture
def dll(net: WindowsFakeHostNetwork) -> FakeIphlpapi:
    return FakeIphlpapi(net)


@pytest.fixture
def iphlpapi(dll: FakeIphlpapi, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with windows_only_modules("lanparty.client.windows.iphlpapi") as (module,):
        monkeypatch.setattr(module, "library", lambda: dll)
        yield module
    assert dll.live_tables == 0, "a MIB table was not freed"


def test_interface_identities(iphlpapi: ModuleType) -> None:
    luid = iphlpapi.guid_to_luid(TAP_GUID)
    assert luid == luid_of(TAP)
    assert iphlpapi.luid_to_index(luid) == TAP
    assert iphlpapi.index_to_luid(TAP) == luid


def test_unknown_identities_are_interface_not_found(iphlpapi: ModuleType) -> None:
    with pytest.raises(InterfaceNotFoundError, match=r"\{00000000-.*ERROR_INVALID_PARAMETER"):
        iphlpapi.guid_to_luid(uuid.UUID(int=0))
    with pytest.raises(InterfaceNotFoundError, match="LUID 0x0006000063000000"):
        iphlpapi.luid_to_index(luid_of(99))
    with pytest.raises(InterfaceNotFoundError, match="index 99"):
        iphlpapi.index_to_luid(99)


def test_interface_ipv4(iphlpapi: ModuleType, net: WindowsFakeHostNetwork) -> None:
    assert iphlpapi.interface_ipv4(TAP) is None
    net.addresses[TAP].append(ip_interface("198.19.0.50/16"))
    net.tentative.add(ip_address("198.19.0.50"))
    assert iphlpapi.interface_ipv4(TAP) is None
    net.tentative.clear()
    assert iphlpapi.interface_ipv4(TAP) == "198.19.0.50"
    assert iphlpapi.interface_ipv4(ETH) == "198.18.0.7"


def test_reading_an_ip_interface(iphlpapi: ModuleType, net: WindowsFakeHostNetwork) -> None:
    settings = iphlpapi.get_ip_interface(TAP, Family.IPV4)
    assert (settings.interface_index, settings.interface_luid) == (TAP, luid_of(TAP))
    assert (settings.mtu, settings.metric, settings.automatic_metric) == (1500, 35, True)
    assert settings.configured_metric is None
    net.without_ipv6.add(TAP)
    with pytest.raises(InterfaceNotFoundError, match=r"\(IPv6\).*ERROR_NOT_FOUND"):
        iphlpapi.get_ip_interface(TAP, Family.IPV6)


def test_setting_the_mtu_zeroes_the_ipv4_site_prefix_length(
    iphlpapi: ModuleType, net: WindowsFakeHostNetwork, dll: FakeIphlpapi
) -> None:
    assert QUIRKY_IPV4_SITE_PREFIX_LENGTH > 32  # what the fake's Get returns, as Windows does
    iphlpapi.set_interface_mtu(TAP, Family.IPV4, 1380)
    iphlpapi.set_interface_mtu(TAP, Family.IPV6, 1380)
    assert net.interfaces[TAP].mtu == {Family.IPV4: 1380, Family.IPV6: 1380}
    assert net.interfaces[TAP].metric[Family.IPV4] is None  # untouched: still automatic
    assert dll.calls[:3] == [
        "InitializeIpInterfaceEntry",
        "GetIpInterfaceEntry",
        "SetIpInterfaceEntry",
    ]


def test_setting_the_metric_and_giving_it_back(
    iphlpapi: ModuleType, net: WindowsFakeHostNetwork
) -> None:
    iphlpapi.set_interface_metric(TAP, Family.IPV4, 10)
    assert net.interfaces[TAP].metric[Family.IPV4] == 10
    assert iphlpapi.get_ip_interface(TAP, Family.IPV4).configured_metric == 10
    iphlpapi.set_interface_metric(TAP, Family.IPV4, None)
    assert net.interfaces[TAP].metric[Family.IPV4] is None
    assert iphlpapi.get_ip_interface(TAP, Family.IPV4).metric == 35


def test_setting_fails_with_what_to_do(iphlpapi: ModuleType, net: WindowsFakeHostNetwork) -> None:
    with pytest.raises(HostNetworkError, match="IPv6 needs at least 1280"):
        iphlpapi.set_interface_mtu(TAP, Family.IPV6, 1200)
    net.elevated = False
    with pytest.raises(HostNetworkError, match=r"ERROR_ACCESS_DENIED.*as administrator"):
        iphlpapi.set_interface_metric(TAP, Family.IPV4, 10)
    with pytest.raises(InterfaceNotFoundError, match="ERROR_FILE_NOT_FOUND"):
        iphlpapi.set_interface_mtu(99, Family.IPV4, 1380)
    assert net.interfaces[TAP].mtu[Family.IPV6] == 1500


def test_the_forward_table_is_copied_then_freed(iphlpapi: ModuleType, dll: FakeIphlpapi) -> None:
    rows = iphlpapi.forward_table(Family.IPV4)
    assert [row.route for row in rows] == [
        ETH_DEFAULT,
        Route(ip_network("198.18.0.0/24"), None, ETH, 256),
    ]
    assert {row.interface_luid for row in rows} == {luid_of(ETH)}
    assert dll.calls == ["GetIpForwardTable2", "FreeMibTable"]
    assert iphlpapi.forward_table(Family.IPV6) == []


def test_creating_a_route_follows_the_recipe(
    iphlpapi: ModuleType, net: WindowsFakeHostNetwork, dll: FakeIphlpapi
) -> None:
    iphlpapi.create_route(RELAY_ROUTE)
    assert RELAY_ROUTE in net.routes
    assert dll.calls == ["InitializeIpForwardEntry", "CreateIpForwardEntry2"]
    created = ffi.new("MIB_IPFORWARD_ROW2 *")
    ffi.memmove(created, dll.created_rows[0], 104)
    assert (created.SitePrefixLength, created.Protocol, created.Metric) == (0, 3, 0)
    assert (created.ValidLifetime, created.PreferredLifetime) == (0xFFFFFFFF, 0xFFFFFFFF)
    with pytest.raises(HostNetworkError, match="ERROR_OBJECT_ALREADY_EXISTS"):
        iphlpapi.create_route(Route(RELAY_ROUTE.destination, RELAY_ROUTE.gateway, ETH, 5))


def test_deleting_gives_the_row_back(iphlpapi: ModuleType, net: WindowsFakeHostNetwork) -> None:
    iphlpapi.create_route(RELAY_ROUTE)
    (row,) = [row for row in iphlpapi.forward_table(Family.IPV4) if row.route == RELAY_ROUTE]
    iphlpapi.delete_route(row)
    assert RELAY_ROUTE not in net.routes
    with pytest.raises(RouteNotFoundError, match=r"no route 198\.18\.5\.9/32 via 198\.18\.0\.1"):
        iphlpapi.delete_route(row)


def test_the_best_route(iphlpapi: ModuleType, net: WindowsFakeHostNetwork) -> None:
    best = iphlpapi.best_route(ip_address("198.18.5.9"))
    assert best.route == ETH_DEFAULT
    assert (best.interface_luid, best.source) == (luid_of(ETH), ip_address("198.18.0.7"))
    with pytest.raises(HostNetworkError, match="connected to the internet"):
        iphlpapi.best_route(ip_address("2001:db8:5::9"))
    net.routes.append(Route(ip_network("::/0"), ip_address("fe80::1"), ETH, 0))
    assert iphlpapi.best_route(ip_address("2001:db8:5::9")).source == ip_address("2001:db8::7")
