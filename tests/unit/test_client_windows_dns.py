"""The TAP's DNS settings on Windows: registry values read, netsh command lines built."""

from __future__ import annotations

import uuid
from ipaddress import ip_address

import pytest

from lanparty.client.hostnet import Family
from lanparty.client.tap_dns import NO_DNS, DnsRegistration, InterfaceDns
from lanparty.client.windows import dns
from lanparty.errors import HostNetworkError

GUID = uuid.UUID("3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
V4_KEY = rf"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters\Interfaces\{{{GUID}}}"
V6_KEY = rf"SYSTEM\CurrentControlSet\Services\Tcpip6\Parameters\Interfaces\{{{GUID}}}"


class Registry:
    def __init__(self, values: dict[tuple[str, str], str | int]) -> None:
        self.values = values

    def read_string(self, path: str, name: str) -> str | None:
        value = self.values.get((path, name))
        return value if isinstance(value, str) else None

    def read_dword(self, path: str, name: str) -> int | None:
        value = self.values.get((path, name))
        return value if isinstance(value, int) else None


def test_the_keys_are_the_interfaces_tcpip_keys() -> None:
    assert dns.interface_key(Family.IPV4, GUID) == V4_KEY
    assert dns.interface_key(Family.IPV6, GUID) == V6_KEY


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("192.0.2.53", ("192.0.2.53",)),
        ("192.0.2.53,198.51.100.53", ("192.0.2.53", "198.51.100.53")),
        ("192.0.2.53 198.51.100.53", ("192.0.2.53", "198.51.100.53")),
    ],
)
def test_name_server_values(text: str | None, servers: tuple[str, ...] | None) -> None:
    parsed = dns.parse_name_servers(text, Family.IPV4)
    assert parsed == (None if servers is None else tuple(map(ip_address, servers)))


@pytest.mark.parametrize("text", ["dns.example", "fd00::53", "192.0.2.300"])
def test_a_name_server_value_that_is_no_address_list_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        dns.parse_name_servers(text, Family.IPV4)


@pytest.mark.parametrize(
    ("enabled", "adapter_name", "registration"),
    [
        (None, None, DnsRegistration.PRIMARY),  # Windows' defaults
        (1, 0, DnsRegistration.PRIMARY),
        (1, 1, DnsRegistration.BOTH),
        (0, 1, DnsRegistration.NONE),
        (0, None, DnsRegistration.NONE),
    ],
)
def test_registration(
    enabled: int | None, adapter_name: int | None, registration: DnsRegistration
) -> None:
    assert dns.registration_of(enabled, adapter_name) is registration


def test_both_families_read_their_servers_and_the_interfaces_registration() -> None:
    registry = Registry(
        {
            (V4_KEY, "NameServer"): "",
            (V6_KEY, "NameServer"): "fd00::53",
            (V4_KEY, "RegistrationEnabled"): 1,
            (V4_KEY, "RegisterAdapterName"): 1,
            (V6_KEY, "RegistrationEnabled"): 0,  # not where Windows keeps it: ignored
        }
    )
    assert dns.read_interface_dns(registry, Family.IPV4, GUID) == InterfaceDns(
        None, DnsRegistration.BOTH
    )
    assert dns.read_interface_dns(registry, Family.IPV6, GUID) == InterfaceDns(
        (ip_address("fd00::53"),), DnsRegistration.BOTH
    )
    registry.values[V4_KEY, "NameServer"] = "fd00::53"
    with pytest.raises(HostNetworkError, match=r"Tcpip\\Parameters.*NameServer is 'fd00::53'"):
        dns.read_interface_dns(registry, Family.IPV4, GUID)


def test_no_dns_is_one_command_per_family() -> None:
    assert dns.netsh_commands(12, Family.IPV4, NO_DNS) == [
        [
            *("interface", "ipv4", "set", "dnsservers", "name=12", "source=static"),
            *("address=none", "register=none", "validate=no"),
        ]
    ]
    assert dns.netsh_commands(12, Family.IPV6, NO_DNS)[0][:2] == ["interface", "ipv6"]


def test_back_to_dhcp_and_a_static_list() -> None:
    assert dns.netsh_commands(7, Family.IPV4, InterfaceDns(None, DnsRegistration.BOTH)) == [
        ["interface", "ipv4", "set", "dnsservers", "name=7", "source=dhcp", "register=both"]
    ]
    servers = tuple(map(ip_address, ("fd00::1", "fd00::2", "fd00::3")))
    commands = dns.netsh_commands(7, Family.IPV6, InterfaceDns(servers))
    assert [" ".join(command) for command in commands] == [
        "interface ipv6 set dnsservers name=7 source=static address=fd00::1 register=primary "
        "validate=no",
        "interface ipv6 add dnsservers name=7 address=fd00::2 index=2 validate=no",
        "interface ipv6 add dnsservers name=7 address=fd00::3 index=3 validate=no",
    ]
    with pytest.raises(ValueError):
        dns.netsh_commands(7, Family.IPV4, InterfaceDns(servers))


def test_netsh_is_run_from_system32() -> None:
    assert dns.netsh_executable({"SystemRoot": r"D:\Win"}) == r"D:\Win\System32\netsh.exe"
    assert dns.netsh_executable({}) == r"C:\Windows\System32\netsh.exe"


def test_a_failed_command_says_what_was_tried_and_what_netsh_said() -> None:
    arguments = dns.netsh_commands(12, Family.IPV4, NO_DNS)[0]
    error = dns.netsh_error(
        "interface 12",
        Family.IPV4,
        NO_DNS,
        arguments,
        dns.NetshResult(1, "Element\r\nnot found.\r\n"),
    )
    assert str(error) == (
        "interface 12 (IPv4): cannot set no DNS servers, DNS registration none: netsh interface "
        "ipv4 set dnsservers name=12 source=static address=none register=none validate=no "
        "failed (exit code 1: Element not found.)"
    )
