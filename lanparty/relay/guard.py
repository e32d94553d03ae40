"""The relay's L2 guard: DHCP snooping and ARP / neighbour inspection per room (sans-I/O).

What switches call DHCP snooping and dynamic ARP inspection, for a room of
strangers. Each client's addresses are bound to it:

- from the DHCP ACKs (and DHCPv6 Replies) the gateway forwards to it: the
  LAN's DHCP server is the authority, and its ACK moves an address to the
  client it names;
- from the client's own probes and announcements (an ARP or a DAD
  neighbour solicitation, a neighbour advertisement) for an address nobody
  in the room holds: a player with a static address, its link-local and
  SLAAC addresses. An IPv4 address is claimed so only until the client has
  a lease.

What the LAN holds is learned from the gateway's side: the senders of its
ARP and neighbour discovery, and the DHCP server, routers and DNS servers
its DHCP replies name. A client may then not speak ARP or neighbour
discovery for an address it does not hold, nor claim one the LAN or
another client holds (``arp_spoof``, ``nd_spoof``); its DHCP requests must
carry its own MAC and its DHCPv6 messages its own DUID (the first it used,
not one a LAN host or another client uses), one identity association of
each kind and at most ``MAX_IAIDS_PER_CLIENT`` IAIDs, every option readable
by the guard and no IP fragment (``dhcp_spoof``, ``suspicious``), and they
come at a few per second
(``rate_limited_dhcp``); VLAN-tagged frames (a VID other than 0) from
clients are dropped (``vlan_tagged``) unless the relay allows them.

Frames reach the guard classified (``FrameClass`` with its offsets), so a
disguised frame (VLAN tags, LLC/SNAP, extension headers) is judged as what
it is; neighbour discovery in a fragment, or a DHCP request too short to
hold its client address, is ``suspicious``. Offsets below are into the
datagram: the frame starts at ``start`` (after the overlay byte).

A client's bindings belong to its client id for the room's life: one that
reconnects keeps its addresses, its lease and its DHCP budget, and nobody
takes its address while it is away. An address the LAN is seen to hold is
taken from any client that claimed it first. What a room remembers is
bounded: ``MAX_LAN_ADDRESSES`` per family, and ``MAX_ADDRESSES_PER_CLIENT``
per client and family (its oldest goes first), ``MAX_LAN_ADDRESSES`` LAN
DUIDs, one DUID per client id; client ids are bounded by the switch's MAC
bindings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from lanparty.proto.classification import FragmentState, FrameClass
from lanparty.proto.drops import DropReason
from lanparty.proto.ethernet import ETHERTYPE_ARP, VLAN_TAG_ETHERTYPES
from lanparty.proto.ip import (
    DHCP_CLIENT_PORT,
    DHCP_SERVER_PORT,
    DHCPV6_CLIENT_PORT,
    DHCPV6_SERVER_PORT,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
    UDP_HEADER_BYTES,
)
from lanparty.relay.ratelimit import TokenBucket

MAX_LAN_ADDRESSES = 4096
MAX_ADDRESSES_PER_CLIENT = 16
DHCP_MESSAGES_PER_S = 4.0
DHCP_MESSAGES_BURST = 10.0

_ARP_SPOOF = DropReason.ARP_SPOOF
_ND_SPOOF = DropReason.ND_SPOOF
_DHCP_SPOOF = DropReason.DHCP_SPOOF
_RATE_LIMITED_DHCP = DropReason.RATE_LIMITED_DHCP
_VLAN_TAGGED = DropReason.VLAN_TAGGED
_SUSPICIOUS = DropReason.SUSPICIOUS
_UNFRAGMENTED = FragmentState.UNFRAGMENTED
_NON_FIRST = FragmentState.NON_FIRST

_ARP_BYTES = 28
_ARP_FOR_IPV4 = bytes.fromhex("08000604")  # ptype 0x0800, hlen 6, plen 4
_ZERO_IPV4 = bytes(4)
_ZERO_IPV6 = bytes(16)
_ICMPV6_NEIGHBOR_SOLICITATION = 135
_ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
_ICMPV6_ROUTER_ADVERTISEMENT = 134
_ND_OPTION_SOURCE_LINK_ADDRESS = 1
_ND_OPTION_TARGET_LINK_ADDRESS = 2
_ND_OPTIONS_AFTER = 24  # type, code, checksum, flags/reserved, target
_ICMPV6_ROUTER_SOLICITATION = 133
_IPPROTO_ICMP = 1
_ICMP_REDIRECT = 5
_ICMP_REDIRECT_DROP = DropReason.ICMP_REDIRECT
_RS_OPTIONS_AFTER = 8  # type, code, checksum, reserved
_MAX_OPTIONS = 64

# DHCP (RFC 2131): fixed header, then the magic cookie and options.
_DHCP_CHADDR = 28
_DHCP_YIADDR = 16
_DHCP_CIADDR = 12
_DHCP_OPTIONS = 240
_DHCP_MESSAGE_TYPE = 53
_DHCP_ROUTER = 3
_DHCP_DNS = 6
_DHCP_SERVER_ID = 54
_DHCP_CLIENT_IDENTIFIER = 61
_ETHERNET_HLEN = bytes([1, 6])
_ZERO_CHADDR_TAIL = bytes(10)
_DHCPOFFER, _DHCPACK, _DHCPRELEASE = 2, 5, 7
_DHCPV6_REPLY = 7
_DHCPV6_CLIENT_ID = 1
# Client messages (solicit .. information-request); relay messages are refused.
_DHCPV6_CLIENT_MESSAGES = range(1, 12)
# Identity associations (IA_NA, IA_TA, IA_PD): each leases addresses or prefixes.
_DHCPV6_IA_OPTIONS = (3, 4, 25)
# IAIDs one client may use for the room's life (one interface needs one or two).
MAX_IAIDS_PER_CLIENT = 8
# RFC 8415 11.1: a DUID is a 2-byte type and at most 128 bytes after it.
_MAX_DUID_BYTES = 130
_DHCPV6_IA_NA = 3
_DHCPV6_IAADDR = 5


class GuardedClient(Protocol):
    """What the guard needs of a client member (``switch.Member``)."""

    mac: bytes
    guard: ClientBindings


class ClientBindings:
    """One client's addresses, whether the LAN's DHCP server gave it one, its DHCP budget."""

    __slots__ = (
        "dhcp_bucket",
        "dhcpv6_duid",
        "dhcpv6_iaids",
        "duid_since",
        "ipv4",
        "ipv6",
        "joined",
        "leased",
    )

    def __init__(self, joined: int = 0) -> None:
        # Insertion-ordered: the oldest goes first when full.
        self.ipv4: dict[bytes, None] = {}
        self.ipv6: dict[bytes, None] = {}
        self.leased = False
        # The DUID its DHCPv6 messages carry: the first one it used, for the room's life,
        # and when (in the room's order of events, as ``joined``).
        self.dhcpv6_duid: bytes | None = None
        self.duid_since = 0
        self.dhcpv6_iaids: set[bytes] = set()
        self.joined = joined
        self.dhcp_bucket = TokenBucket(DHCP_MESSAGES_PER_S, DHCP_MESSAGES_BURST)


class RoomGuard:
    """The bindings of one room and the guard's verdicts on its frames."""

    __slots__ = (
        "allow_vlan_tags",
        "clients",
        "duid_owners",
        "events",
        "ipv4_owners",
        "ipv6_owners",
        "lan_duids",
        "lan_ipv4",
        "lan_ipv6",
    )

    def __init__(self, *, allow_vlan_tags: bool = False) -> None:
        self.allow_vlan_tags = allow_vlan_tags
        # Address -> the bindings of the client (id) that holds it, across its sessions.
        self.ipv4_owners: dict[bytes, ClientBindings] = {}
        self.ipv6_owners: dict[bytes, ClientBindings] = {}
        # Client id -> its bindings, for the room's life: a player who reconnects
        # keeps its addresses, its lease and its DHCP budget.
        self.clients: dict[bytes, ClientBindings] = {}
        # Addresses seen on the LAN's side.
        self.lan_ipv4: set[bytes] = set()
        self.lan_ipv6: set[bytes] = set()
        # DHCPv6 DUIDs: the client (id) using each, and those the LAN's hosts use.
        self.duid_owners: dict[bytes, ClientBindings] = {}
        self.lan_duids: dict[bytes, None] = {}  # insertion-ordered: the oldest goes first
        self.events = 0

    # ----------------------------------------------------------- bindings

    def bindings_for(self, client_id: bytes) -> ClientBindings:
        """A client id's bindings (made the first time it joins; kept for the room's life)."""
        bindings = self.clients.get(client_id)
        if bindings is None:
            self.events += 1
            bindings = self.clients[client_id] = ClientBindings(self.events)
        return bindings

    def bind_ipv4(self, client: GuardedClient, address: bytes) -> None:
        _bind(self.ipv4_owners, client.guard.ipv4, client.guard, address)

    def bind_ipv6(self, client: GuardedClient, address: bytes) -> None:
        _bind(self.ipv6_owners, client.guard.ipv6, client.guard, address)

    def _lan_ipv4(self, address: bytes) -> None:
        """The LAN holds ``address``: no client may, whatever it claimed before."""
        if address == _ZERO_IPV4:
            return
        owner = self.ipv4_owners.pop(address, None)
        if owner is not None:
            owner.ipv4.pop(address, None)
        if len(self.lan_ipv4) < MAX_LAN_ADDRESSES:
            self.lan_ipv4.add(address)

    def _lan_ipv6(self, address: bytes) -> None:
        if address == _ZERO_IPV6:
            return
        owner = self.ipv6_owners.pop(address, None)
        if owner is not None:
            owner.ipv6.pop(address, None)
        if len(self.lan_ipv6) < MAX_LAN_ADDRESSES:
            self.lan_ipv6.add(address)

    # --------------------------------------------------- the client's side

    def client_drop(
        self,
        client: GuardedClient,
        data: bytes,
        start: int,
        frame_class: FrameClass | None,
        now: float,
    ) -> DropReason | None:
        """Why the guard drops a client's frame, or None (the safety filters passed it).

        ``frame_class`` is the classifier's verdict, None for a frame whose
        type field cannot lead to IP (then only untagged ARP concerns us).
        """
        type_field = data[start + 12] << 8 | data[start + 13]
        if (
            type_field in VLAN_TAG_ETHERTYPES
            and not self.allow_vlan_tags
            and _has_vlan_id(data, start + 12)
        ):
            return _VLAN_TAGGED
        if frame_class is None:
            if type_field == ETHERTYPE_ARP:
                return self._client_arp(client, data, start + 14)
            return None
        if frame_class.vlan_tags and frame_class.llc and not self.allow_vlan_tags:
            return _VLAN_TAGGED  # a tag carried in LLC/SNAP: no VID check gets there
        ethertype = frame_class.ethertype
        if ethertype == ETHERTYPE_ARP:
            return self._client_arp(client, data, start + frame_class.l3_offset)
        if frame_class.fragment is _NON_FIRST:
            return None
        protocol = frame_class.upper_protocol
        if protocol == _IPPROTO_ICMP and frame_class.ip_version == 4:
            at = start + frame_class.l4_offset
            if len(data) > at and data[at] == _ICMP_REDIRECT:
                return _ICMP_REDIRECT_DROP  # only routers redirect
            return None
        if protocol == IPPROTO_UDP:
            port = frame_class.udp_destination_port
            if frame_class.ip_version == 4 and port == DHCP_SERVER_PORT:
                if frame_class.fragment is not _UNFRAGMENTED:
                    return _SUSPICIOUS  # the rest, unread, could name anyone
                return self._client_dhcp(client, data, start, frame_class, now)
            if frame_class.ip_version == 6 and port == DHCPV6_SERVER_PORT:
                if frame_class.fragment is not _UNFRAGMENTED:
                    return _SUSPICIOUS
                return self._client_dhcpv6(client, data, start, frame_class, now)
            return None
        if protocol == IPPROTO_ICMPV6 and frame_class.icmpv6_type in (
            _ICMPV6_NEIGHBOR_SOLICITATION,
            _ICMPV6_NEIGHBOR_ADVERTISEMENT,
            _ICMPV6_ROUTER_SOLICITATION,
        ):
            if frame_class.fragment is not _UNFRAGMENTED:
                return _SUSPICIOUS  # hosts drop fragmented neighbour discovery (RFC 6980)
            return self._client_nd(client, data, start, frame_class)
        return None

    def _client_arp(self, client: GuardedClient, data: bytes, at: int) -> DropReason | None:
        if len(data) < at + _ARP_BYTES:
            # The wire pads it with zeros: a LAN host would read a whole ARP.
            return _SUSPICIOUS
        # Whatever the hardware type says (Linux takes 1 and 6 on Ethernet) and the operation.
        if data[at + 2 : at + 6] != _ARP_FOR_IPV4:
            if data[at + 2 : at + 4] == _ARP_FOR_IPV4[:2]:
                return _SUSPICIOUS  # IPv4 ARP with odd address lengths: nobody needs that
            return None  # not ARP for IPv4: no host's IPv4 cache learns from it
        if data[at + 8 : at + 14] != client.mac:
            return _ARP_SPOOF  # it speaks for another hardware address
        sender = data[at + 14 : at + 18]
        if sender == _ZERO_IPV4:
            return None  # a probe (RFC 5227) claims nothing
        owner = self.ipv4_owners.get(sender)
        if owner is client.guard:
            return None
        if owner is not None or sender in self.lan_ipv4 or client.guard.leased:
            return _ARP_SPOOF
        self.bind_ipv4(client, sender)  # an announcement for a free address: a static player
        return None

    def _client_nd(
        self, client: GuardedClient, data: bytes, start: int, frame_class: FrameClass
    ) -> DropReason | None:
        ip = start + frame_class.l3_offset
        icmp = start + frame_class.l4_offset
        if data[icmp] == _ICMPV6_ROUTER_SOLICITATION:
            # A router takes the sender's link address from it: it speaks for its source.
            if len(data) < icmp + _RS_OPTIONS_AFTER:
                return _SUSPICIOUS
            links = _nd_link_addresses(
                data, icmp + _RS_OPTIONS_AFTER, _ND_OPTION_SOURCE_LINK_ADDRESS
            )
            if any(link != client.mac for link in links):
                return _ND_SPOOF
            source = data[ip + 8 : ip + 24]
            return None if source == _ZERO_IPV6 else self._claim_ipv6(client, source)
        if len(data) < icmp + _ND_OPTIONS_AFTER:
            return _SUSPICIOUS
        link_option = _ND_OPTION_SOURCE_LINK_ADDRESS
        if data[icmp] == _ICMPV6_NEIGHBOR_SOLICITATION:
            source = data[ip + 8 : ip + 24]
            # DAD (source ::) probes the target; otherwise the sender speaks for its source.
            claimed = data[icmp + 8 : icmp + 24] if source == _ZERO_IPV6 else source
        else:
            claimed = data[icmp + 8 : icmp + 24]
            link_option = _ND_OPTION_TARGET_LINK_ADDRESS
        links = _nd_link_addresses(data, icmp + _ND_OPTIONS_AFTER, link_option)
        if any(link != client.mac for link in links):
            return _ND_SPOOF
        return self._claim_ipv6(client, claimed)

    def _claim_ipv6(self, client: GuardedClient, claimed: bytes) -> DropReason | None:
        owner = self.ipv6_owners.get(claimed)
        if owner is client.guard:
            return None
        if owner is not None or claimed in self.lan_ipv6:
            return _ND_SPOOF
        self.bind_ipv6(client, claimed)
        return None

    def _client_dhcp(
        self, client: GuardedClient, data: bytes, start: int, frame_class: FrameClass, now: float
    ) -> DropReason | None:
        if not client.guard.dhcp_bucket.take(now):
            return _RATE_LIMITED_DHCP
        body = start + frame_class.l4_offset + UDP_HEADER_BYTES
        if len(data) < body + _DHCP_CHADDR + 6:
            return _SUSPICIOUS
        # htype Ethernet, hlen 6, the client's MAC and nothing after it: servers key
        # leases on all of chaddr (and on option 61), so each must be the client's own.
        if (
            data[body + 1 : body + 3] != _ETHERNET_HLEN
            or data[body + _DHCP_CHADDR : body + _DHCP_CHADDR + 6] != client.mac
            or data[body + _DHCP_CHADDR + 6 : body + _DHCP_CHADDR + 16] != _ZERO_CHADDR_TAIL
        ):
            return _DHCP_SPOOF  # it would empty the pool with made-up hardware addresses
        options = _dhcp_options(data, body)
        client_identifier = options.get(_DHCP_CLIENT_IDENTIFIER)
        if client_identifier is not None and client_identifier != b"\x01" + client.mac:
            return _DHCP_SPOOF
        if options.get(_DHCP_MESSAGE_TYPE) == bytes([_DHCPRELEASE]):
            released = data[body + _DHCP_CIADDR : body + _DHCP_CIADDR + 4]
            if self.ipv4_owners.get(released) is client.guard:
                del self.ipv4_owners[released]
                client.guard.ipv4.pop(released, None)
        return None

    # ---------------------------------------------------- the LAN's side

    def _client_dhcpv6(
        self, client: GuardedClient, data: bytes, start: int, frame_class: FrameClass, now: float
    ) -> DropReason | None:
        """A client's DHCPv6 message must carry its own DUID, as a DHCP request its own MAC.

        Servers key leases on the DUID: with made-up ones a player empties the
        pool, and with another's it releases or declines that host's lease.
        """
        if not client.guard.dhcp_bucket.take(now):
            return _RATE_LIMITED_DHCP
        udp = start + frame_class.l4_offset
        body = udp + UDP_HEADER_BYTES
        if len(data) < body + 4:
            return _SUSPICIOUS
        end = udp + (data[udp + 4] << 8 | data[udp + 5])  # what a server reads: the UDP length
        if not body + 4 <= end <= len(data):
            return _SUSPICIOUS
        if data[body] not in _DHCPV6_CLIENT_MESSAGES:
            return _DHCP_SPOOF  # a relay message could carry any client's message inside
        options = _dhcpv6_client_options(data, body + 4, end)
        if options is None:
            return _DHCP_SPOOF  # options a server reads and the guard would not
        duids = [value for code, value in options if code == _DHCPV6_CLIENT_ID]
        ias = [(code, value[:4]) for code, value in options if code in _DHCPV6_IA_OPTIONS]
        if len(duids) > 1 or len({code for code, _ in ias}) != len(ias):
            return _DHCP_SPOOF  # one client id, and one IA of each kind
        if not duids:
            # An information-request may leave the DUID out; it asks for no lease.
            return _DHCP_SPOOF if ias else None
        duid = duids[0]
        if not 3 <= len(duid) <= _MAX_DUID_BYTES or any(len(iaid) < 4 for _, iaid in ias):
            return _DHCP_SPOOF
        bindings = client.guard
        iaids = bindings.dhcpv6_iaids
        new_iaids = {iaid for _, iaid in ias} - iaids
        if len(iaids) + len(new_iaids) > MAX_IAIDS_PER_CLIENT:
            return _DHCP_SPOOF  # fresh IAIDs would take a lease each
        if bindings.dhcpv6_duid is None:
            if duid in self.lan_duids:
                return _DHCP_SPOOF
            squatter = self.duid_owners.get(duid)
            if squatter is not None:
                # A DUID built from this client's MAC (DUID-LL or -LLT, which anyone
                # in the room can compute) is taken back from whoever used it
                # after this client joined. Not from one who used it before: a
                # newcomer could pick that MAC (a Windows DUID-LLT names the
                # physical NIC, not the room MAC) to steal a player's DUID.
                if _duid_link_address(duid) != client.mac or squatter.duid_since < bindings.joined:
                    return _DHCP_SPOOF
                squatter.dhcpv6_duid = None
            self.events += 1
            bindings.dhcpv6_duid = duid
            bindings.duid_since = self.events
            self.duid_owners[duid] = bindings
        elif duid != bindings.dhcpv6_duid:
            return _DHCP_SPOOF
        iaids |= new_iaids
        return None

    def _lan_duid(self, duid: bytes, clients: Mapping[bytes, GuardedClient]) -> None:
        """A LAN host uses ``duid``: no client may, whatever it used before.

        Except a DUID built from a room client's own MAC: a LAN guest could
        otherwise lock a player out of DHCPv6 for the room's life.
        """
        if _duid_link_address(duid) in clients:
            return
        owner = self.duid_owners.pop(duid, None)
        if owner is not None:
            owner.dhcpv6_duid = None
        lan_duids = self.lan_duids
        lan_duids.pop(duid, None)
        lan_duids[duid] = None
        if len(lan_duids) > MAX_LAN_ADDRESSES:
            del lan_duids[next(iter(lan_duids))]

    def learn_from_gateway(
        self, data: bytes, start: int, clients: Mapping[bytes, GuardedClient]
    ) -> None:
        """Learn what the LAN holds, and the leases its DHCP server hands to clients.

        Reads untagged frames only, cheaply: the gateway's side is the LAN
        itself, whose frames the guard trusts (the source check already
        keeps clients' MACs out of them).
        """
        type_field = data[start + 12] << 8 | data[start + 13]
        l3 = start + 14
        if type_field == ETHERTYPE_ARP:
            if len(data) >= l3 + _ARP_BYTES and data[l3 + 2 : l3 + 6] == _ARP_FOR_IPV4:
                self._lan_ipv4(data[l3 + 14 : l3 + 18])
        elif type_field == ETHERTYPE_IPV4:
            if len(data) < l3 + 20 or data[l3 + 9] != IPPROTO_UDP or data[l3 + 6] & 0x3F:
                return  # not UDP, or a fragment
            udp = l3 + (data[l3] & 0x0F) * 4
            if (
                len(data) >= udp + UDP_HEADER_BYTES
                and data[udp] << 8 | data[udp + 1] == DHCP_SERVER_PORT
                and data[udp + 2] << 8 | data[udp + 3] == DHCP_CLIENT_PORT
            ):
                self._lan_dhcp(data, udp + UDP_HEADER_BYTES, clients)
        elif type_field == ETHERTYPE_IPV6 and len(data) >= l3 + 40:
            next_header = data[l3 + 6]
            upper = l3 + 40
            if next_header == IPPROTO_ICMPV6 and len(data) > upper:
                if data[upper] in (
                    _ICMPV6_ROUTER_ADVERTISEMENT,
                    _ICMPV6_NEIGHBOR_SOLICITATION,
                    _ICMPV6_NEIGHBOR_ADVERTISEMENT,
                ):
                    self._lan_ipv6(data[l3 + 8 : l3 + 24])
                    if data[upper] == _ICMPV6_NEIGHBOR_ADVERTISEMENT and len(data) >= upper + 24:
                        self._lan_ipv6(data[upper + 8 : upper + 24])
            elif (
                next_header == IPPROTO_UDP
                and len(data) >= upper + UDP_HEADER_BYTES
                and data[upper] << 8 | data[upper + 1] == DHCPV6_SERVER_PORT
                and data[upper + 2] << 8 | data[upper + 3] == DHCPV6_CLIENT_PORT
            ):
                client = clients.get(data[start : start + 6])
                if client is not None:
                    self._lan_dhcpv6(data, upper + UDP_HEADER_BYTES, client)
            elif (
                next_header == IPPROTO_UDP
                and len(data) >= upper + UDP_HEADER_BYTES + 4
                and data[upper + 2] << 8 | data[upper + 3] == DHCPV6_SERVER_PORT
                and data[upper + UDP_HEADER_BYTES] in _DHCPV6_CLIENT_MESSAGES
            ):
                body = upper + UDP_HEADER_BYTES
                options = _dhcpv6_client_options(data, body + 4, len(data)) or []
                duids = [value for code, value in options if code == _DHCPV6_CLIENT_ID]
                if len(duids) == 1 and 3 <= len(duids[0]) <= _MAX_DUID_BYTES:
                    self._lan_duid(duids[0], clients)

    def _lan_dhcp(self, data: bytes, body: int, clients: Mapping[bytes, GuardedClient]) -> None:
        if len(data) < body + _DHCP_OPTIONS:
            return
        options = _dhcp_options(data, body)
        message_type = options.get(_DHCP_MESSAGE_TYPE)
        if message_type not in (bytes([_DHCPOFFER]), bytes([_DHCPACK])):
            return
        for code in (_DHCP_SERVER_ID, _DHCP_ROUTER, _DHCP_DNS):
            value = options.get(code, b"")
            for offset in range(0, len(value) - 3, 4):
                self._lan_ipv4(value[offset : offset + 4])
        if message_type == bytes([_DHCPACK]):
            client = clients.get(data[body + _DHCP_CHADDR : body + _DHCP_CHADDR + 6])
            address = data[body + _DHCP_YIADDR : body + _DHCP_YIADDR + 4]
            if client is not None and address != _ZERO_IPV4:
                self.bind_ipv4(client, address)
                client.guard.leased = True

    def _lan_dhcpv6(self, data: bytes, body: int, client: GuardedClient) -> None:
        if len(data) < body + 4 or data[body] != _DHCPV6_REPLY:
            return
        for code, value in _dhcpv6_options(data, body + 4, len(data)):
            if code == _DHCPV6_IA_NA and len(value) >= 12:
                for inner_code, inner in _dhcpv6_options(value, 12, len(value)):
                    if inner_code == _DHCPV6_IAADDR and len(inner) >= 16:
                        self.bind_ipv6(client, inner[:16])


