"""The gateway's room keys: made once, kept 0600, rotated on demand, never replaced silently."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lanparty.credentials import b64url
from lanparty.errors import ConfigError
from lanparty.gateway import keys
from lanparty.gateway.keys import load_or_create_keys, read_operator_token


def test_first_start_makes_both_keys_and_later_starts_keep_them(tmp_path: Path) -> None:
    state = tmp_path / "gateway"
    first = load_or_create_keys(state)
    assert first.created
    assert not first.rotated
    assert first.gateway_key != first.client_key
    for name in ("gateway_key", "client_key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    again = load_or_create_keys(state)
    assert not again.created
    assert (again.gateway_key, again.client_key) == (first.gateway_key, first.client_key)
    assert b64url(first.gateway_key) not in repr(again)


def test_rotating_the_invite_keeps_the_room(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    rotated = load_or_create_keys(tmp_path, rotate_invite=True)
    assert rotated.rotated
    assert rotated.gateway_key == first.gateway_key
    assert rotated.client_key != first.client_key
    assert load_or_create_keys(tmp_path).client_key == rotated.client_key


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_keys(tmp_path)
    (tmp_path / "client_key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_keys(tmp_path)


def test_a_damaged_key_is_an_error_not_a_new_room(tmp_path: Path) -> None:
    load_or_create_keys(tmp_path)
    path = tmp_path / "gateway_key"
    path.write_text("not a key\n")
    with pytest.raises(ConfigError, match="does not hold a key"):
        load_or_create_keys(tmp_path)
    assert path.read_text() == "not a key\n"


def test_the_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(keys.os, "geteuid", lambda: 0)
    assert keys.default_state_dir() == Path("/var/lib/lanparty/gateway")
    monkeypatch.setattr(keys.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert keys.default_state_dir() == tmp_path / "lanparty" / "gateway"


def test_the_operator_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  t0ken-from-the-operator \n")
    path.chmod(0o600)
    assert read_operator_token(path) == "t0ken-from-the-operator"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_operator_token(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_operator_token(tmp_path / "missing")
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="one token"):
        read_operator_token(path)


def test_the_state_directory_systemd_gives_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'first'}:{tmp_path / 'second'}")
    assert keys.default_state_dir() == tmp_path / "first"
    monkeypatch.setenv("STATE_DIRECTORY", "")
    assert keys.default_state_dir() != tmp_path / "first"
