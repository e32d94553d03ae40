"""Windows shortcuts (.lnk) that start the client for one invite, as administrator.

    install_shortcuts("lanparty://relay.example.net:4433/ROOMID?pin=...&key=...&name=Sat", None)
    # -> [...\\Desktop\\lanparty Sat.lnk, ...\\Start Menu\\Programs\\lanparty Sat.lnk]

The .lnk is written here, in Python, following MS-SHLLINK: no COM, no
PowerShell, no dependency (windows-facts 4.1 lists the routes; this is the
pure-Python one). It holds

- the ShellLinkHeader, with LinkFlags RunAsUser (SLDF_RUNAS_USER, 0x2000:
  bit 0x20 of the byte at 0x15), so that double-clicking asks for
  elevation (the UAC prompt) and starts the client as administrator;
- the target as an item ID list (LinkTargetIDList): My Computer, the
  drive, then one file-system item per path component with its name in a
  0xBEEF0004 extension block, the form pylnk3 writes (windows-facts 4.1;
  MS-SHLLINK leaves the items' contents to the shell). No LinkInfo
  (ForceNoLinkInfo), as pylnk3;
- StringData in UTF-16: a description, the target relative to the link
  (the shell's fallback when the absolute path moved), the working
  directory, the arguments (``--invite "<invite>"``) and, optionally, an
  icon.

The arguments hold the invite, which is a secret (it opens the room): fine
in the player's own Desktop and Start menu, but never shown: ``ShellLink``'s
``repr`` and every error message leave it out or hide its key.

The target is the console launcher ``lanparty-client.exe`` that pip put in
the Scripts folder of the Python running this (windows-facts 4.2): a
console, so the player sees the status line. The launcher itself never asks
for elevation (its manifest says asInvoker); the shortcut's flag does.

Building a .lnk is pure and tested on Linux; finding the Desktop and
Start-menu folders (``SHGetKnownFolderPath``, or the environment when that
fails) needs Windows.
"""

from __future__ import annotations

import ntpath
import os
import struct
import sys
import sysconfig
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PureWindowsPath

import attrs

from lanparty.client.windows._decl_knownfolders import (
    CONSTANTS,
    FOLDERID_DESKTOP,
    FOLDERID_PROGRAMS,
    ffi,
)
from lanparty.errors import ConfigError
from lanparty.invite import Invite, redact_invite

__all__ = [
    "LAUNCHER_NAME",
    "ShellLink",
    "install_shortcuts",
    "launcher_candidates",
    "write_shortcuts",
]

LAUNCHER_NAME = "lanparty-client.exe"

HEADER_SIZE = 0x4C
LINK_CLSID = uuid.UUID("00021401-0000-0000-C000-000000000046")
CLSID_MY_COMPUTER = uuid.UUID("20D04FE0-3AEA-1069-A2D8-08002B30309D")

# LinkFlags (MS-SHLLINK 2.1.1)
HAS_LINK_TARGET_ID_LIST = 0x0000_0001
HAS_NAME = 0x0000_0004
HAS_RELATIVE_PATH = 0x0000_0008
HAS_WORKING_DIR = 0x0000_0010
HAS_ARGUMENTS = 0x0000_0020
HAS_ICON_LOCATION = 0x0000_0040
IS_UNICODE = 0x0000_0080
FORCE_NO_LINK_INFO = 0x0000_0100
RUN_AS_USER = CONSTANTS["SLDF_RUNAS_USER"]  # 0x2000, "Run as administrator" (windows-facts 4.1)

FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_ARCHIVE = 0x20
SW_SHOWNORMAL = 1

