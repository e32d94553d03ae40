"""``HostNetwork`` on Linux: routes, MTUs and metrics over rtnetlink (pyroute2).

    with LinuxHostNetwork() as hostnet:     # one netlink socket, closed on exit
        await hostnet.set_mtu(tap_index, Family.IPV4, 1389)

The netlink socket belongs to the network namespace of the thread that
opens it. Requests go to the local kernel, which answers at once, so the
async methods make them synchronously (pyroute2's sync ``IPRoute`` runs
its own asyncio loop in the calling thread; a worker thread would only add
a hop). Needs root or CAP_NET_ADMIN to change anything. Importing this
module elsewhere works; constructing ``LinuxHostNetwork`` raises
``HostNetworkError``.

Semantics where Linux differs from the protocol's Windows-shaped words:

- **MTU**: IPv4's is the link MTU (``IFLA_MTU``). IPv6's is the sysctl
  ``/proc/sys/net/ipv6/conf/<name>/mtu``, at most the link MTU. The kernel
  resets the IPv6 MTU to the link MTU whenever the link MTU changes. No
  IPv6 on the interface (disabled, or a link MTU under 1280) is a
  ``HostNetworkError``.
- **Metric**: Linux has no interface metric. Here it is the priority of the
  interface's connected-prefix routes (main table, unicast, no gateway,
  ``proto kernel``) in that family: ``set_metric`` re-adds each of them
  with the new priority, then deletes the old one; ``None`` is the
  kernel's default (0 for IPv4, 256 for IPv6), and ``get_metric`` returns
  None when they all have it (or there are none). Routes of differing
  priorities report the lowest, so only a uniform priority round-trips
  exactly. It applies to the routes present at the call: an address added
  later gets the kernel's priority. IPv6 turns a priority of 0 into 1024.
- **Routes**: ``list_routes`` gives the main table's unicast routes with
  one next hop (multipath routes are left out); ``metric`` is the route
  priority. An IPv6 route never has priority 0 (the kernel makes it 1024),
  so for IPv6 the metric 0 stands for 1024 both ways: a route added with
  metric 0 is listed with metric 0.
- **best_route**: ``ip route get``; its destination and metric are those of
  the longest main-table route through the same next hop and interface
  that contains the address, or, when there is none (policy routing, a
  local address), the address's host route with metric 0.
- **Router trust**: IPv6's ``router_discovery`` is the sysctl
  ``/proc/sys/net/ipv6/conf/<name>/accept_ra``; IPv4 has none (0). Linux
  has no switch against default routes (``default_routes`` is always True).
- **watch_routes**: a netlink socket of its own in the route multicast
  groups (RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE), read when Trio says it is
  readable, its messages parsed by pyroute2's marshal. Not pyroute2's
  ``IPRoute.bind``/``get``: its sync ``IPRoute`` runs an asyncio loop of its
  own in the calling thread, which reads the socket itself. A full socket
  buffer (ENOBUFS: events were lost) is reported as None.
- **interface_name**: the interface's name (a TAP's is chosen by the
  client; an index may be reused by another interface after a crash).
- Addresses (``add_address``, ``delete_address``, for the client's DHCP):
  not part of ``HostNetwork``.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from lanparty.client.hostnet import (
    Family,
    InterfaceNotFoundError,
    IPAddress,
    IPNetwork,
    Route,
    RouteNotFoundError,
    RouterTrust,
    RouteWatch,
    host_network,
)
from lanparty.errors import HostNetworkError

if sys.platform != "linux":
    raise ImportError(f"lanparty.client.linux.hostnet is for Linux, not {sys.platform}")

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.marshal import MarshalRtnl  # type: ignore[import-untyped]

__all__ = ["LinuxHostNetwork"]

_NEEDS_ADMIN = "run as root or grant CAP_NET_ADMIN"
_MAIN_TABLE = 254
_RTN_UNICAST = 1
_RTPROT_KERNEL = 2
_RT_SCOPE_UNIVERSE = 0
_RT_SCOPE_LINK = 253
_AF = {Family.IPV4: 2, Family.IPV6: 10}
_DEFAULT_CONNECTED_PRIORITY = {Family.IPV4: 0, Family.IPV6: 256}
_IPV6_USER_PRIORITY = 1024  # what the kernel makes of an IPv6 priority of 0
_IPV6_CONF = Path("/proc/sys/net/ipv6/conf")
_RTM_NEWROUTE = 24
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_ROUTE = 0x400
_WATCH_BUFFER_BYTES = 1 << 20
_WATCH_READS_PER_WAKEUP = 64


def _netlink_error(
    exc: Exception, what: str, special: dict[int, HostNetworkError] | None = None
) -> HostNetworkError:
    """``exc`` (a pyroute2 ``NetlinkError`` or an ``OSError``) as a message a user can act on.

    ``special`` gives the error for chosen errno values.
    """
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or 0
    if special and code in special:
        return special[code]
    if code in (errno.EPERM, errno.EACCES):
        return HostNetworkError(f"{what}: permission denied; {_NEEDS_ADMIN}")
    if code == errno.ENODEV:
        return InterfaceNotFoundError(f"{what}: no such interface")
    return HostNetworkError(f"{what}: {os.strerror(code) if code else exc}")


class _RouteExistsError(HostNetworkError):
    pass


class LinuxHostNetwork:
    """The host's network stack through one rtnetlink socket (see the module docstring)."""

    def __init__(self) -> None:
        if sys.platform != "linux":
            raise HostNetworkError("LinuxHostNetwork works on Linux only")
        try:
            self._ipr: Any = IPRoute()
        except OSError as exc:
            raise _netlink_error(exc, "cannot open a netlink socket") from None

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> LinuxHostNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # netlink, the only place that sees pyroute2's types

    def _request(
        self,
        what: str,
        method: str,
        command: str,
        fields: dict[str, object],
        special: dict[int, HostNetworkError] | None = None,
    ) -> list[Any]:
        """``IPRoute.<method>(command, **fields)``'s messages; errors mapped to ``what``."""
        try:
            return list(getattr(self._ipr, method)(command, **fields))
        except (NetlinkError, OSError) as exc:
            raise _netlink_error(exc, what, special) from None

    def _link(self, interface_index: int) -> Any:
        what = f"interface {interface_index}"
        try:
            return self._request(what, "link", "get", {"index": interface_index})[0]
        except InterfaceNotFoundError:
            raise InterfaceNotFoundError(f"no interface has index {interface_index}") from None

    def _route_messages(self, family: Family) -> Iterator[Any]:
        what = f"cannot list the {family.value} routes"
        for message in self._request(what, "route", "dump", {"family": _AF[family]}):
            if (
                message.get_attr("RTA_TABLE") == _MAIN_TABLE
                and message["type"] == _RTN_UNICAST
                and message.get_attr("RTA_OIF") is not None  # not multipath
            ):
                yield message

    @staticmethod
    def _to_route(family: Family, message: Any) -> Route:
        zero = "0.0.0.0" if family is Family.IPV4 else "::"
        destination = ipaddress.ip_network(
            f"{message.get_attr('RTA_DST') or zero}/{message['dst_len']}"
        )
        gateway = message.get_attr("RTA_GATEWAY")
        priority = int(message.get_attr("RTA_PRIORITY") or 0)
        if family is Family.IPV6 and priority == _IPV6_USER_PRIORITY:
            priority = 0
        return Route(
            destination,
            None if gateway is None else ipaddress.ip_address(gateway),
            int(message.get_attr("RTA_OIF")),
            priority,
        )

    @staticmethod
    def _route_spec(route: Route) -> dict[str, object]:
        spec: dict[str, object] = {
            "family": _AF[route.family],
            "dst": str(route.destination.network_address),
            "dst_len": route.destination.prefixlen,
            "oif": route.interface_index,
            "table": _MAIN_TABLE,
            "priority": route.metric,
        }
        if route.family is Family.IPV6 and route.metric == 0:
            spec["priority"] = _IPV6_USER_PRIORITY
        if route.gateway is None:
            spec["scope"] = _RT_SCOPE_LINK if route.family is Family.IPV4 else _RT_SCOPE_UNIVERSE
        else:
            spec["gateway"] = str(route.gateway)
        return spec

    # MTU

    def _ipv6_mtu_path(self, interface_index: int) -> tuple[str, Path]:
        name = str(self._link(interface_index).get_attr("IFLA_IFNAME"))
        path = _IPV6_CONF / name / "mtu"
        if not path.exists():
            raise HostNetworkError(
                f"interface {name} has no IPv6 (disabled, or its MTU is under 1280): "
                "no IPv6 MTU to read or set"
            )
        return name, path

    async def get_mtu(self, interface_index: int, family: Family) -> int:
        if family is Family.IPV4:
            return int(self._link(interface_index).get_attr("IFLA_MTU"))
        name, path = self._ipv6_mtu_path(interface_index)
        try:
            return int(path.read_text())
        except OSError as exc:
            raise _netlink_error(exc, f"cannot read the IPv6 MTU of {name}") from None

    async def set_mtu(self, interface_index: int, family: Family, mtu: int) -> None:
        if family is Family.IPV4:
            self._link(interface_index)
            self._request(
                f"cannot set the MTU of interface {interface_index} to {mtu}",
                "link",
                "set",
                {"index": interface_index, "mtu": mtu},
            )
            return
        name, path = self._ipv6_mtu_path(interface_index)
        try:
            path.write_text(str(mtu))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise HostNetworkError(
                    f"cannot set the IPv6 MTU of {name} to {mtu}: it must be between 1280 "
                    "and the link MTU"
                ) from None
            raise _netlink_error(exc, f"cannot set the IPv6 MTU of {name} to {mtu}") from None

    # metric (the priority of the connected-prefix routes)

    def _connected(self, interface_index: int, family: Family) -> list[Any]:
        self._link(interface_index)
        return [
            message
            for message in self._route_messages(family)
            if message.get_attr("RTA_OIF") == interface_index
            and message.get_attr("RTA_GATEWAY") is None
            and message["proto"] == _RTPROT_KERNEL
        ]

    async def get_metric(self, interface_index: int, family: Family) -> int | None:
        priorities = {
            int(message.get_attr("RTA_PRIORITY") or 0)
            for message in self._connected(interface_index, family)
        }
        if not priorities or priorities == {_DEFAULT_CONNECTED_PRIORITY[family]}:
            return None
        return min(priorities)

    async def set_metric(self, interface_index: int, family: Family, metric: int | None) -> None:
        priority = _DEFAULT_CONNECTED_PRIORITY[family] if metric is None else metric
        what = f"cannot set the {family.value} metric of interface {interface_index} to {metric}"
        for message in self._connected(interface_index, family):
            old = int(message.get_attr("RTA_PRIORITY") or 0)
            if old == priority:
                continue
            spec: dict[str, object] = {
                "family": _AF[family],
                "dst": message.get_attr("RTA_DST"),
                "dst_len": message["dst_len"],
                "oif": interface_index,
                "table": _MAIN_TABLE,
                "proto": _RTPROT_KERNEL,
                "scope": message["scope"],
                "type": _RTN_UNICAST,
            }
            source = message.get_attr("RTA_PREFSRC")
            if source is not None:
                spec["prefsrc"] = source
            # The new route first, so that the prefix is never unreachable. It
            # may be there already: the kernel adds an IPv6 link-local prefix
            # route again (priority 256) when duplicate address detection ends.
            with contextlib.suppress(_RouteExistsError):
                self._request(
                    what, "route", "add", {**spec, "priority": priority},
                    {errno.EEXIST: _RouteExistsError(what)},
                )  # fmt: skip
            self._request(what, "route", "del", {**spec, "priority": old})

    # routes

    async def list_routes(self, family: Family) -> list[Route]:
        return [self._to_route(family, message) for message in self._route_messages(family)]

    async def add_route(self, route: Route) -> None:
        what = f"cannot add the route {route}"
        special = {
            errno.EEXIST: HostNetworkError(f"{what}: a route to it already exists"),
            errno.ENODEV: InterfaceNotFoundError(
                f"{what}: no interface has index {route.interface_index}"
            ),
        }
        self._request(what, "route", "add", self._route_spec(route), special)

    async def delete_route(self, route: Route) -> None:
        # the kernel takes a missing gateway or a zero priority as "any": check the exact route
        missing = RouteNotFoundError(f"no route {route} in the main table")
        if route not in await self.list_routes(route.family):
            raise missing
        self._request(
            f"cannot delete the route {route}",
            "route",
            "del",
            self._route_spec(route),
            {errno.ESRCH: missing},
        )

    async def best_route(self, address: IPAddress) -> Route:
        family = Family.of(address)
        replies = self._request(f"no route to {address}", "route", "get", {"dst": str(address)})
        if not replies or replies[0].get_attr("RTA_OIF") is None:
            raise HostNetworkError(f"no route to {address}")
        reply = replies[0]
        gateway_text = reply.get_attr("RTA_GATEWAY")
        gateway = None if gateway_text is None else ipaddress.ip_address(gateway_text)
        interface_index = int(reply.get_attr("RTA_OIF"))
        candidates = [
            route
            for route in await self.list_routes(family)
            if address in route.destination
            and route.gateway == gateway
            and route.interface_index == interface_index
        ]
        if candidates:
            return min(candidates, key=lambda route: (-route.destination.prefixlen, route.metric))
        destination: IPNetwork = host_network(address)
        return Route(destination, gateway, interface_index, 0)

    # what the client's guards and DHCP need besides

    def _ipv6_conf(self, interface_index: int, setting: str) -> tuple[str, Path]:
        name = str(self._link(interface_index).get_attr("IFLA_IFNAME"))
        path = _IPV6_CONF / name / setting
        if not path.exists():
            raise HostNetworkError(f"interface {name} has no IPv6 (disabled?): no {setting}")
        return name, path

    async def get_router_trust(self, interface_index: int, family: Family) -> RouterTrust:
        if family is Family.IPV4:
            self._link(interface_index)
            return RouterTrust(router_discovery=0, default_routes=True)
        name, path = self._ipv6_conf(interface_index, "accept_ra")
        try:
            return RouterTrust(router_discovery=int(path.read_text()), default_routes=True)
        except OSError as exc:
            raise _netlink_error(exc, f"cannot read accept_ra of {name}") from None

    async def set_router_trust(
        self, interface_index: int, family: Family, trust: RouterTrust
    ) -> None:
        if family is Family.IPV4:
            self._link(interface_index)  # nothing to set: no router discovery for IPv4
            return
        name, path = self._ipv6_conf(interface_index, "accept_ra")
        try:
            path.write_text(str(trust.router_discovery))
        except OSError as exc:
            what = f"cannot set accept_ra of {name} to {trust.router_discovery}"
            raise _netlink_error(exc, what) from None

    async def interface_networks(self, interface_index: int) -> list[IPNetwork]:
        self._link(interface_index)
        what = f"cannot list the addresses of interface {interface_index}"
        networks: list[IPNetwork] = []
        for message in self._request(what, "addr", "dump", {"index": interface_index}):
            address = message.get_attr("IFA_ADDRESS")
            if message["index"] != interface_index or address is None:
                continue
            network = ipaddress.ip_network(f"{address}/{message['prefixlen']}", strict=False)
            if network not in networks:
                networks.append(network)
        return networks

    async def interface_name(self, interface_index: int) -> str | None:
        try:
            return socket.if_indextoname(interface_index)
        except OSError:
            raise InterfaceNotFoundError(f"no interface has index {interface_index}") from None

    async def find_interface(self, name: str) -> int | None:
        try:
            return socket.if_nametoindex(name)
        except OSError:
            return None

    def add_address(
        self, interface_index: int, address: ipaddress.IPv4Interface, metric: int | None
    ) -> None:
        """Put ``address`` on the interface (its connected route with priority ``metric``)."""
        fields: dict[str, object] = {
            "index": interface_index,
            "address": str(address.ip),
            "prefixlen": address.network.prefixlen,
        }
        if address.network.prefixlen <= 30:
            fields["broadcast"] = str(address.network.broadcast_address)
        if metric is not None:
            fields["IFA_RT_PRIORITY"] = metric
        what = f"cannot put the address {address} on interface {interface_index}"
        self._request(what, "addr", "add", fields, {errno.EEXIST: _RouteExistsError(what)})

    def delete_address(self, interface_index: int, address: ipaddress.IPv4Interface) -> None:
        """Take ``address`` off the interface; one that is not there (or no interface) is fine."""
        fields = {
            "index": interface_index,
            "address": str(address.ip),
            "prefixlen": address.network.prefixlen,
        }
        what = f"cannot take the address {address} off interface {interface_index}"
        with contextlib.suppress(InterfaceNotFoundError, _AddressMissingError):
            self._request(
                what, "addr", "del", fields, {errno.EADDRNOTAVAIL: _AddressMissingError(what)}
            )

    @contextlib.asynccontextmanager
    async def watch_routes(self) -> AsyncIterator[RouteWatch]:
        try:
            sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE
            )
        except OSError as exc:
            raise _netlink_error(exc, "cannot open a netlink socket for route events") from None
        with sock:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _WATCH_BUFFER_BYTES)
                sock.bind((0, _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_ROUTE))
            except OSError as exc:
                raise _netlink_error(exc, "cannot listen to route events") from None
            yield _NetlinkRouteWatch(sock)


class _AddressMissingError(HostNetworkError):
    pass


class _NetlinkRouteWatch:
    """``RouteWatch`` over a netlink socket in the route groups (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._marshal: Any = MarshalRtnl()

    async def added_routes(self) -> list[Route] | None:
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            added: list[Route] = []
            for _ in range(_WATCH_READS_PER_WAKEUP):
                try:
                    data = self._sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        return None  # events were lost
                    raise _netlink_error(exc, "cannot read route events") from None
                added.extend(self._new_routes(data))
            if added:
                return added

    def _new_routes(self, data: bytes) -> Iterator[Route]:
        for message in self._marshal.parse(data):
            if (
                message["header"]["type"] == _RTM_NEWROUTE
                and message.get_attr("RTA_TABLE") == _MAIN_TABLE
                and message["type"] == _RTN_UNICAST
                and message.get_attr("RTA_OIF") is not None
                and message["family"] in (_AF[Family.IPV4], _AF[Family.IPV6])
            ):
                family = Family.IPV4 if message["family"] == _AF[Family.IPV4] else Family.IPV6
                yield LinuxHostNetwork._to_route(family, message)
