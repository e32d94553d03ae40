"""The IP Helper API (iphlpapi.dll) as typed Python calls (Windows only).

    luid = guid_to_luid(uuid.UUID(net_cfg_instance_id))
    index = luid_to_index(luid)
    set_interface_mtu(index, Family.IPV4, 1380)

Thin wrappers: each fills the structs of ``_decl_iphlpapi``, makes one or
two calls, and returns Python values; an interface is named by LUID or by
index (``routes.is_luid``; WireGuard's winipcfg names them by LUID alone).
The translation (rows, routes, what a Win32 error code means) is in
``routes.py``, which imports anywhere and is unit-tested on Linux. A
failed call raises ``HostNetworkError`` (or ``InterfaceNotFoundError``/
``RouteNotFoundError``) naming the Win32 error.
The DLL is opened on first use. Changing anything needs an elevated
process (windows-facts 5); reading does not.

The layouts are the x64 ones (windows-facts 2.2): 64-bit Python only.
"""

from __future__ import annotations

import functools
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lanparty.client.hostnet import Family, IPAddress, IPNetwork, Route, RouterTrust
from lanparty.client.windows import routes
from lanparty.client.windows._decl_iphlpapi import ffi
from lanparty.client.windows.routes import BestRoute, IpInterface, RouteRow
from lanparty.errors import HostNetworkError

if sys.platform != "win32":
    raise ImportError(f"lanparty.client.windows.iphlpapi is for Windows, not {sys.platform}")

__all__ = [
    "BestRoute",
    "IpInterface",
    "RouteRow",
    "best_route",
    "create_route",
    "delete_route",
    "forward_table",
    "get_ip_interface",
    "guid_to_luid",
    "index_to_luid",
    "interface_ipv4",
    "library",
    "luid_to_guid",
    "luid_to_index",
    "on_link_networks",
    "route_changes",
    "set_interface_metric",
    "set_interface_mtu",
    "set_router_trust",
]


@functools.cache
def library() -> Any:
    """iphlpapi.dll, opened once (``HostNetworkError`` if it cannot be)."""
    if ffi.sizeof("void *") != 8:
        raise HostNetworkError(
            "lanparty needs 64-bit Python on Windows: install the 64-bit Python from "
            "python.org, then lanparty again"
        )
    try:
        return ffi.dlopen("iphlpapi.dll")
    except OSError as exc:
        raise HostNetworkError(f"cannot load iphlpapi.dll, the IP Helper API: {exc}") from exc


# interface identities


def guid_to_luid(guid: uuid.UUID) -> int:
    """The LUID of the interface whose GUID (an adapter's NetCfgInstanceId) is ``guid``."""
    guid_struct = ffi.new("GUID *")
    routes.write_guid(guid_struct, guid)
    luid = ffi.new("NET_LUID *")
    code = library().ConvertInterfaceGuidToLuid(guid_struct, luid)
    if code != routes.NO_ERROR:
        raise routes.identity_error(code, f"no network interface has the GUID {{{guid}}}")
    return int(luid.Value)


def luid_to_index(luid: int) -> int:
    """The interface index of the interface ``luid`` (it changes when the adapter restarts)."""
    luid_struct = ffi.new("NET_LUID *", {"Value": luid})
    index = ffi.new("uint32_t *")
    code = library().ConvertInterfaceLuidToIndex(luid_struct, index)
    if code != routes.NO_ERROR:
        raise routes.identity_error(code, f"no network interface has the LUID {luid:#018x}")
    return int(index[0])


def luid_to_guid(luid: int) -> uuid.UUID:
    """The GUID of the interface ``luid`` (its adapter's NetCfgInstanceId: the name of its
    TCP/IP registry keys)."""
    luid_struct = ffi.new("NET_LUID *", {"Value": luid})
    guid = ffi.new("GUID *")
    code = library().ConvertInterfaceLuidToGuid(luid_struct, guid)
    if code != routes.NO_ERROR:
        raise routes.identity_error(code, f"no network interface has the LUID {luid:#018x}")
    return routes.read_guid(guid)


def index_to_luid(interface_index: int) -> int:
    luid = ffi.new("NET_LUID *")
    code = library().ConvertInterfaceIndexToLuid(interface_index, luid)
    if code != routes.NO_ERROR:
        raise routes.identity_error(code, f"no network interface has the index {interface_index}")
    return int(luid.Value)


# MIB tables


@contextmanager
def _mib_table(table_type: str, get_table: Callable[[Any], int], what: str) -> Iterator[Any]:
    """The table ``get_table`` allocates, freed on exit: copy what you need out of it."""
    pointer = ffi.new(f"{table_type} **")
    code = get_table(pointer)
    if code != routes.NO_ERROR:
        raise routes.win32_error(code, what)
    try:
        yield pointer[0]
    finally:
        library().FreeMibTable(pointer[0])


def interface_ipv4(interface_index: int) -> str | None:
    """The interface's IPv4 address (see ``routes.preferred_ipv4``); None when it has none.

    ``HostNetworkError`` when the address table cannot be read.
    """
    with _mib_table(
        "MIB_UNICASTIPADDRESS_TABLE",
        lambda pointer: library().GetUnicastIpAddressTable(routes.AF_INET, pointer),
        "cannot read this PC's IPv4 addresses",
    ) as table:
        return routes.preferred_ipv4(
            routes.table_rows(table, "MIB_UNICASTIPADDRESS_ROW"), interface_index
        )