def _bind(
    owners: dict[bytes, ClientBindings],
    addresses: dict[bytes, None],
    bindings: ClientBindings,
    address: bytes,
) -> None:
    previous = owners.get(address)
    if previous is not None and previous is not bindings:
        (previous.ipv4 if len(address) == 4 else previous.ipv6).pop(address, None)
    owners[address] = bindings
    addresses.pop(address, None)
    addresses[address] = None
    if len(addresses) > MAX_ADDRESSES_PER_CLIENT:
        oldest = next(iter(addresses))
        del addresses[oldest]
        if owners.get(oldest) is bindings:
            del owners[oldest]


def _has_vlan_id(data: bytes, type_at: int) -> bool:
    """Whether a tag from ``type_at`` on carries a VLAN id (priority tags have VID 0)."""
    position = type_at
    for _ in range(8):
        if (data[position] << 8 | data[position + 1]) not in VLAN_TAG_ETHERTYPES:
            return False
        if len(data) < position + 6:
            return True
        if (data[position + 2] & 0x0F) << 8 | data[position + 3]:
            return True
        position += 4
    return True


def _nd_link_addresses(data: bytes, at: int, wanted: int) -> list[bytes]:
    """Every link-layer address option ``wanted`` of a neighbour message.

    All options to the end of the frame are read (each takes 8 bytes at
    least, so this is bounded by the frame): a host reads them all.
    """
    found: list[bytes] = []
    end = len(data)
    while at + 2 <= end:
        length = data[at + 1] * 8
        if length == 0:
            break
        if data[at] == wanted:
            found.append(data[at + 2 : at + 8])
        at += length
    return found


