"""Between IP Helper's rows and lanparty's values: routes, interface settings, Win32 errors.

Pure translation, no DLL: this module imports on any OS. It fills and
reads the structs of ``_decl_iphlpapi`` (cffi's ``ffi.new`` needs no DLL),
so the unit tests run it on Linux; ``iphlpapi.py`` makes the calls.

- Rows are read through pointers (``MIB_IPFORWARD_ROW2 *`` and so on) and
  copied into Python values at once: table memory is freed right after
  (windows-facts 2.4, "copy each row ... then FreeMibTable").
- A route's ``metric`` is the row's own ``Metric``; Windows adds the
  interface metric to it when it chooses a route (windows-facts 2.3).
- Interfaces: the number ``HostNetwork`` calls an interface index is, on
  Windows, the interface's LUID (``NET_LUID.Value``): it is what the journal
  keeps, and a LUID stays the adapter's for good while Windows may give it
  another index when it restarts (Microsoft, "Mapping a NET_LUID value to an
  interface index"). A number below 2**32 is an index (a LUID's IfType, in
  its top 16 bits, is never 0), still accepted for what older journals hold.
- A next hop of 0.0.0.0 or :: means on-link: ``Route.gateway`` None. IPv6
  scope ids are dropped: the interface index already says which link.
- Errors: a Win32 code becomes a ``HostNetworkError`` (or the subclass the
  guards and the journal act on) whose message names the code and says
  what the player can do.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from typing import Any

import attrs

from lanparty.client.hostnet import (
    Family,
    InterfaceNotFoundError,
    InterfaceUnavailableError,
    IPAddress,
    IPNetwork,
    Route,
    RouteNotFoundError,
    RouterTrust,
)
from lanparty.client.journal import default_journal_path
from lanparty.client.windows._decl_iphlpapi import CONSTANTS, ffi
from lanparty.errors import HostNetworkError

AF_UNSPEC = CONSTANTS["AF_UNSPEC"]
AF_INET = CONSTANTS["AF_INET"]
AF_INET6 = CONSTANTS["AF_INET6"]
ADDRESS_FAMILY = {Family.IPV4: AF_INET, Family.IPV6: AF_INET6}
FAMILY_NAME = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}

NO_ERROR = CONSTANTS["NO_ERROR"]
ERROR_FILE_NOT_FOUND = CONSTANTS["ERROR_FILE_NOT_FOUND"]
ERROR_ACCESS_DENIED = CONSTANTS["ERROR_ACCESS_DENIED"]
ERROR_NOT_SUPPORTED = CONSTANTS["ERROR_NOT_SUPPORTED"]
ERROR_INVALID_PARAMETER = CONSTANTS["ERROR_INVALID_PARAMETER"]
ERROR_NOT_FOUND = CONSTANTS["ERROR_NOT_FOUND"]
ERROR_NETWORK_UNREACHABLE = CONSTANTS["ERROR_NETWORK_UNREACHABLE"]
ERROR_OBJECT_ALREADY_EXISTS = CONSTANTS["ERROR_OBJECT_ALREADY_EXISTS"]
MIB_IPPROTO_NETMGMT = CONSTANTS["MIB_IPPROTO_NETMGMT"]
IP_DAD_STATE_PREFERRED = CONSTANTS["IpDadStatePreferred"]
MIB_PARAMETER_NOTIFICATION = CONSTANTS["MibParameterNotification"]
MIB_ADD_INSTANCE = CONSTANTS["MibAddInstance"]
MIB_INITIAL_NOTIFICATION = CONSTANTS["MibInitialNotification"]

ERROR_NAMES = {code: name for name, code in CONSTANTS.items() if name.startswith("ERROR_")}

IPV6_MIN_MTU = 1280
"""The smallest MTU IPv6 allows (RFC 8200); Windows refuses a smaller NlMtu."""

_FIRST_LUID = 1 << 32

_RUN_AS_ADMINISTRATOR = (
    "run lanparty-client as administrator: start it from the shortcut that "
    "`lanparty-client install-shortcut` makes, or right-click > Run as administrator"
)
_LINK_LOCAL_IPV4 = ipaddress.IPv4Network("169.254.0.0/16")


# values


def is_luid(interface: int) -> bool:
    """Whether ``interface`` (see the module docstring) is a LUID rather than an index."""
    return interface >= _FIRST_LUID


def describe_interface(interface: int) -> str:
    """``interface 12`` or ``interface LUID 0x0006000001000000``."""
    return f"interface LUID {interface:#018x}" if is_luid(interface) else f"interface {interface}"


def by_luid(route: Route, interface_luid: int) -> Route:
    """``route`` with its interface named by LUID."""
    return attrs.evolve(route, interface_index=interface_luid)


@attrs.frozen
class RouteRow:
    """One row of the forwarding table, copied out of it."""

    route: Route
    """The route with its interface index, as the row has it (see ``route_by_luid``)."""
    interface_luid: int
    protocol: int
    raw: bytes
    """The whole row as the table had it: what ``DeleteIpForwardEntry2`` is given back
    (windows-facts 2.3, rows from GetIpForwardTable2 can be passed back as-is)."""

    @property
    def route_by_luid(self) -> Route:
        return by_luid(self.route, self.interface_luid)

    def is_route(self, route: Route) -> bool:
        """Whether this row is ``route``, its interface named by LUID or by index."""
        return route in (self.route, self.route_by_luid)


@attrs.frozen
class BestRoute:
    """What ``GetBestRoute2`` says about one destination."""

    route: Route
    interface_luid: int
    source: IPAddress | None
    """The address this PC would send from; None if Windows gave none."""


@attrs.frozen
class IpInterface:
    """One IP interface: an adapter's settings for one address family."""

    interface_index: int
    interface_luid: int
    family: Family
    mtu: int
    metric: int
    """The metric in force (Windows' own choice when ``automatic_metric``)."""
    automatic_metric: bool
    connected: bool
    router_trust: RouterTrust = attrs.field(factory=lambda: RouterTrust(0, default_routes=True))
    """``RouterDiscoveryBehavior`` and not ``DisableDefaultRoutes``."""

    @property
    def configured_metric(self) -> int | None:
        """The metric as ``HostNetwork`` has it: None when Windows chooses it."""
        return None if self.automatic_metric else self.metric


