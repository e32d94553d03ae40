"""Files that hold secrets: created 0600 in a private directory, refused when others can touch them.

A key file another user can read gives the room away; one another user can
write (or a directory they can write, where they could swap the file) gives
them the room. So before a secret is read, the file and its directory must
belong to us (or root) and be closed to group and others; a file that is
not is a ``ConfigError`` saying how to fix it. Files are written into a fresh
temporary file (mode 0600, ``O_EXCL``) and renamed over the old one, never
through a symlink. Error messages name the file, never its content.

On Windows the user's profile directories are private by their ACLs and
these POSIX checks do not apply.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from lanparty.errors import ConfigError

__all__ = ["ensure_private_dir", "read_secret_text", "write_secret_text"]

_MAX_SECRET_FILE_BYTES = 4096
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO


def _checks_apply() -> bool:
    return sys.platform != "win32"


def _owner_ok(uid: int) -> bool:
    if sys.platform == "win32":
        return True
    return uid in (os.geteuid(), 0)


def _check_dir(directory: Path) -> None:
    if not _checks_apply():
        return
    info = directory.stat()
    if not _owner_ok(info.st_uid):
        raise ConfigError(
            f"the directory {directory} belongs to another user (uid {info.st_uid}); "
            "keys are kept only in a directory of your own"
        )
    if info.st_mode & _OTHERS_WRITE:
        raise ConfigError(
            f"the directory {directory} is writable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}), who could replace the keys in it: "
            f"run chmod go-w {directory}"
        )


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (0700) if it is missing; refuse one others can write."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the directory {directory}: {exc.strerror}") from exc
    _check_dir(directory)


def read_secret_text(path: Path) -> str | None:
    """The text of a secret file, None if there is none; ``ConfigError`` if others can touch it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file")
        if _checks_apply():
            _check_dir(path.parent)
            _check_file(path, info)
        data = os.read(descriptor, _MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(descriptor)
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise ConfigError(f"{path} is too large to hold what lanparty keeps in it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} cannot be read as text (UTF-8)") from None


def _check_file(path: Path, info: os.stat_result) -> None:
    if not _owner_ok(info.st_uid):
        raise ConfigError(
            f"{path} belongs to another user (uid {info.st_uid}); it holds a secret, "
            "and lanparty does not use one someone else controls"
        )
    if info.st_mode & _OTHERS_ANY:
        raise ConfigError(
            f"{path} can be read or written by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}), and it holds a secret: run chmod 600 "
            f"{path}, and make a new secret if someone else may have read it"
        )


def write_secret_text(path: Path, text: str, *, private_dir: bool = True) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a fresh temporary file and a rename.

    ``private_dir``: the directory must be ours and closed to others (key
    files); False for a file the user places anywhere (``--invite-out``):
    the fresh file and the rename are safe even in a shared directory.
    """
    if private_dir:
        ensure_private_dir(path.parent)
    try:
        # mkstemp: O_CREAT | O_EXCL, mode 0600, a name nobody could have prepared.
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
