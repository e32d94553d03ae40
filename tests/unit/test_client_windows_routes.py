"""IP Helper rows to and from lanparty's values, and Win32 errors to player messages."""

from __future__ import annotations

import uuid
from ipaddress import ip_address, ip_network

import pytest

from lanparty.client.hostnet import (
    Family,
    InterfaceNotFoundError,
    InterfaceUnavailableError,
    Route,
    RouteNotFoundError,
)
from lanparty.client.windows import routes
from lanparty.client.windows._decl_iphlpapi import ffi
from lanparty.errors import HostNetworkError

RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ip_address("198.18.0.1"), 12, 0)
ON_LINK_V6 = Route(ip_network("2001:db8:7::/64"), None, 12, 256)


def test_windows_address_families() -> None:
    assert routes.ADDRESS_FAMILY == {Family.IPV4: 2, Family.IPV6: 23}
    assert routes.family_of(23) is Family.IPV6
    with pytest.raises(ValueError, match="neither AF_INET nor AF_INET6"):
        routes.family_of(10)  # Linux's AF_INET6


@pytest.mark.parametrize("address", ["198.18.0.7", "0.0.0.0", "2001:db8::1", "fe80::1"])
def test_a_sockaddr_round_trips(address: str) -> None:
    sockaddr = ffi.new("SOCKADDR_INET *")
    routes.write_sockaddr(sockaddr, ip_address(address))
    assert routes.read_sockaddr(sockaddr) == ip_address(address)
    assert routes.read_sockaddr(sockaddr[0]) == ip_address(address)


def test_a_sockaddr_has_the_windows_bytes() -> None:
    sockaddr = ffi.new("SOCKADDR_INET *")
    sockaddr.Ipv6.sin6_scope_id = 99  # left over from an earlier use: cleared
    routes.write_sockaddr(sockaddr, ip_address("198.18.0.7"))
    assert bytes(ffi.buffer(sockaddr)) == bytes.fromhex("0200 0000 c6120007") + bytes(20)
    routes.write_sockaddr(sockaddr, ip_address("2001:db8::1"))
    assert bytes(ffi.buffer(sockaddr))[:8] == bytes.fromhex("1700 0000 00000000")
    assert bytes(ffi.buffer(sockaddr))[8:24] == ip_address("2001:db8::1").packed


def test_a_sockaddr_of_no_known_family_is_refused() -> None:
    with pytest.raises(ValueError, match="address family 0"):
        routes.read_sockaddr(ffi.new("SOCKADDR_INET *"))


def test_a_guid_is_stored_little_endian() -> None:
    value = uuid.UUID("{B4BFCC3A-DB2C-424C-B029-7FE99A87C641}")
    guid = ffi.new("GUID *")
    routes.write_guid(guid, value)
    assert (guid.Data1, guid.Data2, guid.Data3) == (0xB4BFCC3A, 0xDB2C, 0x424C)
    assert bytes(guid.Data4) == bytes.fromhex("b0297fe99a87c641")
    assert routes.read_guid(guid) == value


@pytest.mark.parametrize("route", [RELAY_ROUTE, ON_LINK_V6])
def test_a_new_route_row_follows_the_recipe_and_reads_back(route: Route) -> None:
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    row.SitePrefixLength, row.Protocol, row.ValidLifetime = 255, -1, 0xFFFFFFFF
    routes.fill_new_route(row, route)
    assert row.SitePrefixLength == 0
    assert row.Protocol == routes.MIB_IPPROTO_NETMGMT == 3
    assert row.ValidLifetime == 0xFFFFFFFF  # left as InitializeIpForwardEntry made it
    assert row.NextHop.si_family == routes.ADDRESS_FAMILY[route.family]
    assert routes.read_route(row) == route


def test_a_route_row_is_copied_whole() -> None:
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    routes.fill_new_route(row, RELAY_ROUTE)
    row.InterfaceLuid.Value = 0x0006000001000000
    copied = routes.read_route_row(row)
    assert copied.route == RELAY_ROUTE
    assert copied.interface_luid == 0x0006000001000000
    assert copied.protocol == 3
    assert len(copied.raw) == 104
    assert copied.raw == bytes(ffi.buffer(row))


LUID = 0x0006_0000_0C00_0000


def test_an_interface_is_a_luid_or_an_index() -> None:
    assert routes.is_luid(LUID)
    assert not routes.is_luid(12)
    assert not routes.is_luid(0xFFFF_FFFF)  # the largest index
    assert routes.describe_interface(12) == "interface 12"
    assert routes.describe_interface(LUID) == "interface LUID 0x000600000c000000"


def test_rows_name_their_interface_by_luid_when_given_one() -> None:
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    routes.fill_new_route(row, Route(RELAY_ROUTE.destination, RELAY_ROUTE.gateway, LUID, 0))
    assert (row.InterfaceLuid.Value, row.InterfaceIndex) == (LUID, 0)
    row.InterfaceIndex = 12  # what Windows fills in
    copied = routes.read_route_row(row)
    assert copied.route.interface_index == 12
    assert copied.route_by_luid.interface_index == LUID
    assert copied.is_route(copied.route)
    assert copied.is_route(copied.route_by_luid)
    interface = ffi.new("MIB_IPINTERFACE_ROW *")
    routes.address_interface(interface, LUID, Family.IPV4)
    assert (interface.InterfaceLuid.Value, interface.InterfaceIndex) == (LUID, 0)