# addresses, GUIDs, LUIDs


def family_of(address_family: int) -> Family:
    """The ``Family`` of a Windows ``ADDRESS_FAMILY`` value (AF_INET6 is 23 there)."""
    for family, value in ADDRESS_FAMILY.items():
        if value == address_family:
            return family
    raise ValueError(f"address family {address_family} is neither AF_INET nor AF_INET6")


def read_sockaddr(sockaddr: Any) -> IPAddress:
    """The address in a ``SOCKADDR_INET`` (port, flow info and scope id dropped)."""
    family = family_of(sockaddr.si_family)
    if family is Family.IPV4:
        return ipaddress.IPv4Address(bytes(ffi.buffer(ffi.addressof(sockaddr.Ipv4.sin_addr))))
    return ipaddress.IPv6Address(bytes(ffi.buffer(ffi.addressof(sockaddr.Ipv6.sin6_addr))))


def write_sockaddr(sockaddr: Any, address: IPAddress) -> None:
    """Fill a ``SOCKADDR_INET`` with ``address`` (port 0, everything else zero)."""
    whole = ffi.sizeof("SOCKADDR_INET")  # the Ipv6 member spans the whole union
    ffi.memmove(ffi.addressof(sockaddr.Ipv6), bytes(whole), whole)
    sockaddr.si_family = ADDRESS_FAMILY[Family.of(address)]
    if address.version == 4:
        ffi.memmove(ffi.addressof(sockaddr.Ipv4.sin_addr), address.packed, 4)
    else:
        ffi.memmove(ffi.addressof(sockaddr.Ipv6.sin6_addr), address.packed, 16)


def unspecified(family: Family) -> IPAddress:
    """0.0.0.0 or ::, the next hop of an on-link route."""
    if family is Family.IPV4:
        return ipaddress.IPv4Address(0)
    return ipaddress.IPv6Address(0)


def write_guid(guid: Any, value: uuid.UUID) -> None:
    """Fill a ``GUID *`` (its first three fields are little-endian: ``bytes_le``)."""
    ffi.memmove(guid, value.bytes_le, 16)


def read_guid(guid: Any) -> uuid.UUID:
    return uuid.UUID(bytes_le=bytes(ffi.buffer(guid)))


def table_rows(table: Any, row_type: str) -> list[Any]:
    """Pointers to the ``NumEntries`` rows of a MIB table (``Table[1]`` in the declaration)."""
    first = ffi.cast(f"{row_type} *", table.Table)
    return [first + i for i in range(table.NumEntries)]


# the forwarding table


