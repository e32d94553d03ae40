"""Keeping remote players' MACs on the gateway's port of the LAN switch.

A physical switch forgets a MAC it has not seen as a source for its ageing
time (300 s is common), then floods frames for it, or worse, a switch with
port security may drop them. The gateway therefore sends, for every remote
MAC, a small frame with that MAC as source: at once when the MAC appears,
then every ``interval_s``.

The frame is addressed to the gateway's own MAC. A switch learns the
source on the gateway's port, looks up the destination, finds it on that
same port, and filters the frame: it never leaves the gateway's port. Its
ethertype is 0x88B5 (IEEE 802 local experimental) with a lanparty payload,
so nothing on the LAN mistakes it for real traffic. Each batch of
refreshes starts with one frame from the gateway's own MAC to itself, so
the switch knows (and keeps knowing) where that destination lives; it is
filtered at the same port for the same reason.

Sans-I/O: time is passed in, frames come out.
"""

from __future__ import annotations

import heapq

CAM_REFRESH_ETHERTYPE = 0x88B5
CAM_REFRESH_PAYLOAD = b"lanparty cam refresh"
DEFAULT_REFRESH_INTERVAL_S = 30.0
_MIN_FRAME_BYTES = 60


def refresh_frame(source: bytes, gateway_mac: bytes) -> bytes:
    """The refresh frame for ``source``: to the gateway's own MAC, padded to 60 bytes."""
    frame = gateway_mac + source + CAM_REFRESH_ETHERTYPE.to_bytes(2, "big") + CAM_REFRESH_PAYLOAD
    return frame.ljust(_MIN_FRAME_BYTES, b"\x00")


def is_refresh_frame(frame: bytes) -> bool:
    return frame[12:14] == CAM_REFRESH_ETHERTYPE.to_bytes(2, "big") and frame[14:34] == (
        CAM_REFRESH_PAYLOAD
    )


class CamRefresher:
    """Which remote MACs to refresh, and when."""

    def __init__(self, gateway_mac: bytes, interval_s: float = DEFAULT_REFRESH_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("the CAM refresh interval must be positive")
        self.gateway_mac = gateway_mac
        self.interval_s = interval_s
        self._due_at: dict[bytes, float] = {}
        self._schedule: list[tuple[float, bytes]] = []

    @property
    def macs(self) -> frozenset[bytes]:
        return frozenset(self._due_at)

    def add(self, mac: bytes, now: float) -> bool:
        """Track ``mac``; a new one is due at once. Returns whether it was new."""
        if mac in self._due_at:
            return False
        self._due_at[mac] = now
        heapq.heappush(self._schedule, (now, mac))
        return True

    def remove(self, mac: bytes) -> None:
        """Stop refreshing ``mac`` (it left); the switch then ages it out."""
        self._due_at.pop(mac, None)

    def clear(self) -> None:
        self._due_at.clear()
        self._schedule.clear()

    def next_due_at(self) -> float | None:
        self._drop_stale()
        return self._schedule[0][0] if self._schedule else None

    def due_frames(self, now: float) -> list[bytes]:
        """Frames to send now, rescheduling each MAC ``interval_s`` later."""
        frames: list[bytes] = []
        while True:
            self._drop_stale()
            if not self._schedule or self._schedule[0][0] > now:
                break
            _, mac = heapq.heappop(self._schedule)
            if not frames:
                frames.append(refresh_frame(self.gateway_mac, self.gateway_mac))
            frames.append(refresh_frame(mac, self.gateway_mac))
            next_at = now + self.interval_s
            self._due_at[mac] = next_at
            heapq.heappush(self._schedule, (next_at, mac))
        return frames

    def _drop_stale(self) -> None:
        schedule = self._schedule
        while schedule and self._due_at.get(schedule[0][1]) != schedule[0][0]:
            heapq.heappop(schedule)
