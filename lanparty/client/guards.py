"""The guards: every change the client makes to the host's network, and its undo.

Each guard is an async context manager that snapshots the previous state,
records how to restore it in the journal, applies the change, and on any
exit (normal, exception, Trio cancellation, which is also how Ctrl+C and
SIGTERM arrive) restores it under a shielded scope with a deadline, then
marks the journal entry done. A restore that fails or times out is logged
and its entry stays in the journal, so the next start retries it
(``restore_pending``); it never masks the exception the block is leaving
with.

``apply_guards`` enters them all in order; they are restored in reverse.
Journal writes are small synchronous file writes (with fsync), made from
the Trio task on purpose: the entry must be on disk before the change.
Each entry names its interface as ``HostNetwork.interface_name`` gives it,
so that a restore after a crash finds the interface again, or knows it
went away (``journal``).

Two guards keep the party LAN to its own subnets:

- ``router_trust_guard``: the TAP takes nothing from router advertisements
  (Linux ``accept_ra`` 0; Windows ``RouterDiscoveryBehavior`` disabled)
  and, where the OS has the switch, no default route at all (Windows
  ``DisableDefaultRoutes``). Journaled: a Windows TAP keeps them.
- ``TapRouteGuard``: every route through the TAP that leads beyond the
  LAN's own subnets (``tap_routes``) is removed as soon as the OS says it
  was added (``HostNetwork.watch_routes``: netlink events, Windows'
  NotifyRouteChange2), and once when the guard starts. Not journaled and
  never put back: those routes were never the player's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import attrs
import structlog
import trio

from lanparty.client.hostnet import (
    ROUTER_DISCOVERY_OFF,
    Family,
    HostNetwork,
    IPAddress,
    Route,
    RouteNotFoundError,
    RouterTrust,
    RouteWatch,
    host_network,
)
from lanparty.client.journal import (
    DeleteRoute,
    Journal,
    RestoreDns,
    RestoreMetric,
    RestoreMtu,
    RestoreRouterTrust,
    Undo,
    interface_of,
    restore_pending,
    undo_change,
)
from lanparty.client.tap_dns import NO_DNS, tap_dns_host
from lanparty.client.tap_routes import lan_networks, routes_beyond_the_lan
from lanparty.errors import HostNetworkError
from lanparty.obs.events import HOST_CHANGE_APPLIED, HOST_CHANGE_RESTORED, WATCHDOG_FAILED

log = structlog.get_logger(component="client")

T = TypeVar("T")

RESTORE_TIMEOUT_S = 5.0
"""How long one restore may take before it is abandoned to the journal."""

UNTRUSTING = RouterTrust(router_discovery=ROUTER_DISCOVERY_OFF, default_routes=False)
"""What the TAP takes from the party's routers while the client runs: nothing."""


async def _restore(hostnet: HostNetwork, journal: Journal, entry_id: int, undo: Undo) -> None:
    error = "timed out"
    with trio.move_on_after(RESTORE_TIMEOUT_S, shield=True):
        try:
            await undo_change(hostnet, undo)
            journal.done(entry_id)
            error = ""
        except HostNetworkError as exc:
            error = str(exc)
    if error:
        log.error(
            HOST_CHANGE_RESTORED, undo=repr(undo), ok=False, error=error, journal=journal.path
        )
    else:
        log.info(HOST_CHANGE_RESTORED, undo=repr(undo), ok=True)


async def _apply(
    stack: AsyncExitStack,
    hostnet: HostNetwork,
    journal: Journal,
    undo: Undo,
    apply: Callable[[], Awaitable[None]],
) -> bool:
    """Journal ``undo``, run ``apply``, and have ``stack`` restore on exit; returns True.

    ``HostNetworkError`` from ``apply`` means the OS refused the change:
    nothing to undo. Anything else (a cancellation) leaves the state
    unknown, so the undo runs at once.
    """
    index, _ = interface_of(undo)
    undo = attrs.evolve(undo, interface_name=await hostnet.interface_name(index))
    entry_id = journal.record(undo)
    try:
        await apply()
    except HostNetworkError:
        journal.done(entry_id)
        raise
    except BaseException:
        await _restore(hostnet, journal, entry_id, undo)
        raise
    stack.push_async_callback(_restore, hostnet, journal, entry_id, undo)
    return True


