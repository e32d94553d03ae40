"""Prometheus metrics of the relay (``--metrics [HOST:]PORT``).

The exporter runs in prometheus_client's HTTP thread, which must never walk
the switch's live dicts while the Trio thread changes them. So a scrape
asks the Trio side for a frozen ``MetricsSnapshot`` (``refresh``: the
relay runs it on the Trio thread and waits for it) and serves that; if the
Trio side cannot answer (shutting down), the last snapshot is served. The
hot path pays nothing for metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from lanparty.relay.switch import Switch


@attrs.frozen
class MetricsSnapshot:
    """The relay's numbers at one instant, made on the Trio side."""

    peers: int = 0
    rooms: int = 0
    forwarded_frames: int = 0
    forwarded_bytes: int = 0
    drops: tuple[tuple[str, int], ...] = ()
    # Fragments received and sent, frames reassembled and fragmented, SYNs clamped.
    fragments: tuple[tuple[str, int], ...] = ()
    # The transport's own counters (datagrams it kept from any connection).
    transport: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, switch: Switch, transport: dict[str, int] | None = None) -> MetricsSnapshot:
        return cls(
            peers=switch.peer_count,
            rooms=switch.room_count,
            forwarded_frames=switch.forwarded_frames,
            forwarded_bytes=switch.forwarded_bytes,
            drops=tuple(sorted((str(reason), count) for reason, count in switch.drops.items())),
            fragments=tuple(sorted(switch.fragments.items())),
            transport=tuple(sorted((transport or {}).items())),
        )


class SnapshotCollector(Collector):
    """Serves a fresh snapshot from ``refresh`` (None when it cannot), else the last one."""

    def __init__(self, refresh: Callable[[], MetricsSnapshot | None] | None = None) -> None:
        self.snapshot = MetricsSnapshot()
        self._refresh = refresh

    def publish(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self._refresh is not None:
            fresh = self._refresh()
            if fresh is not None:
                self.snapshot = fresh
        snapshot = self.snapshot
        yield GaugeMetricFamily("lanparty_peers", "Peers admitted to a room", value=snapshot.peers)
        yield GaugeMetricFamily(
            "lanparty_rooms", "Rooms open (a gateway, or its grace period)", value=snapshot.rooms
        )
        yield CounterMetricFamily(
            "lanparty_forwarded_frames",
            "Frames sent to members (once per target)",
            value=snapshot.forwarded_frames,
        )
        yield CounterMetricFamily(
            "lanparty_forwarded_bytes",
            "Datagram bytes sent to members (once per target)",
            value=snapshot.forwarded_bytes,
        )
        drops = CounterMetricFamily(
            "lanparty_dropped_frames", "Frames the relay dropped, by reason", labels=["reason"]
        )
        for reason, count in snapshot.drops:
            drops.add_metric([reason], count)
        yield drops
        fragments = CounterMetricFamily(
            "lanparty_fragments",
            "Frames larger than one datagram: fragments received and sent, frames "
            "reassembled and fragmented, TCP SYNs whose MSS was clamped",
            labels=["kind"],
        )
        for kind, count in snapshot.fragments:
            fragments.add_metric([kind], count)
        yield fragments
        transport = CounterMetricFamily(
            "lanparty_transport_events",
            "What the QUIC endpoint did with datagrams no connection took, by kind",
            labels=["kind"],
        )
        for kind, count in snapshot.transport:
            transport.add_metric([kind], count)
        yield transport


def start_metrics_server(collector: SnapshotCollector, host: str, port: int) -> tuple[str, int]:
    """Serve ``/metrics`` from a background thread; return the bound address."""
    registry = CollectorRegistry()
    registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address
    return str(bound[0]), int(bound[1])
