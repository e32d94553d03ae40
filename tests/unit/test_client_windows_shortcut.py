"""The .lnk writer, read back by a small MS-SHLLINK parser written here, and where links go."""

from __future__ import annotations

import re
import struct
import subprocess
import uuid
from pathlib import Path, PureWindowsPath

import attrs
import pytest

from lanparty.client.windows import shortcut
from lanparty.client.windows._decl_knownfolders import (
    CONSTANTS,
    FOLDERID_DESKTOP,
    FOLDERID_PROGRAMS,
)
from lanparty.client.windows.shortcut import ShellLink
from lanparty.errors import ConfigError

PIN = "sha256:" + "3f" * 32
ROOM = "7wbq2xk4mz5tyr3hn6pcvd2fga"
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
INVITE = f"lanparty://relay.example.net:4433/{ROOM}?pin={PIN}&key={KEY}&name=Saturday%20LAN"
LAUNCHER = PureWindowsPath(
    r"C:\Users\Zoë\AppData\Local\Programs\Python\Python311\Scripts\lanparty-client.exe"
)
HOME = PureWindowsPath(r"C:\Users\Zoë")

# The first 0x4C bytes of the shortcut write_shortcuts makes: HeaderSize, the CLSID
# 00021401-0000-0000-C000-000000000046, LinkFlags 0x21BD (target ID list, name,
# relative path, working dir, arguments, unicode, no link info, run as user),
# FILE_ATTRIBUTE_ARCHIVE, zero times, size and icon, SW_SHOWNORMAL, no hot key.
GOLDEN_HEADER = bytes.fromhex(
    "4c000000"
    "0114020000000000c000000000000046"
    "bd210000"
    "20000000"
    "0000000000000000" "0000000000000000" "0000000000000000"
    "00000000"
    "00000000"
    "01000000"
    "0000" "0000" "00000000" "00000000"
)  # fmt: skip


# an independent reader of what the test needs from MS-SHLLINK


@attrs.frozen
class ParsedLink:
    flags: int
    show_command: int
    target: str
    strings: dict[str, str]
    item_types: list[int]


STRING_FLAGS = [
    (0x04, "name"),
    (0x08, "relative_path"),
    (0x10, "working_dir"),
    (0x20, "arguments"),
    (0x40, "icon_location"),
]


def parse_item_name(item: bytes) -> str:
    """A file-system item's long name, from its 0xBEEF0004 extension."""
    (extension_offset,) = struct.unpack_from("<H", item, len(item) - 2)
    extension = item[extension_offset - 2 :]  # the offset counts the item's size field
    size, version, signature = struct.unpack_from("<HHI", extension)
    assert signature == 0xBEEF0004
    assert size == len(extension)
    assert version >= 3
    (name_offset,) = struct.unpack_from("<H", extension, 16)
    name = extension[name_offset:-2].decode("utf-16-le")
    assert name.endswith("\0")
    return name[:-1]


def parse_lnk(data: bytes) -> ParsedLink:
    header_size, clsid, flags = struct.unpack_from("<I16sI", data)
    assert header_size == 0x4C
    assert uuid.UUID(bytes_le=clsid) == uuid.UUID("00021401-0000-0000-C000-000000000046")
    (show_command,) = struct.unpack_from("<I", data, 0x3C)
    offset = 0x4C

    assert flags & 0x01, "HasLinkTargetIDList"
    (id_list_size,) = struct.unpack_from("<H", data, offset)
    id_list = data[offset + 2 : offset + 2 + id_list_size]
    offset += 2 + id_list_size
    items = []
    position = 0
    while True:
        (item_size,) = struct.unpack_from("<H", id_list, position)
        if item_size == 0:
            assert position + 2 == len(id_list), "TerminalID ends the list"
            break
        items.append(id_list[position + 2 : position + item_size])
        position += item_size
    root, drive, *path_items = items
    assert root[0] == 0x1F
    assert uuid.UUID(bytes_le=root[2:18]) == uuid.UUID("20D04FE0-3AEA-1069-A2D8-08002B30309D")
    assert drive[0] == 0x2F
    assert len(drive) + 2 == 25
    target = drive[1:].split(b"\0")[0].decode("ascii")
    target += "\\".join(parse_item_name(item) for item in path_items)

    assert not flags & 0x02, "no LinkInfo"
    strings = {}
    for flag, name in STRING_FLAGS:
        if flags & flag:
            assert flags & 0x80, "IsUnicode"
            (count,) = struct.unpack_from("<H", data, offset)
            strings[name] = data[offset + 2 : offset + 2 + 2 * count].decode("utf-16-le")
            offset += 2 + 2 * count
    (terminal,) = struct.unpack_from("<I", data, offset)
    assert terminal < 4
    assert offset + 4 == len(data)
    return ParsedLink(flags, show_command, target, strings, [item[0] for item in path_items])


# the format


