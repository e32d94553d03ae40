"""Log records to the systemd journal over its native protocol, one event a record.

When a unit's stderr is the journal, systemd says so in ``$JOURNAL_STREAM``
(``DEVICE:INODE`` of that stream, systemd.exec(5)); a program whose stderr
has that device and inode may send its records to
``/run/systemd/journal/socket`` instead: one AF_UNIX datagram per record,
``KEY=value`` lines (a value holding a newline goes as ``KEY``, a newline,
its length as 64-bit little-endian, the bytes, a newline). Each record
carries ``MESSAGE`` (the JSON line lanparty would have written to stderr),
``PRIORITY`` from the level, and ``SYSLOG_IDENTIFIER`` (``lanparty-relay``,
``lanparty-gateway``), so ``journalctl -p warning -t lanparty-relay``
selects by both.

Only stderr decides: a program started by hand on a host with a journal
still logs to its terminal. A record the socket will not take (journald
restarting, a record beyond the datagram limit) is written to stderr
instead, which is the journal's stream anyway.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

__all__ = [
    "JOURNAL_SOCKET",
    "JournalLogger",
    "JournalSink",
    "encode_fields",
    "is_journal_stream",
    "priority_of_level",
]

JOURNAL_SOCKET = "/run/systemd/journal/socket"
JOURNAL_STREAM_VARIABLE = "JOURNAL_STREAM"

# syslog(3) priorities the journal stores in PRIORITY.
_PRIORITY_BY_NAME = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def priority_of_level(level: int) -> int:
    """The journal's PRIORITY for a ``logging`` level number."""
    if level >= logging.CRITICAL:
        return 2
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    if level >= logging.INFO:
        return 6
    return 7


def encode_fields(fields: Mapping[str, str]) -> bytes:
    """One native-protocol datagram holding ``fields`` (names: upper case, digits, ``_``)."""
    parts: list[bytes] = []
    for name, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            parts.append(name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(name.encode() + b"=" + data + b"\n")
    return b"".join(parts)


def is_journal_stream(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal stream systemd named in ``$JOURNAL_STREAM``."""
    named = (os.environ if environ is None else environ).get(JOURNAL_STREAM_VARIABLE, "")
    device, _, inode = named.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no descriptor (a StringIO), or closed
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


class JournalSink:
    """Sends records to the journal's socket; what it will not take goes to ``fallback``."""

    identifier: str
    path: str
    _fallback: TextIO
    _lock: threading.Lock
    _socket: socket.socket

    def __init__(self, identifier: str, fallback: TextIO, path: str = JOURNAL_SOCKET) -> None:
        if sys.platform == "win32":
            raise OSError("the systemd journal is a Linux service")
        self.identifier = identifier
        self.path = path
        self._fallback = fallback
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def for_stderr(
        cls, identifier: str, environ: Mapping[str, str] | None = None, path: str = JOURNAL_SOCKET
    ) -> JournalSink | None:
        """A sink when stderr is the journal's stream and its socket answers; else None."""
        if sys.platform == "win32" or not is_journal_stream(sys.stderr, environ):
            return None
        try:
            sink = cls(identifier, sys.stderr, path)
        except OSError:
            return None
        if not sink.reachable():
            sink.close()
            return None
        return sink

    def reachable(self) -> bool:
        """Whether a journal listens on the socket (a datagram connect says so)."""
        if sys.platform == "win32":
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as probe:
                probe.connect(self.path)
        except OSError:
            return False
        return True

    def send(self, message: str, priority: int) -> None:
        """One record: ``MESSAGE``, ``PRIORITY``, ``SYSLOG_IDENTIFIER``."""
        datagram = encode_fields(
            {
                "MESSAGE": message,
                "PRIORITY": str(priority),
                "SYSLOG_IDENTIFIER": self.identifier,
            }
        )
        try:
            self._socket.sendto(datagram, self.path)
        except OSError:
            with self._lock:
                self._fallback.write(message + "\n")
                self._fallback.flush()

    def close(self) -> None:
        self._socket.close()


class JournalLogger:
    """structlog's logger for the journal: the method name (the level) gives PRIORITY."""

    def __init__(self, sink: JournalSink) -> None:
        self._sink = sink

    def _send(self, name: str, message: str) -> None:
        self._sink.send(message, _PRIORITY_BY_NAME.get(name, 6))

    def debug(self, message: str) -> None:
        self._send("debug", message)

    def info(self, message: str) -> None:
        self._send("info", message)

    def warning(self, message: str) -> None:
        self._send("warning", message)

    def error(self, message: str) -> None:
        self._send("error", message)

    def critical(self, message: str) -> None:
        self._send("critical", message)

    msg = info
    warn = warning
    exception = err = error
    fatal = failure = critical


class JournalLoggerFactory:
    """``logger_factory`` for ``structlog.configure``: every logger sends to one sink."""

    def __init__(self, sink: JournalSink) -> None:
        self._sink = sink

    def __call__(self, *args: object) -> JournalLogger:
        return JournalLogger(self._sink)
