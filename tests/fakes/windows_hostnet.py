"""The recording fake with the Windows back end's semantics, and a fake iphlpapi.dll over it.

``WindowsFakeHostNetwork`` is ``FakeHostNetwork`` (calls recorded, failures
injectable, whole-state snapshots) behaving as ``WindowsHostNetwork`` does
on a Windows host, with its errors built by the same ``routes`` functions
from the same Win32 codes:

- interfaces are named by LUID (``luid_of``) or by index, as the back end
  names them (``routes.py``); ``if_index`` gives an interface another index
  (a restarted adapter), ``disabled`` takes its IP interfaces away (a
  disabled adapter: no IP interface, no route);
- an adapter with IPv6 unbound has no IPv6 interface: reading or setting
  its IPv6 MTU or metric is ERROR_NOT_FOUND (``InterfaceNotFoundError``);
  no IP interface of either family, for a LUID, is
  ``InterfaceUnavailableError``; an IPv6 MTU under 1280 is
  ERROR_INVALID_PARAMETER;
- metric None is "automatic": Windows then uses the interface's own
  ``automatic_metric``, and ``best_route`` ranks by route metric plus
  interface metric;
- a route is known by prefix, next hop and interface: adding one that
  differs only in metric is ERROR_OBJECT_ALREADY_EXISTS; deleting one that
  is not there is ERROR_NOT_FOUND (``RouteNotFoundError``);
- not elevated (``elevated = False``): every change is ERROR_ACCESS_DENIED;
- an interface in ``disconnected`` (a TAP whose media is not connected yet)
  keeps its routes, but ``best_route`` does not choose them;
- ``refuse(method, code)`` makes a method fail with a chosen Win32 code;
- router trust is the IP interface's RouterDiscoveryBehavior and
  DisableDefaultRoutes (a new interface: DHCP-controlled, default routes
  taken); ``os_adds_route`` of a default route on an interface whose
  DisableDefaultRoutes is set adds nothing (what the switch is for);
  ``interface_networks`` are the on-link prefixes of ``addresses``;
- DNS (``tap_dns``): each interface has its own ("static") DNS servers per
  family (None: the DHCP server's), one DNS registration, and the DNS
  servers its DHCP server offered (``dhcp_offers_dns``, Windows' DHCP
  client); ``resolver_servers`` are those Windows asks on it: the static
  list when there is one, even empty (what netsh's ``source=static
  address=none`` is taken to mean), else the DHCP server's. ``get_dns``
  reads as the back end reads the registry, which cannot tell an empty
  static list from "the DHCP server's"; ``set_dns`` fails as netsh does
  when not elevated.

``FakeDnsRegistry`` and ``FakeNetsh`` are the registry values and the
netsh commands of the DNS settings (``windows/dns.py``) on the same state.

``FakeFileSecurity`` is advapi32 and kernel32 for ``file_security.py``:
owners and access lists (as SDDL, ``parse_sddl``) of real directories,
inherited as Windows does, %ProgramData%'s "Users may create files" above
them unless a test says otherwise.

``FakeIphlpapi`` is the DLL itself, the functions ``iphlpapi.py`` calls,
on the same state: it reads and writes the real cffi structs, so
``iphlpapi.py`` and ``WindowsHostNetwork`` run unchanged on Linux (see
``windows_only_modules``). NotifyRouteChange2's callbacks are called by
``notify_route`` from a thread of its own, as Windows calls them. It keeps
GetIpInterfaceEntry's SitePrefixLength quirk (windows-facts 2.3), allocates
MIB tables that must be given to FreeMibTable once and are poisoned when
freed, and records every call.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from lanparty.client.hostnet import Family, IPAddress, IPNetwork, Route, RouterTrust
from lanparty.client.tap_dns import DnsRegistration, InterfaceDns
from lanparty.client.windows import _decl_advapi32, _decl_kernel32, dns, routes
from lanparty.client.windows._decl_iphlpapi import ffi
from lanparty.errors import HostNetworkError
from tests.fakes.hostnet import FakeHostNetwork, Snapshot

IFTYPE_ETHERNET = 6
DEFAULT_AUTOMATIC_METRIC = 25  # what Windows gives a 1 Gbit/s Ethernet link
# what the fake's InitializeIpForwardEntry leaves for "not set" (MS: "illegal values")
UNSET_SITE_PREFIX_LENGTH = 0xFF
UNSET_METRIC = 0xFFFFFFFF
UNSET_PROTOCOL = -1
# GetIpInterfaceEntry's IPv4 SitePrefixLength that SetIpInterfaceEntry refuses
QUIRKY_IPV4_SITE_PREFIX_LENGTH = 64
POISON = 0xAA

IPInterfaceAddress = ipaddress.IPv4Interface | ipaddress.IPv6Interface
WINDOWS_DEFAULT_TRUST = RouterTrust(router_discovery=2, default_routes=True)  # RouterDiscoveryDhcp


def luid_of(index: int) -> int:
    """The fake's LUID of interface ``index`` (IfType Ethernet, NetLuidIndex = index)."""
    return (IFTYPE_ETHERNET << 48) | (index << 24)


_OTHER_FAMILY = {Family.IPV4: Family.IPV6, Family.IPV6: Family.IPV4}
NETSH_NEEDS_ELEVATION = "The requested operation requires elevation (Run as administrator)."
NETSH_NO_SUCH_INTERFACE = "The filename, directory name, or volume label syntax is incorrect."

DnsServers = tuple[IPAddress, ...] | None


@attrs.frozen
class WindowsSnapshot(Snapshot):
    """``Snapshot`` and each interface's DNS settings."""

    dns: tuple[tuple[int, tuple[DnsServers, ...], DnsRegistration], ...] = ()