def make_link(**changes: object) -> ShellLink:
    fields: dict[str, object] = {
        "target": LAUNCHER,
        "arguments": f'--invite "{INVITE}"',
        "working_directory": HOME,
        "description": "Join the lanparty room Saturday LAN on relay.example.net",
        "relative_path": r"..\AppData\Local\Programs\Python\Python311\Scripts\lanparty-client.exe",
    }
    fields.update(changes)
    return ShellLink(**fields)  # type: ignore[arg-type]


def test_the_header_is_the_golden_one() -> None:
    data = make_link().to_bytes()
    assert data[:0x4C] == GOLDEN_HEADER
    assert data[0x15] & 0x20  # "Run as administrator", as windows-facts 4.1 locates it


def test_the_link_reads_back() -> None:
    parsed = parse_lnk(make_link().to_bytes())
    assert parsed.flags & 0x2000, "RunAsUser"
    assert parsed.flags == 0x21BD
    assert parsed.show_command == 1
    assert parsed.target == str(LAUNCHER)
    assert parsed.strings == {
        "name": "Join the lanparty room Saturday LAN on relay.example.net",
        "relative_path": r"..\AppData\Local\Programs\Python\Python311\Scripts\lanparty-client.exe",
        "working_dir": r"C:\Users\Zoë",
        "arguments": f'--invite "{INVITE}"',
    }
    # folders, the one with a non-ASCII name flagged as such, then the file
    assert parsed.item_types == [0x31, 0x35, *[0x31] * 6, 0x32]


def test_only_the_strings_given_are_written() -> None:
    link = make_link(description=None, relative_path=None, working_directory=None)
    parsed = parse_lnk(link.to_bytes())
    assert parsed.strings == {"arguments": f'--invite "{INVITE}"'}
    assert parsed.flags == 0x01 | 0x20 | 0x80 | 0x100 | 0x2000


def test_an_icon_and_no_elevation() -> None:
    link = make_link(icon_location=r"C:\Windows\System32\shell32.dll", icon_index=18)
    parsed = parse_lnk(link.to_bytes())
    assert parsed.strings["icon_location"] == r"C:\Windows\System32\shell32.dll"
    assert struct.unpack_from("<i", link.to_bytes(), 0x38) == (18,)
    plain = parse_lnk(make_link(run_as_administrator=False).to_bytes())
    assert not plain.flags & 0x2000


def test_strings_count_utf16_units() -> None:
    parsed = parse_lnk(make_link(description="𝄞 lanparty").to_bytes())  # a surrogate pair
    assert parsed.strings["name"] == "𝄞 lanparty"


def test_the_run_as_flag_is_the_header_value() -> None:
    assert shortcut.RUN_AS_USER == CONSTANTS["SLDF_RUNAS_USER"] == 0x2000


@pytest.mark.parametrize("target", [r"\\server\share\lanparty-client.exe", r"C:\\", "relative.exe"])
def test_a_target_off_a_drive_letter_is_refused(target: str) -> None:
    with pytest.raises(ConfigError):
        make_link(target=PureWindowsPath(target))


def test_relative_targets() -> None:
    desktop = PureWindowsPath(r"C:\Users\Zoë\Desktop")
    assert shortcut.relative_target(desktop, LAUNCHER) == (
        r"..\AppData\Local\Programs\Python\Python311\Scripts\lanparty-client.exe"
    )
    assert shortcut.relative_target(PureWindowsPath(r"D:\Desktop"), LAUNCHER) is None


# the shortcuts the command writes


def test_write_shortcuts_into_each_folder(tmp_path: Path) -> None:
    folders = [tmp_path / "Desktop", tmp_path / "Start Menu" / "Programs"]
    written = shortcut.write_shortcuts(
        # as pasted: no port, spaces around
        f"  lanparty://relay.example.net/{ROOM}?pin={PIN}&key={KEY}&name=Saturday%20LAN\n",
        None,
        launcher=LAUNCHER,
        folders=folders,
        working_directory=HOME,
    )
    assert written == [folder / "lanparty Saturday LAN.lnk" for folder in folders]  # its label
    for path in written:
        parsed = parse_lnk(path.read_bytes())
        assert parsed.target == str(LAUNCHER)
        assert parsed.flags & 0x2000
        assert parsed.strings["arguments"] == f'--invite "{INVITE}"'
        assert parsed.strings["working_dir"] == str(HOME)
        assert parsed.strings["name"] == "Join the lanparty room Saturday LAN on relay.example.net"


def test_an_invite_without_a_label_names_the_shortcut_after_the_room_id(tmp_path: Path) -> None:
    written = shortcut.write_shortcuts(
        f"lanparty://relay.example.net/{ROOM}?pin={PIN}&key={KEY}",
        None,
        launcher=LAUNCHER,
        folders=[tmp_path],
        working_directory=HOME,
    )
    assert written == [tmp_path / f"lanparty {ROOM}.lnk"]
    parsed = parse_lnk(written[0].read_bytes())
    assert parsed.strings["name"] == f"Join the lanparty room {ROOM} on relay.example.net"


