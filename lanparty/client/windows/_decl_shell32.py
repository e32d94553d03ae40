"""cffi (ABI mode) declarations of shell32.dll: ``ShellExecuteExW`` for the "runas" relaunch.

Pure declarations, importable on any OS (see ``_decl_kernel32``).
``elevation.py`` opens the DLL (Windows only). The unnamed union of
``hIcon``/``hMonitor`` is declared as the header has it (both members, at
the same offset).
"""

from __future__ import annotations

from typing import Final

import cffi  # type: ignore[import-untyped]

CDEF: Final = """
typedef void *HANDLE;
typedef void *HKEY;

typedef struct _SHELLEXECUTEINFOW {
    uint32_t cbSize;
    uint32_t fMask;
    void *hwnd;
    const uint16_t *lpVerb;
    const uint16_t *lpFile;
    const uint16_t *lpParameters;
    const uint16_t *lpDirectory;
    int32_t nShow;
    void *hInstApp;
    void *lpIDList;
    const uint16_t *lpClass;
    HKEY hkeyClass;
    uint32_t dwHotKey;
    union {
        HANDLE hIcon;
        HANDLE hMonitor;
    };
    HANDLE hProcess;
} SHELLEXECUTEINFOW;

int32_t WINAPI ShellExecuteExW(SHELLEXECUTEINFOW *pExecInfo);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

HEADERS: Final = ("windows.h", "shellapi.h")
STRUCTS: Final = ("SHELLEXECUTEINFOW",)

CONSTANTS: Final = {
    # Wait for the launch to finish before returning: the caller exits right
    # after, and must not take a pending launch down with it (MS
    # SHELLEXECUTEINFOW page, SEE_MASK_NOASYNC).
    "SEE_MASK_NOASYNC": 0x00000100,
    "SW_SHOWNORMAL": 1,
    "ERROR_FILE_NOT_FOUND": 2,
    "ERROR_ACCESS_DENIED": 5,
    "ERROR_CANCELLED": 1223,
}

CONSTANT_EXPRESSIONS: Final[dict[str, str]] = {}
