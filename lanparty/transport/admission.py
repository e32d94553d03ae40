"""Which new client Initial becomes a connection, gets a Retry, or is dropped.

The server endpoint asks ``Admission.decide`` about every datagram whose
destination connection ID it does not know, before any connection state
exists for it. The steps, cheapest first:

1. not a client Initial of QUIC v1 (version, type): not ours to judge, ignored;
2. a malformed Initial (datagram under 1200 bytes, bad lengths): dropped;
3. its source (an IPv4 address, an IPv6 /64) already holds
   ``max_connections_per_source`` connections and the policy is ``never``:
   dropped;
4. it carries a token: a Retry token of ours for this address and this
   destination connection ID, within its lifetime, or dropped (an HMAC);
5. it does not decrypt with its Initial keys: dropped (one AEAD open), so
   junk never costs a connection and never draws a Retry;
6. a valid token: admitted, the address is validated; if its source is
   full, only in place of a handshake from that source whose address was
   never validated (``Admit.over_source_cap``: the endpoint finds one, or
   drops this Initial);
7. no token: a Retry when its source is full or the policy asks for one,
   else admitted.

A full source answers with Retries rather than silence because the cap
counts addresses anyone can forge: a spoofer could fill a player's source
with handshakes that never complete; the player proves its address and
takes their place, while a spoofer cannot.

Where the RFC leaves a choice, what was decided: a refused token is
dropped, not answered with INVALID_TOKEN (that would need a connection);
``auto`` asks for a Retry once unvalidated handshakes come faster than
``retry_above_handshakes_per_s`` (a token bucket of that rate and burst);
and on a library that credits the anti-amplification budget per packet
rather than per datagram (qh3 2.1.0), a first datagram padded after its
packets (aioquic's Initials) always gets a Retry unless the policy is
``never``: its budget would be too small for the server's first flight,
and a validated address has no such budget.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from collections import Counter
from collections.abc import Callable

import attrs

from lanparty.transport.initial import (
    QUIC_VERSION_1,
    ClientInitial,
    decrypts,
    parse_client_initial,
)
from lanparty.transport.retry import RetryTokens, encode_retry_packet
from lanparty.transport.settings import RetryPolicy, TransportSettings
from lanparty.transport.udp import Address

SourceKey = bytes

_LONG_HEADER_INITIAL_MASK = 0xB0  # long header bit, fixed bit left out, type bits
_LONG_HEADER_INITIAL = 0x80
_IPV6_PREFIX_BYTES = 8  # a /64


class InitialDrop(enum.StrEnum):
    """Why a client Initial for an unknown connection was dropped."""

    MALFORMED = "malformed"
    SOURCE_LIMIT = "source_limit"
    TOKEN_REFUSED = "token_refused"
    UNDECRYPTABLE = "undecryptable"


@attrs.frozen
class Admit:
    """Create the connection."""

    initial: ClientInitial
    source: SourceKey
    original_destination_cid: bytes
    # Set when the client came back with a Retry token (its address is validated).
    retry_source_cid: bytes | None
    # Its source is full: admit it only in place of an unvalidated handshake.
    over_source_cap: bool = False


@attrs.frozen
class SendRetry:
    """Answer with this Retry packet and keep nothing."""

    packet: bytes


@attrs.frozen
class Drop:
    reason: InitialDrop


Decision = Admit | SendRetry | Drop


def source_key(address: Address) -> SourceKey:
    """What the per-source cap counts: an IPv4 address, or an IPv6 address's /64."""
    ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.packed
        return ip.packed[:_IPV6_PREFIX_BYTES]
    return ip.packed


class EndpointCounters:
    """What the endpoint did with datagrams it did not hand to a connection."""

    __slots__ = (
        "dropped_udp_datagrams",
        "ignored_datagrams",
        "initials_dropped",
        "receive_backlog_dropped",
        "retries_sent",
    )

    def __init__(self) -> None:
        # For no connection and not a client Initial (a client endpoint counts all here).
        self.ignored_datagrams = 0
        self.initials_dropped: Counter[InitialDrop] = Counter()
        self.retries_sent = 0
        # Sends the socket could not take.
        self.dropped_udp_datagrams = 0
        # Received for a connection whose share of the pump was full (fairness).
        self.receive_backlog_dropped = 0

    @property
    def tokens_refused(self) -> int:
        return self.initials_dropped[InitialDrop.TOKEN_REFUSED]


