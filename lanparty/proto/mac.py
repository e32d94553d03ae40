"""MAC addresses: parsing, formatting, validation and generation.

On the hot path a MAC is the 6 ``bytes`` slice of a frame; text form
(``aa:bb:cc:dd:ee:ff``, lower case) is only for control messages and logs.
"""

from __future__ import annotations

import re
import secrets

from lanparty.errors import ProtocolError

MAC_LENGTH = 6
BROADCAST_MAC = b"\xff" * MAC_LENGTH
ZERO_MAC = b"\x00" * MAC_LENGTH

# The I/G bit of the first octet; the hot path tests ``mac[0] & MULTICAST_BIT``
# itself, as ``is_multicast`` does, to save a call per frame.
MULTICAST_BIT = 0x01
_LOCAL_BIT = 0x02
_MAC_TEXT = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


class InvalidMacError(ProtocolError, ValueError):
    """A MAC address is not in the expected form or is not allowed here."""


def parse_mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (either case) into 6 bytes."""
    if not isinstance(text, str) or _MAC_TEXT.fullmatch(text) is None:
        raise InvalidMacError(f"{text!r} is not a MAC address like 02:00:00:aa:bb:cc")
    return bytes.fromhex(text.replace(":", ""))


def format_mac(mac: bytes) -> str:
    """Format 6 bytes as lower-case ``aa:bb:cc:dd:ee:ff``."""
    if len(mac) != MAC_LENGTH:
        raise InvalidMacError(f"a MAC address has 6 bytes, not {len(mac)}")
    return mac.hex(":")


def normalize_mac(text: str) -> str:
    """Return the canonical lower-case text form of a MAC address."""
    return format_mac(parse_mac(text))


def is_multicast(mac: bytes) -> bool:
    """True for group addresses (broadcast included): the I/G bit is set."""
    return bool(mac[0] & MULTICAST_BIT)


def is_unicast(mac: bytes) -> bool:
    return not mac[0] & MULTICAST_BIT


def is_locally_administered(mac: bytes) -> bool:
    return bool(mac[0] & _LOCAL_BIT)


def check_endpoint_mac(mac: bytes, *, must_be_local: bool) -> None:
    """Validate a MAC that an endpoint claims (PROTOCOL.md section 2).

    A unicast address that is not all zeros; a client's must also be locally
    administered. Raises ``InvalidMacError`` saying which rule failed.
    """
    if len(mac) != MAC_LENGTH:
        raise InvalidMacError(f"a MAC address has 6 bytes, not {len(mac)}")
    if mac == ZERO_MAC:
        raise InvalidMacError("the MAC address 00:00:00:00:00:00 is not allowed")
    if not is_unicast(mac):
        raise InvalidMacError(f"{format_mac(mac)} is a multicast address, not a unicast one")
    if must_be_local and not is_locally_administered(mac):
        raise InvalidMacError(
            f"{format_mac(mac)} is not locally administered "
            "(the second-lowest bit of the first octet must be set, e.g. 02:...)"
        )


def random_local_mac() -> bytes:
    """A random unicast, locally administered MAC (first octet x2, x6, xA or xE)."""
    raw = bytearray(secrets.token_bytes(MAC_LENGTH))
    raw[0] = (raw[0] & ~MULTICAST_BIT & 0xFF) | _LOCAL_BIT
    return bytes(raw)