class WindowsFakeHostNetwork(FakeHostNetwork):
    """``FakeHostNetwork`` with the Windows back end's semantics (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_metric: dict[int, int] = {}
        self.without_ipv6: set[int] = set()
        self.addresses: dict[int, list[IPInterfaceAddress]] = {}
        self.tentative: set[IPAddress] = set()
        self.guids: dict[uuid.UUID, int] = {}
        self.elevated = True
        self.refusals: dict[str, int] = {}
        self.disconnected: set[int] = set()
        self.disabled: set[int] = set()
        self.if_index: dict[int, int] = {}
        self.dns_servers: dict[int, dict[Family, DnsServers]] = {}
        self.dns_registration: dict[int, DnsRegistration] = {}
        self.dhcp_dns: dict[int, dict[Family, tuple[IPAddress, ...]]] = {}

    # set-up

    def add_interface(
        self,
        index: int,
        mtu: int = 1500,
        metric: int | None = None,
        *,
        automatic_metric: int = DEFAULT_AUTOMATIC_METRIC,
        ipv6: bool = True,
        guid: uuid.UUID | None = None,
        addresses: tuple[str, ...] = (),
    ) -> None:
        super().add_interface(index, mtu, metric)
        self.interfaces[index].trust = dict.fromkeys(Family, WINDOWS_DEFAULT_TRUST)
        self.automatic_metric[index] = automatic_metric
        if not ipv6:
            self.without_ipv6.add(index)
        self.guids[uuid.UUID(int=index) if guid is None else guid] = index
        self.addresses[index] = [ipaddress.ip_interface(address) for address in addresses]
        self.dns_servers[index] = dict.fromkeys(Family)
        self.dns_registration[index] = DnsRegistration.PRIMARY
        self.dhcp_dns[index] = dict.fromkeys(Family, ())

    def dhcp_offers_dns(self, interface: int, *servers: IPAddress) -> None:
        """Windows' DHCP client took a lease (DHCP or DHCPv6) that offered ``servers``."""
        key = self._key(interface)
        for family in Family:
            offered = tuple(server for server in servers if Family.of(server) is family)
            if offered:
                self.dhcp_dns[key][family] = offered

    def resolver_servers(self, interface: int, family: Family) -> tuple[IPAddress, ...]:
        """The DNS servers Windows' resolver asks on the interface (see the module docstring)."""
        key = self._key(interface)
        static = self.dns_servers[key][family]
        return self.dhcp_dns[key][family] if static is None else static

    def guid_of(self, interface: int) -> uuid.UUID | None:
        key = self.resolve(interface)
        for guid, index in self.guids.items():
            if index == key:
                return guid
        return None

    def snapshot(self) -> WindowsSnapshot:
        base = super().snapshot()
        return WindowsSnapshot(
            base.interfaces,
            base.routes,
            dns=tuple(
                (
                    index,
                    tuple(self.dns_servers[index][family] for family in Family),
                    self.dns_registration[index],
                )
                for index in sorted(self.dns_servers)
                if index in self.interfaces
            ),
        )

    def luid(self, interface: int) -> int:
        """The LUID of the interface named ``interface`` (a LUID, or an index: ``luid_of``)."""
        return interface if routes.is_luid(interface) else luid_of(interface)

    def index(self, interface: int) -> int:
        """Its interface index: ``if_index``'s, else the index it is named by or its LUID's."""
        if interface in self.if_index:
            return self.if_index[interface]
        return (interface >> 24) & 0xFFFFFF if routes.is_luid(interface) else interface

    def present(self, interface: int) -> bool:
        """Whether the interface is there with its IP interfaces (not disabled)."""
        return interface in self.interfaces and interface not in self.disabled

    def resolve(self, interface: int) -> int | None:
        """The key of ``interfaces`` that ``interface`` (its key, LUID or index) names."""
        if interface in self.interfaces:
            return interface
        for key in self.interfaces:
            if interface == (self.luid(key) if routes.is_luid(interface) else self.index(key)):
                return key
        return None

    def refuse(self, method: str, code: int) -> None:
        """Every later call of ``method`` fails with Win32 error ``code``."""
        self.refusals[method] = code

    def effective_metric(self, index: int, family: Family) -> int:
        """The interface metric Windows uses: the configured one, or its automatic one."""
        configured = self.interfaces[index].metric[family]
        return self.automatic_metric[index] if configured is None else configured

    def has_ip_interface(self, index: int, family: Family) -> bool:
        return self.present(index) and not (family is Family.IPV6 and index in self.without_ipv6)

    def ip_interface_code(self, interface: int, family: Family) -> int | None:
        """GetIpInterfaceEntry's error for the ``family`` IP interface of ``interface``, if any."""
        key = self.resolve(interface)
        if key is None or not self.present(key):
            return routes.ERROR_FILE_NOT_FOUND
        if not self.has_ip_interface(key, family):
            return routes.ERROR_NOT_FOUND
        return None

    def choose_route(self, address: IPAddress) -> Route | None:
        """Longest prefix, then the lowest route metric plus interface metric; connected only."""
        candidates = [
            route
            for route in self.routes
            if route.destination.version == address.version
            and address in route.destination
            and route.interface_index not in self.disconnected
            and self.present(route.interface_index)
        ]
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda route: (
                -route.destination.prefixlen,
                route.metric + self.effective_metric(route.interface_index, route.family),
            ),
        )

    def same_key(self, route: Route) -> Route | None:
        """The route Windows would take for ``route``: same prefix, next hop and interface."""
        for existing in self.routes:
            if (existing.destination, existing.gateway, existing.interface_index) == (
                route.destination,
                route.gateway,
                route.interface_index,
            ):
                return existing
        return None

    # HostNetwork, as WindowsHostNetwork behaves

    def _refused(self, method: str) -> int | None:
        if method in self.refusals:
            return self.refusals[method]
        if method.startswith(("set_", "add_", "delete_")) and not self.elevated:
            return routes.ERROR_ACCESS_DENIED
        return None

    def _check_ip_interface(
        self, method: str, interface: int, family: Family, action: str
    ) -> HostNetworkError | None:
        """The error of ``method`` (trying ``action``) on the ``family`` IP interface, if any.

        In the order the back end meets them: GetIpInterfaceEntry's, then
        SetIpInterfaceEntry's.
        """
        code = self.ip_interface_code(interface, family)
        if code is None:
            refused = self._refused(method)
            return (
                None
                if refused is None
                else routes.interface_error(refused, interface, family, action)
            )
        error = routes.interface_error(code, interface, family, action)
        other_family = self.ip_interface_code(interface, _OTHER_FAMILY[family])
        if routes.is_luid(interface) and other_family is not None:
            return routes.interface_unavailable(interface, family, action, error)
        return error

    async def get_mtu(self, interface_index: int, family: Family) -> int:
        await self._enter("get_mtu", interface_index, family)
        error = self._check_ip_interface("get_mtu", interface_index, family, "read its settings")
        if error is not None:
            raise error
        return self.interfaces[self._key(interface_index)].mtu[family]

    async def set_mtu(self, interface_index: int, family: Family, mtu: int) -> None:
        await self._enter("set_mtu", interface_index, family, mtu)
        action = f"set the MTU to {mtu}"
        error = self._check_ip_interface("set_mtu", interface_index, family, action)
        if error is None and family is Family.IPV6 and mtu < routes.IPV6_MIN_MTU:
            invalid = routes.ERROR_INVALID_PARAMETER
            error = routes.set_mtu_error(invalid, interface_index, family, mtu)
        if error is not None:
            raise error
        self.interfaces[self._key(interface_index)].mtu[family] = mtu

    async def get_metric(self, interface_index: int, family: Family) -> int | None:
        await self._enter("get_metric", interface_index, family)
        error = self._check_ip_interface("get_metric", interface_index, family, "read its settings")
        if error is not None:
            raise error
        return self.interfaces[self._key(interface_index)].metric[family]

    async def set_metric(self, interface_index: int, family: Family, metric: int | None) -> None:
        await self._enter("set_metric", interface_index, family, metric)
        action = f"set the metric to {'automatic' if metric is None else metric}"
        error = self._check_ip_interface("set_metric", interface_index, family, action)
        if error is not None:
            raise error
        self.interfaces[self._key(interface_index)].metric[family] = metric

    def _key(self, interface: int) -> int:
        key = self.resolve(interface)
        assert key is not None
        return key

    async def list_routes(self, family: Family) -> list[Route]:
        await self._enter("list_routes", family)
        code = self._refused("list_routes")
        if code is not None:
            raise routes.win32_error(code, f"cannot read the {routes.FAMILY_NAME[family]} routes")
        return [
            route
            for route in self.routes
            if route.family is family and self.present(route.interface_index)
        ]

    async def add_route(self, route: Route) -> None:
        await self._enter("add_route", route)
        code = self._refused("add_route")
        if code is None and not self.present(route.interface_index):
            code = routes.ERROR_NOT_FOUND
        if code is None and self.same_key(route) is not None:
            code = routes.ERROR_OBJECT_ALREADY_EXISTS
        if code is not None:
            raise routes.add_route_error(code, route)
        self.routes.append(route)

    async def delete_route(self, route: Route) -> None:
        await self._enter("delete_route", route)
        existing = self.find_route(route)
        if existing is None:  # the back end looks before it deletes
            raise routes.route_not_found(route)
        code = self._refused("delete_route")
        if code is not None:
            raise routes.delete_route_error(code, route)
        self.routes.remove(existing)

    def find_route(self, route: Route) -> Route | None:
        """The route of the table that is ``route``, its interface named by LUID or index."""
        for existing in self.routes:
            if not self.present(existing.interface_index):
                continue
            by_index = routes.by_luid(existing, self.index(existing.interface_index))
            if route in (existing, by_index):
                return existing
        return None

    async def best_route(self, address: IPAddress) -> Route:
        await self._enter("best_route", address)
        route = self.choose_route(address)
        if route is None:
            raise routes.best_route_error(routes.ERROR_NETWORK_UNREACHABLE, address)
        return route

    def os_adds_route(self, route: Route) -> None:
        """Windows adds ``route`` (its DHCP client's, a router's), unless it is a default
        route on an interface with DisableDefaultRoutes."""
        key = self.resolve(route.interface_index)
        if (
            route.is_default
            and key is not None
            and not self.interfaces[key].trust[route.family].default_routes
        ):
            return
        super().os_adds_route(route)

    async def get_router_trust(self, interface_index: int, family: Family) -> RouterTrust:
        await self._enter("get_router_trust", interface_index, family)
        action = "read its settings"
        error = self._check_ip_interface("get_router_trust", interface_index, family, action)
        if error is not None:
            raise error
        return self.interfaces[self._key(interface_index)].trust[family]

    async def set_router_trust(
        self, interface_index: int, family: Family, trust: RouterTrust
    ) -> None:
        await self._enter("set_router_trust", interface_index, family, trust)
        action = "set its router discovery"
        error = self._check_ip_interface("set_router_trust", interface_index, family, action)
        if error is not None:
            raise error
        self.interfaces[self._key(interface_index)].trust[family] = trust

    async def interface_networks(self, interface_index: int) -> list[IPNetwork]:
        key = self.resolve(interface_index)
        if key is None:
            return []
        return [address.network for address in self.addresses.get(key, [])]

    async def get_dns(self, interface_index: int, family: Family) -> InterfaceDns:
        await self._enter("get_dns", interface_index, family)
        action = "read its DNS settings"
        error = self._check_ip_interface("get_dns", interface_index, family, action)
        if error is not None:
            raise error
        key = self._key(interface_index)
        servers = self.dns_servers[key][family]
        return InterfaceDns(servers or None, self.dns_registration[key])  # () reads as None

    async def set_dns(self, interface_index: int, family: Family, setting: InterfaceDns) -> None:
        await self._enter("set_dns", interface_index, family, setting)
        action = f"set {setting.describe()}"
        error = self._check_ip_interface("get_dns", interface_index, family, action)
        if error is None and ("set_dns" in self.refusals or not self.elevated):
            index = self.index(self._key(interface_index))
            arguments = dns.netsh_commands(index, family, setting)[0]
            result = dns.NetshResult(1, NETSH_NEEDS_ELEVATION)
            described = routes.describe_interface(interface_index)
            error = dns.netsh_error(described, family, setting, arguments, result)
        if error is not None:
            raise error
        key = self._key(interface_index)
        self.dns_servers[key][family] = setting.servers
        self.dns_registration[key] = setting.registration


