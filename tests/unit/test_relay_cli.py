"""The relay's command line: address and rate parsing, configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanparty.errors import ConfigError
from lanparty.relay.cli import (
    build_config,
    build_parser,
    load_identity,
    parse_listen,
    parse_rate_bps,
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


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--cert", str(tmp_path / "c.pem")])
    with pytest.raises(ConfigError, match="go together"):
        load_identity(args)


def test_a_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--listen", "nowhere"])
    assert exited.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err
