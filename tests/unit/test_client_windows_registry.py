"""``WindowsRegistry`` over a fake advapi32 that answers as the registry functions do.

``registry.py`` is Windows-only; it is imported here as on Windows (see
``test_client_windows_platform.imported_as_on_windows``).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

from lanparty.client.windows import _decl_advapi32
from lanparty.client.windows.adapters import ADAPTER_CLASS_KEY, RegistryAccessError
from tests.unit.test_client_windows_platform import imported_as_on_windows

ffi = _decl_advapi32.ffi
CONSTANTS = _decl_advapi32.CONSTANTS
REG_DWORD = 4


def wide(pointer: Any) -> str:
    text: str = ffi.string(ffi.cast("char16_t *", pointer))
    return text


class FakeAdvapi32:
    """The Reg* functions over {key path: {value name: (type, bytes)}} and subkey lists."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, tuple[int, bytes]]] = {}
        self.subkeys: dict[str, list[str]] = {}
        self.denied: set[str] = set()
        self.open_keys: dict[int, str] = {}
        self.access: list[tuple[str, int]] = []
        self.set_calls: list[tuple[str, str, int, bytes]] = []
        self.grow_once: set[str] = set()  # values that grow between the size and the data call

    def RegOpenKeyExW(self, root: Any, path: Any, options: int, access: int, out: Any) -> int:  # noqa: N802
        assert int(ffi.cast("intptr_t", root)) == CONSTANTS["HKEY_LOCAL_MACHINE"]
        text = wide(path)
        self.access.append((text, access))
        if text in self.denied:
            return CONSTANTS["ERROR_ACCESS_DENIED"]
        if text not in self.values and text not in self.subkeys:
            return CONSTANTS["ERROR_FILE_NOT_FOUND"]
        handle = 0x1000 + len(self.open_keys) + 1
        self.open_keys[handle] = text
        out[0] = ffi.cast("HKEY", handle)
        return 0

    def _path(self, key: Any) -> str:
        return self.open_keys[int(ffi.cast("uintptr_t", key))]

    def RegEnumKeyExW(self, key: Any, index: int, name: Any, length: Any, *rest: Any) -> int:  # noqa: N802
        names = self.subkeys.get(self._path(key), [])
        if index >= len(names):
            return CONSTANTS["ERROR_NO_MORE_ITEMS"]
        encoded = names[index].encode("utf-16-le") + b"\0\0"
        assert length[0] * 2 >= len(encoded)
        ffi.memmove(name, encoded, len(encoded))
        length[0] = len(names[index])
        return 0

    def RegQueryValueExW(self, *arguments: Any) -> int:  # noqa: N802
        key, name, _reserved, value_type, data, size = arguments
        value_name = wide(name)
        found = self.values.get(self._path(key), {}).get(value_name)
        if found is None:
            return CONSTANTS["ERROR_FILE_NOT_FOUND"]
        kind, raw = found
        value_type[0] = kind
        if data == ffi.NULL:
            size[0] = len(raw)
            return 0
        if value_name in self.grow_once:
            self.grow_once.discard(value_name)
            raw = raw + raw
            self.values[self._path(key)][value_name] = (kind, raw)
        if size[0] < len(raw):
            size[0] = len(raw)
            return CONSTANTS["ERROR_MORE_DATA"]
        ffi.memmove(data, raw, len(raw))
        size[0] = len(raw)
        return 0

    def RegSetValueExW(self, *arguments: Any) -> int:  # noqa: N802
        key, name, _reserved, kind, data, size = arguments
        path = self._path(key)
        if path in self.denied:
            return CONSTANTS["ERROR_ACCESS_DENIED"]
        self.set_calls.append((path, wide(name), kind, bytes(data[:size])))
        return 0

    def RegCloseKey(self, key: Any) -> int:  # noqa: N802
        del self.open_keys[int(ffi.cast("uintptr_t", key))]
        return 0


def string(text: str, *, terminated: bool = True) -> tuple[int, bytes]:
    return CONSTANTS["REG_SZ"], text.encode("utf-16-le") + (b"\0\0" if terminated else b"")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[types.ModuleType, FakeAdvapi32]]:
    fake = FakeAdvapi32()
    with imported_as_on_windows("lanparty.client.windows.registry") as module:
        monkeypatch.setattr(module, "_advapi32", lambda: fake)
        monkeypatch.setattr(
            ffi, "getwinerror", lambda code=-1: (code, "Access is denied."), raising=False
        )
        yield module, fake
    assert fake.open_keys == {}, "a key was left open"


