"""Records to the journal: the native protocol's fields, priorities, and when it is used."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from lanparty.obs import configure_logging, get_logger
from lanparty.obs.journal import JournalSink, encode_fields, is_journal_stream, priority_of_level

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the journal is Linux's")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[socket.socket]:
    """A datagram socket standing in for journald's /run/systemd/journal/socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "journal"))
        sock.settimeout(5)
        yield sock


def decode(datagram: bytes) -> dict[str, str]:
    """The fields of one native-protocol datagram (both forms of a field)."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        line, newline, after = rest.partition(b"\n")
        assert newline
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields[name.decode()] = value.decode()
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8 : 8 + size].decode()
            assert after[8 + size : 9 + size] == b"\n"
            rest = after[9 + size :]
    return fields


def test_fields_with_and_without_newlines() -> None:
    datagram = encode_fields({"MESSAGE": "two\nlines", "PRIORITY": "6"})
    assert datagram.startswith(b"MESSAGE\n" + struct.pack("<Q", 9) + b"two\nlines\n")
    assert decode(datagram) == {"MESSAGE": "two\nlines", "PRIORITY": "6"}


def test_priorities_follow_the_levels() -> None:
    assert [priority_of_level(level) for level in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]


def test_one_record_per_event_with_priority_and_identifier(
    journal: socket.socket, tmp_path: Path
) -> None:
    fallback = io.StringIO()
    sink = JournalSink("lanparty-relay", fallback, path=str(tmp_path / "journal"))
    configure_logging("info", journal=sink)
    get_logger(room="den").warning("peer_evicted", peer_id=3)
    record = decode(journal.recv(65536))
    assert record["PRIORITY"] == "4"
    assert record["SYSLOG_IDENTIFIER"] == "lanparty-relay"
    line = json.loads(record["MESSAGE"])
    assert (line["event"], line["room"], line["level"]) == ("peer_evicted", "den", "warning")
    logging.getLogger("qh3").error("library trouble")
    record = decode(journal.recv(65536))
    assert record["PRIORITY"] == "3"
    assert json.loads(record["MESSAGE"])["event"] == "library trouble"
    get_logger().debug("not at info")
    get_logger().info("next")
    assert json.loads(decode(journal.recv(65536))["MESSAGE"])["event"] == "next"
    assert fallback.getvalue() == ""


def test_exceptions_reach_the_journal_without_their_locals(
    journal: socket.socket, tmp_path: Path
) -> None:
    sink = JournalSink("lanparty-gateway", io.StringIO(), path=str(tmp_path / "journal"))
    configure_logging("info", journal=sink)
    secret = "room-key-" + "x" * 20

    def fail(key: str) -> None:
        raise ValueError(f"boom ({len(key)} characters)")

    try:
        fail(secret)
    except ValueError:
        get_logger().exception("failed")
    record = decode(journal.recv(65536))
    assert record["PRIORITY"] == "3"
    assert "boom" in record["MESSAGE"]
    assert secret not in record["MESSAGE"]


def test_a_journal_that_went_away_gets_stderr_instead(tmp_path: Path) -> None:
    fallback = io.StringIO()
    sink = JournalSink("lanparty-relay", fallback, path=str(tmp_path / "nobody"))
    assert not sink.reachable()
    configure_logging("info", journal=sink)
    get_logger().info("still logged")
    assert json.loads(fallback.getvalue())["event"] == "still logged"


def test_only_the_stream_systemd_named_is_the_journal(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as stream, (tmp_path / "other").open("w") as other:
        info = os.fstat(stream.fileno())
        environ = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert is_journal_stream(stream, environ)
        assert not is_journal_stream(other, environ)
        assert not is_journal_stream(stream, {})
        assert not is_journal_stream(stream, {"JOURNAL_STREAM": "junk"})
        assert not is_journal_stream(io.StringIO(), environ)


def test_stderr_goes_to_the_journal_only_when_systemd_said_so(
    journal: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "journal")
    with (tmp_path / "stderr").open("w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        info = os.fstat(stderr.fileno())
        named = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        sink = JournalSink.for_stderr("lanparty-relay", named, path)
        assert sink is not None
        sink.close()
        assert JournalSink.for_stderr("lanparty-relay", {}, path) is None
        assert JournalSink.for_stderr("lanparty-relay", named, str(tmp_path / "none")) is None
