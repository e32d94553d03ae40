"""The gateway's room keys, kept in its state directory (PROTOCOL.md 10).

    <state-dir>/gateway_key   opens the room; never leaves the gateway but in its hello
    <state-dir>/client_key    the invite's key; ``--rotate-invite`` makes a new one

Each is 32 random bytes as base64url text, made on first start, mode 0600
in a directory only the gateway's user can write. A key file others can
read, or that is not a key, is a ``ConfigError``: the gateway never
replaces a key on its own (a new gateway key is a new room, and every
invite would stop working).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import attrs

from lanparty.credentials import b64url, new_key, parse_key
from lanparty.errors import ConfigError
from lanparty.secret_files import ensure_private_dir, read_secret_text, write_secret_text

GATEWAY_KEY_FILE = "gateway_key"
CLIENT_KEY_FILE = "client_key"
SYSTEM_STATE_DIR = Path("/var/lib/lanparty/gateway")


def default_state_dir() -> Path:
    """/var/lib/lanparty/gateway for root, else the user's XDG state directory."""
    if sys.platform != "win32" and os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lanparty" / "gateway"


@attrs.frozen
class GatewayKeys:
    gateway_key: bytes = attrs.field(repr=False)
    client_key: bytes = attrs.field(repr=False)
    # What this start did: made the keys (first start), or a new client key.
    created: bool = False
    rotated: bool = False


def _read_key(path: Path) -> bytes | None:
    text = read_secret_text(path)
    if text is None:
        return None
    key = parse_key(text.strip())
    if key is None:
        raise ConfigError(
            f"the key file {path} does not hold a key (32 bytes in base64url); the gateway "
            "does not replace it on its own: restore it from a backup, or delete it to make "
            "a new one (a new gateway_key is a new room; a new client_key, a new invite)"
        )
    return key


def _write_key(path: Path, key: bytes) -> None:
    write_secret_text(path, b64url(key) + "\n")


def load_or_create_keys(state_dir: Path, *, rotate_invite: bool = False) -> GatewayKeys:
    """The kept keys, made on first start; ``rotate_invite`` replaces the client key."""
    ensure_private_dir(state_dir)
    gateway_path = state_dir / GATEWAY_KEY_FILE
    client_path = state_dir / CLIENT_KEY_FILE
    gateway_key = _read_key(gateway_path)
    client_key = _read_key(client_path)
    created = gateway_key is None
    if gateway_key is None:
        gateway_key = new_key()
        _write_key(gateway_path, gateway_key)
    rotated = client_key is not None and rotate_invite
    if client_key is None or rotate_invite:
        client_key = new_key()
        _write_key(client_path, client_key)
    return GatewayKeys(
        gateway_key=gateway_key, client_key=client_key, created=created, rotated=rotated
    )


def read_operator_token(path: Path) -> str:
    """The relay operator's token for ``--operator-token-file`` (a private file)."""
    text = read_secret_text(path)
    if text is None:
        raise ConfigError(f"the operator token file {path} does not exist")
    token = text.strip()
    if not token or len(token) > 256 or not token.isprintable():
        raise ConfigError(
            f"the operator token file {path} must hold one token of 1 to 256 printable characters"
        )
    return token
