"""Frames larger than one datagram: fragments and their reassembly (PROTOCOL.md 11). No I/O.

A fragment datagram is ``0x11``, ``frame_id`` (2 bytes, big-endian), ``part``
(high nibble the index, low nibble the count, 2 to 8), then the fragment's
bytes. Every fragment but the last has the same length; the frame is their
concatenation. A sender fragments a frame only when it does not fit one
datagram of the receiver's budget.

A ``Reassembler`` is kept per sender. It holds at most ``max_pending``
incomplete frames and drops one ``timeout_s`` after its first fragment
arrived, the oldest first when full (``timeouts`` counts them), so a peer
sending endless first fragments costs a fixed amount of memory. A fragment
that disagrees with what arrived for its frame raises ``FragmentError`` and
drops the frame.
"""

from __future__ import annotations

import math

from lanparty.errors import ProtocolError
from lanparty.proto.overlay import MIN_FRAME_BYTES, OVERLAY_VERSION

OVERLAY_KIND_FRAGMENT = 1
OVERLAY_FRAGMENT = OVERLAY_VERSION << 4 | OVERLAY_KIND_FRAGMENT
FRAGMENT_HEADER_BYTES = 4
MIN_FRAGMENTS = 2
MAX_FRAGMENTS = 8
MAX_PENDING_FRAMES = 32
REASSEMBLY_TIMEOUT_S = 0.2
FRAME_IDS = 1 << 16

__all__ = [
    "FRAGMENT_HEADER_BYTES",
    "MAX_FRAGMENTS",
    "OVERLAY_FRAGMENT",
    "FragmentError",
    "Reassembler",
    "fragment_frame",
    "fragments_needed",
]


class FragmentError(ProtocolError):
    """A fragment that cannot belong to a frame (count, length, index, or other bytes)."""


def fragments_needed(frame_bytes: int, max_datagram: int) -> int:
    """How many fragments a frame of ``frame_bytes`` takes in datagrams of ``max_datagram``."""
    room = max_datagram - FRAGMENT_HEADER_BYTES
    return math.ceil(frame_bytes / room) if room > 0 else MAX_FRAGMENTS + 1


def fragment_frame(frame: bytes, frame_id: int, max_datagram: int) -> list[bytes] | None:
    """The fragment datagrams of ``frame``, None when it needs more than 8.

    Fragments are as equal as can be (all but the last of one length), so
    that no fragment is a sliver.
    """
    count = max(MIN_FRAGMENTS, fragments_needed(len(frame), max_datagram))
    if count > MAX_FRAGMENTS:
        return None
    part_bytes = math.ceil(len(frame) / count)
    if part_bytes * (count - 1) >= len(frame):
        return None  # too small to split in ``count``: a caller's mistake
    head = bytes([OVERLAY_FRAGMENT, frame_id >> 8 & 0xFF, frame_id & 0xFF])
    return [
        head + bytes([index << 4 | count]) + frame[index * part_bytes : (index + 1) * part_bytes]
        for index in range(count)
    ]


class _Pending:
    __slots__ = ("count", "first_seen", "last_bytes", "part_bytes", "parts", "received")

    def __init__(self, count: int, now: float) -> None:
        self.count = count
        self.first_seen = now
        self.parts: list[bytes | None] = [None] * count
        self.received = 0
        # Learned from the first non-last fragment, and from the last one.
        self.part_bytes = 0
        self.last_bytes = 0


class Reassembler:
    """Whole frames from one sender's fragment datagrams."""

    __slots__ = ("_pending", "max_frame", "max_pending", "timeout_s", "timeouts")

    def __init__(
        self,
        max_frame: int,
        *,
        max_pending: int = MAX_PENDING_FRAMES,
        timeout_s: float = REASSEMBLY_TIMEOUT_S,
    ) -> None:
        self.max_frame = max_frame
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        # frame_id -> frame being put together, oldest first.
        self._pending: dict[int, _Pending] = {}
        self.timeouts = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, datagram: bytes, now: float) -> bytes | None:
        """Take one fragment datagram; return the whole frame once its last part arrived.

        Raises ``FragmentError`` when the fragment disagrees with its frame
        (which is then dropped) or cannot be a fragment at all.
        """
        self._expire(now)
        if len(datagram) <= FRAGMENT_HEADER_BYTES or datagram[0] != OVERLAY_FRAGMENT:
            raise FragmentError("a fragment datagram has a 4-byte header and some bytes")
        frame_id = datagram[1] << 8 | datagram[2]
        index, count = datagram[3] >> 4, datagram[3] & 0x0F
        if not MIN_FRAGMENTS <= count <= MAX_FRAGMENTS or index >= count:
            self._pending.pop(frame_id, None)
            raise FragmentError(f"fragment {index} of {count} is impossible")
        data = datagram[FRAGMENT_HEADER_BYTES:]
        pending = self._pending.get(frame_id)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                del self._pending[next(iter(self._pending))]
                self.timeouts += 1
            pending = self._pending[frame_id] = _Pending(count, now)
        try:
            self._check(pending, index, count, data)
        except FragmentError:
            del self._pending[frame_id]
            raise
        if pending.parts[index] is not None:
            return None  # a duplicate with the same bytes
        pending.parts[index] = data
        pending.received += 1
        if pending.received < pending.count:
            return None
        del self._pending[frame_id]
        frame = b"".join(pending.parts)  # type: ignore[arg-type]
        if not MIN_FRAME_BYTES <= len(frame) <= self.max_frame:
            raise FragmentError(f"a reassembled frame of {len(frame)} bytes")
        return frame

    def _check(self, pending: _Pending, index: int, count: int, data: bytes) -> None:
        if count != pending.count:
            raise FragmentError("fragments of one frame disagree on the count")
        if len(data) > self.max_frame or (
            index < count - 1 and len(data) * (count - 1) >= self.max_frame
        ):
            raise FragmentError("a fragment of a frame longer than the room allows")
        previous = pending.parts[index]
        if previous is not None and previous != data:
            raise FragmentError(f"fragment {index} came twice with other bytes")
        if index == count - 1:
            if pending.last_bytes and pending.last_bytes != len(data):
                raise FragmentError("the last fragment came twice with another length")
            if pending.part_bytes and len(data) > pending.part_bytes:
                raise FragmentError("the last fragment is longer than the others")
            pending.last_bytes = len(data)
            return
        if pending.part_bytes and pending.part_bytes != len(data):
            raise FragmentError("fragments of one frame differ in length")
        if pending.last_bytes and pending.last_bytes > len(data):
            raise FragmentError("the last fragment is longer than the others")
        pending.part_bytes = len(data)

    def _expire(self, now: float) -> None:
        pending = self._pending
        while pending:
            frame_id, oldest = next(iter(pending.items()))
            if now - oldest.first_seen < self.timeout_s:
                return
            del pending[frame_id]
            self.timeouts += 1
