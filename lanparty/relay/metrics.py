"""Prometheus metrics of the relay (``--metrics HOST:PORT``).

A custom collector reads the switch's counters when scraped, so the hot
path pays nothing for metrics.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from lanparty.relay.switch import Switch


class SwitchCollector(Collector):
    def __init__(self, switch: Switch) -> None:
        self._switch = switch

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        switch = self._switch
        yield GaugeMetricFamily(
            "lanparty_peers", "Peers admitted to a room", value=switch.peer_count
        )
        yield GaugeMetricFamily(
            "lanparty_rooms", "Rooms with at least one member", value=switch.room_count
        )
        yield CounterMetricFamily(
            "lanparty_forwarded_frames",
            "Frames sent to members (once per target)",
            value=switch.forwarded_frames,
        )
        yield CounterMetricFamily(
            "lanparty_forwarded_bytes",
            "Datagram bytes sent to members (once per target)",
            value=switch.forwarded_bytes,
        )
        drops = CounterMetricFamily(
            "lanparty_dropped_frames", "Frames the relay dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(switch.drops.items()):
            drops.add_metric([str(reason)], count)
        yield drops


def start_metrics_server(switch: Switch, host: str, port: int) -> tuple[str, int]:
    """Serve ``/metrics`` from a background thread; return the bound address."""
    registry = CollectorRegistry()
    registry.register(SwitchCollector(switch))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address
    return str(bound[0]), int(bound[1])
