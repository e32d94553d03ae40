"""Room keys and the ids derived from them (PROTOCOL.md section 10). No I/O.

- A gateway holds ``gateway_key`` (opens its room, never leaves it but in
  its own ``hello``) and ``client_key`` (the invite's key).
- The room id is derived from the gateway key, so nobody else can open,
  hold or squat the room.
- A client holds an identity secret; its client id differs per room, so it
  cannot be linked across rooms.

Secrets are ``bytes`` wrapped in classes whose ``repr`` hides them, so a
log line or a traceback that shows one of these objects shows no key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

import attrs

KEY_BYTES = 32
ROOM_ID_BYTES = 16
ROOM_ID_CHARS = 26
_ROOM_ID_DOMAIN = b"lanparty room id v2"
_ROOM_ID = re.compile(r"[a-z2-7]{26}")
_B64URL_32 = re.compile(r"[A-Za-z0-9_-]{43}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ROOM_NAME = re.compile(r"[A-Za-z0-9_ -]{1,32}")

__all__ = [
    "KEY_BYTES",
    "ROOM_ID_CHARS",
    "ClientCredentials",
    "GatewayCredentials",
    "b64url",
    "client_id_for",
    "is_room_id",
    "is_room_name",
    "is_sha256_hex",
    "keys_match",
    "new_key",
    "parse_key",
    "room_id_bytes",
    "room_id_for",
    "sha256_hex",
]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def b64url(data: bytes) -> str:
    """base64url without padding, as the protocol writes byte strings."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_key(text: str) -> bytes | None:
    """32 bytes from their canonical base64url text (43 characters), else None."""
    if _B64URL_32.fullmatch(text) is None:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        return None
    # 43 characters carry 258 bits: the last 2 must be zero, or two texts name one key.
    if len(data) != KEY_BYTES or b64url(data) != text:
        return None
    return data


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(text: str) -> bool:
    return _SHA256_HEX.fullmatch(text) is not None


def keys_match(given_sha256_hex: str, expected_sha256_hex: str) -> bool:
    """Compare two key hashes in constant time."""
    return hmac.compare_digest(given_sha256_hex.encode(), expected_sha256_hex.encode())


def room_id_for(gateway_key: bytes) -> str:
    """The room id a gateway key opens: 26 characters of ``a-z 2-7``."""
    digest = hashlib.sha256(_ROOM_ID_DOMAIN + gateway_key).digest()[:ROOM_ID_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def is_room_id(text: str) -> bool:
    return _ROOM_ID.fullmatch(text) is not None


def room_id_bytes(room_id: str) -> bytes:
    """The 16 raw bytes of a room id (which must be valid)."""
    return base64.b32decode(room_id.upper() + "======")


def client_id_for(identity_secret: bytes, room_id: str) -> bytes:
    """A client's id in one room: stable there, unlinkable across rooms."""
    return hashlib.sha256(identity_secret + room_id_bytes(room_id)).digest()


def is_room_name(text: str) -> bool:
    """A room's label: 1 to 32 characters of ``A-Z a-z 0-9 _ -`` and space."""
    return _ROOM_NAME.fullmatch(text) is not None


@attrs.frozen
class GatewayCredentials:
    """What a gateway says in its ``hello``; the keys never show in ``repr``."""

    gateway_key: bytes = attrs.field(repr=False)
    client_key: bytes = attrs.field(repr=False)
    room_name: str | None = None
    operator_token: str | None = attrs.field(default=None, repr=False)

    @property
    def room_id(self) -> str:
        return room_id_for(self.gateway_key)

    @property
    def client_key_sha256(self) -> str:
        return sha256_hex(self.client_key)


@attrs.frozen
class ClientCredentials:
    """What a client says in its ``hello``: the room, the invite's key, its identity."""

    room_id: str
    client_key: bytes = attrs.field(repr=False)
    identity_secret: bytes = attrs.field(repr=False)

    @property
    def client_id(self) -> bytes:
        return client_id_for(self.identity_secret, self.room_id)
