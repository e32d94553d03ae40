"""The client's command line: options to ``ClientConfig``, exit code 2 for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanparty.client import cli
from lanparty.client.service import ClientConfig
from lanparty.credentials import b64url
from lanparty.errors import ConfigError, ExitCode
from lanparty.transport import SpkiPin

PIN = "sha256:" + "ab" * 32
ROOM = "abcdefghijklmnopqrstuvwxyz"
KEY = bytes(range(32))
INVITE = f"lanparty://relay.example.net:5000/{ROOM}?pin={PIN}&key={b64url(KEY)}&name=Bob%20LAN"


def config(*argv: str) -> ClientConfig:
    return cli.build_config(cli.build_parser().parse_args(argv))


def test_an_invite_is_enough() -> None:
    result = config("--invite", INVITE)
    assert (result.relay.host, result.relay.port, result.room) == (
        "relay.example.net",
        5000,
        ROOM,
    )
    assert (result.client_key, result.room_name) == (KEY, "Bob LAN")
    assert b64url(KEY) not in repr(result)
    assert result.relay.trust == SpkiPin.parse(PIN)
    assert result.tap_name is None  # the platform's default adapter
    assert result.private_network is False
    assert result.identity_path is None
    assert result.virtual_mac is None
    assert result.journal_path is None
    assert (result.watchdog_interval_s, result.status_interval_s) == (5.0, 30.0)


def test_every_client_option_reaches_the_config(tmp_path: Path) -> None:
    result = config(
        "--invite", INVITE, "--relay", "198.18.2.1", "--relay-pin", PIN,
        "--tap", "lp0", "--identity", str(tmp_path / "id.json"),
        "--virtual-mac", "02:00:00:00:00:0a", "--journal", str(tmp_path / "journal.json"),
        "--watchdog-interval-s", "0.5", "--status-interval-s", "2",
    )  # fmt: skip
    assert (result.relay.host, result.relay.port, result.room) == ("198.18.2.1", 4433, ROOM)
    assert result.tap_name == "lp0"
    assert result.identity_path == tmp_path / "id.json"
    assert result.virtual_mac == "02:00:00:00:00:0a"
    assert result.journal_path == tmp_path / "journal.json"
    assert (result.watchdog_interval_s, result.status_interval_s) == (0.5, 2.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--invite", INVITE, "--virtual-mac", "01:00:00:00:00:0a"],  # multicast
        ["--invite", INVITE, "--virtual-mac", "00:11:22:33:44:55"],  # not locally administered
        ["--invite", INVITE, "--virtual-mac", "nonsense"],
        ["--invite", INVITE, "--watchdog-interval-s", "0"],
        ["--invite", INVITE, "--status-interval-s", "-1"],
        ["--invite", "https://relay.example.net/party"],
        ["--invite", INVITE.replace("key=", "key=x")],
        ["--relay", "198.18.2.1", "--relay-pin", PIN],  # no invite
    ],
)
def test_bad_values_are_config_errors_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError):
        config(*argv)
    # logging set up on pytest's captured stderr would outlive this test
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith("lanparty-client: ")


def test_a_malformed_number_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["--invite", INVITE, "--status-interval-s", "soon"])
    assert exited.value.code == 2


def test_private_network_is_a_windows_option_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    argv = ["--invite", INVITE, "--private-network"]
    assert cli.main(argv) == ExitCode.CONFIG


def test_windows_commands_elsewhere_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    assert cli.main(["install-shortcut", INVITE]) == ExitCode.CONFIG
    assert "install-shortcut is a Windows command" in capsys.readouterr().err


def test_an_unsupported_platform_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    assert cli.main(["--invite", INVITE]) == ExitCode.CONFIG
    assert "runs on Linux and Windows, not on darwin" in capsys.readouterr().err
