"""The gateway's room keys, kept in its state directory (PROTOCOL.md 10).

    <state-dir>/gateway_key   opens the room; never leaves the gateway but in its hello
    <state-dir>/client_key    the invite's key; ``--rotate-invite`` makes a new one
    <state-dir>/invite.json   the rest of the invite (relay, pin, room name), written
                              at each start, so ``lanparty-gateway invite`` can print
                              the invite again without connecting

Each key is 32 random bytes as base64url text, made on first start, mode
0600 in a directory only the gateway's user can write. A key file others
can read, or that is not a key, is a ``ConfigError``: the gateway never
replaces a key on its own (a new gateway key is a new room, and every
invite would stop working).

The state directory: ``--state-dir``, else systemd's ``$STATE_DIRECTORY``
(a unit's ``StateDirectory=``), else /var/lib/lanparty/gateway for root and
the XDG state directory for anyone else.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import attrs

from lanparty.credentials import b64url, new_key, parse_key, room_id_for
from lanparty.errors import ConfigError
from lanparty.invite import Invite
from lanparty.secret_files import ensure_private_dir, read_secret_text, write_secret_text

GATEWAY_KEY_FILE = "gateway_key"
CLIENT_KEY_FILE = "client_key"
INVITE_FILE = "invite.json"
SYSTEM_STATE_DIR = Path("/var/lib/lanparty/gateway")
_INVITE_FILE_VERSION = 1


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (its first entry), else /var/lib/lanparty/gateway for root, else XDG."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
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


def read_keys(state_dir: Path) -> GatewayKeys:
    """The kept keys, never made: ``ConfigError`` when there are none."""
    gateway_key = _read_key(state_dir / GATEWAY_KEY_FILE)
    client_key = _read_key(state_dir / CLIENT_KEY_FILE)
    if gateway_key is None or client_key is None:
        raise ConfigError(
            f"{state_dir} holds no room keys: the gateway makes them on its first start "
            f"(lanparty-gateway IFACE --state-dir {state_dir} --relay ...)"
        )
    return GatewayKeys(gateway_key=gateway_key, client_key=client_key)


def check_private_state_dir(state_dir: Path) -> None:
    """Refuse a state directory other users can read or write (it holds the room's keys)."""
    try:
        info = state_dir.stat()
    except FileNotFoundError:
        raise ConfigError(f"there is no state directory {state_dir}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the state directory {state_dir}: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{state_dir} is not a directory")
    if sys.platform != "win32" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the state directory {state_dir} is open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}) and holds the room's keys: run chmod 700 "
            f"{state_dir}, and rotate the invite (--rotate-invite) if someone may have read it"
        )


def write_invite_details(state_dir: Path, invite: Invite) -> None:
    """Keep what the invite holds besides the keys (relay, pin, name), mode 0600."""
    details = {
        "version": _INVITE_FILE_VERSION,
        "host": invite.host,
        "port": invite.port,
        "pin": invite.pin,
        "name": invite.name,
        "server_name": invite.server_name,
    }
    text = json.dumps(details, indent=2, sort_keys=True) + "\n"
    path = state_dir / INVITE_FILE
    if read_secret_text(path) != text:
        write_secret_text(path, text)


def read_invite(state_dir: Path) -> Invite:
    """The room's invite from the state directory alone: the keys and ``invite.json``."""
    keys = read_keys(state_dir)
    path = state_dir / INVITE_FILE
    text = read_secret_text(path)
    if text is None:
        raise ConfigError(
            f"{path} is missing: the gateway writes it when it starts (this version and "
            "later); start the gateway once with this state directory"
        )
    try:
        details = json.loads(text)
        if details.get("version") != _INVITE_FILE_VERSION:
            raise ConfigError(f"{path} is of an unknown version; start the gateway once again")
        return Invite(
            host=details["host"],
            port=details["port"],
            room=room_id_for(keys.gateway_key),
            client_key=keys.client_key,
            pin=details["pin"],
            name=details["name"],
            server_name=details["server_name"],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path} does not hold what an invite needs ({type(exc).__name__}); start the "
            "gateway once again to rewrite it"
        ) from None


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
