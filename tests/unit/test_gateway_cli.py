"""The gateway's command line: the interface, the keys, and the invite it prints."""

from __future__ import annotations

import stat
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
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
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
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
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
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)

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
