"""Which DNS servers the TAP gives the host's resolver: an optional part of ``HostNetwork``.

The party's DHCP server may offer DNS servers; the player's PC must not use
them unless the player asks (``--use-party-dns``): a party LAN that answers
the player's lookups can send the player's web traffic anywhere.

- Linux needs nothing here: the client's own DHCP client takes the TAP's
  address and installs no DNS servers (``linux/dhcp.py``).
- Windows' own DHCP client installs them on the TAP. There the back end
  also implements ``TapDnsHost`` and the guard (``guards.dns_guard``)
  makes the TAP use no DNS servers while the client runs, and puts back
  what it had on exit, journaled (``journal.RestoreDns``) like every other
  change.

``InterfaceDns`` is one family's setting, in the terms Windows keeps it:
where the servers come from, and whether the interface registers its
addresses in DNS (dynamic update; on the TAP that would publish the
player's party-LAN address under the PC's name). While the client runs the
TAP has ``NO_DNS``: no servers, no registration.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

import attrs

from lanparty.client.hostnet import Family, HostNetwork, IPAddress


class DnsRegistration(enum.Enum):
    """Whether an interface registers its addresses in DNS; the values are netsh's words
    (and the journal's)."""

    NONE = "none"
    """No dynamic DNS registration."""
    PRIMARY = "primary"
    """Under the PC's primary DNS suffix (Windows' default)."""
    BOTH = "both"
    """Under the primary suffix and under the connection's own suffix."""


@attrs.frozen
class InterfaceDns:
    """An interface's DNS settings for one address family."""

    servers: tuple[IPAddress, ...] | None
    """Its own DNS servers, in order; () for none; None: those its DHCP server offers
    (Windows' "Obtain DNS server address automatically")."""
    registration: DnsRegistration = DnsRegistration.PRIMARY

    def __attrs_post_init__(self) -> None:
        if self.servers is not None and len({server.version for server in self.servers}) > 1:
            raise ValueError(f"DNS servers of two families in one setting: {self.servers}")

    def describe(self) -> str:
        if self.servers is None:
            servers = "the DHCP server's DNS servers"
        elif not self.servers:
            servers = "no DNS servers"
        else:
            servers = "DNS servers " + ", ".join(str(server) for server in self.servers)
        return f"{servers}, DNS registration {self.registration.value}"


NO_DNS = InterfaceDns(servers=(), registration=DnsRegistration.NONE)
"""The TAP's setting while the client runs (without ``--use-party-dns``)."""


@runtime_checkable
class TapDnsHost(Protocol):
    """A ``HostNetwork`` whose OS installs the DNS servers a DHCP server offers (Windows)."""

    async def get_dns(self, interface_index: int, family: Family) -> InterfaceDns:
        """The interface's DNS setting for ``family``.

        The Windows back end reads the registry, where no servers and "the
        DHCP server's" look the same (an empty static list): ``NO_DNS``
        reads back with ``servers`` None.
        """
        ...

    async def set_dns(self, interface_index: int, family: Family, dns: InterfaceDns) -> None: ...


def tap_dns_host(hostnet: HostNetwork) -> TapDnsHost | None:
    """``hostnet`` if its OS would install the party's DNS servers on the TAP; else None."""
    return hostnet if isinstance(hostnet, TapDnsHost) else None
