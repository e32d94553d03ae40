"""cffi (ABI mode) declarations of advapi32.dll: the registry and the process token.

Pure declarations, importable on any OS (see ``_decl_kernel32``).
``registry.py`` and ``elevation.py`` open the DLL (Windows only). The
registry functions return their Win32 error code (``LSTATUS``) instead of
setting the thread's last error.
"""

from __future__ import annotations

from typing import Final

import cffi  # type: ignore[import-untyped]

CDEF: Final = """
typedef void *HANDLE;
typedef void *HKEY;

typedef struct _TOKEN_ELEVATION {
    uint32_t TokenIsElevated;
} TOKEN_ELEVATION;

int32_t WINAPI RegOpenKeyExW(
    HKEY hKey,
    const uint16_t *lpSubKey,
    uint32_t ulOptions,
    uint32_t samDesired,
    HKEY *phkResult);
int32_t WINAPI RegEnumKeyExW(
    HKEY hKey,
    uint32_t dwIndex,
    uint16_t *lpName,
    uint32_t *lpcchName,
    uint32_t *lpReserved,
    uint16_t *lpClass,
    uint32_t *lpcchClass,
    void *lpftLastWriteTime);
int32_t WINAPI RegQueryValueExW(
    HKEY hKey,
    const uint16_t *lpValueName,
    uint32_t *lpReserved,
    uint32_t *lpType,
    uint8_t *lpData,
    uint32_t *lpcbData);
int32_t WINAPI RegSetValueExW(
    HKEY hKey,
    const uint16_t *lpValueName,
    uint32_t Reserved,
    uint32_t dwType,
    const uint8_t *lpData,
    uint32_t cbData);
int32_t WINAPI RegCloseKey(HKEY hKey);

int32_t WINAPI OpenProcessToken(HANDLE ProcessHandle, uint32_t DesiredAccess, HANDLE *TokenHandle);
int32_t WINAPI GetTokenInformation(
    HANDLE TokenHandle,
    uint32_t TokenInformationClass,
    void *TokenInformation,
    uint32_t TokenInformationLength,
    uint32_t *ReturnLength);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

HEADERS: Final = ("windows.h",)
STRUCTS: Final = ("HKEY", "TOKEN_ELEVATION")

CONSTANTS: Final = {
    # A pointer constant, ((HKEY)(ULONG_PTR)((LONG)0x80000002)): checked and
    # used as a signed pointer-sized integer, which cffi casts to the same
    # pointer on 32- and 64-bit Windows (0xFFFFFFFF80000002 on x64).
    "HKEY_LOCAL_MACHINE": -0x7FFFFFFE,
    "KEY_QUERY_VALUE": 0x0001,
    "KEY_SET_VALUE": 0x0002,
    "KEY_ENUMERATE_SUB_KEYS": 0x0008,
    "KEY_READ": 0x20019,
    "REG_SZ": 1,
    "REG_EXPAND_SZ": 2,
    "REG_DWORD": 4,
    "TOKEN_QUERY": 0x0008,
    "TokenElevation": 20,
    "ERROR_SUCCESS": 0,
    "ERROR_FILE_NOT_FOUND": 2,
    "ERROR_PATH_NOT_FOUND": 3,
    "ERROR_ACCESS_DENIED": 5,
    "ERROR_MORE_DATA": 234,
    "ERROR_NO_MORE_ITEMS": 259,
}

CONSTANT_EXPRESSIONS: Final = {
    # Casting the pointer to an integer is not an integer constant expression
    # in ISO C, but GCC folds it, which is all a _Static_assert needs.
    "HKEY_LOCAL_MACHINE": "(LONG_PTR)HKEY_LOCAL_MACHINE",
}
