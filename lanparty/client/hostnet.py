"""The small host-network interface the client's guards are written against.

Linux implements it with netlink, Windows with the IP Helper API, and the
unit tests with a recording fake (``tests/fakes/hostnet.py``). Every method
is async: the back ends may block, and the Trio shell decides how to run
them. Failures are ``HostNetworkError`` (or one of the subclasses below)
with a message a user can act on.
"""

from __future__ import annotations

import enum
import ipaddress
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs

from lanparty.errors import HostNetworkError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Family(enum.Enum):
    """An address family; the values are the journal's strings."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @classmethod
    def of(cls, address: IPAddress | IPNetwork) -> Family:
        """The family of an address or a network."""
        return cls.IPV4 if address.version == 4 else cls.IPV6


class InterfaceNotFoundError(HostNetworkError):
    """No interface has the given number (it may have gone away with its process).

    What was set on it went with it: the journal counts its undo as done.
    """


class InterfaceUnavailableError(HostNetworkError):
    """The interface is there but cannot be changed now (Windows: its adapter is disabled).

    Unlike ``InterfaceNotFoundError``, its settings outlive this state, so
    the journal keeps what undoes them for a later start.
    """


class RouteNotFoundError(HostNetworkError):
    """The route to delete is not in the routing table."""


@attrs.frozen
class Route:
    """One routing table entry; ``gateway`` None means on-link.

    ``metric`` is the route's own metric (Windows adds the interface metric
    to it, Linux does not). Routes are compared on all four fields, which is
    how both back ends identify the route to delete.
    """

    destination: IPNetwork
    gateway: IPAddress | None
    interface_index: int
    """The back end's interface number (see ``HostNetwork``)."""
    metric: int = 0

    def __attrs_post_init__(self) -> None:
        if self.gateway is not None and self.gateway.version != self.destination.version:
            raise ValueError(f"gateway {self.gateway} is not in the family of {self.destination}")

    @property
    def family(self) -> Family:
        return Family.of(self.destination)

    @property
    def is_default(self) -> bool:
        """Whether this is a default route (0.0.0.0/0 or ::/0)."""
        return self.destination.prefixlen == 0


ROUTER_DISCOVERY_OFF = 0
"""``RouterTrust.router_discovery`` for "take nothing from router advertisements" (Linux
``accept_ra`` 0, Windows ``RouterDiscoveryDisabled``)."""


@attrs.frozen
class RouterTrust:
    """What an interface takes from the routers on its link, for one family.

    ``router_discovery`` is the OS's own value, kept as it is for the
    journal: Linux's ``accept_ra`` (IPv6; IPv4 has none, always 0), Windows'
    ``RouterDiscoveryBehavior``; ``ROUTER_DISCOVERY_OFF`` on both means
    advertisements are ignored. ``default_routes``: whether the interface
    takes default routes at all (Windows: not ``DisableDefaultRoutes``);
    Linux has no such switch, it is always True there and setting it
    changes nothing (the route guard removes them).
    """

    router_discovery: int
    default_routes: bool


class RouteWatch(Protocol):
    """Routes as the OS adds them, told by the OS (not polled)."""

    async def added_routes(self) -> list[Route] | None:
        """Wait until routes were added; those added since the last call.

        None: the OS lost track of some (a notification queue overflowed):
        look at the whole table.
        """
        ...


def host_network(address: IPAddress) -> IPNetwork:
    """The /32 or /128 network of one address."""
    return ipaddress.ip_network(address)


class HostNetwork(Protocol):
    """What the guards need from the operating system's network stack.

    ``interface_index`` is the back end's interface number (Linux ifindex,
    Windows LUID): what ``VirtualAdapter.index`` gives, what routes carry,
    what the journal keeps.
    """

    async def get_mtu(self, interface_index: int, family: Family) -> int:
        """The interface's MTU for ``family``, in bytes."""
        ...

    async def set_mtu(self, interface_index: int, family: Family, mtu: int) -> None:
        """Set the interface's MTU for ``family``."""
        ...

    async def get_metric(self, interface_index: int, family: Family) -> int | None:
        """The interface metric for ``family``; None when the OS chooses it (automatic)."""
        ...

    async def set_metric(self, interface_index: int, family: Family, metric: int | None) -> None:
        """Set the interface metric for ``family``; None gives the choice back to the OS."""
        ...

    async def list_routes(self, family: Family) -> list[Route]:
        """Every route of ``family`` in the main routing table."""
        ...

    async def add_route(self, route: Route) -> None:
        """Add ``route``; ``HostNetworkError`` if it is already there."""
        ...

    async def delete_route(self, route: Route) -> None:
        """Delete ``route``; ``RouteNotFoundError`` if it is not there."""
        ...

    async def best_route(self, address: IPAddress) -> Route:
        """The route the host would use now to reach ``address`` (next hop and interface).

        ``HostNetworkError`` if there is none.
        """
        ...

    def watch_routes(self) -> AbstractAsyncContextManager[RouteWatch]:
        """Be told of routes added (every family, every interface) while the block runs."""
        ...

    async def interface_networks(self, interface_index: int) -> list[IPNetwork]:
        """The on-link networks of the interface's addresses (198.19.0.0/16 for 198.19.0.57/16)."""
        ...

    async def get_router_trust(self, interface_index: int, family: Family) -> RouterTrust:
        """What the interface takes from routers for ``family`` (see ``RouterTrust``)."""
        ...

    async def set_router_trust(
        self, interface_index: int, family: Family, trust: RouterTrust
    ) -> None: ...

    async def interface_name(self, interface_index: int) -> str | None:
        """A name that finds the interface again if its number changes (Linux: its name).

        None where the number itself is stable (Windows: a LUID). ``InterfaceNotFoundError``
        when no interface has that number.
        """
        ...

    async def find_interface(self, name: str) -> int | None:
        """The number of the interface ``interface_name`` called ``name``; None if none has it."""
        ...