class FakeDnsRegistry:
    """The registry values ``dns.read_interface_dns`` reads, from a ``WindowsFakeHostNetwork``.

    ``values`` holds values a test writes itself (``(path, name)``: value),
    read before the interfaces' own.
    """

    def __init__(self, net: WindowsFakeHostNetwork) -> None:
        self.net = net
        self.values: dict[tuple[str, str], str | int] = {}
        self.reads: list[tuple[str, str]] = []

    def _interface(self, path: str) -> tuple[int, Family] | None:
        for family, base in dns.INTERFACE_KEYS.items():
            match = re.fullmatch(re.escape(base) + r"\\\{([0-9a-fA-F-]{36})\}", path)
            if match is not None:
                key = self.net.guids.get(uuid.UUID(match.group(1)))
                if key is not None and key in self.net.interfaces:
                    return key, family
        return None

    def read_string(self, path: str, name: str) -> str | None:
        self.reads.append((path, name))
        if (path, name) in self.values:
            value = self.values[path, name]
            return value if isinstance(value, str) else None
        found = self._interface(path)
        if found is None or name != dns.NAME_SERVER:
            return None
        key, family = found
        servers = self.net.dns_servers[key][family] or ()
        return ",".join(str(server) for server in servers)

    def read_dword(self, path: str, name: str) -> int | None:
        self.reads.append((path, name))
        if (path, name) in self.values:
            value = self.values[path, name]
            return value if isinstance(value, int) else None
        found = self._interface(path)
        if found is None or found[1] is not Family.IPV4:
            return None
        registration = self.net.dns_registration[found[0]]
        if name == dns.REGISTRATION_ENABLED:
            return 0 if registration is DnsRegistration.NONE else 1
        if name == dns.REGISTER_ADAPTER_NAME:
            return 1 if registration is DnsRegistration.BOTH else 0
        return None