# shell item ids of the target path
_ROOT_ITEM = b"\x1f\x50" + CLSID_MY_COMPUTER.bytes_le  # root folder, sorted as My Computer
_DRIVE_ITEM_TYPE = 0x2F
_DRIVE_ITEM_BYTES = 23  # type, "C:\", zero padding: 25 with the size field
_FOLDER_ITEM_TYPE = 0x31
_FILE_ITEM_TYPE = 0x32
_UNICODE_NAME = 0x04  # in the item type: the short name is UTF-16
_FILE_ENTRY_EXTENSION = 0xBEEF0004
_FILE_ENTRY_EXTENSION_VERSION = 3
_FILE_ENTRY_EXTENSION_NAME_OFFSET = 0x14
_FILE_ITEM_FIXED_BYTES = 14  # size, type, 0, file size, DOS date and time, attributes

_MAX_STRING_UNITS = 0xFFFF
_FORBIDDEN_IN_FILE_NAMES = set('<>:"/\\|?*')
# Device names Windows keeps in every folder, whatever the extension ("CON.lnk" too).
_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{number}" for port in ("COM", "LPT") for number in range(1, 10)]
)


@attrs.frozen
class ShellLink:
    """A shortcut to ``target`` (an absolute path on a drive letter)."""

    target: PureWindowsPath
    arguments: str = attrs.field(default="", repr=False)  # an invite: a secret
    working_directory: PureWindowsPath | None = None
    description: str | None = None
    relative_path: str | None = None
    icon_location: str | None = None
    icon_index: int = 0
    run_as_administrator: bool = True

    def __attrs_post_init__(self) -> None:
        drive = self.target.drive
        if len(drive) != 2 or not drive[0].isascii() or not drive[0].isalpha():
            raise ConfigError(
                f"{self.target} is not on a drive letter: install lanparty on a local drive "
                "(like C:) to make a shortcut to it"
            )
        if not self.target.name:
            raise ConfigError(f"{self.target} names no file")

    @property
    def link_flags(self) -> int:
        flags = HAS_LINK_TARGET_ID_LIST | IS_UNICODE | FORCE_NO_LINK_INFO
        for value, flag in (
            (self.description, HAS_NAME),
            (self.relative_path, HAS_RELATIVE_PATH),
            (self.working_directory, HAS_WORKING_DIR),
            (self.arguments, HAS_ARGUMENTS),
            (self.icon_location, HAS_ICON_LOCATION),
        ):
            if value:
                flags |= flag
        if self.run_as_administrator:
            flags |= RUN_AS_USER
        return flags

    def to_bytes(self) -> bytes:
        """The .lnk file."""
        strings = [
            self.description,
            self.relative_path,
            None if self.working_directory is None else str(self.working_directory),
            self.arguments,
            self.icon_location,
        ]
        return b"".join(
            [
                self._header(),
                _id_list(self.target),
                *(_string_data(value) for value in strings if value),
                struct.pack("<I", 0),  # TerminalBlock: no ExtraData
            ]
        )

    def _header(self) -> bytes:
        # times and size zero: the shell reads the target's own when it needs them
        return struct.pack(
            "<I16sIIQQQIiIHHII",
            HEADER_SIZE,
            LINK_CLSID.bytes_le,
            self.link_flags,
            FILE_ATTRIBUTE_ARCHIVE,
            0,
            0,
            0,
            0,
            self.icon_index,
            SW_SHOWNORMAL,
            0,  # no hot key
            0,
            0,
            0,
        )


def _string_data(value: str) -> bytes:
    encoded = value.encode("utf-16-le")
    units = len(encoded) // 2
    if units > _MAX_STRING_UNITS:
        raise ConfigError(f"{redact_invite(value)[:40]!r}... is too long for a shortcut")
    return struct.pack("<H", units) + encoded


def _id_list(target: PureWindowsPath) -> bytes:
    """LinkTargetIDList: its size, then each item with its size, then a zero TerminalID."""
    components = target.parts[1:]
    items = [
        _ROOT_ITEM,
        _drive_item(target.drive),
        *(
            _file_system_item(name, folder=position < len(components) - 1)
            for position, name in enumerate(components)
        ),
    ]
    id_list = b"".join(struct.pack("<H", len(item) + 2) + item for item in items) + b"\0\0"
    return struct.pack("<H", len(id_list)) + id_list


