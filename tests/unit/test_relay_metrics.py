"""The relay's metrics: a frozen snapshot made on the Trio side, served from another thread."""

from __future__ import annotations

import attrs
import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from lanparty.proto import DropReason
from lanparty.relay.metrics import MetricsSnapshot, SnapshotCollector
from lanparty.relay.switch import RelayLimits, Switch


def test_a_snapshot_is_frozen_and_does_not_follow_the_switch() -> None:
    switch = Switch(RelayLimits())
    switch.drops[DropReason.JUMBO] += 2
    switch.forwarded_frames = 5
    snapshot = MetricsSnapshot.of(switch, {"retries_sent": 3})
    switch.drops[DropReason.MALFORMED] += 1
    switch.forwarded_frames = 9
    assert snapshot.drops == (("jumbo", 2),)
    assert snapshot.forwarded_frames == 5
    assert snapshot.transport == (("retries_sent", 3),)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.peers = 1  # type: ignore[misc]


def test_the_exporter_serves_the_last_published_snapshot() -> None:
    collector = SnapshotCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    assert b"lanparty_peers 0.0" in generate_latest(registry)
    collector.publish(
        MetricsSnapshot(peers=3, rooms=1, drops=(("jumbo", 4),), transport=(("retries_sent", 7),))
    )
    text = generate_latest(registry).decode()
    assert "lanparty_peers 3.0" in text
    assert 'lanparty_dropped_frames_total{reason="jumbo"} 4.0' in text
    assert 'lanparty_transport_events_total{kind="retries_sent"} 7.0' in text


def test_a_scrape_asks_for_a_fresh_snapshot_and_keeps_the_last_when_none_comes() -> None:
    answers: list[MetricsSnapshot | None] = [MetricsSnapshot(peers=1), None]
    collector = SnapshotCollector(lambda: answers.pop(0))
    registry = CollectorRegistry()
    registry.register(collector)
    assert b"lanparty_peers 1.0" in generate_latest(registry)
    assert b"lanparty_peers 1.0" in generate_latest(registry)  # the Trio side is gone
    assert answers == []
