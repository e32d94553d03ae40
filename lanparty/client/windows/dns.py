"""The TAP's DNS settings on Windows: read from the registry, changed with netsh.

    dns = read_interface_dns(WindowsRegistry(), Family.IPV4, tap_guid)
    for command in netsh_commands(tap_if_index, Family.IPV4, NO_DNS):
        result = await run_netsh(command)

Windows' DHCP client installs the DNS servers the party's DHCP server
offers on the TAP (``tap_dns``); ``WindowsHostNetwork.get_dns``/``set_dns``
keep them off with what this module builds. Importable anywhere (tested on
Linux against the fake registry and netsh of ``tests/fakes``); running
netsh needs Windows.

**Reading** (``read_interface_dns``): an interface's own ("static") DNS
servers are the REG_SZ ``NameServer`` (addresses separated by commas or
spaces) of its TCP/IP key, ``...\\Services\\Tcpip\\Parameters\\Interfaces\\{GUID}``
(``Tcpip6`` for IPv6); an empty or missing value means the DHCP server's
(``DhcpNameServer``), which the static list overrides (MS registry
reference, "NameServer"). Dynamic DNS registration is the DWORDs
``RegistrationEnabled`` (missing: 1) and ``RegisterAdapterName`` (missing:
0) of the IPv4 key, one setting per interface for both families (the DNS
client's per-adapter setting; that the IPv6 key holds none of its own is
not confirmed on a real Windows). An empty static list cannot be told from
"the DHCP server's" there, so ``NO_DNS`` reads back with ``servers`` None.

**Changing** (``netsh_commands``): ``netsh interface ipv4|ipv6 set
dnsservers name=<if index> source=static address=none register=none
validate=no`` ("Sets the source for configuring DNS servers to local static
configuration", address none "Clears the list of DNS servers", register
none "Disables Dynamic DNS registration": netsh's own help); back to DHCP
with ``source=dhcp``; a static list with ``set`` for the first server and
``add ... index=N`` for the others. WireGuard for Windows empties a
tunnel's DNS servers with the same command. That Windows then uses no DNS
server on the TAP even though its DHCP client holds the party's
(``DhcpNameServer``) is what netsh's help says of a static source, and
what public scripts rely on; it is not confirmed on a real Windows here.

Why netsh, of the four ways:

- ``Set-DnsClientServerAddress -ServerAddresses`` takes no empty list
  ("no servers"), only ``-ResetServerAddresses`` (back to DHCP), and each
  call starts a PowerShell (about a second).
- Writing ``NameServer`` directly: an empty value means "the DHCP
  server's", so "none" cannot be written; and the DNS client would not be
  told of the change.
- ``SetInterfaceDnsSettings`` (iphlpapi, Windows 10 2004+): its
  ``DNS_INTERFACE_SETTINGS`` is not in the mingw-w64 10 headers, so its
  layout could not be checked like every other declaration here
  (``tests/winlayout.py``); and it has the same "empty static list" question.
- netsh: on every Windows, one short process per family, the interface
  named by its index (nothing to quote), and registration in the same
  command. Its output is in the console's OEM code page; its exit code
  says whether it worked.

The suffix search list is left alone: Windows has no "no suffix" value for
a connection either (an empty connection-specific suffix means the DHCP
server's), and the global list is the player's. With no DNS server on the
TAP, a suffix the party offers is never sent to the party; Windows may
still try it with the player's own DNS servers for single-label names.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import PureWindowsPath
from typing import Final, Protocol

import attrs
import trio

from lanparty.client.hostnet import Family, IPAddress
from lanparty.client.tap_dns import DnsRegistration, InterfaceDns
from lanparty.client.windows.adapters import RegistryAccessError
from lanparty.client.windows.profile import oem_encoding
from lanparty.client.windows.routes import FAMILY_NAME
from lanparty.errors import HostNetworkError

__all__ = [
    "INTERFACE_KEYS",
    "DnsRegistry",
    "Netsh",
    "NetshResult",
    "describe_command",
    "interface_key",
    "netsh_commands",
    "netsh_error",
    "netsh_executable",
    "read_interface_dns",
    "run_netsh",
]

INTERFACE_KEYS: Final = {
    Family.IPV4: r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters\Interfaces",
    Family.IPV6: r"SYSTEM\CurrentControlSet\Services\Tcpip6\Parameters\Interfaces",
}
NAME_SERVER: Final = "NameServer"
REGISTRATION_ENABLED: Final = "RegistrationEnabled"
REGISTER_ADAPTER_NAME: Final = "RegisterAdapterName"
NETSH_TIMEOUT_S: Final = 30.0
_NETSH_FAMILY: Final = {Family.IPV4: "ipv4", Family.IPV6: "ipv6"}
_CREATE_NO_WINDOW: Final = 0x08000000


class DnsRegistry(Protocol):
    """The registry reads ``read_interface_dns`` makes (``WindowsRegistry``, or a fake)."""

    def read_string(self, path: str, name: str) -> str | None: ...

    def read_dword(self, path: str, name: str) -> int | None: ...


def interface_key(family: Family, guid: uuid.UUID) -> str:
    """The TCP/IP registry key of the interface ``guid`` for ``family``."""
    return f"{INTERFACE_KEYS[family]}\\{{{guid}}}"


def parse_name_servers(text: str | None, family: Family) -> tuple[IPAddress, ...] | None:
    """The addresses of a ``NameServer`` value; None when it is empty (the DHCP server's).

    ``ValueError`` for a word that is not an address of ``family``.
    """
    words = [word for word in re.split(r"[,\s]+", text or "") if word]
    if not words:
        return None
    servers = tuple(ipaddress.ip_address(word) for word in words)
    if any(Family.of(server) is not family for server in servers):
        raise ValueError(f"not all {family.value} addresses")
    return servers


def registration_of(enabled: int | None, adapter_name: int | None) -> DnsRegistration:
    """The registration the DWORDs say (a missing one is Windows' default)."""
    if enabled == 0:
        return DnsRegistration.NONE
    return DnsRegistration.BOTH if adapter_name else DnsRegistration.PRIMARY


def read_interface_dns(registry: DnsRegistry, family: Family, guid: uuid.UUID) -> InterfaceDns:
    """The interface's DNS setting for ``family``, as the registry holds it.

    ``HostNetworkError`` when the registry cannot be read or holds what is
    not an address list.
    """
    key = interface_key(family, guid)
    registration_key = interface_key(Family.IPV4, guid)
    try:
        text = registry.read_string(key, NAME_SERVER)
        registration = registration_of(
            registry.read_dword(registration_key, REGISTRATION_ENABLED),
            registry.read_dword(registration_key, REGISTER_ADAPTER_NAME),
        )
    except RegistryAccessError as exc:
        raise HostNetworkError(f"cannot read the DNS settings of the TAP: {exc}") from exc
    try:
        servers = parse_name_servers(text, family)
    except ValueError as exc:
        raise HostNetworkError(
            f"cannot read the DNS servers of the TAP: HKEY_LOCAL_MACHINE\\{key}\\{NAME_SERVER} "
            f"is {text!r} ({exc})"
        ) from exc
    return InterfaceDns(servers, registration)


# netsh


def netsh_executable(environ: Mapping[str, str]) -> str:
    """netsh by its full path (as ``profile.powershell_executable`` finds PowerShell)."""
    system_root = environ.get("SystemRoot") or environ.get("SYSTEMROOT") or r"C:\Windows"
    return str(PureWindowsPath(system_root, "System32", "netsh.exe"))


def netsh_commands(interface_index: int, family: Family, dns: InterfaceDns) -> list[list[str]]:
    """The arguments of the netsh commands that give the interface ``dns`` for ``family``,
    in order."""
    base = ["interface", _NETSH_FAMILY[family]]
    name = f"name={int(interface_index)}"
    register = f"register={dns.registration.value}"
    if dns.servers is None:
        return [[*base, "set", "dnsservers", name, "source=dhcp", register]]
    if any(Family.of(server) is not family for server in dns.servers):
        raise ValueError(f"{dns.describe()}: not {family.value} servers")
    first = str(dns.servers[0]) if dns.servers else "none"
    static = ["source=static", f"address={first}", register, "validate=no"]
    commands = [[*base, "set", "dnsservers", name, *static]]
    for position, server in enumerate(dns.servers[1:], start=2):
        added = [f"address={server}", f"index={position}", "validate=no"]
        commands.append([*base, "add", "dnsservers", name, *added])
    return commands


@attrs.frozen
class NetshResult:
    exit_code: int
    output: str
    """What it printed, stdout and stderr."""


Netsh = Callable[[Sequence[str]], Awaitable[NetshResult]]
"""Runs netsh with the arguments of one command (``run_netsh``, or a test's fake)."""


async def run_netsh(arguments: Sequence[str]) -> NetshResult:
    """Run netsh with ``arguments``; ``HostNetworkError`` if it cannot start or hangs."""
    argv = [netsh_executable(os.environ), *arguments]
    try:
        with trio.fail_after(NETSH_TIMEOUT_S):
            if sys.platform == "win32":
                completed = await trio.run_process(
                    argv,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    creationflags=_CREATE_NO_WINDOW,
                )
            else:
                completed = await trio.run_process(
                    argv, capture_stdout=True, capture_stderr=True, check=False
                )
    except OSError as exc:
        raise HostNetworkError(f"cannot run netsh ({argv[0]}): {exc}") from exc
    except trio.TooSlowError:
        raise HostNetworkError(f"netsh did not finish within {NETSH_TIMEOUT_S:.0f} s") from None
    output = (completed.stdout + completed.stderr).decode(oem_encoding(), errors="replace")
    return NetshResult(completed.returncode, output)


def describe_command(arguments: Sequence[str]) -> str:
    return " ".join(["netsh", *arguments])


def netsh_error(
    interface: str,
    family: Family,
    dns: InterfaceDns,
    arguments: Sequence[str],
    result: NetshResult,
) -> HostNetworkError:
    """The error of a netsh command that failed while giving ``interface`` ``dns``."""
    said = " ".join(result.output.split()) or "no message"
    return HostNetworkError(
        f"{interface} ({FAMILY_NAME[family]}): cannot set {dns.describe()}: "
        f"{describe_command(arguments)} failed (exit code {result.exit_code}: {said})"
    )
