"""The client's identity: its virtual MAC and identity secret, made once, never silently replaced.

The LAN's DHCP server (and the players) know a remote PC by its MAC, and the
relay binds that MAC to the client's id in a room (PROTOCOL.md 10: the id
is derived from the identity secret), so the client keeps both, generated
on first run, in ``lanparty-client-identity.json`` in the user's config
directory (``$XDG_CONFIG_HOME/lanparty`` or ``~/.config/lanparty`` on Linux,
``%APPDATA%\\lanparty`` on Windows), mode 0600::

    {"version": 2, "mac": "02:5e:13:aa:bb:cc", "secret": "<43 base64url>"}

A version 1 file (a MAC only) gets a secret added, keeping its MAC. A file
that cannot be read, others can read, is not that JSON, or holds a MAC a
client may not use is a ``ConfigError`` naming the file: replacing it would
give the player a new address on the LAN behind their back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import attrs

from lanparty.credentials import b64url, new_key, parse_key
from lanparty.errors import ConfigError
from lanparty.proto.mac import (
    InvalidMacError,
    check_endpoint_mac,
    format_mac,
    parse_mac,
    random_local_mac,
)
from lanparty.secret_files import read_secret_text, write_secret_text

IDENTITY_FILE_NAME = "lanparty-client-identity.json"
IDENTITY_VERSION = 2

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
    """The client's MAC and secret, the file they are kept in, and whether this run made it."""

    mac: bytes
    path: Path
    created: bool
    secret: bytes = attrs.field(repr=False)


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

    ``virtual_mac`` (the ``--virtual-mac`` option) wins over the file's MAC
    and is not written; the secret always comes from the file.
    """
    path = default_identity_path() if path is None else path
    text = read_secret_text(path)
    created = text is None
    if text is None:  # first run
        mac, secret = random_local_mac(), new_key()
        _write(path, mac, secret)
    else:
        mac, secret = _parse_identity(path, text)
    if virtual_mac is not None:
        mac = parse_virtual_mac(virtual_mac)
    return ClientIdentity(mac=mac, path=path, created=created, secret=secret)


def _parse_identity(path: Path, text: str) -> tuple[bytes, bytes]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _corrupt(path, f"it is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _corrupt(path, "it does not hold a JSON object")
    version = document.get("version")
    if version not in (1, IDENTITY_VERSION) or isinstance(version, bool):
        raise _corrupt(path, f"its version is {version!r}, this lanparty reads versions 1 and 2")
    mac_text = document.get("mac")
    if not isinstance(mac_text, str):
        raise _corrupt(path, 'it has no "mac" string')
    try:
        mac = parse_mac(mac_text)
        check_endpoint_mac(mac, must_be_local=True)
    except InvalidMacError as exc:
        raise _corrupt(path, f"its MAC cannot be used: {exc}") from exc
    if version == 1:  # from before invite-only rooms: keep the MAC, add a secret
        secret = new_key()
        _write(path, mac, secret)
        return mac, secret
    secret_text = document.get("secret")
    kept_secret = parse_key(secret_text) if isinstance(secret_text, str) else None
    if kept_secret is None:
        raise _corrupt(path, 'its "secret" is not 32 bytes in base64url')
    return mac, kept_secret


def _corrupt(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"the client identity file {path} is unusable: {what}. It keeps this PC's MAC "
        "address on the LAN and its identity in rooms, so lanparty does not replace it on "
        "its own: fix it, or delete the file to get a new identity (the LAN will see a new "
        "machine)"
    )


def _write(path: Path, mac: bytes, secret: bytes) -> None:
    document = {"version": IDENTITY_VERSION, "mac": format_mac(mac), "secret": b64url(secret)}
    try:
        write_secret_text(path, json.dumps(document, indent=2) + "\n")
    except ConfigError as exc:
        raise ConfigError(
            f"cannot write the client identity file {path} ({exc}); choose another place "
            "with --identity FILE"
        ) from exc