def read_route(row: Any) -> Route:
    """The ``Route`` of a ``MIB_IPFORWARD_ROW2 *``."""
    prefix = read_sockaddr(row.DestinationPrefix.Prefix)
    destination = ipaddress.ip_network((prefix, row.DestinationPrefix.PrefixLength), strict=False)
    gateway: IPAddress | None = None
    if row.NextHop.si_family != AF_UNSPEC:
        next_hop = read_sockaddr(row.NextHop)
        if next_hop.packed != bytes(len(next_hop.packed)):
            gateway = next_hop
    return Route(
        destination=destination,
        gateway=gateway,
        interface_index=int(row.InterfaceIndex),
        metric=int(row.Metric),
    )


def read_route_row(row: Any) -> RouteRow:
    """A ``MIB_IPFORWARD_ROW2 *`` copied into Python (the table can be freed after)."""
    return RouteRow(
        route=read_route(row),
        interface_luid=int(row.InterfaceLuid.Value),
        protocol=int(row.Protocol),
        raw=bytes(ffi.buffer(row)),
    )


def read_route_rows(rows: Iterable[Any]) -> list[RouteRow]:
    """The rows ``read_route_row`` can express as a ``Route``.

    Others (an address family we do not know, a next hop of the other
    family) are left out: the guards never touch them.
    """
    readable = []
    for row in rows:
        try:
            readable.append(read_route_row(row))
        except ValueError:
            continue
    return readable


def read_best_route(row: Any, source: Any) -> BestRoute:
    """``GetBestRoute2``'s answer: its ``MIB_IPFORWARD_ROW2 *`` and ``SOCKADDR_INET *``."""
    try:
        source_address: IPAddress | None = read_sockaddr(source)
    except ValueError:
        source_address = None
    return BestRoute(read_route(row), int(row.InterfaceLuid.Value), source_address)


def fill_new_route(row: Any, route: Route) -> None:
    """Fill an initialized ``MIB_IPFORWARD_ROW2 *`` so that creating it adds ``route``.

    ``InitializeIpForwardEntry`` comes first (lifetimes infinite); then, as
    in the relay-route recipe of windows-facts 2.4: the interface, the
    prefix, the next hop (0.0.0.0 or :: of the right family when on-link),
    SitePrefixLength 0, the metric and MIB_IPPROTO_NETMGMT.
    """
    _name_interface(row, route.interface_index)
    write_sockaddr(row.DestinationPrefix.Prefix, route.destination.network_address)
    row.DestinationPrefix.PrefixLength = route.destination.prefixlen
    write_sockaddr(row.NextHop, route.gateway or unspecified(route.family))
    row.SitePrefixLength = 0
    row.Metric = route.metric
    row.Protocol = MIB_IPPROTO_NETMGMT


def describe_route(route: Route) -> str:
    """``route`` as a player reads it: ``198.18.5.9/32 via 198.18.0.1 on interface 12``."""
    via = "on-link" if route.gateway is None else f"via {route.gateway}"
    return f"{route.destination} {via} on {describe_interface(route.interface_index)}"


def _name_interface(row: Any, interface: int) -> None:
    # A row names its interface by LUID or by index; Windows takes the LUID when set.
    if is_luid(interface):
        row.InterfaceLuid.Value = interface
    else:
        row.InterfaceIndex = interface


# IP interfaces


def address_interface(row: Any, interface: int, family: Family) -> None:
    """Key an initialized ``MIB_IPINTERFACE_ROW *`` for ``GetIpInterfaceEntry`` (LUID or index)."""
    row.Family = ADDRESS_FAMILY[family]
    _name_interface(row, interface)


def read_ip_interface(row: Any) -> IpInterface:
    return IpInterface(
        interface_index=int(row.InterfaceIndex),
        interface_luid=int(row.InterfaceLuid.Value),
        family=family_of(row.Family),
        mtu=int(row.NlMtu),
        metric=int(row.Metric),
        automatic_metric=bool(row.UseAutomaticMetric),
        connected=bool(row.Connected),
        router_trust=RouterTrust(
            router_discovery=int(row.RouterDiscoveryBehavior),
            default_routes=not row.DisableDefaultRoutes,
        ),
    )


def change_router_trust(row: Any, trust: RouterTrust) -> None:
    """Router advertisements (``RouterDiscoveryBehavior``) and default routes at all
    (``DisableDefaultRoutes``, the switch for "VPN clients" of the SDK's header)."""
    row.RouterDiscoveryBehavior = trust.router_discovery
    row.DisableDefaultRoutes = 0 if trust.default_routes else 1