@pytest.mark.parametrize("name", ["CON", "nul", "Com1", "LPT9.party", "aux ", "PRN."])
def test_a_name_windows_reserves_for_devices_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="Windows keeps it for devices"):
        shortcut.write_shortcuts(
            INVITE, name, launcher=LAUNCHER, folders=[tmp_path], working_directory=HOME
        )
    assert list(tmp_path.iterdir()) == []


def test_the_invite_is_checked_and_written_whole(tmp_path: Path) -> None:
    written = shortcut.write_shortcuts(
        f"lanparty://[2001:db8::1]/{ROOM}?pin={PIN}&key={KEY}&sni=relay.example.net",
        "LAN party: Saturday?",
        launcher=LAUNCHER,
        folders=[tmp_path],
        working_directory=HOME,
    )
    assert written == [tmp_path / "LAN party Saturday.lnk"]
    parsed = parse_lnk(written[0].read_bytes())
    assert parsed.strings["arguments"] == (
        f'--invite "lanparty://[2001:db8::1]:4433/{ROOM}?pin={PIN}&key={KEY}&sni=relay.example.net"'
    )
    with pytest.raises(ConfigError, match="key is missing"):
        shortcut.write_shortcuts(
            f"lanparty://relay.example.net/{ROOM}?pin={PIN}",
            None,
            launcher=LAUNCHER,
            folders=[tmp_path],
            working_directory=HOME,
        )
    with pytest.raises(ConfigError, match="is not a pin") as caught:
        shortcut.write_shortcuts(
            f"lanparty://relay.example.net/{ROOM}?pin=sha256:00&key={KEY}",
            None,
            launcher=LAUNCHER,
            folders=[tmp_path],
            working_directory=HOME,
        )
    assert KEY not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot be a shortcut's name"):
        shortcut.write_shortcuts(
            INVITE, ' "?" ', launcher=LAUNCHER, folders=[tmp_path], working_directory=HOME
        )


def test_a_folder_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ConfigError, match="cannot write the shortcut") as caught:
        shortcut.write_shortcuts(
            INVITE, None, launcher=LAUNCHER, folders=[not_a_folder], working_directory=HOME
        )
    assert KEY not in str(caught.value)


def test_the_invite_s_key_stays_out_of_errors_and_reprs() -> None:
    """The .lnk holds the invite (it opens the room): nothing printed may show its key."""
    link = make_link()
    assert KEY in link.arguments
    assert KEY not in repr(link)
    with pytest.raises(ConfigError) as caught:
        make_link(arguments=f'--invite "{INVITE}" ' + "x" * 70000).to_bytes()
    assert "too long" in str(caught.value)
    assert KEY not in str(caught.value)


def test_the_launcher_is_looked_for_next_to_python_then_in_scripts(tmp_path: Path) -> None:
    venv_scripts, user_scripts = tmp_path / "venv" / "Scripts", tmp_path / "user" / "Scripts"
    candidates = shortcut.launcher_candidates(
        str(venv_scripts / "python.exe"), [str(venv_scripts), str(user_scripts)]
    )
    assert candidates == [
        venv_scripts / "lanparty-client.exe",
        user_scripts / "lanparty-client.exe",
    ]
    with pytest.raises(ConfigError, match=r"cannot find lanparty-client\.exe .*pip install"):
        shortcut.find_launcher(candidates)
    user_scripts.mkdir(parents=True)
    (user_scripts / "lanparty-client.exe").write_bytes(b"MZ")
    assert shortcut.find_launcher(candidates) == user_scripts / "lanparty-client.exe"


def test_the_environment_fallback_folders() -> None:
    environ = {"USERPROFILE": "/home/zoe", "APPDATA": "/home/zoe/AppData/Roaming"}
    assert shortcut.fallback_folders(environ) == [
        Path("/home/zoe/Desktop"),
        Path("/home/zoe/AppData/Roaming/Microsoft/Windows/Start Menu/Programs"),
    ]
    assert shortcut.fallback_folders({}) == []


def test_install_shortcuts_is_a_windows_command() -> None:
    with pytest.raises(ConfigError, match="run it on Windows"):
        shortcut.install_shortcuts(INVITE, None)


def test_the_known_folder_ids_are_the_headers() -> None:
    """Compared with DEFINE_KNOWN_FOLDER in mingw-w64's knownfolders.h (INITGUID: values)."""
    preprocessed = subprocess.run(
        ["x86_64-w64-mingw32-gcc", "-E", "-DINITGUID", "-x", "c", "-"],
        input="#include <windows.h>\n#include <knownfolders.h>\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name, expected in (("Desktop", FOLDERID_DESKTOP), ("Programs", FOLDERID_PROGRAMS)):
        match = re.search(rf"\bFOLDERID_{name} = \{{([^;]*)\}};", preprocessed)
        assert match is not None, name
        numbers = [int(number, 16) for number in re.findall(r"0x[0-9a-fA-F]+", match.group(1))]
        data1, data2, data3, *data4 = numbers
        assert uuid.UUID(bytes_le=struct.pack("<IHH8B", data1, data2, data3, *data4)) == expected