@asynccontextmanager
async def mtu_guard(
    hostnet: HostNetwork, journal: Journal, interface_index: int, mtu: int
) -> AsyncIterator[None]:
    """The interface's MTU is ``mtu`` for both families inside the block.

    An IPv4 failure is raised (fatal at start-up, nothing left applied); an
    IPv6 failure is logged and tolerated.
    """
    async with AsyncExitStack() as stack:
        for family in Family:
            previous = await _tolerate_ipv6(family, "mtu", hostnet.get_mtu(interface_index, family))
            if previous is None or previous == mtu:
                continue

            async def set_mtu(family: Family = family) -> None:
                await hostnet.set_mtu(interface_index, family, mtu)

            applied = await _tolerate_ipv6(
                family,
                "mtu",
                _apply(
                    stack, hostnet, journal, RestoreMtu(interface_index, family, previous), set_mtu
                ),
            )
            if applied:
                log.info(
                    HOST_CHANGE_APPLIED, change="mtu", family=family.value, mtu=mtu, was=previous
                )
        yield


@asynccontextmanager
async def metric_guard(
    hostnet: HostNetwork, journal: Journal, interface_index: int, metric: int | None
) -> AsyncIterator[None]:
    """The interface metric is ``metric`` for both families inside the block.

    Same failure policy as the MTU: IPv4 fatal, IPv6 logged and tolerated.
    """
    async with AsyncExitStack() as stack:
        for family in Family:
            found = await _tolerate_ipv6(
                family, "metric", _get_metric(hostnet, interface_index, family)
            )
            if found is None or found.metric == metric:
                continue

            async def set_metric(family: Family = family) -> None:
                await hostnet.set_metric(interface_index, family, metric)

            undo = RestoreMetric(interface_index, family, found.metric)
            if await _tolerate_ipv6(
                family, "metric", _apply(stack, hostnet, journal, undo, set_metric)
            ):
                log.info(
                    HOST_CHANGE_APPLIED,
                    change="metric",
                    family=family.value,
                    metric=metric,
                    was=found.metric,
                )
        yield


@attrs.frozen
class _Metric:
    metric: int | None


async def _get_metric(hostnet: HostNetwork, interface_index: int, family: Family) -> _Metric:
    # wrapped so that "automatic" (None) is not mistaken for a tolerated failure
    return _Metric(await hostnet.get_metric(interface_index, family))


async def _tolerate_ipv6(family: Family, change: str, call: Awaitable[T]) -> T | None:
    """``call``'s result; for IPv6, a ``HostNetworkError`` is logged and gives None."""
    if family is Family.IPV4:
        return await call
    try:
        return await call
    except HostNetworkError as exc:
        log.warning(
            HOST_CHANGE_APPLIED, change=change, family=family.value, ok=False, error=str(exc)
        )
        return None


@asynccontextmanager
async def router_trust_guard(
    hostnet: HostNetwork, journal: Journal, interface_index: int
) -> AsyncIterator[None]:
    """The interface takes nothing from routers inside the block (``UNTRUSTING``).

    A failure is logged and tolerated for either family: the route guard
    removes what a router would add anyway.
    """
    async with AsyncExitStack() as stack:
        for family in Family:
            previous = await _tolerate(
                family, "router_trust", hostnet.get_router_trust(interface_index, family)
            )
            if previous is None or previous == UNTRUSTING:
                continue

            async def untrust(family: Family = family) -> None:
                await hostnet.set_router_trust(interface_index, family, UNTRUSTING)

            undo = RestoreRouterTrust(interface_index, family, previous)
            if await _tolerate(
                family, "router_trust", _apply(stack, hostnet, journal, undo, untrust)
            ):
                log.info(
                    HOST_CHANGE_APPLIED,
                    change="router_trust",
                    family=family.value,
                    router_discovery=ROUTER_DISCOVERY_OFF,
                    default_routes=False,
                    was=attrs.asdict(previous),
                )
        yield


async def _tolerate(family: Family, change: str, call: Awaitable[T]) -> T | None:
    """``call``'s result; a ``HostNetworkError`` is logged and gives None (either family)."""
    try:
        return await call
    except HostNetworkError as exc:
        log.warning(
            HOST_CHANGE_APPLIED, change=change, family=family.value, ok=False, error=str(exc)
        )
        return None


