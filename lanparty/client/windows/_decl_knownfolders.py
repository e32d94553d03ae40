"""cffi (ABI mode) declarations for finding the Desktop and Start-menu folders.

``SHGetKnownFolderPath`` is in shell32.dll and ``CoTaskMemFree``, which
frees the path it returns, in ole32.dll: one module for the one task
(``_decl_shell32`` has the elevation calls). Pure declarations, importable
on any OS; ``shortcut.py`` opens the DLLs (on Windows only) and takes the
run-as-administrator flag of its .lnk files from ``CONSTANTS``.

The folder ids are GUID values, not integer constants, so the layout
test cannot compare them; the shortcut test compares them with the
``DEFINE_KNOWN_FOLDER`` lines of mingw-w64's ``knownfolders.h``.
"""

from __future__ import annotations

import uuid
from typing import Final

import cffi  # type: ignore[import-untyped]

CDEF: Final = """
typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;
typedef GUID KNOWNFOLDERID;

int32_t WINAPI SHGetKnownFolderPath(
    const KNOWNFOLDERID *rfid, uint32_t dwFlags, void *hToken, uint16_t **ppszPath);
void WINAPI CoTaskMemFree(void *pv);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

HEADERS: Final = ("windows.h", "shlobj.h", "knownfolders.h")
STRUCTS: Final = ("KNOWNFOLDERID",)

CONSTANTS: Final = {
    "S_OK": 0,
    "KF_FLAG_DEFAULT": 0,
    # not a call of these DLLs: the shortcut's "Run as administrator" LinkFlags bit
    # (shortcut.py), here so that it is checked against shlobj.h with the rest
    "SLDF_RUNAS_USER": 0x2000,
}

FOLDERID_DESKTOP: Final = uuid.UUID("{B4BFCC3A-DB2C-424C-B029-7FE99A87C641}")
FOLDERID_PROGRAMS: Final = uuid.UUID("{A77F5D77-2E2B-44C3-A6A2-ABA601054A51}")
"""The user's Start menu > Programs folder (per user: no administrator needed)."""
