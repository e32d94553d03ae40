"""Host-network values."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from lanparty.client.hostnet import Family, Route, host_network


def test_family_of_addresses_and_networks() -> None:
    assert Family.of(ip_address("198.18.0.1")) is Family.IPV4
    assert Family.of(ip_network("2001:db8::/32")) is Family.IPV6


def test_default_routes_and_families() -> None:
    assert Route(ip_network("0.0.0.0/0"), ip_address("198.18.0.1"), 2).is_default
    assert Route(ip_network("::/0"), None, 2).family is Family.IPV6
    assert not Route(ip_network("198.18.0.0/24"), None, 2).is_default


def test_a_gateway_of_the_other_family_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the family"):
        Route(ip_network("0.0.0.0/0"), ip_address("2001:db8::1"), 2)


def test_host_network_is_one_address() -> None:
    assert host_network(ip_address("198.18.5.9")) == ip_network("198.18.5.9/32")
    assert host_network(ip_address("2001:db8::9")) == ip_network("2001:db8::9/128")
