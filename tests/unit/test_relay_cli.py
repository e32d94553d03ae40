"""The relay's command line: address and rate parsing, configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanparty.credentials import sha256_hex
from lanparty.errors import ConfigError
from lanparty.relay import cli as relay_cli
from lanparty.relay.cli import (
    build_config,
    build_parser,
    load_identity,
    parse_listen,
    parse_metrics_address,
    parse_rate_bps,
    read_gateway_tokens,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:443", ("0.0.0.0", 443)),
        ("[::]:443", ("::", 443)),
        ("[2001:db8::1]:4433", ("2001:db8::1", 4433)),
        ("443/udp", ("::", 443)),
        ("4433", ("::", 4433)),
        ("relay.example.net:443", ("relay.example.net", 443)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", ":443", "::1:443", "host:", "host:99999", "443/tcp", "[::]"])
def test_bad_listen_addresses_say_what_is_wanted(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


@pytest.mark.parametrize(
    ("text", "bps"),
    [("100M", 100e6), ("100Mbit", 100e6), ("2.5G", 2.5e9), ("800k", 800e3), ("64000", 64e3)],
)
def test_rates(text: str, bps: float) -> None:
    assert parse_rate_bps(text) == bps


@pytest.mark.parametrize("text", ["fast", "0", "-5M", "10T"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_rate_bps(text)


def test_options_reach_the_limits(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--listen", "127.0.0.1:5000", "--state-dir", str(tmp_path), "--mtu", "1300",
         "--max-clients-per-room", "8", "--client-bps", "20M", "--gateway-bps", "1G",
         "--malformed-limit", "5", "--quic-backend", "aioquic"]
    )  # fmt: skip
    identity, described = load_identity(args)
    config = build_config(args, identity)
    assert (config.host, config.port) == ("127.0.0.1", 5000)
    assert config.limits.relay_mtu == 1300
    assert config.limits.max_clients_per_room == 8
    assert config.limits.client_bps == 20e6
    assert config.limits.gateway_bps == 1e9
    assert config.limits.malformed_limit == 5
    assert str(config.settings.backend) == "aioquic"
    assert "development certificate" in described
    assert config.operator_token_hashes is None
    assert config.limits.room_grace_s == 300.0
    assert not config.limits.allow_client_vlan_tags


def test_the_options_of_invite_only_rooms_and_floods_reach_the_config(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{sha256_hex(b'a')}  # the first party\n\n{sha256_hex(b'b').upper()}\n")
    args = build_parser().parse_args(
        ["--state-dir", str(tmp_path), "--gateway-tokens", str(tokens), "--room-grace-s", "60",
         "--client-pps", "500", "--client-pps-burst", "900", "--gateway-pps", "7000",
         "--gateway-pps-burst", "9000", "--max-rooms-per-source", "2",
         "--max-pending-hellos", "40", "--max-pending-hellos-per-source", "4",
         "--client-vlan-tags", "allow"]
    )  # fmt: skip
    identity, _ = load_identity(args)
    config = build_config(args, identity)
    assert config.operator_token_hashes == {sha256_hex(b"a"), sha256_hex(b"b")}
    limits = config.limits
    assert limits.room_grace_s == 60.0
    assert (limits.client_pps, limits.client_pps_burst) == (500, 900)
    assert (limits.gateway_pps, limits.gateway_pps_burst) == (7000, 9000)
    assert limits.max_rooms_per_source == 2
    assert limits.allow_client_vlan_tags
    assert (config.max_pending_hellos, config.max_pending_hellos_per_source) == (40, 4)


@pytest.mark.parametrize(
    ("content", "message"), [("", "lists no token"), ("abc\n", "line 1"), ("x" * 64, "line 1")]
)
def test_a_bad_gateway_tokens_file_is_a_config_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_gateway_tokens(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_gateway_tokens(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9100", ("127.0.0.1", 9100)),
        ("0", ("127.0.0.1", 0)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:9100", ("::1", 9100)),
    ],
)
def test_metrics_with_a_port_alone_listen_on_loopback(text: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_address(text) == expected


def test_metrics_addresses_are_checked() -> None:
    for text in ("9100/udp", "nowhere", "99999"):
        with pytest.raises(ConfigError):
            parse_metrics_address(text)


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--cert", str(tmp_path / "c.pem")])
    with pytest.raises(ConfigError, match="go together"):
        load_identity(args)


def test_a_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--listen", "nowhere"])
    assert exited.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_the_state_directory_systemd_gives_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "lanparty-relay"))
    assert build_parser().parse_args([]).state_dir == tmp_path / "lanparty-relay"


def test_a_refused_low_port_names_the_missing_capability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = tmp_path / "ip_unprivileged_port_start"
    start.write_text("1024\n")
    monkeypatch.setattr(relay_cli, "UNPRIVILEGED_PORT_START", start)
    monkeypatch.setattr(relay_cli, "lacks", lambda capability: True)
    refused = PermissionError(13, "Permission denied")
    sentence = relay_cli.listen_refusal(443, refused)
    assert sentence is not None
    assert sentence.startswith("listening on port 443 (below 1024) needs the capability")
    assert "CAP_NET_BIND_SERVICE" in sentence
    # Not for a port anyone may bind, nor another error, nor with the capability held.
    assert relay_cli.listen_refusal(4433, refused) is None
    assert relay_cli.listen_refusal(443, OSError(98, "Address in use")) is None
    monkeypatch.setattr(relay_cli, "lacks", lambda capability: False)
    assert relay_cli.listen_refusal(443, refused) is None