_NETSH_KEYS = {
    "set": {"name", "source", "address", "register", "validate"},
    "add": {"name", "address", "index", "validate"},
}


class FakeNetsh:
    """``netsh interface ipv4|ipv6 set|add dnsservers ...`` on a ``WindowsFakeHostNetwork``,
    with the grammar of netsh's help; every call's arguments are in ``commands``."""

    def __init__(self, net: WindowsFakeHostNetwork) -> None:
        self.net = net
        self.commands: list[list[str]] = []

    async def __call__(self, arguments: Sequence[str]) -> dns.NetshResult:
        self.commands.append(list(arguments))
        if not self.net.elevated:
            return dns.NetshResult(1, NETSH_NEEDS_ELEVATION)
        try:
            return self._run(list(arguments))
        except (ValueError, KeyError) as exc:
            return dns.NetshResult(1, f"The parameter is incorrect. ({exc})")

    def _run(self, arguments: list[str]) -> dns.NetshResult:
        context, family_word, verb, noun, *pairs = arguments
        family = {"ipv4": Family.IPV4, "ipv6": Family.IPV6}[family_word]
        if context != "interface" or noun != "dnsservers" or verb not in _NETSH_KEYS:
            return dns.NetshResult(1, f"The following command was not found: {arguments}.")
        options = dict(pair.split("=", 1) for pair in pairs)
        if not set(options) <= _NETSH_KEYS[verb] or "name" not in options:
            return dns.NetshResult(1, f"Invalid parameters: {sorted(options)}")
        key = self._interface(int(options["name"]), family)
        if key is None:
            return dns.NetshResult(1, NETSH_NO_SUCH_INTERFACE)
        servers = self.net.dns_servers[key]
        if verb == "add":
            position = int(options.get("index", "0")) or len(servers[family] or ()) + 1
            listed = list(servers[family] or ())
            listed.insert(position - 1, self._address(options["address"], family))
            servers[family] = tuple(listed)
            return dns.NetshResult(0, "")
        if options["source"] == "dhcp":
            if "address" in options:
                return dns.NetshResult(1, "address= is for source=static")
            servers[family] = None
        elif options["source"] == "static":
            address = options["address"]
            servers[family] = () if address == "none" else (self._address(address, family),)
        else:
            return dns.NetshResult(1, f"source={options['source']} is not dhcp or static")
        if "register" in options:
            self.net.dns_registration[key] = DnsRegistration(options["register"])
        return dns.NetshResult(0, "")

    def _interface(self, index: int, family: Family) -> int | None:
        for key in self.net.interfaces:
            if self.net.index(key) == index and self.net.has_ip_interface(key, family):
                return key
        return None

    @staticmethod
    def _address(text: str, family: Family) -> IPAddress:
        address = ipaddress.ip_address(text)
        if Family.of(address) is not family:
            raise ValueError(f"{text} is not an {family.value} address")
        return address