def test_an_unavailable_interface_says_to_enable_it_and_is_not_interface_not_found() -> None:
    cause = routes.interface_error(2, LUID, Family.IPV4, "set the MTU to 1500")
    error = routes.interface_unavailable(LUID, Family.IPV4, "set the MTU to 1500", cause)
    assert isinstance(error, InterfaceUnavailableError)
    assert not isinstance(error, InterfaceNotFoundError)
    assert str(error).startswith(
        "interface LUID 0x000600000c000000 (IPv4): cannot set the MTU to 1500: its adapter is "
        "disabled or not there"
    )
    assert "> Enable" in str(error)
    assert "delete the journal" in str(error)


def test_an_on_link_next_hop_is_no_gateway_and_host_bits_are_masked() -> None:
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    routes.write_sockaddr(row.DestinationPrefix.Prefix, ip_address("198.19.3.4"))
    row.DestinationPrefix.PrefixLength = 16
    routes.write_sockaddr(row.NextHop, ip_address("0.0.0.0"))
    row.InterfaceIndex, row.Metric = 7, 256
    assert routes.read_route(row) == Route(ip_network("198.19.0.0/16"), None, 7, 256)


def test_a_next_hop_of_no_family_is_on_link_and_odd_rows_are_left_out() -> None:
    rows = ffi.new("MIB_IPFORWARD_ROW2[3]")
    routes.fill_new_route(ffi.addressof(rows, 0), RELAY_ROUTE)
    routes.fill_new_route(ffi.addressof(rows, 1), RELAY_ROUTE)
    rows[1].NextHop.si_family = 0
    routes.fill_new_route(ffi.addressof(rows, 2), RELAY_ROUTE)
    routes.write_sockaddr(rows[2].NextHop, ip_address("2001:db8::1"))  # IPv4 via IPv6
    read = routes.read_route_rows([ffi.addressof(rows, index) for index in range(3)])
    assert [row.route for row in read] == [
        RELAY_ROUTE,
        Route(RELAY_ROUTE.destination, None, RELAY_ROUTE.interface_index, 0),
    ]


def test_the_best_route_with_and_without_a_source() -> None:
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    routes.fill_new_route(row, RELAY_ROUTE)
    source = ffi.new("SOCKADDR_INET *")
    assert routes.read_best_route(row, source).source is None
    routes.write_sockaddr(source, ip_address("198.18.0.7"))
    best = routes.read_best_route(row, source)
    assert (best.route, best.source) == (RELAY_ROUTE, ip_address("198.18.0.7"))


def test_table_rows_follow_the_first_at_offset_8() -> None:
    memory = ffi.new("char[]", 8 + 3 * 104)
    table = ffi.cast("MIB_IPFORWARD_TABLE2 *", memory)
    table.NumEntries = 3
    rows = routes.table_rows(table, "MIB_IPFORWARD_ROW2")
    for index, row in enumerate(rows):
        row.InterfaceIndex = 100 + index
    assert len(rows) == 3
    for index in range(3):
        offset = 8 + index * 104 + 8  # InterfaceIndex is at 8 in a row
        assert int.from_bytes(ffi.buffer(memory)[offset : offset + 4], "little") == 100 + index


def test_interface_rows_are_keyed_read_and_changed() -> None:
    row = ffi.new("MIB_IPINTERFACE_ROW *")
    routes.address_interface(row, 12, Family.IPV6)
    assert (row.Family, row.InterfaceIndex) == (23, 12)
    row.NlMtu, row.Metric, row.UseAutomaticMetric, row.Connected = 1500, 35, 1, 1
    read = routes.read_ip_interface(row)
    assert (read.family, read.mtu, read.metric, read.configured_metric) == (
        Family.IPV6,
        1500,
        35,
        None,
    )
    routes.change_mtu(row, 1380)
    routes.change_metric(row, 10)
    assert (row.NlMtu, row.Metric, row.UseAutomaticMetric) == (1380, 10, 0)
    assert routes.read_ip_interface(row).configured_metric == 10
    routes.change_metric(row, None)
    assert (row.Metric, row.UseAutomaticMetric) == (10, 1)


@pytest.mark.parametrize(
    ("family", "site_prefix_length", "expected"),
    [(Family.IPV4, 64, 0), (Family.IPV4, 24, 0), (Family.IPV6, 200, 128), (Family.IPV6, 48, 48)],
)
def test_the_site_prefix_length_caveat(
    family: Family, site_prefix_length: int, expected: int
) -> None:
    row = ffi.new("MIB_IPINTERFACE_ROW *")
    routes.address_interface(row, 12, family)
    row.SitePrefixLength = site_prefix_length
    routes.prepare_for_set(row)
    assert row.SitePrefixLength == expected