@asynccontextmanager
async def dns_guard(
    hostnet: HostNetwork, journal: Journal, interface_index: int
) -> AsyncIterator[None]:
    """The interface uses no DNS servers and registers nothing in DNS inside the block
    (``NO_DNS``), where the OS would install those its DHCP server offers (``tap_dns``).

    Same failure policy as the MTU: an IPv4 failure is raised (the player
    may keep the party's DNS on purpose, with ``--use-party-dns``); IPv6 is
    logged and tolerated. Nothing to do where the OS installs none itself.
    """
    dns_host = tap_dns_host(hostnet)
    if dns_host is None:
        yield
        return
    async with AsyncExitStack() as stack:
        for family in Family:
            previous = await _tolerate_ipv6(
                family, "dns", _no_dns_hint(dns_host.get_dns(interface_index, family))
            )
            if previous is None or previous == NO_DNS:
                continue

            async def no_dns(family: Family = family) -> None:
                await dns_host.set_dns(interface_index, family, NO_DNS)

            undo = RestoreDns(interface_index, family, previous)
            if await _tolerate_ipv6(
                family, "dns", _no_dns_hint(_apply(stack, hostnet, journal, undo, no_dns))
            ):
                log.info(
                    HOST_CHANGE_APPLIED,
                    change="dns",
                    family=family.value,
                    dns=NO_DNS.describe(),
                    was=previous.describe(),
                )
        yield


async def _no_dns_hint(call: Awaitable[T]) -> T:
    """``call``'s result; its ``HostNetworkError`` says how to go on without the change."""
    try:
        return await call
    except HostNetworkError as exc:
        raise type(exc)(
            f"{exc}. The party's DNS servers would answer this PC's lookups: to accept that, "
            "start lanparty-client with --use-party-dns"
        ) from exc


class TapRouteGuard:
    """Removes the routes through the TAP that lead beyond the party LAN (``tap_routes``).

    ``sweep`` looks at the whole routing table; ``run`` waits for the OS to
    say routes were added and judges those (the whole table again when
    the OS lost track). Removed routes are never put back and not
    journaled: a DHCP client or a router put them there for an interface
    that goes away with the client (Linux), or that keeps nothing the
    player chose (Windows).
    """

    def __init__(self, hostnet: HostNetwork, interface_index: int, watch: RouteWatch) -> None:
        self._hostnet = hostnet
        self._watch = watch
        self.interface_index = interface_index
        self.removed: list[Route] = []

    async def sweep(self) -> list[Route]:
        """Judge every route of the table; returns those removed."""
        routes: list[Route] = []
        for family in Family:
            routes += await _tolerate_ipv6(family, "route", self._hostnet.list_routes(family)) or []
        return await self.judge(routes)

    async def judge(self, routes: list[Route]) -> list[Route]:
        """Remove those of ``routes`` that go through the TAP beyond the LAN; returns them."""
        if not any(route.interface_index == self.interface_index for route in routes):
            return []
        lan = lan_networks(await self._hostnet.interface_networks(self.interface_index))
        removed: list[Route] = []
        for route in routes_beyond_the_lan(routes, self.interface_index, lan):
            try:
                await self._hostnet.delete_route(route)
            except RouteNotFoundError:
                continue  # gone meanwhile
            removed.append(route)
            log.info(HOST_CHANGE_APPLIED, change="tap_route_removed", route=str(route))
        self.removed.extend(removed)
        return removed

    async def run(self) -> None:
        """Judge routes as the OS adds them, until cancelled."""
        while True:
            added = await self._watch.added_routes()
            try:
                await (self.sweep() if added is None else self.judge(added))
            except HostNetworkError as exc:
                log.warning(WATCHDOG_FAILED, guard="tap_routes", error=str(exc))


@asynccontextmanager
async def tap_route_guard(
    hostnet: HostNetwork, interface_index: int
) -> AsyncIterator[TapRouteGuard]:
    """Listen for routes, then sweep once; ``TapRouteGuard.run`` judges the ones that come."""
    async with hostnet.watch_routes() as watch:
        guard = TapRouteGuard(hostnet, interface_index, watch)
        await guard.sweep()
        yield guard