class FakeIphlpapi:
    """iphlpapi.dll's functions over a ``WindowsFakeHostNetwork`` (see the module docstring)."""

    def __init__(self, net: WindowsFakeHostNetwork) -> None:
        self.net = net
        self.calls: list[str] = []
        self.created_rows: list[bytes] = []
        self.protocols: dict[Route, int] = {}
        self._tables: dict[int, Any] = {}
        self.route_callbacks: dict[int, Any] = {}
        """NotifyRouteChange2's registered callbacks, by handle (until cancelled)."""
        self._next_handle = 0x1000

    @property
    def live_tables(self) -> int:
        """Tables handed out and not yet freed."""
        return len(self._tables)

    def _call(self, name: str) -> None:
        self.calls.append(name)

    def _index(self, luid: int, index: int) -> int | None:
        """The interface a row names (the LUID wins when set), if it is there and enabled."""
        net = self.net
        for interface in net.interfaces:
            if net.present(interface) and (
                net.luid(interface) == luid if luid else net.index(interface) == index
            ):
                return interface
        return None

    def _change_refused(self) -> bool:
        return not self.net.elevated

    # identities

    def ConvertInterfaceGuidToLuid(self, guid: Any, luid: Any) -> int:  # noqa: N802
        self._call("ConvertInterfaceGuidToLuid")
        index = self.net.guids.get(routes.read_guid(guid))
        if index is None or not self.net.present(index):
            return routes.ERROR_INVALID_PARAMETER
        luid.Value = self.net.luid(index)
        return routes.NO_ERROR

    def ConvertInterfaceLuidToIndex(self, luid: Any, index: Any) -> int:  # noqa: N802
        self._call("ConvertInterfaceLuidToIndex")
        found = self._index(luid.Value, 0)
        if found is None:
            return routes.ERROR_INVALID_PARAMETER
        index[0] = self.net.index(found)
        return routes.NO_ERROR

    def ConvertInterfaceLuidToGuid(self, luid: Any, guid: Any) -> int:  # noqa: N802
        self._call("ConvertInterfaceLuidToGuid")
        found = self._index(luid.Value, 0)
        value = None if found is None else self.net.guid_of(found)
        if value is None:
            return routes.ERROR_INVALID_PARAMETER
        routes.write_guid(guid, value)
        return routes.NO_ERROR

    def ConvertInterfaceIndexToLuid(self, index: int, luid: Any) -> int:  # noqa: N802
        self._call("ConvertInterfaceIndexToLuid")
        found = self._index(0, index)
        if found is None:
            return routes.ERROR_INVALID_PARAMETER
        luid.Value = self.net.luid(found)
        return routes.NO_ERROR

    # IP interfaces

    def InitializeIpInterfaceEntry(self, row: Any) -> None:  # noqa: N802
        self._call("InitializeIpInterfaceEntry")
        ffi.memmove(row, bytes(ffi.sizeof(row[0])), ffi.sizeof(row[0]))
        row.Family = routes.AF_UNSPEC

    def _ip_interface(self, row: Any) -> tuple[int, Family] | int:
        """The row's interface and family, or the Win32 error for it."""
        try:
            family = routes.family_of(row.Family)
        except ValueError:
            return routes.ERROR_INVALID_PARAMETER
        index = self._index(row.InterfaceLuid.Value, row.InterfaceIndex)
        if index is None:
            return routes.ERROR_FILE_NOT_FOUND
        code = self.net.ip_interface_code(index, family)
        return (index, family) if code is None else code

    def GetIpInterfaceEntry(self, row: Any) -> int:  # noqa: N802
        self._call("GetIpInterfaceEntry")
        found = self._ip_interface(row)
        if isinstance(found, int):
            return found
        index, family = found
        interface = self.net.interfaces[index]
        row.InterfaceLuid.Value = self.net.luid(index)
        row.InterfaceIndex = self.net.index(index)
        row.NlMtu = interface.mtu[family]
        row.UseAutomaticMetric = int(interface.metric[family] is None)
        row.Metric = self.net.effective_metric(index, family)
        row.SitePrefixLength = QUIRKY_IPV4_SITE_PREFIX_LENGTH if family is Family.IPV4 else 64
        row.Connected = 1
        trust = interface.trust[family]
        row.RouterDiscoveryBehavior = trust.router_discovery
        row.DisableDefaultRoutes = 0 if trust.default_routes else 1
        return routes.NO_ERROR

    def SetIpInterfaceEntry(self, row: Any) -> int:  # noqa: N802
        self._call("SetIpInterfaceEntry")
        if self._change_refused():
            return routes.ERROR_ACCESS_DENIED
        found = self._ip_interface(row)
        if isinstance(found, int):
            return found
        index, family = found
        if family is Family.IPV4 and row.SitePrefixLength > 32:
            return routes.ERROR_INVALID_PARAMETER  # the quirk of windows-facts 2.3
        if family is Family.IPV6 and row.NlMtu < routes.IPV6_MIN_MTU:
            return routes.ERROR_INVALID_PARAMETER
        interface = self.net.interfaces[index]
        interface.mtu[family] = int(row.NlMtu)
        interface.metric[family] = None if row.UseAutomaticMetric else int(row.Metric)
        interface.trust[family] = RouterTrust(
            int(row.RouterDiscoveryBehavior), default_routes=not row.DisableDefaultRoutes
        )
        return routes.NO_ERROR

    # tables

    def _new_table(self, table_type: str, row_type: str, count: int) -> Any:
        size = max(ffi.sizeof(table_type), 8 + count * ffi.sizeof(row_type))
        memory = ffi.new("char[]", size)
        table = ffi.cast(f"{table_type} *", memory)
        table.NumEntries = count
        self._tables[int(ffi.cast("uintptr_t", table))] = (memory, size)
        return table

    def FreeMibTable(self, memory: Any) -> None:  # noqa: N802
        self._call("FreeMibTable")
        key = int(ffi.cast("uintptr_t", memory))
        if key not in self._tables:
            raise AssertionError("FreeMibTable of memory that is not a live table")
        buffer, size = self._tables.pop(key)
        ffi.memmove(buffer, bytes([POISON]) * size, size)

    def _fill_route(self, row: Any, route: Route) -> None:
        routes.fill_new_route(row, route)
        row.InterfaceLuid.Value = self.net.luid(route.interface_index)
        row.InterfaceIndex = self.net.index(route.interface_index)
        row.Protocol = self.protocols.get(route, routes.MIB_IPPROTO_NETMGMT)
        row.ValidLifetime = row.PreferredLifetime = 0xFFFFFFFF
        row.Age = 42

    def GetIpForwardTable2(self, address_family: int, table_pointer: Any) -> int:  # noqa: N802
        self._call("GetIpForwardTable2")
        if address_family == routes.AF_UNSPEC:
            chosen = [route for route in self.net.routes if self.net.present(route.interface_index)]
        else:
            family = routes.family_of(address_family)
            chosen = [
                route
                for route in self.net.routes
                if route.family is family and self.net.present(route.interface_index)
            ]
        table = self._new_table("MIB_IPFORWARD_TABLE2", "MIB_IPFORWARD_ROW2", len(chosen))
        for row, route in zip(routes.table_rows(table, "MIB_IPFORWARD_ROW2"), chosen, strict=True):
            self._fill_route(row, route)
        table_pointer[0] = table
        return routes.NO_ERROR

    def GetUnicastIpAddressTable(self, address_family: int, table_pointer: Any) -> int:  # noqa: N802
        self._call("GetUnicastIpAddressTable")
        families = (
            set(Family)
            if address_family == routes.AF_UNSPEC
            else {routes.family_of(address_family)}
        )
        chosen = [
            (index, address)
            for index, addresses in self.net.addresses.items()
            for address in addresses
            if Family.of(address.ip) in families
        ]
        table = self._new_table(
            "MIB_UNICASTIPADDRESS_TABLE", "MIB_UNICASTIPADDRESS_ROW", len(chosen)
        )
        rows = routes.table_rows(table, "MIB_UNICASTIPADDRESS_ROW")
        for row, (index, address) in zip(rows, chosen, strict=True):
            routes.write_sockaddr(row.Address, address.ip)
            row.InterfaceLuid.Value = self.net.luid(index)
            row.InterfaceIndex = self.net.index(index)
            row.OnLinkPrefixLength = address.network.prefixlen
            row.DadState = 1 if address.ip in self.net.tentative else routes.IP_DAD_STATE_PREFERRED
        table_pointer[0] = table
        return routes.NO_ERROR

    # routes

    def InitializeIpForwardEntry(self, row: Any) -> None:  # noqa: N802
        self._call("InitializeIpForwardEntry")
        ffi.memmove(row, bytes(ffi.sizeof(row[0])), ffi.sizeof(row[0]))
        row.ValidLifetime = row.PreferredLifetime = 0xFFFFFFFF
        row.Loopback = row.AutoconfigureAddress = row.Publish = row.Immortal = 1
        row.SitePrefixLength = UNSET_SITE_PREFIX_LENGTH
        row.Metric = UNSET_METRIC
        row.Protocol = UNSET_PROTOCOL

    def _route_of(self, row: Any) -> Route | None:
        index = self._index(row.InterfaceLuid.Value, row.InterfaceIndex)
        if index is None:
            return None
        route = routes.read_route(row)
        return Route(route.destination, route.gateway, index, route.metric)

    def CreateIpForwardEntry2(self, row: Any) -> int:  # noqa: N802
        self._call("CreateIpForwardEntry2")
        if self._change_refused():
            return routes.ERROR_ACCESS_DENIED
        route = self._route_of(row)
        if route is None:
            return routes.ERROR_NOT_FOUND
        if (
            row.SitePrefixLength > route.destination.prefixlen
            or row.PreferredLifetime > row.ValidLifetime
            or row.Metric == UNSET_METRIC
        ):
            return routes.ERROR_INVALID_PARAMETER
        if self.net.same_key(route) is not None:
            return routes.ERROR_OBJECT_ALREADY_EXISTS
        self.net.routes.append(route)
        self.protocols[route] = int(row.Protocol)
        self.created_rows.append(bytes(ffi.buffer(row)))
        return routes.NO_ERROR

    def DeleteIpForwardEntry2(self, row: Any) -> int:  # noqa: N802
        self._call("DeleteIpForwardEntry2")
        if self._change_refused():
            return routes.ERROR_ACCESS_DENIED
        route = self._route_of(row)
        existing = None if route is None else self.net.same_key(route)
        if existing is None:
            return routes.ERROR_NOT_FOUND
        self.net.routes.remove(existing)
        return routes.NO_ERROR

    def GetBestRoute2(  # noqa: N802, PLR0917
        self,
        luid: Any,
        index: int,
        source: Any,
        destination: Any,
        sort_options: int,
        best_route: Any,
        best_source: Any,
    ) -> int:
        self._call("GetBestRoute2")
        if luid != ffi.NULL or index or source != ffi.NULL or sort_options:
            raise AssertionError("the fake answers only for any interface and source")
        address = routes.read_sockaddr(destination)
        route = self.net.choose_route(address)
        if route is None:
            return routes.ERROR_NETWORK_UNREACHABLE
        self._fill_route(best_route, route)
        for interface_address in self.net.addresses.get(route.interface_index, []):
            if interface_address.version == address.version:
                routes.write_sockaddr(best_source, interface_address.ip)
                break
        return routes.NO_ERROR

    # route change notifications

    def NotifyRouteChange2(  # noqa: N802
        self, address_family: int, callback: Any, context: Any, initial: int, handle: Any
    ) -> int:
        self._call("NotifyRouteChange2")
        if address_family != routes.AF_UNSPEC or initial:
            raise AssertionError("the fake tells of both families' changes, none initial")
        self._next_handle += 1
        self.route_callbacks[self._next_handle] = callback
        handle[0] = ffi.cast("void *", self._next_handle)
        return routes.NO_ERROR

    def CancelMibChangeNotify2(self, handle: Any) -> int:  # noqa: N802
        self._call("CancelMibChangeNotify2")
        key = int(ffi.cast("uintptr_t", handle))
        if self.route_callbacks.pop(key, None) is None:
            raise AssertionError("CancelMibChangeNotify2 of a handle that is not registered")
        return routes.NO_ERROR

    def notify_route(self, route: Route, notification_type: int = routes.MIB_ADD_INSTANCE) -> None:
        """Windows adds ``route`` and calls every registered callback, from a thread of its
        own, with a row that lives only for the call."""
        if notification_type == routes.MIB_ADD_INSTANCE:
            self.net.os_adds_route(route)
            if route not in self.net.routes:
                return  # DisableDefaultRoutes: Windows added nothing
        row = ffi.new("MIB_IPFORWARD_ROW2 *")
        self._fill_route(row, route)

        def call_back() -> None:
            for callback in list(self.route_callbacks.values()):
                callback(ffi.NULL, row, notification_type)

        thread = threading.Thread(target=call_back)
        thread.start()
        thread.join(timeout=10)
        ffi.memmove(row, bytes([POISON]) * ffi.sizeof(row[0]), ffi.sizeof(row[0]))


