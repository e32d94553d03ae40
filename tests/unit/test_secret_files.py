"""Secret files: made 0600 through a fresh file and a rename, refused when others can touch them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lanparty.errors import ConfigError
from lanparty.secret_files import ensure_private_dir, read_secret_text, write_secret_text


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_written_secret_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "key"
    write_secret_text(path, "s3cret\n")
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert read_secret_text(path) == "s3cret\n"
    assert [p.name for p in path.parent.iterdir()] == ["key"]


def test_a_missing_file_is_none(tmp_path: Path) -> None:
    assert read_secret_text(tmp_path / "nothing") is None


def test_rewriting_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "key").symlink_to(victim)
    with pytest.raises(ConfigError):
        read_secret_text(state / "key")
    write_secret_text(state / "key", "new")
    assert victim.read_text() == "root's file"
    assert not (state / "key").is_symlink()


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o660, 0o606, 0o700])
def test_a_file_others_can_touch_is_refused_without_showing_it(
    tmp_path: Path, file_mode: int
) -> None:
    path = tmp_path / "key"
    write_secret_text(path, "do-not-show")
    path.chmod(file_mode if file_mode != 0o700 else 0o744)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        read_secret_text(path)
    assert "do-not-show" not in str(caught.value)


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(ConfigError, match="chmod go-w"):
        ensure_private_dir(shared)
    with pytest.raises(ConfigError, match="writable by other users"):
        write_secret_text(shared / "key", "x")


def test_a_file_anywhere_may_be_written_when_asked(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    write_secret_text(shared / "invite", "lanparty://...", private_dir=False)
    assert mode(shared / "invite") == 0o600


def test_files_of_another_user_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_secret_text(path, "x")
    os.chown(path, 4242, 4242)
    with pytest.raises(ConfigError, match="another user"):
        read_secret_text(path)
    other_dir = tmp_path / "theirs"
    other_dir.mkdir(mode=0o700)
    os.chown(other_dir, 4242, 4242)
    with pytest.raises(ConfigError, match="another user"):
        ensure_private_dir(other_dir)


def test_a_huge_or_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_secret_text(path, "x" * 5000)
    with pytest.raises(ConfigError, match="too large"):
        read_secret_text(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_secret_text(path)
