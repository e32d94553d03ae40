"""The client's kept MAC: first run, reuse, overrides, and files that are never replaced."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lanparty.client.identity import (
    IDENTITY_FILE_NAME,
    default_identity_path,
    load_or_create_identity,
    parse_virtual_mac,
)
from lanparty.errors import ConfigError
from lanparty.proto.mac import format_mac, is_locally_administered, is_unicast


def test_first_run_creates_a_local_unicast_mac_and_later_runs_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "config" / "lanparty" / IDENTITY_FILE_NAME
    first = load_or_create_identity(path)
    assert first.created
    assert first.path == path
    assert is_unicast(first.mac)
    assert is_locally_administered(first.mac)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document == {"version": 1, "mac": format_mac(first.mac)}
    assert [p.name for p in path.parent.iterdir()] == [IDENTITY_FILE_NAME]  # no temp left
    again = load_or_create_identity(path)
    assert not again.created
    assert again.mac == first.mac


def test_an_existing_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    path.write_text('{"version": 1, "mac": "06:AA:bb:cc:dd:ee", "note": "x"}', encoding="utf-8")
    identity = load_or_create_identity(path)
    assert identity.mac == bytes.fromhex("06aabbccddee")
    assert not identity.created


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "not valid JSON"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"mac": "02:00:00:00:00:01"}', "version"),
        ('{"version": 2, "mac": "02:00:00:00:00:01"}', "version"),
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
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=reason) as caught:
        load_or_create_identity(path)
    message = str(caught.value)
    assert str(path) in message
    assert "--virtual-mac" in message
    assert "delete the file" in message
    assert path.read_text(encoding="utf-8") == content


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_or_create_identity(path)
    assert path.read_bytes() == b"\xff\xfe\x00garbage"


def test_an_unreadable_path_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_or_create_identity(path)
    assert path.is_dir()


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot write"):
        load_or_create_identity(blocker / IDENTITY_FILE_NAME)


def test_virtual_mac_overrides_the_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE_NAME
    identity = load_or_create_identity(path, virtual_mac="02:00:00:aa:bb:cc")
    assert identity.mac == bytes.fromhex("020000aabbcc")
    assert not identity.created
    assert not path.exists()
    path.write_text("corrupt", encoding="utf-8")
    assert load_or_create_identity(path, virtual_mac="0a:00:00:00:00:01").mac[0] == 0x0A


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
    path.write_text('{"version": 1, "mac": "02:00:00:00:00:01"}', encoding="utf-8")

    # Root reads any file, and CI runs as root: refuse the read as the OS would.
    def refuse(*_args: object, **_kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_or_create_identity(path)