@contextmanager
def windows_only_modules(*names: str) -> Iterator[list[ModuleType]]:
    """Import Windows-only modules on Linux for a test, and forget them afterwards.

    ``sys.platform`` says win32 only while they import (their own check);
    nothing they import is Windows-only until it opens a DLL, which the
    test replaces (``iphlpapi.library``) before any call.
    """
    before = set(sys.modules)
    saved = sys.platform
    sys.platform = "win32"
    try:
        modules = [importlib.import_module(name) for name in names]
    finally:
        sys.platform = saved
    try:
        yield modules
    finally:
        # only those imported here: a pure module the tests already hold stays the same object
        for name in set(sys.modules) - before:
            if name.startswith("lanparty.client.windows."):
                del sys.modules[name]
                package, _, child = name.rpartition(".")
                if hasattr(sys.modules[package], child):
                    delattr(sys.modules[package], child)


# file security: owners and access lists (file_security.py, acl.py)

SDDL_SIDS = {
    "BA": "S-1-5-32-544",
    "SY": "S-1-5-18",
    "BU": "S-1-5-32-545",
    "WD": "S-1-1-0",
    "AU": "S-1-5-11",
    "CO": "S-1-3-0",
    "OW": "S-1-3-4",
}
SDDL_RIGHTS = {"FA": 0x1F01FF, "FR": 0x120089, "FX": 0x1200A0, "FW": 0x120116, "GA": 0x10000000}
SDDL_FLAGS = {"OI": 0x1, "CI": 0x2, "NP": 0x4, "IO": 0x8, "ID": 0x10}
PROGRAM_DATA_SDDL = (
    # what `icacls %ProgramData%` shows on Windows 10: Users may create files and folders
    "O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)"
    "(A;CI;0x116;;;BU)"
)
sec = _decl_advapi32.ffi
kern = _decl_kernel32.ffi
ERROR_ALREADY_EXISTS = 183
ERROR_PATH_NOT_FOUND = 3
ERROR_INSUFFICIENT_BUFFER = 122
_WIN_ERRORS = {
    2: "The system cannot find the file specified.",
    3: "The system cannot find the path specified.",
    122: "The data area passed to a system call is too small.",
    183: "Cannot create a file when that file already exists.",
}