class RelayRoute:
    """The pinned host route to the relay through the path used before the TAP came up."""

    def __init__(self, hostnet: HostNetwork, journal: Journal, relay: IPAddress, route: Route):
        self._hostnet = hostnet
        self._journal = journal
        self.relay = relay
        self.route = route
        self._stack = AsyncExitStack()
        self.owned = False

    async def _add(self) -> None:
        await _apply(
            self._stack,
            self._hostnet,
            self._journal,
            DeleteRoute(self.route),
            lambda: self._hostnet.add_route(self.route),
        )
        self.owned = True
        log.info(HOST_CHANGE_APPLIED, change="relay_route", route=str(self.route))

    async def is_present(self) -> bool:
        return self.route in await self._hostnet.list_routes(self.route.family)

    async def verify(self) -> None:
        """Raise ``HostNetworkError`` unless the host reaches the relay through the pinned route."""
        best = await self._hostnet.best_route(self.relay)
        if (best.destination, best.gateway, best.interface_index) != (
            self.route.destination,
            self.route.gateway,
            self.route.interface_index,
        ):
            raise HostNetworkError(
                f"traffic to the relay {self.relay} would go through interface "
                f"{best.interface_index} (route {best.destination}), not the pinned route "
                f"through interface {self.route.interface_index}; another program may be "
                "managing routes (a VPN?): stop it and start again"
            )

    async def repair(self) -> bool:
        """Add the route again if missing; returns whether it had to (the watchdog logs that)."""
        if await self.is_present():
            return False
        if self.owned:
            # the entry journaled at start still undoes it
            await self._hostnet.add_route(self.route)
        else:
            await self._add()
        return True


@asynccontextmanager
async def relay_route_guard(
    hostnet: HostNetwork,
    journal: Journal,
    relay_address: IPAddress,
    best_before_tap: Route | None = None,
) -> AsyncIterator[RelayRoute]:
    """Pin a /32 or /128 route to the relay via today's next hop and interface.

    Enter it before the TAP has routes; ``best_before_tap`` is the host's
    best route to the relay asked before the TAP was opened (None: ask now),
    pinned as it is. A route identical to it that was already there is left
    alone on exit (it is not ours).
    """
    best = best_before_tap or await hostnet.best_route(relay_address)
    route = Route(host_network(relay_address), best.gateway, best.interface_index, metric=0)
    relay_route = RelayRoute(hostnet, journal, relay_address, route)
    async with relay_route._stack:
        if not await relay_route.is_present():
            await relay_route._add()
        yield relay_route


@attrs.frozen
class ClientGuards:
    """What the running client keeps from its guards (for its watchdog and route task)."""

    relay_route: RelayRoute
    tap_routes: TapRouteGuard


@asynccontextmanager
async def apply_guards(
    hostnet: HostNetwork,
    journal: Journal,
    *,
    tap_index: int,
    tap_mtu: int,
    tap_metric: int | None,
    relay_address: IPAddress,
    relay_best_before_tap: Route | None = None,
    party_dns: bool = False,
) -> AsyncIterator[ClientGuards]:
    """Restore what a killed run left, then enter every guard in order (restored in reverse).

    ``relay_best_before_tap``: see ``relay_route_guard``. ``party_dns``
    (``--use-party-dns``): leave the DNS servers the OS installs from the
    party's DHCP server on the TAP (no ``dns_guard``).
    """
    await restore_pending(journal, hostnet)
    async with AsyncExitStack() as stack:
        relay_route = await stack.enter_async_context(
            relay_route_guard(hostnet, journal, relay_address, relay_best_before_tap)
        )
        await stack.enter_async_context(mtu_guard(hostnet, journal, tap_index, tap_mtu))
        await stack.enter_async_context(metric_guard(hostnet, journal, tap_index, tap_metric))
        await stack.enter_async_context(router_trust_guard(hostnet, journal, tap_index))
        if not party_dns:
            await stack.enter_async_context(dns_guard(hostnet, journal, tap_index))
        tap_routes = await stack.enter_async_context(tap_route_guard(hostnet, tap_index))
        yield ClientGuards(relay_route, tap_routes)