def change_mtu(row: Any, mtu: int) -> None:
    row.NlMtu = mtu


def change_metric(row: Any, metric: int | None) -> None:
    """None gives the choice back to Windows (``UseAutomaticMetric``); its Metric is left."""
    if metric is None:
        row.UseAutomaticMetric = 1
    else:
        row.UseAutomaticMetric = 0
        row.Metric = metric


def prepare_for_set(row: Any) -> None:
    """The SitePrefixLength caveat (windows-facts 2.3) before ``SetIpInterfaceEntry``.

    For IPv4, ``GetIpInterfaceEntry`` returns a SitePrefixLength that
    ``SetIpInterfaceEntry`` then refuses (ERROR_INVALID_PARAMETER): set it to
    0; an IPv6 one above 128 is clamped to 128, as WireGuard does.
    """
    if row.Family == AF_INET:
        row.SitePrefixLength = 0
    elif row.SitePrefixLength > 128:
        row.SitePrefixLength = 128


# unicast addresses


def preferred_ipv4(rows: Iterable[Any], interface_index: int) -> str | None:
    """The IPv4 address of ``interface_index`` among ``MIB_UNICASTIPADDRESS_ROW *`` rows.

    Only addresses in the preferred state count (not one still being checked
    for duplicates, nor a duplicate); one from the LAN comes before a
    169.254.x.x that Windows gives itself when no DHCP server answered.
    None when there is neither.
    """
    found: list[ipaddress.IPv4Address] = []
    for row in rows:
        if row.InterfaceIndex != interface_index or row.DadState != IP_DAD_STATE_PREFERRED:
            continue
        address = read_sockaddr(row.Address)
        if isinstance(address, ipaddress.IPv4Address):
            found.append(address)
    found.sort(key=lambda address: address in _LINK_LOCAL_IPV4)
    return str(found[0]) if found else None


def on_link_networks(rows: Iterable[Any], interface: int) -> list[IPNetwork]:
    """The on-link networks of the addresses of ``interface`` (a LUID or an index) among
    ``MIB_UNICASTIPADDRESS_ROW *`` rows, in their order, each once."""
    networks: list[IPNetwork] = []
    for row in rows:
        named = row.InterfaceLuid.Value if is_luid(interface) else row.InterfaceIndex
        if named != interface:
            continue
        try:
            address = read_sockaddr(row.Address)
        except ValueError:
            continue
        network = ipaddress.ip_network((address, row.OnLinkPrefixLength), strict=False)
        if network not in networks:
            networks.append(network)
    return networks


# route change notifications


def added_route(row: Any, notification_type: int) -> RouteRow | None:
    """What a NotifyRouteChange2 callback's row says was added or changed; None for a
    deletion, the initial notification or no row (copied: the row lives only for the call)."""
    if row == ffi.NULL or notification_type not in (MIB_ADD_INSTANCE, MIB_PARAMETER_NOTIFICATION):
        return None
    try:
        return read_route_row(row)
    except ValueError:
        return None


# Win32 errors


def error_name(code: int) -> str:
    """``ERROR_NOT_FOUND (1168)``, or ``Win32 error 1234`` for a code we have no name for."""
    name = ERROR_NAMES.get(code)
    return f"Win32 error {code}" if name is None else f"{name} ({code})"


def win32_error(
    code: int, what: str, special: dict[int, HostNetworkError] | None = None
) -> HostNetworkError:
    """Win32 error ``code`` of the call that tried ``what``, as a message a player can act on.

    ``special`` gives the error for chosen codes.
    """
    if special and code in special:
        return special[code]
    name = error_name(code)
    if code == ERROR_ACCESS_DENIED:
        return HostNetworkError(f"{what}: {name}; {_RUN_AS_ADMINISTRATOR}")
    if code == ERROR_FILE_NOT_FOUND:
        return InterfaceNotFoundError(
            f"{what}: {name}, the interface is not there (the adapter was disabled or removed?)"
        )
    if code == ERROR_NOT_SUPPORTED:
        return HostNetworkError(
            f"{what}: {name}, that protocol is not installed or is turned off on this PC"
        )
    if code == ERROR_INVALID_PARAMETER:
        return HostNetworkError(f"{what}: {name}, Windows refused the values")
    return HostNetworkError(f"{what}: {name}")


