"""Which routes through the TAP the route guard removes (``tap_routes``, no I/O)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from lanparty.client.hostnet import IPNetwork, Route
from lanparty.client.tap_routes import beyond_the_lan, lan_networks, routes_beyond_the_lan

TAP, ETH = 7, 2
ROUTER = ip_address("198.19.0.1")
LAN = lan_networks([ip_network("198.19.0.0/16"), ip_network("fd00:1::/64")])


def through_tap(destination: str, gateway: str | None = None) -> Route:
    return Route(ip_network(destination), None if gateway is None else ip_address(gateway), TAP)


@pytest.mark.parametrize(
    "destination",
    ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "198.0.0.0/8", "198.18.0.0/15", "1.1.1.1/32",
     "10.0.0.0/24", "::/0", "2000::/3", "fd00::/8"],
)  # fmt: skip
def test_routes_beyond_the_lan_are_removed(destination: str) -> None:
    gateway = "198.19.0.1" if ":" not in destination else "fe80::1"
    assert beyond_the_lan(through_tap(destination, gateway), TAP, LAN)


@pytest.mark.parametrize(
    "destination",
    ["198.19.0.0/16", "198.19.7.0/24", "198.19.0.57/32", "198.19.255.255/32",
     "255.255.255.255/32", "224.0.0.0/4", "169.254.0.0/16", "fe80::/64", "ff00::/8",
     "fd00:1::/64"],
)  # fmt: skip
def test_routes_into_the_lan_or_the_link_stay(destination: str) -> None:
    assert not beyond_the_lan(through_tap(destination), TAP, LAN)


def test_routes_through_other_interfaces_are_not_judged() -> None:
    default = Route(ip_network("0.0.0.0/0"), ROUTER, ETH)
    assert not beyond_the_lan(default, TAP, LAN)


def test_before_the_tap_has_an_address_only_link_scope_stays() -> None:
    lan: tuple[IPNetwork, ...] = lan_networks([])
    routes = [through_tap("198.19.0.0/16"), through_tap("fe80::/64"), through_tap("224.0.0.0/4")]
    assert routes_beyond_the_lan(routes, TAP, lan) == routes[:1]