@attrs.frozen
class FakeAce:
    allow: bool
    flags: int
    mask: int
    sid: str


@attrs.frozen
class FakeDescriptor:
    """An owner (None: the creator's default) and a DACL (None: a NULL DACL)."""

    owner: str | None
    aces: tuple[FakeAce, ...] | None
    protected: bool = False


def parse_sddl(text: str) -> FakeDescriptor:
    """The owner and DACL parts of an SDDL string (what the fake and the tests use)."""
    owner_match = re.match(r"O:(S(?:-\d+)+|[A-Z]{2})", text)
    owner = None if owner_match is None else sid_of(owner_match.group(1))
    dacl_match = re.search(r"D:(P?)(?:AI)?((?:\([^)]*\))*)", text)
    if dacl_match is None:
        return FakeDescriptor(owner, None)
    aces = []
    for body in re.findall(r"\(([^)]*)\)", dacl_match.group(2)):
        kind, flags, rights, _, _, sid = body.split(";")
        mask = int(rights, 16) if rights.startswith("0x") else SDDL_RIGHTS[rights]
        flag_bits = sum(SDDL_FLAGS[flags[i : i + 2]] for i in range(0, len(flags), 2))
        aces.append(FakeAce(kind == "A", flag_bits, mask, sid_of(sid)))
    return FakeDescriptor(owner, tuple(aces), protected=dacl_match.group(1) == "P")


def sid_of(text: str) -> str:
    return SDDL_SIDS.get(text, text)


def sid_bytes(sid: str) -> bytes:
    """The binary form of a SID string (MS-DTYP 2.4.2.2)."""
    _, revision, authority, *rids = sid.split("-")
    return (
        bytes([int(revision), len(rids)])
        + int(authority).to_bytes(6, "big")
        + b"".join(int(rid).to_bytes(4, "little") for rid in rids)
    )


def acl_bytes(aces: Sequence[FakeAce]) -> bytes:
    """An ACL of ACCESS_ALLOWED/DENIED_ACEs (MS-DTYP 2.4.5)."""
    body = b""
    for ace in aces:
        sid = sid_bytes(ace.sid)
        size = 8 + len(sid)
        body += bytes([0 if ace.allow else 1, ace.flags]) + size.to_bytes(2, "little")
        body += ace.mask.to_bytes(4, "little") + sid
    size = 8 + len(body)
    return (
        bytes([2, 0])
        + size.to_bytes(2, "little")
        + len(aces).to_bytes(2, "little")
        + b"\0\0"
        + body
    )


def inherited(parent: FakeDescriptor, owner: str, *, directory: bool) -> FakeDescriptor:
    """What a new file or directory gets from ``parent``'s inheritable entries."""
    aces = []
    for ace in parent.aces or ():
        if not ace.flags & (SDDL_FLAGS["CI"] if directory else SDDL_FLAGS["OI"]):
            continue
        sid = owner if ace.sid == SDDL_SIDS["CO"] else ace.sid
        keep = SDDL_FLAGS["OI"] | SDDL_FLAGS["CI"] if directory and not ace.flags & 0x4 else 0
        if not (ace.sid == SDDL_SIDS["CO"] and directory):
            aces.append(FakeAce(ace.allow, (ace.flags & keep) | SDDL_FLAGS["ID"], ace.mask, sid))
        else:  # CREATOR OWNER: for the creator here, and still for what is made inside
            aces.append(FakeAce(ace.allow, SDDL_FLAGS["ID"], ace.mask, sid))
            aces.append(FakeAce(ace.allow, ace.flags | SDDL_FLAGS["ID"], ace.mask, ace.sid))
    return FakeDescriptor(owner, tuple(aces))