def identity_error(code: int, what: str) -> HostNetworkError:
    """The error of a GUID, LUID or index conversion: an unknown one is not an interface here.

    The MS pages of the Convert* calls list ERROR_INVALID_PARAMETER for an
    identifier no interface has (not in windows-facts; unverified), so that
    one, ERROR_NOT_FOUND and ERROR_FILE_NOT_FOUND all mean "not here".
    """
    missing = InterfaceNotFoundError(
        f"{what} ({error_name(code)}): the adapter was removed or disabled, or is not installed"
    )
    return win32_error(
        code,
        what,
        {ERROR_INVALID_PARAMETER: missing, ERROR_NOT_FOUND: missing, ERROR_FILE_NOT_FOUND: missing},
    )


def interface_error(
    code: int, interface_index: int, family: Family, action: str
) -> HostNetworkError:
    """The error of a call on the ``family`` IP interface of ``interface_index``.

    ``action`` says what was tried ("set the MTU to 1380"). No such
    interface, or no such family on it, is ``InterfaceNotFoundError``: a
    restore then counts as done (the setting went with the interface).
    """
    what = f"{describe_interface(interface_index)} ({FAMILY_NAME[family]}): cannot {action}"
    name = error_name(code)
    return win32_error(
        code,
        what,
        {
            ERROR_FILE_NOT_FOUND: InterfaceNotFoundError(
                f"{what}: {name}, no interface has that index (the adapter was disabled or "
                "removed?)"
            ),
            ERROR_NOT_FOUND: InterfaceNotFoundError(
                f"{what}: {name}, the adapter has no {FAMILY_NAME[family]} (is "
                f'"Internet Protocol Version {family.value[-1]}" unticked in its properties?)'
            ),
        },
    )


def set_mtu_error(code: int, interface_index: int, family: Family, mtu: int) -> HostNetworkError:
    if code == ERROR_INVALID_PARAMETER and family is Family.IPV6 and mtu < IPV6_MIN_MTU:
        return HostNetworkError(
            f"{describe_interface(interface_index)} (IPv6): cannot set the MTU to {mtu}: "
            f"{error_name(code)}, IPv6 needs at least {IPV6_MIN_MTU}"
        )
    return interface_error(code, interface_index, family, f"set the MTU to {mtu}")


def interface_unavailable(
    interface: int, family: Family, action: str, cause: HostNetworkError
) -> InterfaceUnavailableError:
    """The error of ``action`` on a LUID whose adapter has no IP interface of either family."""
    return InterfaceUnavailableError(
        f"{describe_interface(interface)} ({FAMILY_NAME[family]}): cannot {action}: its adapter "
        f"is disabled or not there ({cause}). If it is the TAP-Windows adapter, enable it "
        "(Control Panel > Network Connections, right-click it > Enable) and start "
        "lanparty-client again: what lanparty changed on it is kept in the journal of host "
        "network changes until then (if the adapter was removed for good, delete the journal, "
        f"{default_journal_path()} unless --journal names another)"
    )


def add_route_error(code: int, route: Route) -> HostNetworkError:
    what = f"cannot add the route {describe_route(route)}"
    name = error_name(code)
    missing_interface = InterfaceNotFoundError(f"{what}: {name}, no interface has that index")
    return win32_error(
        code,
        what,
        {
            # Windows knows a route by prefix, next hop and interface, not by metric
            ERROR_OBJECT_ALREADY_EXISTS: HostNetworkError(
                f"{what}: {name}, another route to {route.destination} with that next hop is "
                "there (another program's?). Remove it (`route print` shows it, `route delete` "
                "removes it) or stop that program, then start again"
            ),
            ERROR_NOT_FOUND: missing_interface,
            ERROR_FILE_NOT_FOUND: missing_interface,
        },
    )


def route_not_found(route: Route) -> RouteNotFoundError:
    return RouteNotFoundError(f"no route {describe_route(route)} in the routing table")


def delete_route_error(code: int, route: Route) -> HostNetworkError:
    return win32_error(
        code,
        f"cannot delete the route {describe_route(route)}",
        {ERROR_NOT_FOUND: route_not_found(route), ERROR_FILE_NOT_FOUND: route_not_found(route)},
    )


def best_route_error(code: int, address: IPAddress) -> HostNetworkError:
    what = f"cannot find the route to {address}"
    no_route = HostNetworkError(
        f"{what}: {error_name(code)}, this PC has no route there: check that it is connected "
        "to the internet"
    )
    return win32_error(code, what, {ERROR_NOT_FOUND: no_route, ERROR_NETWORK_UNREACHABLE: no_route})
