"""The client's kept MAC and secret: first run, reuse, overrides, files never replaced."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from lanparty.client.identity import (
    IDENTITY_FILE_NAME,
    default_identity_path,
    load_or_create_identity,
    parse_virtual_mac,
)
from lanparty.credentials import b64url
from lanparty.errors import ConfigError
from lanparty.proto.mac import format_mac, is_locally_administered, is_unicast


def test_first_run_creates_a_local_unicast_mac_and_later_runs_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "config" / "lanparty" / IDENTITY_FILE_NAME
    first = load_or_create_identity(path)
    assert first.created
    assert first.path == path
    assert is_unicast(first.mac)
    assert is_locally_administered(first.mac)
    assert len(first.secret) == 32
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document == {"version": 2, "mac": format_mac(first.mac), "secret": b64url(first.secret)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [IDENTITY_FILE_NAME]  # no temp left
    again = load_or_create_identity(path)
    assert not again.created
    assert (again.mac, again.secret) == (first.mac, first.secret)
    assert b64url(first.secret) not in repr(again)


def write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def test_a_version_1_file_keeps_its_mac_and_gains_a_secret(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    write_private(path, '{"version": 1, "mac": "06:AA:bb:cc:dd:ee"}')
    identity = load_or_create_identity(path)
    assert identity.mac == bytes.fromhex("06aabbccddee")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document == {"version": 2, "mac": "06:aa:bb:cc:dd:ee", "secret": b64url(identity.secret)}
    assert load_or_create_identity(path).secret == identity.secret


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_a_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    load_or_create_identity(path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load_or_create_identity(path)
    assert json.loads(path.read_text())["secret"] not in str(caught.value)


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by other users"):
        load_or_create_identity(shared / IDENTITY_FILE_NAME)
    assert list(shared.iterdir()) == []


def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    load_or_create_identity(path)
    os.chown(path, 12345, 12345)
    with pytest.raises(ConfigError, match="another user"):
        load_or_create_identity(path)


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    load_or_create_identity(target)
    link = tmp_path / IDENTITY_FILE_NAME
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="cannot read"):
        load_or_create_identity(link)


def test_an_existing_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    secret = b64url(bytes(range(32)))
    write_private(
        path, f'{{"version": 2, "mac": "06:AA:bb:cc:dd:ee", "secret": "{secret}", "note": "x"}}'
    )
    identity = load_or_create_identity(path)
    assert identity.mac == bytes.fromhex("06aabbccddee")
    assert identity.secret == bytes(range(32))
    assert not identity.created


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "not valid JSON"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"mac": "02:00:00:00:00:01"}', "version"),
        ('{"version": 3, "mac": "02:00:00:00:00:01"}', "version"),
        ('{"version": 2, "mac": "02:00:00:00:00:01"}', '"secret"'),
        ('{"version": 2, "mac": "02:00:00:00:00:01", "secret": "abc"}', '"secret"'),
        ('{"version": true, "mac": "02:00:00:00:00:01"}', "version"),
        ('{"version": 1}', 'no "mac"'),
        ('{"version": 1, "mac": 5}', 'no "mac"'),
        ('{"version": 1, "mac": "02:00:00:00:00"}', "cannot be used"),
        ('{"version": 1, "mac": "00:11:22:33:44:55"}', "locally administered"),
        ('{"version": 1, "mac": "03:00:00:00:00:01"}', "multicast"),
        ('{"version": 1, "mac": "00:00:00:00:00:00"}', "not allowed"),
    ],
)
def test_a_bad_file_is_a_clear_error_and_is_left_alone(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    write_private(path, content)
    with pytest.raises(ConfigError, match=reason) as caught:
        load_or_create_identity(path)
    message = str(caught.value)
    assert str(path) in message
    assert "delete the file" in message
    assert path.read_text(encoding="utf-8") == content


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    path.write_bytes(b"\xff\xfe\x00garbage")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_or_create_identity(path)
    assert path.read_bytes() == b"\xff\xfe\x00garbage"


def test_an_unreadable_path_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    path.mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        load_or_create_identity(path)
    assert path.is_dir()


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot write"):
        load_or_create_identity(blocker / IDENTITY_FILE_NAME)


def test_virtual_mac_overrides_the_file_s_mac_and_keeps_its_secret(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    kept = load_or_create_identity(path)
    identity = load_or_create_identity(path, virtual_mac="02:00:00:aa:bb:cc")
    assert identity.mac == bytes.fromhex("020000aabbcc")
    assert identity.secret == kept.secret
    assert json.loads(path.read_text())["mac"] == format_mac(kept.mac)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("00:11:22:33:44:55", "locally administered"),
        ("03:00:00:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("00:00:00:00:00:00", "not allowed"),
        ("02-00-00-00-00-01", "not a MAC address"),
        ("", "not a MAC address"),
    ],
)
def test_bad_virtual_macs_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"--virtual-mac: .*{reason}"):
        parse_virtual_mac(text)


def test_default_path_follows_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_identity_path() == tmp_path / "lanparty" / IDENTITY_FILE_NAME
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # not absolute: ignored (XDG spec)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".config" / "lanparty" / IDENTITY_FILE_NAME
    assert default_identity_path() == expected
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_identity_path() == expected


def test_default_path_on_windows_is_under_appdata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path))
    assert default_identity_path() == tmp_path / "lanparty" / IDENTITY_FILE_NAME


def test_a_file_without_read_permission_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    write_private(path, '{"version": 1, "mac": "02:00:00:00:00:01"}')

    # Root reads any file, and CI runs as root: refuse the open as the OS would.
    def refuse(*_args: object, **_kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError, match=r"cannot read .*Permission denied"):
        load_or_create_identity(path)
