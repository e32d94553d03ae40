"""Which routes through the TAP may stay: those that lead only into the party LAN (no I/O).

The party's LAN (its DHCP server, its routers, whoever holds its gateway)
may tell this PC to send traffic its way: a default route with the lease,
DHCP option 121 routes (0.0.0.0/1 and 128.0.0.0/1 take the whole
internet and win over any default route by being longer), router
advertisements. The route guard (``guards.TapRouteGuard``) asks
``beyond_the_lan`` about every route through the TAP it sees appear, and
removes those it names; nothing of them is put back (they were never the
player's).

Where the contract is silent:

- "The party LAN's own subnets" are the on-link networks of the TAP's own
  addresses (the lease's address and prefix, an address the player gave it)
  and the ranges that mean "this link" in any LAN: IPv4 link-local
  (169.254.0.0/16), multicast (224.0.0.0/4), the limited broadcast
  (255.255.255.255/32), IPv6 link-local (fe80::/10) and multicast
  (ff00::/8). A route through the TAP may stay only if its destination lies
  inside one of them. That removes what a route shorter than the LAN's
  would take (a /0, the /1 halves, a /8 around a /16 LAN), and also a longer
  one outside it (1.1.1.1/32 via the LAN's router): either would send some
  of the player's own traffic to the party.
- Before the TAP has an address, no IPv4 route but the link-scope ones may
  stay: there is no LAN subnet yet.
- Routes through other interfaces are never the guard's business.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from lanparty.client.hostnet import IPNetwork, Route

__all__ = ["LINK_SCOPE_NETWORKS", "beyond_the_lan", "lan_networks", "routes_beyond_the_lan"]

LINK_SCOPE_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("169.254.0.0/16"),
    ipaddress.IPv4Network("224.0.0.0/4"),
    ipaddress.IPv4Network("255.255.255.255/32"),
    ipaddress.IPv6Network("fe80::/10"),
    ipaddress.IPv6Network("ff00::/8"),
)
"""Destinations that stay on the link whatever the LAN: always allowed through the TAP."""


def lan_networks(tap_networks: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """The networks a route through the TAP may lead into: the TAP's own, and link scope."""
    return (*tap_networks, *LINK_SCOPE_NETWORKS)


def beyond_the_lan(route: Route, tap_index: int, lan: Sequence[IPNetwork]) -> bool:
    """Whether ``route`` goes through the TAP to addresses outside ``lan`` (``lan_networks``)."""
    if route.interface_index != tap_index:
        return False
    destination = route.destination
    return not any(
        network.version == destination.version and destination.subnet_of(network)  # type: ignore[arg-type]
        for network in lan
    )


def routes_beyond_the_lan(
    routes: Iterable[Route], tap_index: int, lan: Sequence[IPNetwork]
) -> list[Route]:
    """Those of ``routes`` that ``beyond_the_lan`` names, in their order."""
    return [route for route in routes if beyond_the_lan(route, tap_index, lan)]