def _dhcp_options(data: bytes, body: int) -> dict[int, bytes]:
    """A DHCP message's options (the first of each code), read within the frame."""
    options: dict[int, bytes] = {}
    at = body + _DHCP_OPTIONS
    end = len(data)
    while at < end:
        code = data[at]
        if code == 255:
            break
        if code == 0:
            at += 1
            continue
        if at + 2 > end:
            break
        length = data[at + 1]
        options.setdefault(code, data[at + 2 : at + 2 + length])
        at += 2 + length
    return options


def _duid_link_address(duid: bytes) -> bytes | None:
    """The Ethernet address inside a DUID-LLT (type 1) or DUID-LL (type 3), if any."""
    if duid[:4] == b"\x00\x01\x00\x01" and len(duid) == 14:
        return duid[8:]
    if duid[:4] == b"\x00\x03\x00\x01" and len(duid) == 10:
        return duid[4:]
    return None


def _dhcpv6_client_options(data: bytes, at: int, end: int) -> list[tuple[int, bytes]] | None:
    """Every option of a client's message, or None if the guard cannot read them all.

    A server reads every option: one past the guard's cap on options, one cut
    short, or bytes after the last must not hide a client identifier from it.
    """
    found: list[tuple[int, bytes]] = []
    while at < end:
        if at + 4 > end or len(found) >= _MAX_OPTIONS:
            return None
        length = data[at + 2] << 8 | data[at + 3]
        if at + 4 + length > end:
            return None
        found.append((data[at] << 8 | data[at + 1], data[at + 4 : at + 4 + length]))
        at += 4 + length
    return found


def _dhcpv6_options(data: bytes, at: int, end: int) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    while at + 4 <= end and len(found) < _MAX_OPTIONS:
        code = data[at] << 8 | data[at + 1]
        length = data[at + 2] << 8 | data[at + 3]
        found.append((code, data[at + 4 : at + 4 + length]))
        at += 4 + length
    return found
