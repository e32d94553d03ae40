"""Observability shared by every role: logging set-up, event names, traffic counters.

The reasons counters count (``DropReason``) are wire strings: ``lanparty.proto``.
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

__all__ = [
    "LOG_LEVELS",
    "TrafficCounters",
    "TrafficSnapshot",
    "add_log_level_argument",
    "configure_logging",
    "events",
    "get_logger",
    "parse_log_level",
]
