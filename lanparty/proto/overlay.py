"""The overlay datagram header (PROTOCOL.md section 3).

Every QUIC DATAGRAM carries one byte of header and one Ethernet frame
without FCS. The header's high nibble is the overlay version, its low
nibble the kind of payload; version 1 only knows kind 0 (Ethernet frame).

This runs for every datagram, so decoding is one comparison and a slice;
the relay's switch, which never copies the frame out, makes the same check
with these constants (its tests hold it to ``decode_datagram``) and reads
the MACs through the ``DATAGRAM_*`` slices.
Frames longer than a room's ``max_frame`` are not malformed here: the
relay drops them as ``jumbo`` against the room's limit.
"""

from __future__ import annotations

import enum

from lanparty.errors import ProtocolError
from lanparty.proto.mac import MAC_LENGTH

OVERLAY_VERSION = 1
OVERLAY_KIND_ETHERNET = 0
OVERLAY_ETHERNET = OVERLAY_VERSION << 4 | OVERLAY_KIND_ETHERNET
OVERLAY_HEADER_BYTES = 1
MIN_FRAME_BYTES = 14
MIN_DATAGRAM_BYTES = OVERLAY_HEADER_BYTES + MIN_FRAME_BYTES

# The header of every datagram carrying a whole Ethernet frame.
OVERLAY_HEADER = bytes([OVERLAY_ETHERNET])
# Where a datagram holds its frame, and the frame's MACs: ``datagram[DATAGRAM_SOURCE]``
# reads the source MAC without copying the frame out first.
FRAME = slice(OVERLAY_HEADER_BYTES, None)
DATAGRAM_DESTINATION = slice(OVERLAY_HEADER_BYTES, OVERLAY_HEADER_BYTES + MAC_LENGTH)
DATAGRAM_SOURCE = slice(OVERLAY_HEADER_BYTES + MAC_LENGTH, OVERLAY_HEADER_BYTES + 2 * MAC_LENGTH)


class MalformedReason(enum.StrEnum):
    """Which rule of section 3 a malformed datagram breaks (for logs and counters)."""

    EMPTY = "empty"
    UNKNOWN_VERSION = "unknown_version"
    UNKNOWN_KIND = "unknown_kind"
    SHORT_FRAME = "short_frame"


class MalformedDatagramError(ProtocolError):
    """A peer sent a datagram that section 3 calls malformed.

    ``reason`` says which rule it broke; the relay counts it towards the
    peer's malformed threshold (section 8).
    """

    def __init__(self, reason: MalformedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode_datagram(frame: bytes) -> bytes:
    """Prefix an Ethernet frame (without FCS) with the overlay header.

    Raises ``ValueError`` for a frame shorter than 14 bytes: sending one
    would be our bug, and the receiver would count it as malformed.
    """
    if len(frame) < MIN_FRAME_BYTES:
        raise ValueError(f"an Ethernet frame has at least 14 bytes, not {len(frame)}")
    return OVERLAY_HEADER + frame


def decode_datagram(datagram: bytes) -> bytes:
    """Return the Ethernet frame a datagram carries.

    Raises ``MalformedDatagramError`` for an empty datagram, an unknown
    header byte, or a frame shorter than 14 bytes.
    """
    if len(datagram) >= MIN_DATAGRAM_BYTES and datagram[0] == OVERLAY_ETHERNET:
        return datagram[FRAME]
    raise _malformed(datagram)


def _malformed(datagram: bytes) -> MalformedDatagramError:
    if not datagram:
        return MalformedDatagramError(MalformedReason.EMPTY, "malformed datagram: it is empty")
    header = datagram[0]
    if header >> 4 != OVERLAY_VERSION:
        return MalformedDatagramError(
            MalformedReason.UNKNOWN_VERSION,
            f"malformed datagram: overlay version {header >> 4} is not {OVERLAY_VERSION} "
            f"(header byte 0x{header:02x})",
        )
    if header & 0x0F != OVERLAY_KIND_ETHERNET:
        return MalformedDatagramError(
            MalformedReason.UNKNOWN_KIND,
            f"malformed datagram: overlay kind {header & 0x0F} is unknown "
            f"(header byte 0x{header:02x})",
        )
    return MalformedDatagramError(
        MalformedReason.SHORT_FRAME,
        f"malformed datagram: its frame has {len(datagram) - OVERLAY_HEADER_BYTES} bytes, "
        f"fewer than the {MIN_FRAME_BYTES} of an Ethernet header",
    )
