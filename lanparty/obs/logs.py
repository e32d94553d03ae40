"""structlog set-up shared by every role: console lines on a terminal, JSON lines otherwise.

``configure_logging`` may be called again to change the level or format; it
replaces the previous set-up rather than adding to it. Standard-library
records (the QUIC library's, for instance) go through the same renderer.

Under systemd, when stderr is the journal's stream (``$JOURNAL_STREAM``) and
the journal's socket answers, the same JSON lines go to the journal as one
record each, with ``PRIORITY`` from the level and ``SYSLOG_IDENTIFIER``
(``lanparty.obs.journal``); otherwise they go to stderr as they are.
Exceptions are rendered without their locals, which can hold keys.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from lanparty.errors import ConfigError
from lanparty.obs.journal import JournalLoggerFactory, JournalSink, priority_of_level

LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# locals stay out of logs: they can hold keys and whole frames
_EXCEPTION_AS_DICT = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


class _RootHandler(logging.StreamHandler[TextIO]):
    """The one handler this module puts on the root logger (found again by its class)."""


class _JournalRootHandler(_RootHandler):
    """The root handler when records go to the journal: one record each, its priority."""

    def __init__(self, sink: JournalSink, fallback: TextIO) -> None:
        super().__init__(fallback)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)
            return
        self.sink.send(message, priority_of_level(record.levelno))


def default_identifier() -> str:
    """``SYSLOG_IDENTIFIER`` for this program: its script's name, or ``lanparty``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("lanparty") else "lanparty"


def parse_log_level(level: str) -> int:
    """The ``logging`` level number of a ``--log-level`` name; ``ConfigError`` if unknown."""
    try:
        return LOG_LEVELS[level.strip().lower()]
    except KeyError:
        names = ", ".join(LOG_LEVELS)
        raise ConfigError(f"unknown log level {level!r}: use one of {names}") from None


def _can_color(stream: TextIO) -> bool:
    # structlog refuses colors on Windows without colorama rather than degrading
    return _is_terminal(stream) and (
        sys.platform != "win32" or importlib.util.find_spec("colorama") is not None
    )


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def configure_logging(
    level: str = "info",
    *,
    json_lines: bool | None = None,
    stream: TextIO | None = None,
    identifier: str | None = None,
    journal: JournalSink | None = None,
) -> None:
    """Configure structlog (and the root ``logging`` logger) for this process.

    ``json_lines=None`` picks JSON lines unless ``stream`` (default: stderr)
    is a terminal. With the default stream, records go to the journal when
    stderr is the journal's stream and its socket answers (``journal`` gives
    a sink explicitly), as ``identifier`` (default: the script's name).
    Loggers obtained before a second call keep the previous configuration,
    so long-lived ones should come from ``get_logger`` after it.
    """
    level_number = parse_log_level(level)
    output = sys.stderr if stream is None else stream
    if journal is None and stream is None and json_lines is not False:
        journal = JournalSink.for_stderr(identifier or default_identifier())
    use_json = journal is not None or (
        not _is_terminal(output) if json_lines is None else json_lines
    )

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Processor] = (
        [_EXCEPTION_AS_DICT, structlog.processors.JSONRenderer()]
        if use_json
        else [structlog.dev.ConsoleRenderer(colors=_can_color(output))]
    )
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=(
            structlog.WriteLoggerFactory(file=output)
            if journal is None
            else JournalLoggerFactory(journal)
        ),
        cache_logger_on_first_use=False,
    )

    handler = _RootHandler(output) if journal is None else _JournalRootHandler(journal, output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RootHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number)


def get_logger(**context: Any) -> FilteringBoundLogger:
    """A bound logger under the current configuration, with ``context`` bound.

    Hold it for a session or connection: a debug call on it costs one no-op
    method call when the level is above debug.
    """
    logger: FilteringBoundLogger = structlog.get_logger().bind(**context)
    return logger


def add_log_level_argument(parser: argparse.ArgumentParser, *, default: str = "info") -> None:
    """Add ``--log-level {debug,info,warning,error}`` to a command's parser."""
    parser.add_argument(
        "--log-level",
        choices=list(LOG_LEVELS),
        default=default,
        type=str.lower,
        help=f"least severe messages to log (default: {default})",
    )