def on_link_networks(interface: int) -> list[IPNetwork]:
    """The on-link networks of the interface's addresses (both families)."""
    with _mib_table(
        "MIB_UNICASTIPADDRESS_TABLE",
        lambda pointer: library().GetUnicastIpAddressTable(routes.AF_UNSPEC, pointer),
        "cannot read this PC's addresses",
    ) as table:
        return routes.on_link_networks(
            routes.table_rows(table, "MIB_UNICASTIPADDRESS_ROW"), interface
        )


# IP interfaces: MTU and metric per family


def _ip_interface_row(interface_index: int, family: Family, action: str) -> Any:
    row = ffi.new("MIB_IPINTERFACE_ROW *")
    library().InitializeIpInterfaceEntry(row)
    routes.address_interface(row, interface_index, family)
    code = library().GetIpInterfaceEntry(row)
    if code != routes.NO_ERROR:
        raise routes.interface_error(code, interface_index, family, action)
    return row


def get_ip_interface(
    interface_index: int, family: Family, action: str = "read its settings"
) -> IpInterface:
    """The ``family`` settings of interface ``interface_index``; an error says it was asked
    to ``action``."""
    return routes.read_ip_interface(_ip_interface_row(interface_index, family, action))


def _set_ip_interface(row: Any) -> int:
    routes.prepare_for_set(row)
    return int(library().SetIpInterfaceEntry(row))


def set_interface_mtu(interface_index: int, family: Family, mtu: int) -> None:
    """Set the interface's NlMtu for ``family`` (Windows keeps it across restarts)."""
    row = _ip_interface_row(interface_index, family, f"set the MTU to {mtu}")
    routes.change_mtu(row, mtu)
    code = _set_ip_interface(row)
    if code != routes.NO_ERROR:
        raise routes.set_mtu_error(code, interface_index, family, mtu)


def set_interface_metric(interface_index: int, family: Family, metric: int | None) -> None:
    """Set the interface metric for ``family``; None: Windows chooses (UseAutomaticMetric)."""
    action = f"set the metric to {'automatic' if metric is None else metric}"
    row = _ip_interface_row(interface_index, family, action)
    routes.change_metric(row, metric)
    code = _set_ip_interface(row)
    if code != routes.NO_ERROR:
        raise routes.interface_error(code, interface_index, family, action)


def set_router_trust(interface_index: int, family: Family, trust: RouterTrust) -> None:
    """Set RouterDiscoveryBehavior and DisableDefaultRoutes for ``family``."""
    action = (
        f"set router discovery to {trust.router_discovery} and default routes "
        f"{'allowed' if trust.default_routes else 'disabled'}"
    )
    row = _ip_interface_row(interface_index, family, action)
    routes.change_router_trust(row, trust)
    code = _set_ip_interface(row)
    if code != routes.NO_ERROR:
        raise routes.interface_error(code, interface_index, family, action)


# routes


def forward_table(family: Family) -> list[RouteRow]:
    """Every route of ``family`` (copied out of the table)."""
    with _mib_table(
        "MIB_IPFORWARD_TABLE2",
        lambda pointer: library().GetIpForwardTable2(routes.ADDRESS_FAMILY[family], pointer),
        f"cannot read the {routes.FAMILY_NAME[family]} routing table",
    ) as table:
        return routes.read_route_rows(routes.table_rows(table, "MIB_IPFORWARD_ROW2"))


def create_route(route: Route) -> None:
    """Add ``route`` (windows-facts 2.4, the relay-route recipe)."""
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    library().InitializeIpForwardEntry(row)
    routes.fill_new_route(row, route)
    code = library().CreateIpForwardEntry2(row)
    if code != routes.NO_ERROR:
        raise routes.add_route_error(code, route)


def delete_route(row: RouteRow) -> None:
    """Delete the route ``row`` came from (``forward_table``), given back as the table had it."""
    raw_row = ffi.new("MIB_IPFORWARD_ROW2 *")
    ffi.memmove(raw_row, row.raw, len(row.raw))
    code = library().DeleteIpForwardEntry2(raw_row)
    if code != routes.NO_ERROR:
        raise routes.delete_route_error(code, row.route_by_luid)


def best_route(address: IPAddress) -> BestRoute:
    """The route Windows would use now to reach ``address``, and the source address."""
    destination = ffi.new("SOCKADDR_INET *")
    routes.write_sockaddr(destination, address)
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    source = ffi.new("SOCKADDR_INET *")
    code = library().GetBestRoute2(ffi.NULL, 0, ffi.NULL, destination, 0, row, source)
    if code != routes.NO_ERROR:
        raise routes.best_route_error(code, address)
    return routes.read_best_route(row, source)


@contextmanager
def route_changes(on_change: Callable[[Any, Any, int], None]) -> Iterator[None]:
    """``on_change(context, row, notification_type)`` on Windows' thread for every route
    change of either family, while the block runs (NotifyRouteChange2, windows-facts 2.3).

    The callback object is kept alive until ``CancelMibChangeNotify2`` has
    returned, which is called here, never from the callback's thread.
    """
    callback = ffi.callback("PIPFORWARD_CHANGE_CALLBACK", on_change, onerror=_ignore_error)
    handle = ffi.new("void **")
    code = library().NotifyRouteChange2(routes.AF_UNSPEC, callback, ffi.NULL, 0, handle)
    if code != routes.NO_ERROR:
        raise routes.win32_error(code, "cannot ask Windows to tell of route changes")
    try:
        yield
    finally:
        library().CancelMibChangeNotify2(handle[0])
        del callback


def _ignore_error(exc_type: object, value: object, traceback: object) -> None:
    """An exception in the callback, on Windows' thread: nowhere to raise it (route_watch
    raises none)."""
