"""``HKEY_LOCAL_MACHINE`` through advapi32.dll (cffi ABI mode): the ``RegistryEditor`` of Windows.

    registry = WindowsRegistry()
    adapters = find_tap_adapters(registry)          # adapters.py
    registry.write_string(adapter.class_key, "NetworkAddress", "02AB12345678")

Reads need no administrator rights; ``write_string`` under HKLM does.
Windows only: importing this module elsewhere raises ``ImportError``.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Final

from lanparty.client.windows._decl_advapi32 import CONSTANTS, ffi
from lanparty.client.windows._decl_kernel32 import wide_string
from lanparty.client.windows.adapters import RegistryAccessError

if sys.platform != "win32":
    raise ImportError(f"lanparty.client.windows.registry needs Windows; this is {sys.platform}")

__all__ = ["WindowsRegistry"]

_SUCCESS: Final = CONSTANTS["ERROR_SUCCESS"]
_NOT_FOUND: Final = frozenset(
    {CONSTANTS["ERROR_FILE_NOT_FOUND"], CONSTANTS["ERROR_PATH_NOT_FOUND"]}
)
_MORE_DATA: Final = CONSTANTS["ERROR_MORE_DATA"]
_NO_MORE_ITEMS: Final = CONSTANTS["ERROR_NO_MORE_ITEMS"]
_STRING_TYPES: Final = frozenset({CONSTANTS["REG_SZ"], CONSTANTS["REG_EXPAND_SZ"]})
# A key name has at most 255 characters (MS "Registry Element Size Limits").
_KEY_NAME_CHARACTERS: Final = 256
_WCHAR_BYTES: Final = 2
_DWORD_BYTES: Final = 4


@functools.cache
def _advapi32() -> Any:
    return ffi.dlopen("advapi32.dll")


def _error(path: str, status: int) -> RegistryAccessError:
    _, reason = ffi.getwinerror(status)
    return RegistryAccessError(path, status, str(reason))


class WindowsRegistry:
    """``RegistryEditor`` over ``RegOpenKeyExW`` and friends, relative to HKEY_LOCAL_MACHINE."""

    def subkey_names(self, path: str) -> list[str]:
        key = self._open(path, CONSTANTS["KEY_ENUMERATE_SUB_KEYS"])
        if key is None:
            raise RegistryAccessError(
                path, CONSTANTS["ERROR_FILE_NOT_FOUND"], "the key does not exist"
            )
        names: list[str] = []
        try:
            name = ffi.new("uint16_t[]", _KEY_NAME_CHARACTERS)
            length = ffi.new("uint32_t *")
            index = 0
            while True:
                length[0] = _KEY_NAME_CHARACTERS
                status = _advapi32().RegEnumKeyExW(
                    key, index, name, length, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL
                )
                if status == _NO_MORE_ITEMS:
                    return names
                if status != _SUCCESS:
                    raise _error(path, status)
                names.append(_decode(name, int(length[0]) * _WCHAR_BYTES))
                index += 1
        finally:
            _advapi32().RegCloseKey(key)

    def read_string(self, path: str, name: str) -> str | None:
        key = self._open(path, CONSTANTS["KEY_QUERY_VALUE"])
        if key is None:
            return None
        try:
            value_name = wide_string(name)
            value_type = ffi.new("uint32_t *")
            size = ffi.new("uint32_t *")
            while True:  # the value may grow between the two calls: ask again
                status = _advapi32().RegQueryValueExW(
                    key, value_name, ffi.NULL, value_type, ffi.NULL, size
                )
                if status in _NOT_FOUND:
                    return None
                if status != _SUCCESS:
                    raise _error(f"{path}\\{name}", status)
                if value_type[0] not in _STRING_TYPES:
                    return None
                data = ffi.new("uint8_t[]", int(size[0]) + _WCHAR_BYTES)
                size[0] = len(data)
                status = _advapi32().RegQueryValueExW(
                    key, value_name, ffi.NULL, value_type, data, size
                )
                if status == _MORE_DATA:
                    continue
                if status in _NOT_FOUND:
                    return None
                if status != _SUCCESS:
                    raise _error(f"{path}\\{name}", status)
                return _decode(data, int(size[0]))
        finally:
            _advapi32().RegCloseKey(key)

    def read_dword(self, path: str, name: str) -> int | None:
        """The REG_DWORD value ``name`` of key ``path``; None when either is missing or the
        value is of another type."""
        key = self._open(path, CONSTANTS["KEY_QUERY_VALUE"])
        if key is None:
            return None
        try:
            value_type = ffi.new("uint32_t *")
            data = ffi.new("uint8_t[]", _DWORD_BYTES)
            size = ffi.new("uint32_t *", _DWORD_BYTES)
            status = _advapi32().RegQueryValueExW(
                key, wide_string(name), ffi.NULL, value_type, data, size
            )
            if status in _NOT_FOUND or status == _MORE_DATA:  # MORE_DATA: not a DWORD
                return None
            if status != _SUCCESS:
                raise _error(f"{path}\\{name}", status)
            if value_type[0] != CONSTANTS["REG_DWORD"] or size[0] != _DWORD_BYTES:
                return None
            return int.from_bytes(bytes(ffi.buffer(data, _DWORD_BYTES)), "little")
        finally:
            _advapi32().RegCloseKey(key)

    def write_string(self, path: str, name: str, value: str) -> None:
        key = self._open(path, CONSTANTS["KEY_SET_VALUE"])
        if key is None:
            raise RegistryAccessError(
                path, CONSTANTS["ERROR_FILE_NOT_FOUND"], "the key does not exist"
            )
        try:
            data = value.encode("utf-16-le") + b"\0\0"  # REG_SZ includes its terminating NUL
            status = _advapi32().RegSetValueExW(
                key, wide_string(name), 0, CONSTANTS["REG_SZ"], data, len(data)
            )
            if status != _SUCCESS:
                raise _error(f"{path}\\{name}", status)
        finally:
            _advapi32().RegCloseKey(key)

    def _open(self, path: str, access: int) -> Any:
        """The open key, None when it does not exist; the caller closes it."""
        key = ffi.new("HKEY *")
        root = ffi.cast("HKEY", CONSTANTS["HKEY_LOCAL_MACHINE"])
        status = _advapi32().RegOpenKeyExW(root, wide_string(path), 0, access, key)
        if status in _NOT_FOUND:
            return None
        if status != _SUCCESS:
            raise _error(path, status)
        return key[0]


def _decode(buffer: Any, size_bytes: int) -> str:
    """UTF-16 from a buffer, without the terminating NUL(s) a REG_SZ may or may not have."""
    raw = bytes(ffi.buffer(buffer, size_bytes))
    return raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]