class FakeFileSecurity:
    """advapi32's and kernel32's calls of ``file_security.py``, over real directories.

    ``security`` holds each path's owner and DACL as a test or
    ``CreateDirectoryW`` set them; any other path that exists inherits
    from the nearest one above it that has them, or from ``root``
    (%ProgramData%'s by default); new objects are owned by
    ``default_owner`` (an elevated administrator's: the Administrators
    group). The security descriptors it hands out must be given to
    ``LocalFree`` once; ``getwinerror`` answers for the last failed call.
    """

    def __init__(self, *, user: str = "S-1-5-21-1004336348-1177238915-682003330-1001") -> None:
        self.user = user
        self.elevated = True
        self.default_owner = SDDL_SIDS["BA"]
        self.root = parse_sddl(PROGRAM_DATA_SDDL)
        self.security: dict[str, FakeDescriptor] = {}
        self.calls: list[str] = []
        self.last_error = 0
        self._memory: dict[int, tuple[Any, FakeDescriptor | None]] = {}

    @property
    def live_descriptors(self) -> int:
        return len(self._memory)

    def set(self, path: Path | str, sddl: str) -> None:
        self.security[str(path)] = parse_sddl(sddl)

    def descriptor(self, path: Path | str) -> FakeDescriptor:
        """``path``'s security as Windows would report it (see the class docstring)."""
        text = str(path)
        if text in self.security:
            return self.security[text]
        parent = str(Path(text).parent)
        above = self.root if parent == text else self.descriptor(parent)
        return inherited(above, self.default_owner, directory=Path(text).is_dir())

    def getwinerror(self, code: int = -1) -> tuple[int, str]:
        code = self.last_error if code == -1 else code
        return code, _WIN_ERRORS.get(code, f"error {code}")

    def _keep(self, memory: Any, descriptor: FakeDescriptor | None) -> Any:
        pointer = sec.cast("void *", memory)
        self._memory[int(sec.cast("uintptr_t", pointer))] = (memory, descriptor)
        return pointer

    # advapi32

    def GetNamedSecurityInfoW(  # noqa: N802, PLR0917
        self,
        name: Any,
        object_type: int,
        information: int,
        owner: Any,
        group: Any,
        dacl: Any,
        sacl: Any,
        descriptor: Any,
    ) -> int:
        self.calls.append("GetNamedSecurityInfoW")
        assert (object_type, information) == (1, 0x1 | 0x4)  # SE_FILE_OBJECT; owner and DACL
        assert group == sec.NULL
        assert sacl == sec.NULL
        path = sec.string(sec.cast("char16_t *", name))
        if not Path(path).exists():
            return 2
        found = self.descriptor(path)
        owner_sid = sid_bytes(found.owner or self.default_owner)
        acl = b"" if found.aces is None else acl_bytes(found.aces)
        memory = sec.new("uint8_t[]", owner_sid + acl)
        descriptor[0] = self._keep(memory, None)
        owner[0] = sec.cast("void *", memory)
        start = sec.cast("uint8_t *", memory) + len(owner_sid)
        dacl[0] = sec.NULL if found.aces is None else sec.cast("ACL *", start)
        return 0

    def ConvertStringSecurityDescriptorToSecurityDescriptorW(  # noqa: N802
        self, text: Any, revision: int, descriptor: Any, size: Any
    ) -> int:
        self.calls.append("ConvertStringSecurityDescriptorToSecurityDescriptorW")
        assert revision == 1
        assert size == sec.NULL
        parsed = parse_sddl(sec.string(sec.cast("char16_t *", text)))
        descriptor[0] = self._keep(sec.new("uint8_t[]", 20), parsed)
        return 1

    def OpenProcessToken(self, process: Any, access: int, token: Any) -> int:  # noqa: N802
        token[0] = sec.cast("HANDLE", 0x7070)
        return 1

    def GetTokenInformation(  # noqa: N802
        self, token: Any, information_class: int, buffer: Any, length: int, returned: Any
    ) -> int:
        assert information_class == 1  # TokenUser
        sid = sid_bytes(self.user)
        needed = sec.sizeof("TOKEN_USER") + len(sid)
        returned[0] = needed
        if length < needed:
            self.last_error = ERROR_INSUFFICIENT_BUFFER
            return 0
        start = sec.cast("uint8_t *", buffer) + sec.sizeof("TOKEN_USER")
        sec.memmove(start, sid, len(sid))
        sec.cast("TOKEN_USER *", buffer).User.Sid = sec.cast("void *", start)
        return 1

    # kernel32

    def GetCurrentProcess(self) -> Any:  # noqa: N802
        return kern.cast("HANDLE", -1)

    def CloseHandle(self, handle: Any) -> int:  # noqa: N802
        return 1

    def LocalFree(self, memory: Any) -> Any:  # noqa: N802
        self.calls.append("LocalFree")
        key = int(kern.cast("uintptr_t", memory))
        if key not in self._memory:
            raise AssertionError("LocalFree of memory the fake did not hand out")
        del self._memory[key]
        return sec.NULL

    def CreateDirectoryW(self, name: Any, attributes: Any) -> int:  # noqa: N802
        self.calls.append("CreateDirectoryW")
        path = Path(kern.string(kern.cast("char16_t *", name)))
        if path.exists():
            self.last_error = ERROR_ALREADY_EXISTS
            return 0
        if not path.parent.is_dir():
            self.last_error = ERROR_PATH_NOT_FOUND
            return 0
        given = None
        if attributes != kern.NULL:
            key = int(kern.cast("uintptr_t", attributes.lpSecurityDescriptor))
            given = self._memory[key][1] if key else None
        parent = self.descriptor(path.parent)
        from_parent = inherited(parent, self.default_owner, directory=True)
        if given is None:
            made = from_parent
        else:
            aces = given.aces or ()
            if not given.protected:
                aces = (*aces, *(from_parent.aces or ()))
            made = FakeDescriptor(given.owner or self.default_owner, aces, given.protected)
        path.mkdir()
        self.security[str(path)] = made
        return 1


@contextmanager
def fake_file_security(
    monkeypatch: Any, fake: FakeFileSecurity | None = None
) -> Iterator[tuple[ModuleType, FakeFileSecurity]]:
    """``file_security`` imported as on Windows, its DLLs ``fake`` (and ``is_elevated`` its
    ``elevated``), for as long as the block runs; ``monkeypatch`` undoes the rest."""
    fake = FakeFileSecurity() if fake is None else fake
    with windows_only_modules(
        "lanparty.client.windows.elevation", "lanparty.client.windows.file_security"
    ) as (elevation, module):
        monkeypatch.setattr(elevation, "is_elevated", lambda: fake.elevated)
        monkeypatch.setattr(module, "_advapi32", lambda: fake)
        monkeypatch.setattr(module, "_kernel32", lambda: fake)
        for cffi_ffi in (sec, kern):
            monkeypatch.setattr(cffi_ffi, "getwinerror", fake.getwinerror, raising=False)
        yield module, fake
    if fake.live_descriptors:
        raise AssertionError("a security descriptor was not given to LocalFree")
