"""Stateless Retry (RFC 9000 8.1.2): address validation tokens and the Retry packet.

A Retry costs the server one HMAC and one small packet, and keeps nothing:
everything it must remember travels in the token, which the client returns
in its next Initial. The token is bound to the client's address (IP and
port), to the connection ID the server chose for the Retry (which the
client must use as its next destination, RFC 9000 17.2.5.2) and to the time
it was made; a per-process random key authenticates it, so a token outlives
neither its lifetime nor the process. Tokens are compared in constant time.

Token layout: issued at (8 bytes, milliseconds of the caller's clock),
the original destination connection ID (1 length byte, then the ID), then
the first 16 bytes of HMAC-SHA256 over all of that plus the address and
the Retry's source connection ID.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lanparty.transport.initial import MAX_CONNECTION_ID_BYTES, QUIC_VERSION_1
from lanparty.transport.udp import Address

# RFC 9001 5.8: the fixed key and nonce of the Retry integrity tag (QUIC v1).
_RETRY_INTEGRITY_KEY_V1 = bytes.fromhex("be0c690b9f66575a1d766b54e368c84e")
_RETRY_INTEGRITY_NONCE_V1 = bytes.fromhex("461599d35d632bf2239825bb")
_RETRY_FIRST_BYTE = 0xF0  # long header, fixed bit, type Retry, unused bits 0
_TOKEN_MAC_BYTES = 16
_TOKEN_KEY_BYTES = 32
_ISSUED = struct.Struct(">q")
_MAC_DOMAIN = b"lanparty retry token v1"


def encode_address(address: Address) -> bytes:
    """An address's IP (packed) and port, as the token binds them."""
    host = str(address[0]).split("%", 1)[0]
    return ipaddress.ip_address(host).packed + int(address[1]).to_bytes(2, "big")


def retry_integrity_tag(packet_without_tag: bytes, original_destination_cid: bytes) -> bytes:
    """The 16-byte tag that ends a Retry packet (RFC 9001 5.8)."""
    pseudo_packet = bytes([len(original_destination_cid)]) + original_destination_cid
    return AESGCM(_RETRY_INTEGRITY_KEY_V1).encrypt(
        _RETRY_INTEGRITY_NONCE_V1, b"", pseudo_packet + packet_without_tag
    )


def encode_retry_packet(
    *,
    destination_cid: bytes,
    source_cid: bytes,
    original_destination_cid: bytes,
    token: bytes,
) -> bytes:
    """A QUIC v1 Retry packet to the client's ``destination_cid`` (its source ID)."""
    packet = (
        bytes([_RETRY_FIRST_BYTE])
        + QUIC_VERSION_1.to_bytes(4, "big")
        + bytes([len(destination_cid)])
        + destination_cid
        + bytes([len(source_cid)])
        + source_cid
        + token
    )
    return packet + retry_integrity_tag(packet, original_destination_cid)


class RetryTokens:
    """Issues and checks Retry tokens with a key made when the process starts."""

    def __init__(self, lifetime_s: float, key: bytes | None = None) -> None:
        self.lifetime_s = lifetime_s
        self._key = key if key is not None else os.urandom(_TOKEN_KEY_BYTES)

    def _mac(self, body: bytes, address: Address, retry_source_cid: bytes) -> bytes:
        message = b"".join(
            (
                _MAC_DOMAIN,
                encode_address(address),
                bytes([len(retry_source_cid)]),
                retry_source_cid,
                body,
            )
        )
        return hmac.digest(self._key, message, hashlib.sha256)[:_TOKEN_MAC_BYTES]

    def issue(
        self,
        address: Address,
        original_destination_cid: bytes,
        retry_source_cid: bytes,
        now: float,
    ) -> bytes:
        """A token for a Retry to ``address`` whose source connection ID is ``retry_source_cid``."""
        body = (
            _ISSUED.pack(round(now * 1000))
            + bytes([len(original_destination_cid)])
            + original_destination_cid
        )
        return body + self._mac(body, address, retry_source_cid)

    def check(
        self, token: bytes, address: Address, destination_cid: bytes, now: float
    ) -> bytes | None:
        """The original destination connection ID the token carries, or None if refused.

        Refused: a token not made by this process, for another address or
        another connection ID than the Initial's destination, or older than
        the lifetime.
        """
        header_bytes = _ISSUED.size + 1
        if len(token) < header_bytes + _TOKEN_MAC_BYTES:
            return None
        odcid_length = token[_ISSUED.size]
        body_end = header_bytes + odcid_length
        if odcid_length > MAX_CONNECTION_ID_BYTES or len(token) != body_end + _TOKEN_MAC_BYTES:
            return None
        body, mac = token[:body_end], token[body_end:]
        if not hmac.compare_digest(mac, self._mac(body, address, destination_cid)):
            return None
        (issued_ms,) = _ISSUED.unpack_from(body)
        age_s = now - issued_ms / 1000
        if not -0.001 <= age_s <= self.lifetime_s:
            return None
        return body[header_bytes:]