def _drive_item(drive: str) -> bytes:
    item = bytes([_DRIVE_ITEM_TYPE]) + f"{drive.upper()}\\".encode("ascii")
    return item.ljust(_DRIVE_ITEM_BYTES, b"\0")


def _file_system_item(name: str, *, folder: bool) -> bytes:
    item_type = _FOLDER_ITEM_TYPE if folder else _FILE_ITEM_TYPE
    if name.isascii():
        short_name = name.encode("ascii") + b"\0"
        short_name += b"\0" * (len(short_name) % 2)
    else:
        item_type |= _UNICODE_NAME
        short_name = name.encode("utf-16-le") + b"\0\0"
    attributes = FILE_ATTRIBUTE_DIRECTORY if folder else FILE_ATTRIBUTE_ARCHIVE
    fixed = struct.pack("<BBIIH", item_type, 0, 0, 0, attributes)
    long_name = name.encode("utf-16-le") + b"\0\0"
    extension_size = _FILE_ENTRY_EXTENSION_NAME_OFFSET + len(long_name) + 2
    extension = (
        struct.pack(
            "<HHIIIHH",
            extension_size,
            _FILE_ENTRY_EXTENSION_VERSION,
            _FILE_ENTRY_EXTENSION,
            0,  # created, DOS date and time
            0,  # accessed
            _FILE_ENTRY_EXTENSION_NAME_OFFSET,
            0,  # no localized name
        )
        + long_name
        # where the extension starts, counted from the item's size field
        + struct.pack("<H", _FILE_ITEM_FIXED_BYTES + len(short_name))
    )
    return fixed + short_name + extension


def relative_target(link_folder: PureWindowsPath, target: PureWindowsPath) -> str | None:
    """``target`` relative to the folder of the link; None when they are on different drives."""
    try:
        return ntpath.relpath(str(target), str(link_folder))
    except ValueError:
        return None


# what the shortcuts point at and where they go


def launcher_candidates(executable: str, scripts_folders: Iterable[str]) -> list[Path]:
    """Where pip puts ``lanparty-client.exe`` for the Python ``executable``, in order.

    Next to python.exe (a virtual environment's Scripts folder), then the
    install's and the user's Scripts folders (``sysconfig``).
    """
    folders = [Path(executable).parent, *(Path(folder) for folder in scripts_folders)]
    candidates: list[Path] = []
    for folder in folders:
        candidate = folder / LAUNCHER_NAME
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def find_launcher(
    candidates: Sequence[Path], is_file: Callable[[Path], bool] = Path.is_file
) -> Path:
    """The first candidate that exists; ``ConfigError`` saying where we looked otherwise."""
    for candidate in candidates:
        if is_file(candidate):
            return candidate
    looked = ", ".join(str(candidate.parent) for candidate in candidates)
    raise ConfigError(
        f"cannot find {LAUNCHER_NAME} (looked in {looked}): install lanparty with pip for "
        "this Python (`py -m pip install lanparty`), then run install-shortcut again"
    )


def room_label(invite: Invite) -> str:
    """What the player knows the room by: its name in the invite, else its id."""
    return invite.name or invite.room


def shortcut_file_name(name: str | None, invite: Invite) -> str:
    """``<name>.lnk``; without a name, ``lanparty <room's label>.lnk``.

    Characters Windows does not allow in a file name are left out; a device
    name (``CON``, ``NUL``, ...) is refused.
    """
    if name is None:
        name = f"lanparty {room_label(invite)}"
    cleaned = "".join(
        character
        for character in name
        if character not in _FORBIDDEN_IN_FILE_NAMES and character.isprintable()
    ).strip(" .")
    if not cleaned:
        raise ConfigError(f"{name!r} cannot be a shortcut's name: use letters and digits")
    if cleaned.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
        raise ConfigError(
            f"{name!r} cannot be a shortcut's name: Windows keeps it for devices; choose another"
        )
    return f"{cleaned}.lnk"


