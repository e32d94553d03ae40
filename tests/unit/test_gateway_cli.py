"""The gateway's command line: the interface, the keys, and the invite it prints."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from lanparty.credentials import b64url, room_id_for
from lanparty.errors import ConfigError
from lanparty.gateway import cli
from lanparty.invite import Invite
from lanparty.transport import SpkiPin, SystemTrust, load_or_create_dev_identity, spki_pin

PIN = "sha256:" + "ab" * 32


def parse(*argv: str) -> object:
    return cli.build_parser().parse_args(argv)


def config_and_invite(tmp_path: Path, *argv: str) -> tuple[cli.GatewayConfig, Invite]:
    args = cli.build_parser().parse_args(
        ["--relay", "relay.example.net:443", "--relay-pin", PIN,
         "--state-dir", str(tmp_path / "state"), *argv]
    )  # fmt: skip
    config = cli.build_config(args)
    return config, cli.invite_for(args, config)


def test_the_interface_is_positional_or_an_option(tmp_path: Path) -> None:
    config, _ = config_and_invite(tmp_path, "eth0")
    assert config.interface == "eth0"
    config, _ = config_and_invite(tmp_path, "--interface", "eth1")
    assert config.interface == "eth1"
    config, _ = config_and_invite(tmp_path, "eth1", "--interface", "eth1")
    assert config.interface == "eth1"
    with pytest.raises(ConfigError, match="two interfaces"):
        config_and_invite(tmp_path, "eth0", "--interface", "eth1")
    with pytest.raises(ConfigError, match="which LAN interface"):
        config_and_invite(tmp_path)


def test_the_invite_holds_relay_pin_room_and_key(tmp_path: Path) -> None:
    config, invite = config_and_invite(tmp_path, "eth0", "--room-name", "Bob LAN")
    credentials = config.credentials
    assert (invite.host, invite.port, invite.pin) == ("relay.example.net", 443, PIN)
    assert invite.room == room_id_for(credentials.gateway_key) == credentials.room_id
    assert invite.client_key == credentials.client_key
    assert invite.name == "Bob LAN"
    assert Invite.parse(invite.format()) == invite
    # the same keys next time, the same invite
    _, again = config_and_invite(tmp_path, "eth0", "--room-name", "Bob LAN")
    assert again == invite
    assert config.keys_created
    assert b64url(credentials.client_key) not in repr(config)


def test_rotate_invite_makes_a_new_key_for_the_same_room(tmp_path: Path) -> None:
    _, first = config_and_invite(tmp_path, "eth0")
    config, rotated = config_and_invite(tmp_path, "eth0", "--rotate-invite")
    assert config.invite_rotated
    assert rotated.room == first.room
    assert rotated.client_key != first.client_key


def test_the_invite_follows_the_trust_option(tmp_path: Path) -> None:
    identity = load_or_create_dev_identity(tmp_path / "relay")
    der = tmp_path / "relay.der"
    der.write_bytes(identity.certificate_der())
    base = ["eth0", "--relay", "r.example", "--state-dir", str(tmp_path / "state")]
    args = cli.build_parser().parse_args([*base, "--relay-ca-cert", str(der)])
    config = cli.build_config(args)
    assert cli.invite_for(args, config).pin == identity.spki_pin
    assert spki_pin is not None
    args = cli.build_parser().parse_args([*base, "--server-name", "r.example"])
    config = cli.build_config(args)
    assert isinstance(config.relay.trust, SystemTrust)
    assert cli.invite_for(args, config).pin is None
    args = cli.build_parser().parse_args([*base, "--relay-pin", PIN])
    assert cli.build_config(args).relay.trust == SpkiPin(PIN)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eth0", "--room-name", "x" * 33], "--room-name"),
        (["eth0", "--room-name", "tab\there"], "--room-name"),
        (["eth0", "--relay", "r"], "--relay-pin"),
    ],
)
def test_bad_values_are_config_errors_and_exit_2(
    tmp_path: Path,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "configure_logging", lambda level, **_: None)
    full = [*argv, "--state-dir", str(tmp_path / "state")]
    if "--relay" not in argv:
        full += ["--relay", "r:1", "--relay-pin", PIN]
    assert cli.main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith("lanparty-gateway: ")
    assert message in err


def test_a_key_file_others_can_read_stops_the_gateway_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "configure_logging", lambda level, **_: None)
    config_and_invite(tmp_path, "eth0")
    key_file = tmp_path / "state" / "client_key"
    key_file.chmod(0o644)
    argv = ["eth0", "--relay", "r:1", "--relay-pin", PIN, "--state-dir", str(tmp_path / "state")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err
    assert key_file.read_text().strip() not in err


def test_invite_out_writes_the_invite_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "configure_logging", lambda level, **_: None)

    def no_run(*_args: object) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "invite.txt"
    monkeypatch.setattr(cli.trio, "run", no_run)
    argv = ["eth0", "--relay", "r:1", "--relay-pin", PIN, "--state-dir", str(tmp_path / "s"),
            "--invite-out", str(out)]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    printed = capsys.readouterr().out
    invite_line = next(line for line in printed.splitlines() if line.startswith("invite: "))
    assert out.read_text().strip() == invite_line.removeprefix("invite: ")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    Invite.parse(out.read_text())


def start_and_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> str:
    """Run ``main`` up to where it would start bridging; what it printed."""
    monkeypatch.setattr(cli, "configure_logging", lambda level, **_: None)

    def no_run(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.trio, "run", no_run)
    with pytest.raises(KeyboardInterrupt):
        cli.main(list(argv))
    return capsys.readouterr().out


def printed_invite(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("invite: "))


@pytest.mark.parametrize(
    "trust",
    [["--relay-pin", PIN], ["--server-name", "relay.example.net"]],
)
def test_invite_prints_the_line_the_gateway_printed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    trust: list[str],
) -> None:
    state = tmp_path / "state"
    started = start_and_stop(
        monkeypatch, capsys, "eth0", "--relay", "relay.example.net:443", *trust,
        "--room-name", "Bob LAN", "--state-dir", str(state),
    )  # fmt: skip
    assert stat.S_IMODE((state / "invite.json").stat().st_mode) == 0o600
    assert cli.main(["invite", "--state-dir", str(state)]) == 0
    again = capsys.readouterr().out
    assert again == printed_invite(started) + "\n"
    # A rotated key: the kept invite follows it.
    rotated = start_and_stop(
        monkeypatch, capsys, "eth0", "--relay", "relay.example.net:443", *trust,
        "--room-name", "Bob LAN", "--state-dir", str(state), "--rotate-invite",
    )  # fmt: skip
    assert printed_invite(rotated) != printed_invite(started)
    assert cli.main(["invite", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out == printed_invite(rotated) + "\n"


def test_invite_takes_the_state_directory_systemd_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "lanparty" / "gateway" / "eth0"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    started = start_and_stop(monkeypatch, capsys, "eth0", "--relay", "r:1", "--relay-pin", PIN)
    assert (state / "gateway_key").exists()
    assert cli.main(["invite"]) == 0
    assert capsys.readouterr().out == printed_invite(started) + "\n"


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o744])
def test_invite_refuses_a_state_directory_others_can_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int,
) -> None:
    state = tmp_path / "state"
    start_and_stop(monkeypatch, capsys, "eth0", "--relay", "r:1", "--relay-pin", PIN,
                   "--state-dir", str(state))  # fmt: skip
    state.chmod(mode)
    assert cli.main(["invite", "--state-dir", str(state)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"chmod 700 {state}" in captured.err
    assert (state / "client_key").read_text().strip() not in captured.err


def test_invite_without_a_started_gateway_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["invite", "--state-dir", str(tmp_path / "none")]) == 2
    assert "no state directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    assert cli.main(["invite", "--state-dir", str(empty)]) == 2
    assert "first start" in capsys.readouterr().err
    assert not (empty / "gateway_key").exists()


def test_an_invite_file_without_its_keys_or_details_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    start_and_stop(monkeypatch, capsys, "eth0", "--relay", "r:1", "--relay-pin", PIN,
                   "--state-dir", str(state))  # fmt: skip
    (state / "invite.json").unlink()
    assert cli.main(["invite", "--state-dir", str(state)]) == 2
    assert "start the gateway once" in capsys.readouterr().err
    (state / "invite.json").write_text('{"version": 1, "host": "r"}')
    (state / "invite.json").chmod(0o600)
    assert cli.main(["invite", "--state-dir", str(state)]) == 2
    assert "does not hold what an invite needs" in capsys.readouterr().err


def test_with_stdout_in_the_journal_the_invite_is_not_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    journal = tmp_path / "journal-stream"
    with journal.open("w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        monkeypatch.setattr(sys, "stdout", stream)
        start_and_stop(monkeypatch, capsys, "eth0", "--relay", "r:1", "--relay-pin", PIN,
                       "--state-dir", str(state))  # fmt: skip
    text = journal.read_text()
    assert "lanparty://" not in text
    assert f"lanparty-gateway invite --state-dir {state}" in text
