"""cffi (ABI mode) declarations of the kernel32.dll calls: the TAP-Windows6 adapter, the console.

Pure declarations: this module imports on any OS, so that the layout test
(``tests/winlayout.py``) can check them against the mingw-w64 headers on
Linux. ``tap.py``, ``elevation.py`` and ``console.py`` open the DLL
(Windows only).

``GetLastError`` cannot be called through cffi's ABI mode reliably (cffi
itself may change the thread's last error between two calls): call sites use
``ffi.getwinerror()``, which cffi saves right after each call.

The TAP IOCTL codes are those of TAP6 ``src/tap-windows.h`` (windows-facts
1.1), checked against mingw's ``CTL_CODE`` through ``CONSTANT_EXPRESSIONS``.
"""

from __future__ import annotations

from typing import Any, Final

import cffi  # type: ignore[import-untyped]

CDEF: Final = """
typedef void *HANDLE;

HANDLE WINAPI CreateFileW(
    const uint16_t *lpFileName,
    uint32_t dwDesiredAccess,
    uint32_t dwShareMode,
    void *lpSecurityAttributes,
    uint32_t dwCreationDisposition,
    uint32_t dwFlagsAndAttributes,
    HANDLE hTemplateFile);
int32_t WINAPI DeviceIoControl(
    HANDLE hDevice,
    uint32_t dwIoControlCode,
    void *lpInBuffer,
    uint32_t nInBufferSize,
    void *lpOutBuffer,
    uint32_t nOutBufferSize,
    uint32_t *lpBytesReturned,
    void *lpOverlapped);
int32_t WINAPI CloseHandle(HANDLE hObject);
HANDLE WINAPI GetCurrentProcess(void);
uint32_t WINAPI GetCurrentProcessId(void);
uint32_t WINAPI GetConsoleProcessList(uint32_t *lpdwProcessList, uint32_t dwProcessCount);

typedef struct {
    uint32_t dwSize;
    uint32_t cntUsage;
    uint32_t th32ProcessID;
    uintptr_t th32DefaultHeapID;
    uint32_t th32ModuleID;
    uint32_t cntThreads;
    uint32_t th32ParentProcessID;
    int32_t pcPriClassBase;
    uint32_t dwFlags;
    uint16_t szExeFile[260];
} PROCESSENTRY32W;

typedef int32_t (WINAPI *PHANDLER_ROUTINE)(uint32_t CtrlType);
int32_t WINAPI SetConsoleCtrlHandler(PHANDLER_ROUTINE HandlerRoutine, int32_t Add);

typedef struct _SECURITY_ATTRIBUTES {
    uint32_t nLength;
    void *lpSecurityDescriptor;
    int32_t bInheritHandle;
} SECURITY_ATTRIBUTES;
int32_t WINAPI CreateDirectoryW(
    const uint16_t *lpPathName, SECURITY_ATTRIBUTES *lpSecurityAttributes);
void *WINAPI LocalFree(void *hMem);

HANDLE WINAPI CreateToolhelp32Snapshot(uint32_t dwFlags, uint32_t th32ProcessID);
int32_t WINAPI Process32FirstW(HANDLE hSnapshot, PROCESSENTRY32W *lppe);
int32_t WINAPI Process32NextW(HANDLE hSnapshot, PROCESSENTRY32W *lppe);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

HEADERS: Final = ("windows.h", "winioctl.h", "tlhelp32.h")
STRUCTS: Final = ("HANDLE", "PROCESSENTRY32W", "PHANDLER_ROUTINE", "SECURITY_ATTRIBUTES")

_TAP_IOCTL = "CTL_CODE(FILE_DEVICE_UNKNOWN, {}, METHOD_BUFFERED, FILE_ANY_ACCESS)"

CONSTANTS: Final = {
    "GENERIC_READ": 0x80000000,
    "GENERIC_WRITE": 0x40000000,
    "OPEN_EXISTING": 3,
    "FILE_ATTRIBUTE_SYSTEM": 0x4,
    "FILE_FLAG_OVERLAPPED": 0x40000000,
    # A pointer constant, ((HANDLE)(LONG_PTR)-1): compared as a signed
    # pointer-sized integer, which is -1 on 32- and 64-bit Windows alike.
    "INVALID_HANDLE_VALUE": -1,
    "TAP_WIN_IOCTL_GET_MAC": 0x00220004,
    "TAP_WIN_IOCTL_GET_VERSION": 0x00220008,
    "TAP_WIN_IOCTL_GET_MTU": 0x0022000C,
    "TAP_WIN_IOCTL_SET_MEDIA_STATUS": 0x00220018,
    "TH32CS_SNAPPROCESS": 0x2,
    "CTRL_C_EVENT": 0,
    "CTRL_BREAK_EVENT": 1,
    "CTRL_CLOSE_EVENT": 2,
    "CTRL_LOGOFF_EVENT": 5,
    "CTRL_SHUTDOWN_EVENT": 6,
    "ERROR_FILE_NOT_FOUND": 2,
    "ERROR_PATH_NOT_FOUND": 3,
    "ERROR_ACCESS_DENIED": 5,
    "ERROR_GEN_FAILURE": 31,
    "ERROR_DEV_NOT_EXIST": 55,
    "ERROR_INVALID_PARAMETER": 87,
    "ERROR_MORE_DATA": 234,
    "ERROR_ALREADY_EXISTS": 183,
    "ERROR_OPERATION_ABORTED": 995,
}

_WCHAR_BYTES: Final = 2


def wide_string(text: str) -> Any:
    """``text`` as a NUL-terminated UTF-16 ``uint16_t[]``, for an ``LPCWSTR`` parameter.

    Keep the result referenced until the call has returned. (cffi shares
    ``uint16_t`` pointer types between ``FFI`` objects, so it can be passed
    to the functions of every ``_decl_*`` module.)
    """
    encoded = text.encode("utf-16-le") + b"\0\0"
    buffer = ffi.new("uint16_t[]", len(encoded) // _WCHAR_BYTES)
    ffi.memmove(buffer, encoded, len(encoded))
    return buffer


CONSTANT_EXPRESSIONS: Final = {
    "INVALID_HANDLE_VALUE": "(LONG_PTR)INVALID_HANDLE_VALUE",
    "TAP_WIN_IOCTL_GET_MAC": _TAP_IOCTL.format(1),
    "TAP_WIN_IOCTL_GET_VERSION": _TAP_IOCTL.format(2),
    "TAP_WIN_IOCTL_GET_MTU": _TAP_IOCTL.format(3),
    "TAP_WIN_IOCTL_SET_MEDIA_STATUS": _TAP_IOCTL.format(6),
}