class Admission:
    """The server's admission rules for new clients (sans-I/O: ``now`` is passed in)."""

    def __init__(
        self,
        settings: TransportSettings,
        *,
        connection_id_bytes: int,
        retry_when_padded: bool,
        tokens: RetryTokens | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.settings = settings
        self.tokens = tokens if tokens is not None else RetryTokens(settings.retry_token_lifetime_s)
        self._connection_id_bytes = connection_id_bytes
        self._retry_when_padded = retry_when_padded
        self._random_bytes = random_bytes
        self._per_source: dict[SourceKey, int] = {}
        self._allowance = settings.retry_above_handshakes_per_s
        self._allowance_at: float | None = None

    def connections_from(self, source: SourceKey) -> int:
        return self._per_source.get(source, 0)

    def opened(self, source: SourceKey) -> None:
        self._per_source[source] = self._per_source.get(source, 0) + 1

    def closed(self, source: SourceKey) -> None:
        left = self._per_source.get(source, 0) - 1
        if left > 0:
            self._per_source[source] = left
        else:
            self._per_source.pop(source, None)

    def decide(self, data: bytes, address: Address, now: float) -> Decision | None:
        """What to do with a datagram for no known connection; None if it is no client Initial."""
        # 1
        if (
            len(data) < 5
            or data[0] & _LONG_HEADER_INITIAL_MASK != _LONG_HEADER_INITIAL
            or int.from_bytes(data[1:5], "big") != QUIC_VERSION_1
        ):
            return None
        # 2
        initial = parse_client_initial(data)
        if initial is None:
            return Drop(InitialDrop.MALFORMED)
        # 3
        source = source_key(address)
        source_full = self._per_source.get(source, 0) >= self.settings.max_connections_per_source
        if source_full and self.settings.retry is RetryPolicy.NEVER:
            return Drop(InitialDrop.SOURCE_LIMIT)
        # 4
        original_destination_cid: bytes | None = None
        if initial.token:
            original_destination_cid = self.tokens.check(
                initial.token, address, initial.destination_cid, now
            )
            if original_destination_cid is None:
                return Drop(InitialDrop.TOKEN_REFUSED)
        # 5
        if not decrypts(data, initial):
            return Drop(InitialDrop.UNDECRYPTABLE)
        # 6
        if original_destination_cid is not None:
            return Admit(
                initial,
                source,
                original_destination_cid,
                initial.destination_cid,
                over_source_cap=source_full,
            )
        # 7
        if source_full or self._wants_retry(initial, now):
            return self._retry(initial, address, now)
        return Admit(initial, source, initial.destination_cid, None)

    def _wants_retry(self, initial: ClientInitial, now: float) -> bool:
        policy = self.settings.retry
        if policy is RetryPolicy.NEVER:
            return False
        if policy is RetryPolicy.ALWAYS or (
            self._retry_when_padded and initial.padded_after_packets
        ):
            return True
        rate = self.settings.retry_above_handshakes_per_s
        if self._allowance_at is not None:
            self._allowance = min(rate, self._allowance + (now - self._allowance_at) * rate)
        self._allowance_at = now
        if self._allowance < 1:
            return True
        self._allowance -= 1
        return False

    def _retry(self, initial: ClientInitial, address: Address, now: float) -> SendRetry:
        retry_source_cid = self._random_bytes(self._connection_id_bytes)
        token = self.tokens.issue(address, initial.destination_cid, retry_source_cid, now)
        return SendRetry(
            encode_retry_packet(
                destination_cid=initial.source_cid,
                source_cid=retry_source_cid,
                original_destination_cid=initial.destination_cid,
                token=token,
            )
        )