def address_rows(entries: list[tuple[int, str, int]]) -> list[object]:
    rows = []
    for index, address, state in entries:
        row = ffi.new("MIB_UNICASTIPADDRESS_ROW *")
        routes.write_sockaddr(row.Address, ip_address(address))
        row.InterfaceIndex, row.DadState = index, state
        rows.append(row)
    return rows


def test_the_preferred_ipv4_address_of_an_interface() -> None:
    preferred, tentative = routes.IP_DAD_STATE_PREFERRED, 1
    assert routes.preferred_ipv4([], 7) is None
    rows = address_rows([(3, "198.18.0.7", preferred), (7, "198.19.0.50", tentative)])
    assert routes.preferred_ipv4(rows, 7) is None  # still being checked for duplicates
    rows += address_rows([(7, "169.254.9.9", preferred)])
    assert routes.preferred_ipv4(rows, 7) == "169.254.9.9"  # no DHCP answer yet
    rows += address_rows([(7, "198.19.0.51", preferred)])
    assert routes.preferred_ipv4(rows, 7) == "198.19.0.51"
    assert routes.preferred_ipv4(rows, 3) == "198.18.0.7"


def test_error_names() -> None:
    assert routes.error_name(5) == "ERROR_ACCESS_DENIED (5)"
    assert routes.error_name(1168) == "ERROR_NOT_FOUND (1168)"
    assert routes.error_name(4321) == "Win32 error 4321"


def test_access_denied_says_to_run_as_administrator() -> None:
    error = routes.set_mtu_error(routes.ERROR_ACCESS_DENIED, 12, Family.IPV4, 1380)
    assert type(error) is HostNetworkError
    assert str(error) == (
        "interface 12 (IPv4): cannot set the MTU to 1380: ERROR_ACCESS_DENIED (5); run "
        "lanparty-client as administrator: start it from the shortcut that "
        "`lanparty-client install-shortcut` makes, or right-click > Run as administrator"
    )


def test_a_missing_interface_or_family_is_interface_not_found() -> None:
    gone = routes.interface_error(routes.ERROR_FILE_NOT_FOUND, 12, Family.IPV4, "read it")
    assert isinstance(gone, InterfaceNotFoundError)
    assert "no interface has that index" in str(gone)
    no_ipv6 = routes.interface_error(routes.ERROR_NOT_FOUND, 12, Family.IPV6, "read it")
    assert isinstance(no_ipv6, InterfaceNotFoundError)
    assert str(no_ipv6).startswith("interface 12 (IPv6): cannot read it: ERROR_NOT_FOUND (1168)")
    assert '"Internet Protocol Version 6" unticked' in str(no_ipv6)


def test_an_ipv6_mtu_under_1280_says_why() -> None:
    error = routes.set_mtu_error(routes.ERROR_INVALID_PARAMETER, 12, Family.IPV6, 1200)
    assert "IPv6 needs at least 1280" in str(error)
    other = routes.set_mtu_error(routes.ERROR_INVALID_PARAMETER, 12, Family.IPV4, 1200)
    assert "Windows refused the values" in str(other)


def test_route_errors() -> None:
    exists = routes.add_route_error(routes.ERROR_OBJECT_ALREADY_EXISTS, RELAY_ROUTE)
    assert type(exists) is HostNetworkError
    assert str(exists).startswith(
        "cannot add the route 198.18.5.9/32 via 198.18.0.1 on interface 12: "
        "ERROR_OBJECT_ALREADY_EXISTS (5010), another route"
    )
    assert isinstance(
        routes.add_route_error(routes.ERROR_NOT_FOUND, RELAY_ROUTE), InterfaceNotFoundError
    )
    for code in (routes.ERROR_NOT_FOUND, routes.ERROR_FILE_NOT_FOUND):
        missing = routes.delete_route_error(code, ON_LINK_V6)
        assert isinstance(missing, RouteNotFoundError)
        assert (
            str(missing) == "no route 2001:db8:7::/64 on-link on interface 12 in the routing table"
        )
    assert "ERROR_ACCESS_DENIED" in str(routes.delete_route_error(5, ON_LINK_V6))
    assert not isinstance(routes.delete_route_error(5, ON_LINK_V6), RouteNotFoundError)


def test_no_route_and_unknown_identifiers() -> None:
    for code in (routes.ERROR_NOT_FOUND, routes.ERROR_NETWORK_UNREACHABLE):
        error = routes.best_route_error(code, ip_address("198.18.5.9"))
        assert "connected to the internet" in str(error)
    for code in (routes.ERROR_INVALID_PARAMETER, routes.ERROR_FILE_NOT_FOUND):
        assert isinstance(routes.identity_error(code, "no interface"), InterfaceNotFoundError)
    assert not isinstance(routes.identity_error(5, "no interface"), InterfaceNotFoundError)
    assert str(routes.win32_error(31, "cannot do it")) == "cannot do it: Win32 error 31"
