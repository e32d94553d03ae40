"""What the gateway lets through, each way (sans-I/O).

LAN -> relay: a frame whose source is a remote member's MAC is our own
traffic coming back (a loop, e.g. through another bridge on the LAN) and is
dropped; so is a frame larger than the room's ``max_frame``, which the
relay would drop anyway. Relay -> LAN: every source MAC is remembered as
remote, so the first rule holds even for MACs no ``peer_joined`` named.
"""

from __future__ import annotations

from lanparty.obs import TrafficCounters
from lanparty.proto import DropReason
from lanparty.proto.ethernet import SOURCE
from lanparty.proto.mac import is_multicast

# A LAN frame whose source is a remote MAC: ours, coming back.
LOOP = DropReason.SOURCE_CONFLICT


class GatewayBridge:
    """Remote MACs and the per-direction checks."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.remote_macs: set[bytes] = set()
        self.lan_counters = TrafficCounters()  # rx: from the LAN; tx: onto the LAN

    def from_lan(self, frames: list[bytes]) -> list[bytes]:
        """The LAN frames to send to the relay; the rest are counted as drops."""
        counters = self.lan_counters
        remote = self.remote_macs
        max_frame = self.max_frame
        passed: list[bytes] = []
        for frame in frames:
            counters.rx_frames += 1
            counters.rx_bytes += len(frame)
            if len(frame) > max_frame:
                counters.drops[DropReason.JUMBO] += 1
            elif frame[SOURCE] in remote:
                counters.drops[LOOP] += 1
            else:
                passed.append(frame)
        return passed

    def learn_remote_sources(self, frames: list[bytes]) -> list[bytes]:
        """Remember the sources of frames from the relay; return the MACs new to us."""
        remote = self.remote_macs
        new: list[bytes] = []
        for frame in frames:
            source = frame[SOURCE]
            if source not in remote and not is_multicast(source):
                remote.add(source)
                new.append(source)
        return new

    def forget(self, mac: bytes) -> None:
        """A member left: its MAC may now legitimately appear on the LAN."""
        self.remote_macs.discard(mac)
