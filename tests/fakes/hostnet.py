"""A recording, in-memory ``HostNetwork`` for the guard tests.

Interfaces have an MTU and a metric per family, routes live in one table,
``best_route`` picks the longest prefix then the lowest route metric plus
interface metric (the Windows rule). Every call is recorded in order,
failed ones included; ``fail`` makes chosen calls raise, ``delay_s``
makes every call take that long (or forever) so that tests can cancel
or time out a call, and ``snapshot`` captures the whole state.

Interfaces have no name unless a test gives one (``names``: the Linux
way; without, numbers are stable, the Windows way), on-link networks
(``networks``) and a router trust per family (default: router
advertisements taken, ``ACCEPTING``). ``os_adds_route`` is the OS (a DHCP
client, a router advertisement) adding a route: every open
``watch_routes`` is told; ``os_loses_route_events`` tells them it lost
track. Lookups that change nothing (``interface_name``,
``find_interface``, ``interface_networks``) are not recorded.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
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
)
from lanparty.errors import HostNetworkError

ACCEPTING = RouterTrust(router_discovery=1, default_routes=True)
"""What a fake interface takes from routers until told otherwise."""


@attrs.frozen
class Call:
    method: str
    args: tuple[object, ...]


@attrs.define
class FakeInterface:
    mtu: dict[Family, int]
    metric: dict[Family, int | None]
    trust: dict[Family, RouterTrust] = attrs.field(factory=lambda: dict.fromkeys(Family, ACCEPTING))


@attrs.frozen
class Snapshot:
    interfaces: tuple[tuple[int, tuple[tuple[Family, int, int | None, RouterTrust], ...]], ...]
    routes: frozenset[Route]


class FakeRouteWatch:
    """``RouteWatch`` fed by ``FakeHostNetwork.os_adds_route``."""

    def __init__(self) -> None:
        self.pending: list[Route] | None = []
        self._arrived = trio.Event()

    def tell(self, route: Route | None) -> None:
        if route is None or self.pending is None:
            self.pending = None
        else:
            self.pending.append(route)
        self._arrived.set()

    async def added_routes(self) -> list[Route] | None:
        await self._arrived.wait()
        added, self.pending, self._arrived = self.pending, [], trio.Event()
        return added


@attrs.define
class _Failure:
    method: str
    matches: Callable[[tuple[object, ...]], bool]
    skip: int
    remaining: float
    error: Callable[[str], HostNetworkError]


class FakeHostNetwork:
    """An in-memory host network that records what the guards do to it."""

    def __init__(self) -> None:
        self.interfaces: dict[int, FakeInterface] = {}
        self.routes: list[Route] = []
        self.calls: list[Call] = []
        self.delay_s: dict[str, float] = {}
        self.names: dict[int, str] = {}
        self.networks: dict[int, list[IPNetwork]] = {}
        self.watches: list[FakeRouteWatch] = []
        self._failures: list[_Failure] = []

    # set-up and inspection (not part of HostNetwork)

    def add_interface(self, index: int, mtu: int = 1500, metric: int | None = None) -> None:
        self.interfaces[index] = FakeInterface(
            mtu=dict.fromkeys(Family, mtu), metric=dict.fromkeys(Family, metric)
        )

    def remove_interface(self, index: int) -> None:
        """The interface goes away, and with it its routes (as a TAP does when closed)."""
        del self.interfaces[index]
        self.names.pop(index, None)
        self.routes = [route for route in self.routes if route.interface_index != index]

    def os_adds_route(self, route: Route) -> None:
        """The OS adds ``route`` (a DHCP client's, a router's) and tells every watch."""
        self.routes.append(route)
        for watch in self.watches:
            watch.tell(route)

    def os_loses_route_events(self) -> None:
        for watch in self.watches:
            watch.tell(None)

    def fail(
        self,
        method: str,
        *,
        family: Family | None = None,
        skip: int = 0,
        times: float = math.inf,
        error: Callable[[str], HostNetworkError] = HostNetworkError,
    ) -> None:
        """Make ``method`` raise ``error`` (a ``HostNetworkError``) after ``skip`` matching
        calls succeed."""

        def matches(args: tuple[object, ...]) -> bool:
            return (
                family is None
                or family in args
                or any(isinstance(arg, Route) and arg.family is family for arg in args)
            )

        self._failures.append(_Failure(method, matches, skip, times, error))

    def snapshot(self) -> Snapshot:
        return Snapshot(
            interfaces=tuple(
                (
                    index,
                    tuple(
                        (
                            family,
                            interface.mtu[family],
                            interface.metric[family],
                            interface.trust[family],
                        )
                        for family in Family
                    ),
                )
                for index, interface in sorted(self.interfaces.items())
            ),
            routes=frozenset(self.routes),
        )

    def methods_called(self) -> list[str]:
        return [call.method for call in self.calls]

    async def _enter(self, method: str, *args: object) -> None:
        self.calls.append(Call(method, args))
        delay_s = self.delay_s.get(method, 0.0)
        if delay_s:
            await trio.sleep(delay_s)
        for failure in self._failures:
            if failure.method != method or failure.remaining <= 0 or not failure.matches(args):
                continue
            if failure.skip > 0:
                failure.skip -= 1
                continue
            failure.remaining -= 1
            raise failure.error(f"fake: {method}{args} refused")

    def _interface(self, index: int) -> FakeInterface:
        try:
            return self.interfaces[index]
        except KeyError:
            raise InterfaceNotFoundError(f"fake: no interface {index}") from None

    # HostNetwork

    async def get_mtu(self, interface_index: int, family: Family) -> int:
        await self._enter("get_mtu", interface_index, family)
        return self._interface(interface_index).mtu[family]

    async def set_mtu(self, interface_index: int, family: Family, mtu: int) -> None:
        await self._enter("set_mtu", interface_index, family, mtu)
        self._interface(interface_index).mtu[family] = mtu

    async def get_metric(self, interface_index: int, family: Family) -> int | None:
        await self._enter("get_metric", interface_index, family)
        return self._interface(interface_index).metric[family]

    async def set_metric(self, interface_index: int, family: Family, metric: int | None) -> None:
        await self._enter("set_metric", interface_index, family, metric)
        self._interface(interface_index).metric[family] = metric

    async def list_routes(self, family: Family) -> list[Route]:
        await self._enter("list_routes", family)
        return [route for route in self.routes if route.family is family]

    async def add_route(self, route: Route) -> None:
        await self._enter("add_route", route)
        self._interface(route.interface_index)
        if route in self.routes:
            raise HostNetworkError(f"fake: route {route} exists")
        self.routes.append(route)

    async def delete_route(self, route: Route) -> None:
        await self._enter("delete_route", route)
        if route not in self.routes:
            raise RouteNotFoundError(f"fake: no route {route}")
        self.routes.remove(route)

    async def best_route(self, address: IPAddress) -> Route:
        await self._enter("best_route", address)
        candidates = [
            route
            for route in self.routes
            if route.destination.version == address.version and address in route.destination
        ]
        if not candidates:
            raise HostNetworkError(f"fake: no route to {address}")

        def rank(route: Route) -> tuple[int, int]:
            interface_metric = self.interfaces[route.interface_index].metric[route.family] or 0
            return (-route.destination.prefixlen, route.metric + interface_metric)

        return min(candidates, key=rank)

    @asynccontextmanager
    async def watch_routes(self) -> AsyncIterator[RouteWatch]:
        await self._enter("watch_routes")
        watch = FakeRouteWatch()
        self.watches.append(watch)
        try:
            yield watch
        finally:
            self.watches.remove(watch)

    async def interface_networks(self, interface_index: int) -> list[IPNetwork]:
        self._interface(interface_index)
        return list(self.networks.get(interface_index, []))

    async def get_router_trust(self, interface_index: int, family: Family) -> RouterTrust:
        await self._enter("get_router_trust", interface_index, family)
        return self._interface(interface_index).trust[family]

    async def set_router_trust(
        self, interface_index: int, family: Family, trust: RouterTrust
    ) -> None:
        await self._enter("set_router_trust", interface_index, family, trust)
        self._interface(interface_index).trust[family] = trust

    async def interface_name(self, interface_index: int) -> str | None:
        self._interface(interface_index)
        return self.names.get(interface_index)

    async def find_interface(self, name: str) -> int | None:
        for index, known in self.names.items():
            if known == name:
                return index
        return None
