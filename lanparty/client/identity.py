"""The client's virtual MAC: made once, kept in a file, never silently replaced.

The LAN's DHCP server (and the players) know a remote PC by its MAC, so the
client keeps the one it generated on first run in
``lanparty-client-identity.json`` in the user's config directory
(``$XDG_CONFIG_HOME/lanparty`` or ``~/.config/lanparty`` on Linux,
``%APPDATA%\\lanparty`` on Windows)::

    {"version": 1, "mac": "02:5e:13:aa:bb:cc"}

A file that cannot be read, is not that JSON, or holds a MAC a client may
not use is a ``ConfigError`` naming the file: replacing it would give the
player a new address on the LAN behind their back.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import attrs

from lanparty.errors import ConfigError
from lanparty.proto.mac import (
    InvalidMacError,
    check_endpoint_mac,
    format_mac,
    parse_mac,
    random_local_mac,
)

IDENTITY_FILE_NAME = "lanparty-client-identity.json"
IDENTITY_VERSION = 1

__all__ = [
    "IDENTITY_FILE_NAME",
    "IDENTITY_VERSION",
    "ClientIdentity",
    "default_identity_path",
    "load_or_create_identity",
    "parse_virtual_mac",
]


@attrs.frozen
class ClientIdentity:
    """The client's MAC, the file it is kept in, and whether this run made it."""

    mac: bytes
    path: Path
    created: bool


def default_identity_path() -> Path:
    """Where the identity is kept when no path is given."""
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "lanparty" / IDENTITY_FILE_NAME


def parse_virtual_mac(text: str) -> bytes:
    """A ``--virtual-mac`` value: unicast, locally administered, not all zeros."""
    try:
        mac = parse_mac(text.strip())
        check_endpoint_mac(mac, must_be_local=True)
    except InvalidMacError as exc:
        raise ConfigError(f"--virtual-mac: {exc}") from exc
    return mac


def load_or_create_identity(
    path: Path | None = None, *, virtual_mac: str | None = None
) -> ClientIdentity:
    """The kept identity, or a new random one written to ``path`` on first run.

    ``virtual_mac`` (the ``--virtual-mac`` option) wins over the file and is
    not written: the file, if any, is left as it is.
    """
    path = default_identity_path() if path is None else path
    if virtual_mac is not None:
        return ClientIdentity(mac=parse_virtual_mac(virtual_mac), path=path, created=False)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no file there: first run
        mac = random_local_mac()
        _write_atomically(path, mac)
        return ClientIdentity(mac=mac, path=path, created=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise _corrupt(path, f"it cannot be read ({_reason(exc)})") from exc
    return ClientIdentity(mac=_parse_identity(path, text), path=path, created=False)


def _parse_identity(path: Path, text: str) -> bytes:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _corrupt(path, f"it is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _corrupt(path, "it does not hold a JSON object")
    version = document.get("version")
    if version != IDENTITY_VERSION or isinstance(version, bool):
        raise _corrupt(path, f"its version is {version!r}, this lanparty reads version 1")
    mac_text = document.get("mac")
    if not isinstance(mac_text, str):
        raise _corrupt(path, 'it has no "mac" string')
    try:
        mac = parse_mac(mac_text)
        check_endpoint_mac(mac, must_be_local=True)
    except InvalidMacError as exc:
        raise _corrupt(path, f"its MAC cannot be used: {exc}") from exc
    return mac


def _corrupt(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"the client identity file {path} is unusable: {what}. It keeps this PC's MAC "
        "address on the LAN, so lanparty does not replace it on its own: fix it, pass "
        "--virtual-mac 02:xx:xx:xx:xx:xx to use a MAC without it, or delete the file "
        "to get a new MAC (the LAN will see a new machine)"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _write_atomically(path: Path, mac: bytes) -> None:
    document = {"version": IDENTITY_VERSION, "mac": format_mac(mac)}
    text = json.dumps(document, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
        raise ConfigError(
            f"cannot write the client identity file {path}: {_reason(exc)}; choose another "
            "place with --identity-file FILE, or give --virtual-mac"
        ) from exc