def write_shortcuts(
    invite: str,
    name: str | None,
    *,
    launcher: PureWindowsPath,
    folders: Sequence[Path],
    working_directory: PureWindowsPath,
) -> list[Path]:
    """Write one shortcut to ``launcher --invite "<invite>"`` into each folder; returns them."""
    parsed = Invite.parse(invite)
    file_name = shortcut_file_name(name, parsed)
    written: list[Path] = []
    for folder in folders:
        link = ShellLink(
            target=launcher,
            arguments=f'--invite "{parsed.format()}"',
            working_directory=working_directory,
            description=f"Join the lanparty room {room_label(parsed)} on {parsed.host}",
            relative_path=relative_target(PureWindowsPath(folder), launcher),
        )
        path = folder / file_name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(link.to_bytes())
        except OSError as exc:
            raise ConfigError(
                f"cannot write the shortcut {path}: {exc.strerror or exc}; check that the "
                "folder is yours and writable"
            ) from exc
        written.append(path)
    return written


def fallback_folders(environ: Mapping[str, str]) -> list[Path]:
    """Desktop and Start-menu Programs from the environment (windows-facts 4.1)."""
    folders = []
    if environ.get("USERPROFILE"):
        folders.append(Path(environ["USERPROFILE"]) / "Desktop")
    if environ.get("APPDATA"):
        folders.append(
            Path(environ["APPDATA"]) / "Microsoft" / "Windows" / "Start Menu" / "Programs"
        )
    return folders


def _known_folder(folder_id: uuid.UUID) -> Path | None:
    """A known folder's path (the Desktop may be redirected, to OneDrive for one); None if not."""
    if sys.platform != "win32":
        return None
    folder_guid = ffi.new("KNOWNFOLDERID *")
    ffi.memmove(folder_guid, folder_id.bytes_le, 16)
    path = ffi.new("uint16_t **")
    result = ffi.dlopen("shell32.dll").SHGetKnownFolderPath(
        folder_guid, CONSTANTS["KF_FLAG_DEFAULT"], ffi.NULL, path
    )
    try:
        if result != CONSTANTS["S_OK"]:
            return None
        return Path(ffi.string(ffi.cast("char16_t *", path[0])))
    finally:
        # freed whether the call succeeded or not (MS SHGetKnownFolderPath page)
        ffi.dlopen("ole32.dll").CoTaskMemFree(path[0])


def shortcut_folders() -> list[Path]:
    """This user's Desktop and Start-menu Programs folders."""
    found = [_known_folder(FOLDERID_DESKTOP), _known_folder(FOLDERID_PROGRAMS)]
    if all(folder is not None for folder in found):
        return [folder for folder in found if folder is not None]
    fallback = fallback_folders(os.environ)
    if len(fallback) != len(found):
        raise ConfigError(
            "cannot find this user's Desktop and Start menu folders (no USERPROFILE or APPDATA "
            "in the environment): run install-shortcut from a normal Windows session"
        )
    return [known or default for known, default in zip(found, fallback, strict=True)]


def install_shortcuts(invite: str, name: str | None) -> list[Path]:
    """Desktop and Start-menu shortcuts that run the client for ``invite`` as administrator.

    ``name`` is the shortcut's name (default ``lanparty <room's label>``). Returns
    the files written; ``ConfigError`` says what is wrong (a bad invite,
    no launcher, a folder that cannot be written).
    """
    if sys.platform != "win32":
        raise ConfigError("install-shortcut makes Windows shortcuts: run it on Windows")
    scripts = [sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")]
    launcher = find_launcher(launcher_candidates(sys.executable, scripts))
    return write_shortcuts(
        invite,
        name,
        launcher=PureWindowsPath(launcher),
        folders=shortcut_folders(),
        working_directory=PureWindowsPath(Path.home()),
    )
