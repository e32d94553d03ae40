"""``HostNetwork`` on Windows: routes, MTUs and metrics through the IP Helper API.

    with WindowsHostNetwork() as hostnet:     # iphlpapi.dll loaded, nothing to close
        await hostnet.set_mtu(tap_index, Family.IPV4, 1389)

Windows only (``iphlpapi.py`` makes the calls; ``routes.py`` translates).
The calls go to the local TCP/IP stack, which answers at once, so the async
methods make them synchronously, as the Linux back end does with netlink: a
worker thread would add a hop for nothing, and could not make a hanging
call cancellable either (a restore's deadline cannot interrupt a blocked
thread). Changing anything needs an elevated process: ERROR_ACCESS_DENIED
becomes a ``HostNetworkError`` that says so.

Windows semantics behind the interface's words:

- **Interface index**: the interface's LUID (``routes.py``): what routes
  come out with, what the guards and the journal keep, so that a restore
  after a crash finds the TAP even when restarting it (``set-adapter-mac``)
  gave it another index. An index still works (older journals). An adapter
  of a LUID with no IP interface of either family (disabled, or not there)
  is ``InterfaceUnavailableError`` (``lanparty.client.hostnet``): an
  adapter's IP settings outlive its being disabled, so the journal entry
  stays pending; one family unbound from a present adapter is
  ``InterfaceNotFoundError``.
- **MTU**: the IP interface's ``NlMtu`` for that family
  (MIB_IPINTERFACE_ROW); Windows keeps it across restarts. An adapter with
  IPv6 unbound has no IPv6 interface (ERROR_NOT_FOUND):
  ``InterfaceNotFoundError``, which the guards tolerate for IPv6 and which
  counts as restored in the journal; Windows refuses an IPv6 MTU under
  1280.
- **Metric**: the interface metric (``Metric``); None is
  ``UseAutomaticMetric`` (Windows chooses from the link speed). Windows
  ranks routes by route metric plus interface metric.
- **Routes**: ``list_routes`` is GetIpForwardTable2 of that family;
  ``metric`` is the route's own ``Metric``, without the interface's.
  ``delete_route`` deletes only an exact match (all four fields), passing
  the table's own row back; a route that is not there (ERROR_NOT_FOUND) is
  ``RouteNotFoundError``. ``add_route`` creates the route as the
  relay-route recipe of windows-facts 2.4 says (SitePrefixLength 0,
  MIB_IPPROTO_NETMGMT); Windows refuses a second route with the same
  prefix, next hop and interface whatever its metric.
- **best_route**: GetBestRoute2: the chosen route's prefix, next hop,
  interface and own metric.
- **Router trust**: the IP interface's ``RouterDiscoveryBehavior`` and
  ``DisableDefaultRoutes`` for that family (whether Windows honours the
  latter through ``SetIpInterfaceEntry`` is not confirmed: windows-facts 2.3).
- **watch_routes**: NotifyRouteChange2 for both families; the callback's
  rows reach Trio through ``route_watch.RouteChanges``.
- **interface_networks**: the on-link prefixes of the interface's unicast
  addresses (GetUnicastIpAddressTable). **interface_name**: None (a LUID
  does not change).
- **DNS** (``tap_dns.TapDnsHost``: Windows' DHCP client installs the
  party's DNS servers on the TAP): ``get_dns`` reads the interface's TCP/IP
  registry key (its GUID from ConvertInterfaceLuidToGuid), ``set_dns``
  runs netsh with the interface's index (``dns.py`` says why netsh). Both
  first ask for the IP interface (GetIpInterfaceEntry), so that a disabled
  TAP or an unbound family fails as the MTU does.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TypeVar

import trio

from lanparty.client.hostnet import (
    Family,
    InterfaceNotFoundError,
    IPAddress,
    IPNetwork,
    Route,
    RouterTrust,
    RouteWatch,
)

if sys.platform != "win32":
    raise ImportError(f"lanparty.client.windows.hostnet is for Windows, not {sys.platform}")

from lanparty.client.tap_dns import InterfaceDns
from lanparty.client.windows import dns, iphlpapi, routes
from lanparty.client.windows.registry import WindowsRegistry
from lanparty.client.windows.route_watch import RouteChanges

__all__ = ["WindowsHostNetwork"]

T = TypeVar("T")
_OTHER_FAMILY = {Family.IPV4: Family.IPV6, Family.IPV6: Family.IPV4}


class WindowsHostNetwork:
    """The host's network stack through iphlpapi.dll (see the module docstring)."""

    def __init__(
        self, *, registry: dns.DnsRegistry | None = None, netsh: dns.Netsh | None = None
    ) -> None:
        iphlpapi.library()  # a DLL that cannot be loaded is an error now, not mid-run
        self._registry: dns.DnsRegistry = WindowsRegistry() if registry is None else registry
        self._netsh: dns.Netsh = dns.run_netsh if netsh is None else netsh

    def close(self) -> None:
        """Nothing to release: IP Helper calls hold no handle between them."""

    def __enter__(self) -> WindowsHostNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # MTU and metric

    async def get_mtu(self, interface_index: int, family: Family) -> int:
        return _on_ip_interface(
            interface_index, family, "read its settings", iphlpapi.get_ip_interface
        ).mtu

    async def set_mtu(self, interface_index: int, family: Family, mtu: int) -> None:
        def set_mtu(interface: int, family: Family) -> None:
            iphlpapi.set_interface_mtu(interface, family, mtu)

        _on_ip_interface(interface_index, family, f"set the MTU to {mtu}", set_mtu)

    async def get_metric(self, interface_index: int, family: Family) -> int | None:
        return _on_ip_interface(
            interface_index, family, "read its settings", iphlpapi.get_ip_interface
        ).configured_metric

    async def set_metric(self, interface_index: int, family: Family, metric: int | None) -> None:
        def set_metric(interface: int, family: Family) -> None:
            iphlpapi.set_interface_metric(interface, family, metric)

        action = f"set the metric to {'automatic' if metric is None else metric}"
        _on_ip_interface(interface_index, family, action, set_metric)

    # routes

    async def list_routes(self, family: Family) -> list[Route]:
        return [row.route_by_luid for row in iphlpapi.forward_table(family)]

    async def add_route(self, route: Route) -> None:
        iphlpapi.create_route(route)

    async def delete_route(self, route: Route) -> None:
        for row in iphlpapi.forward_table(route.family):
            if row.is_route(route):
                iphlpapi.delete_route(row)
                return
        raise routes.route_not_found(route)

    async def best_route(self, address: IPAddress) -> Route:
        best = iphlpapi.best_route(address)
        return routes.by_luid(best.route, best.interface_luid)

    @asynccontextmanager
    async def watch_routes(self) -> AsyncIterator[RouteWatch]:
        changes = RouteChanges(trio.lowlevel.current_trio_token())
        with iphlpapi.route_changes(changes.from_windows):
            yield changes

    # what the TAP takes from the party's routers

    async def get_router_trust(self, interface_index: int, family: Family) -> RouterTrust:
        return _on_ip_interface(
            interface_index, family, "read its settings", iphlpapi.get_ip_interface
        ).router_trust

    async def set_router_trust(
        self, interface_index: int, family: Family, trust: RouterTrust
    ) -> None:
        def set_trust(interface: int, family: Family) -> None:
            iphlpapi.set_router_trust(interface, family, trust)

        _on_ip_interface(interface_index, family, "set its router discovery", set_trust)

    async def interface_networks(self, interface_index: int) -> list[IPNetwork]:
        return iphlpapi.on_link_networks(interface_index)

    # the DNS servers Windows' DHCP client installs (tap_dns)

    async def get_dns(self, interface_index: int, family: Family) -> InterfaceDns:
        interface = _ip_interface(interface_index, family, "read its DNS settings")
        guid = iphlpapi.luid_to_guid(interface.interface_luid)
        return dns.read_interface_dns(self._registry, family, guid)

    async def set_dns(self, interface_index: int, family: Family, setting: InterfaceDns) -> None:
        interface = _ip_interface(interface_index, family, f"set {setting.describe()}")
        for arguments in dns.netsh_commands(interface.interface_index, family, setting):
            result = await self._netsh(arguments)
            if result.exit_code != 0:
                described = routes.describe_interface(interface_index)
                raise dns.netsh_error(described, family, setting, arguments, result)

    async def interface_name(self, interface_index: int) -> str | None:
        return None  # a LUID stays the adapter's

    async def find_interface(self, name: str) -> int | None:
        return None


def _on_ip_interface(
    interface: int, family: Family, action: str, call: Callable[[int, Family], T]
) -> T:
    """``call(interface, family)``; a LUID whose adapter has no IP interface at all is
    ``InterfaceUnavailableError`` (disabled or not there), not ``InterfaceNotFoundError``."""
    try:
        return call(interface, family)
    except InterfaceNotFoundError as exc:
        if not routes.is_luid(interface) or _has_ip_interface(interface, _OTHER_FAMILY[family]):
            raise
        raise routes.interface_unavailable(interface, family, action, exc) from exc


def _ip_interface(interface: int, family: Family, action: str) -> routes.IpInterface:
    """The IP interface, asked before ``action`` (errors as ``_on_ip_interface`` has them)."""

    def get(interface: int, family: Family) -> routes.IpInterface:
        return iphlpapi.get_ip_interface(interface, family, action)

    return _on_ip_interface(interface, family, action, get)


def _has_ip_interface(interface: int, family: Family) -> bool:
    try:
        iphlpapi.get_ip_interface(interface, family)
    except InterfaceNotFoundError:
        return False
    return True