def test_subkeys_are_listed(api: tuple[types.ModuleType, FakeAdvapi32]) -> None:
    module, fake = api
    fake.subkeys[ADAPTER_CLASS_KEY] = ["0000", "0001", "Properties"]
    assert module.WindowsRegistry().subkey_names(ADAPTER_CLASS_KEY) == [
        "0000",
        "0001",
        "Properties",
    ]
    assert fake.access == [(ADAPTER_CLASS_KEY, CONSTANTS["KEY_ENUMERATE_SUB_KEYS"])]


def test_a_key_that_cannot_be_listed_is_an_access_error(
    api: tuple[types.ModuleType, FakeAdvapi32],
) -> None:
    module, fake = api
    with pytest.raises(RegistryAccessError, match="does not exist"):
        module.WindowsRegistry().subkey_names(ADAPTER_CLASS_KEY)
    fake.subkeys[ADAPTER_CLASS_KEY] = []
    fake.denied.add(ADAPTER_CLASS_KEY)
    with pytest.raises(RegistryAccessError, match=r"Access is denied\. \(error 5\)"):
        module.WindowsRegistry().subkey_names(ADAPTER_CLASS_KEY)


@pytest.mark.parametrize("terminated", [True, False])
def test_a_string_is_read_with_or_without_its_nul(
    api: tuple[types.ModuleType, FakeAdvapi32], terminated: bool
) -> None:
    module, fake = api
    fake.values["K"] = {"ComponentId": string("root\\tap0901 é", terminated=terminated)}
    assert module.WindowsRegistry().read_string("K", "ComponentId") == "root\\tap0901 é"
    assert fake.access == [("K", CONSTANTS["KEY_QUERY_VALUE"])]


def test_a_value_that_grows_between_the_calls_is_read_whole(
    api: tuple[types.ModuleType, FakeAdvapi32],
) -> None:
    module, fake = api
    fake.values["K"] = {"Name": string("LAN party", terminated=False)}
    fake.grow_once.add("Name")
    assert module.WindowsRegistry().read_string("K", "Name") == "LAN partyLAN party"


def test_missing_keys_values_and_non_strings_read_as_none(
    api: tuple[types.ModuleType, FakeAdvapi32],
) -> None:
    module, fake = api
    fake.values["K"] = {"MTU": (REG_DWORD, (1500).to_bytes(4, "little"))}
    registry = module.WindowsRegistry()
    assert registry.read_string("missing", "Name") is None
    assert registry.read_string("K", "Name") is None
    assert registry.read_string("K", "MTU") is None


def test_an_unreadable_key_is_an_access_error(api: tuple[types.ModuleType, FakeAdvapi32]) -> None:
    module, fake = api
    fake.values["K"] = {}
    fake.denied.add("K")
    with pytest.raises(RegistryAccessError) as caught:
        module.WindowsRegistry().read_string("K", "Name")
    assert (caught.value.path, caught.value.winerror) == ("K", 5)


def test_a_string_is_written_as_reg_sz_with_its_nul(
    api: tuple[types.ModuleType, FakeAdvapi32],
) -> None:
    module, fake = api
    fake.values["K"] = {}
    module.WindowsRegistry().write_string("K", "NetworkAddress", "02AB12345678")
    assert fake.set_calls == [
        ("K", "NetworkAddress", CONSTANTS["REG_SZ"], "02AB12345678\0".encode("utf-16-le"))
    ]
    assert fake.access == [("K", CONSTANTS["KEY_SET_VALUE"])]


def test_a_refused_write_is_an_access_error(api: tuple[types.ModuleType, FakeAdvapi32]) -> None:
    module, fake = api
    with pytest.raises(RegistryAccessError, match="does not exist"):
        module.WindowsRegistry().write_string("K", "NetworkAddress", "02AB12345678")
    fake.values["K"] = {}
    fake.denied.add("K")
    with pytest.raises(RegistryAccessError, match="error 5"):
        module.WindowsRegistry().write_string("K", "NetworkAddress", "02AB12345678")


def test_a_dword_is_read_little_endian_and_anything_else_is_none(
    api: tuple[types.ModuleType, FakeAdvapi32],
) -> None:
    module, fake = api
    fake.values["K"] = {
        "RegistrationEnabled": (REG_DWORD, (1).to_bytes(4, "little")),
        "Big": (REG_DWORD, (0x01020304).to_bytes(4, "little")),
        "Name": string("1"),
        "Long": (11, (7).to_bytes(8, "little")),  # REG_QWORD: more data than a DWORD
    }
    registry = module.WindowsRegistry()
    assert registry.read_dword("K", "RegistrationEnabled") == 1
    assert registry.read_dword("K", "Big") == 0x01020304
    assert registry.read_dword("K", "Name") is None
    assert registry.read_dword("K", "Long") is None
    assert registry.read_dword("K", "Missing") is None
    assert registry.read_dword("missing", "RegistrationEnabled") is None
    fake.denied.add("K")
    with pytest.raises(RegistryAccessError):
        registry.read_dword("K", "RegistrationEnabled")
