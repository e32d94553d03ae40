"""structlog configuration: JSON lines, console lines, levels, and re-configuration."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from lanparty.errors import ConfigError
from lanparty.obs import add_log_level_argument, configure_logging, events, get_logger
from lanparty.obs.logs import parse_log_level


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_event_level_timestamp_and_context() -> None:
    stream = io.StringIO()
    configure_logging("info", json_lines=True, stream=stream)
    get_logger(room="den").info(events.PEER_JOINED, peer_id=3)
    (line,) = lines(stream)
    assert line["event"] == "peer_joined"
    assert line["level"] == "info"
    assert line["room"] == "den"
    assert line["peer_id"] == 3
    assert "timestamp" in line


def test_levels_below_the_configured_one_are_dropped() -> None:
    stream = io.StringIO()
    configure_logging("warning", json_lines=True, stream=stream)
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in lines(stream)] == ["w", "e"]


def test_debug_level_lets_debug_through() -> None:
    stream = io.StringIO()
    configure_logging("debug", json_lines=True, stream=stream)
    get_logger().debug(events.FRAME_DROPPED, reason="jumbo")
    assert lines(stream)[0]["level"] == "debug"


def test_a_filtered_debug_call_renders_nothing() -> None:
    class Explosive:
        def __repr__(self) -> str:
            raise AssertionError("rendered although filtered")

    stream = io.StringIO()
    configure_logging("info", json_lines=True, stream=stream)
    get_logger().debug(events.FRAME_FORWARDED, frame=Explosive())
    assert stream.getvalue() == ""


@pytest.mark.parametrize("level", ["verbose", "", "critical", "10"])
def test_an_unknown_level_is_a_config_error(level: str) -> None:
    with pytest.raises(ConfigError, match="log level"):
        configure_logging(level, stream=io.StringIO())


def test_level_names_are_case_insensitive() -> None:
    assert parse_log_level("WARNING") == logging.WARNING
    assert parse_log_level("debug") == logging.DEBUG


def test_standard_library_records_use_the_same_format_and_level() -> None:
    stream = io.StringIO()
    configure_logging("info", json_lines=True, stream=stream)
    quic = logging.getLogger("quic")
    quic.debug("packet sent")
    quic.warning("stream %d reset", 4)
    (line,) = lines(stream)
    assert line == {
        "event": "stream 4 reset",
        "level": "warning",
        "logger": "quic",
        "timestamp": line["timestamp"],
    }


def test_a_second_call_reconfigures_without_duplicating_output() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", json_lines=True, stream=first)
    configure_logging("debug", json_lines=True, stream=second)
    get_logger().debug("once")
    logging.getLogger("quic").debug("stdlib once")
    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once", "stdlib once"]


def test_format_follows_the_terminal_when_not_forced() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    configure_logging("info", stream=terminal)
    get_logger().info(events.RELAY_LISTENING, port=4433)
    configure_logging("info", stream=pipe)
    get_logger().info(events.RELAY_LISTENING, port=4433)
    assert "relay_listening" in terminal.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(terminal.getvalue())
    assert lines(pipe)[0]["port"] == 4433


def test_console_lines_can_be_forced_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", json_lines=False, stream=stream)
    get_logger().info(events.PEER_LEFT, peer_id=9)
    assert "peer_left" in stream.getvalue()
    assert "peer_id=9" in stream.getvalue()
    assert "\x1b[" not in stream.getvalue()  # no colour codes off a terminal


def test_exceptions_are_logged_without_local_variables() -> None:
    stream = io.StringIO()
    configure_logging("info", json_lines=True, stream=stream)

    def handshake(password: str) -> None:
        raise ValueError("boom")

    try:
        handshake("hunter2")
    except ValueError:
        get_logger().exception(events.HANDSHAKE_FAILED)
    (line,) = lines(stream)
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "hunter2" not in stream.getvalue()


def test_log_level_argument() -> None:
    parser = argparse.ArgumentParser()
    add_log_level_argument(parser)
    assert parser.parse_args([]).log_level == "info"
    assert parser.parse_args(["--log-level", "DEBUG"]).log_level == "debug"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "loud"])
