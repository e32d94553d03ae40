"""Observability shared by every role: logging set-up, event names, traffic counters.

``DropReason`` lives in ``lanparty.proto`` (it is a wire enum); it is
re-exported here only for modules that still import it from ``obs``.
"""

from lanparty.obs import events
from lanparty.obs.counters import TrafficCounters, TrafficSnapshot
from lanparty.obs.logs import (
    LOG_LEVELS,
    add_log_level_argument,
    configure_logging,
    get_logger,
    parse_log_level,
)
from lanparty.proto.drops import DropReason

__all__ = [
    "LOG_LEVELS",
    "DropReason",
    "TrafficCounters",
    "TrafficSnapshot",
    "add_log_level_argument",
    "configure_logging",
    "events",
    "get_logger",
    "parse_log_level",
]
