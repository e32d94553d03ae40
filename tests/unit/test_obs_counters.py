"""Traffic counters and their frozen snapshots."""

from __future__ import annotations

import attrs
import pytest

from lanparty.ctrl import Stats, structure_message, unstructure_message
from lanparty.obs import TrafficCounters, TrafficSnapshot
from lanparty.proto import DropReason


def test_counting_frames_bytes_and_drops() -> None:
    counters = TrafficCounters()
    counters.count_rx(60)
    counters.count_rx(1514)
    counters.count_tx(98)
    counters.count_drop(DropReason.JUMBO)
    counters.count_drop(DropReason.JUMBO, n=2)
    counters.count_drop(DropReason.MALFORMED)
    assert (counters.rx_frames, counters.rx_bytes) == (2, 1574)
    assert (counters.tx_frames, counters.tx_bytes) == (1, 98)
    assert counters.drops == {DropReason.JUMBO: 3, DropReason.MALFORMED: 1}


def test_counters_have_no_instance_dict() -> None:
    counters = TrafficCounters()
    counters.rx_frames += 5
    assert counters.rx_frames == 5
    with pytest.raises(AttributeError):
        counters.rx_packets = 1  # type: ignore[attr-defined]


def test_a_snapshot_is_frozen_sorted_and_detached() -> None:
    counters = TrafficCounters()
    counters.count_drop(DropReason.SPOOFED_SOURCE, n=4)
    counters.count_drop(DropReason.DHCP_SERVER)
    counters.count_drop(DropReason.REFLECTION, n=0)
    snapshot = counters.snapshot()
    counters.count_drop(DropReason.DHCP_SERVER)
    counters.count_rx(60)
    assert snapshot == TrafficSnapshot(
        drops=((DropReason.DHCP_SERVER, 1), (DropReason.SPOOFED_SOURCE, 4))
    )
    assert snapshot.dropped_frames == 5
    assert hash(snapshot) == hash(attrs.evolve(snapshot))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.rx_frames = 1  # type: ignore[misc]


def test_a_snapshot_fills_a_stats_message() -> None:
    counters = TrafficCounters()
    counters.count_rx(100)
    counters.count_tx(200)
    counters.count_drop(DropReason.RATE_LIMITED_TOTAL, n=7)
    fields = counters.snapshot().log_fields()
    assert fields == {
        "rx_frames": 1,
        "rx_bytes": 100,
        "tx_frames": 1,
        "tx_bytes": 200,
        "drops": {"rate_limited_total": 7},
    }
    stats = Stats(**fields)
    wire = unstructure_message(stats)
    assert wire["drops"] == {"rate_limited_total": 7}
    assert structure_message(wire) == stats
