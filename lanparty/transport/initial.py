"""A client's first Initial packet, read and checked before any connection exists.

The endpoint looks at a datagram for an unknown connection ID here first, so
that junk costs a header parse and one AEAD decryption, never a QUIC
connection: ``parse_client_initial`` reads the long header (RFC 9000
17.2.2) and ``decrypts`` removes header protection and opens the packet with
the Initial keys every client derives from its destination connection ID
(RFC 9001 5.2 and 5.4). Both libraries do this too, but only inside a
connection object; doing it here first keeps the server stateless until a
packet proves to be a real Initial. QUIC version 1 only, like the libraries'
default configuration.
"""

from __future__ import annotations

import hashlib
import hmac

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

QUIC_VERSION_1 = 0x00000001
# RFC 9000 14.1: a server drops a client Initial in a datagram under 1200 bytes.
MIN_INITIAL_DATAGRAM_BYTES = 1200
# RFC 9000 7.2: a client's first destination connection ID has at least 8 bytes.
MIN_CLIENT_DCID_BYTES = 8
MAX_CONNECTION_ID_BYTES = 20

_LONG_HEADER_BIT = 0x80
_FIXED_BIT = 0x40
_PACKET_TYPE_MASK = 0x30
_INITIAL_TYPE = 0x00
# RFC 9001 5.2.
_INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SAMPLE_OFFSET = 4
_SAMPLE_BYTES = 16
_AEAD_TAG_BYTES = 16


@attrs.frozen
class InitialKeys:
    """The packet protection keys of one direction of the Initial space."""

    key: bytes
    iv: bytes
    hp: bytes


@attrs.frozen
class ClientInitial:
    """The readable header fields of a client Initial and where its packet ends."""

    version: int
    destination_cid: bytes
    source_cid: bytes
    token: bytes
    # Offset of the (protected) packet number and of the first byte after the packet.
    packet_number_offset: int
    packet_end: int
    # Bytes follow the datagram's packets that are not a packet themselves
    # (aioquic pads a client's first datagram so, with zeros after the packet).
    padded_after_packets: bool


def _read_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    """A QUIC variable-length integer at ``offset``: (value, next offset), or None if cut."""
    if offset >= len(data):
        return None
    first = data[offset]
    length = 1 << (first >> 6)
    if offset + length > len(data):
        return None
    value = first & 0x3F
    for byte in data[offset + 1 : offset + length]:
        value = (value << 8) | byte
    return value, offset + length


def long_packet_end(data: bytes, offset: int) -> int | None:
    """End of the long-header packet at ``offset`` (Initial, 0-RTT or Handshake), or None."""
    if offset + 7 > len(data) or not data[offset] & _LONG_HEADER_BIT:
        return None
    position = offset + 5
    for _ in range(2):  # destination, then source connection ID
        if position >= len(data) or data[position] > MAX_CONNECTION_ID_BYTES:
            return None
        position += 1 + data[position]
    if data[offset] & _PACKET_TYPE_MASK == _INITIAL_TYPE:
        token_length = _read_varint(data, position)
        if token_length is None:
            return None
        position = token_length[1] + token_length[0]
    length = _read_varint(data, position)
    if length is None:
        return None
    end = length[1] + length[0]
    return end if end <= len(data) else None


def parse_client_initial(data: bytes) -> ClientInitial | None:
    """The client Initial that opens ``data``, or None if it is not a well-formed one.

    Checked: a datagram of at least 1200 bytes, a long header with the fixed
    bit, packet type Initial, QUIC version 1, connection IDs within their
    limits (a destination ID of at least 8 bytes) and a length that fits the
    datagram with room for the header protection sample.
    """
    if len(data) < MIN_INITIAL_DATAGRAM_BYTES:
        return None
    first = data[0]
    if (
        not first & _LONG_HEADER_BIT
        or not first & _FIXED_BIT
        or first & _PACKET_TYPE_MASK != _INITIAL_TYPE
    ):
        return None
    version = int.from_bytes(data[1:5], "big")
    if version != QUIC_VERSION_1:
        return None
    dcid_length = data[5]
    if not MIN_CLIENT_DCID_BYTES <= dcid_length <= MAX_CONNECTION_ID_BYTES:
        return None
    position = 6 + dcid_length
    destination_cid = data[6:position]
    scid_length = data[position]
    if scid_length > MAX_CONNECTION_ID_BYTES:
        return None
    source_cid = data[position + 1 : position + 1 + scid_length]
    position += 1 + scid_length
    token_length = _read_varint(data, position)
    if token_length is None:
        return None
    token_end = token_length[1] + token_length[0]
    token = data[token_length[1] : token_end]
    length = _read_varint(data, token_end)
    if length is None:
        return None
    packet_number_offset = length[1]
    packet_end = packet_number_offset + length[0]
    if (
        packet_end > len(data)
        or length[0] < _SAMPLE_OFFSET + _SAMPLE_BYTES
        or len(token) != token_length[0]
    ):
        return None
    return ClientInitial(
        version=version,
        destination_cid=destination_cid,
        source_cid=source_cid,
        token=token,
        packet_number_offset=packet_number_offset,
        packet_end=packet_end,
        padded_after_packets=_padded_after_packets(data, packet_end),
    )


def _padded_after_packets(data: bytes, offset: int) -> bool:
    while offset < len(data):
        end = long_packet_end(data, offset)
        if end is None or end <= offset:
            return True
        offset = end
    return False


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 7.1) with SHA-256 and an empty context, one block."""
    full_label = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label + b"\x00"
    return hmac.digest(secret, info + b"\x01", hashlib.sha256)[:length]


def client_initial_keys(destination_cid: bytes) -> InitialKeys:
    """The keys protecting a client's Initial packets sent to ``destination_cid`` (QUIC v1)."""
    initial_secret = hmac.digest(_INITIAL_SALT_V1, destination_cid, hashlib.sha256)
    client_secret = _expand_label(initial_secret, b"client in", 32)
    return InitialKeys(
        key=_expand_label(client_secret, b"quic key", 16),
        iv=_expand_label(client_secret, b"quic iv", 12),
        hp=_expand_label(client_secret, b"quic hp", 16),
    )


def decrypts(data: bytes, initial: ClientInitial) -> bool:
    """Whether the Initial packet opens with its Initial keys (its AEAD tag holds)."""
    keys = client_initial_keys(initial.destination_cid)
    pn_offset = initial.packet_number_offset
    sample_at = pn_offset + _SAMPLE_OFFSET
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(data[sample_at : sample_at + _SAMPLE_BYTES])
    first = data[0] ^ (mask[0] & 0x0F)
    pn_length = (first & 0x03) + 1
    packet_number = bytes(
        byte ^ mask_byte
        for byte, mask_byte in zip(data[pn_offset : pn_offset + pn_length], mask[1:], strict=False)
    )
    header = bytes([first]) + data[1:pn_offset] + packet_number
    nonce = (int.from_bytes(keys.iv, "big") ^ int.from_bytes(packet_number, "big")).to_bytes(
        len(keys.iv), "big"
    )
    ciphertext = data[pn_offset + pn_length : initial.packet_end]
    if len(ciphertext) < _AEAD_TAG_BYTES:
        return False
    try:
        AESGCM(keys.key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        return False
    return True
