"""Owners and access lists of files on Windows (advapi32 through cffi, ABI mode).

    problem = write_access_problem(path)         # None: only administrators may change it
    make_admin_only_directory(directory)         # missing: made with ADMIN_ONLY_SDDL

For the journal of host-network changes (``journal.py``): the rules are
``acl.judge``'s. The owner and the DACL come from ``GetNamedSecurityInfoW``
(SE_FILE_OBJECT); the user running the client from the process token
(``TokenUser``), trusted as owner only while the process is elevated
(``elevation.is_elevated``). A new directory is made with
``CreateDirectoryW`` and the security descriptor that
``ConvertStringSecurityDescriptorToSecurityDescriptorW`` builds from
``acl.ADMIN_ONLY_SDDL``, so it never inherits %ProgramData%'s "Users may
create files" for a moment. Every declaration is checked against the
mingw-w64 headers (``tests/winlayout.py``).

Windows only: importing this module elsewhere raises ``ImportError``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Final

from lanparty.client.windows import _decl_advapi32, _decl_kernel32, acl, elevation
from lanparty.client.windows._decl_kernel32 import wide_string
from lanparty.errors import HostNetworkError

if sys.platform != "win32":
    raise ImportError(
        f"lanparty.client.windows.file_security needs Windows; this is {sys.platform}"
    )

__all__ = [
    "current_user_sid",
    "make_admin_only_directory",
    "owner_and_dacl",
    "write_access_problem",
]

_ADVAPI: Final = _decl_advapi32.CONSTANTS
_KERNEL: Final = _decl_kernel32.CONSTANTS


@functools.cache
def _advapi32() -> Any:
    return _decl_advapi32.ffi.dlopen("advapi32.dll")


@functools.cache
def _kernel32() -> Any:
    return _decl_kernel32.ffi.dlopen("kernel32.dll")


def _free(memory: Any) -> None:
    """``LocalFree`` of what advapi32 allocated (a security descriptor)."""
    _kernel32().LocalFree(_decl_kernel32.ffi.cast("void *", memory))


def _sid_at(pointer: Any) -> str:
    ffi = _decl_advapi32.ffi
    start = ffi.cast("uint8_t *", pointer)
    header = bytes(ffi.buffer(start, ffi.offsetof("SID", "SubAuthority")))
    return acl.sid_string(bytes(ffi.buffer(start, acl.sid_length(header))))


def owner_and_dacl(path: Path) -> tuple[str, list[acl.Ace] | None]:
    """The owner's SID and the DACL of ``path`` (None: no DACL at all)."""
    ffi = _decl_advapi32.ffi
    owner = ffi.new("void **")
    dacl = ffi.new("ACL **")
    descriptor = ffi.new("void **")
    name = wide_string(str(path))
    code = _advapi32().GetNamedSecurityInfoW(
        name,
        _ADVAPI["SE_FILE_OBJECT"],
        _ADVAPI["OWNER_SECURITY_INFORMATION"] | _ADVAPI["DACL_SECURITY_INFORMATION"],
        owner,
        ffi.NULL,
        dacl,
        ffi.NULL,
        descriptor,
    )
    if code != 0:
        _, reason = ffi.getwinerror(code)
        raise HostNetworkError(f"cannot read who may change {path}: {reason} (error {code})")
    try:
        entries = None
        if dacl[0] != ffi.NULL:
            size = int(dacl[0].AclSize)
            entries = acl.parse_acl(bytes(ffi.buffer(ffi.cast("uint8_t *", dacl[0]), size)))
        return _sid_at(owner[0]), entries
    except ValueError as exc:
        raise HostNetworkError(f"cannot read who may change {path}: {exc}") from exc
    finally:
        _free(descriptor[0])


def current_user_sid() -> str:
    """The SID of the user this process runs as (``TokenUser``)."""
    ffi = _decl_advapi32.ffi
    token = ffi.new("HANDLE *")
    process = ffi.cast("HANDLE", _kernel32().GetCurrentProcess())
    if not _advapi32().OpenProcessToken(process, _ADVAPI["TOKEN_QUERY"], token):
        raise _token_error(ffi.getwinerror())
    try:
        size = ffi.new("uint32_t *")
        _advapi32().GetTokenInformation(token[0], _ADVAPI["TokenUser"], ffi.NULL, 0, size)
        buffer = ffi.new("uint8_t[]", max(int(size[0]), ffi.sizeof("TOKEN_USER")))
        if not _advapi32().GetTokenInformation(
            token[0], _ADVAPI["TokenUser"], buffer, len(buffer), size
        ):
            raise _token_error(ffi.getwinerror())
        return _sid_at(ffi.cast("TOKEN_USER *", buffer).User.Sid)
    finally:
        _kernel32().CloseHandle(_decl_kernel32.ffi.cast("HANDLE", token[0]))


def _token_error(error: tuple[int, str]) -> HostNetworkError:
    code, reason = error
    return HostNetworkError(f"cannot tell which user runs lanparty-client: {reason} (error {code})")


def write_access_problem(path: Path) -> str | None:
    """What lets someone other than administrators change ``path`` (``acl.judge``); None:
    nothing does."""
    owner, dacl = owner_and_dacl(path)
    user = current_user_sid() if elevation.is_elevated() else None
    return acl.judge(owner, dacl, user=user)


def make_admin_only_directory(directory: Path) -> bool:
    """Make ``directory`` (its parents as usual) with ``acl.ADMIN_ONLY_SDDL``; returns
    False when it was there already (its security is then the caller's to check)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    advapi = _decl_advapi32.ffi
    kernel = _decl_kernel32.ffi
    descriptor = advapi.new("void **")
    if not _advapi32().ConvertStringSecurityDescriptorToSecurityDescriptorW(
        wide_string(acl.ADMIN_ONLY_SDDL), _ADVAPI["SDDL_REVISION_1"], descriptor, advapi.NULL
    ):
        code, reason = advapi.getwinerror()
        raise HostNetworkError(
            f"cannot build the security of {directory} ({acl.ADMIN_ONLY_SDDL}): {reason} "
            f"(error {code})"
        )
    try:
        attributes = kernel.new("SECURITY_ATTRIBUTES *")
        attributes.nLength = kernel.sizeof("SECURITY_ATTRIBUTES")
        attributes.lpSecurityDescriptor = kernel.cast("void *", descriptor[0])
        attributes.bInheritHandle = 0
        if _kernel32().CreateDirectoryW(wide_string(str(directory)), attributes):
            return True
        code, reason = kernel.getwinerror()
        if code == _KERNEL["ERROR_ALREADY_EXISTS"]:
            return False
        raise HostNetworkError(f"cannot create the directory {directory}: {reason} (error {code})")
    finally:
        _free(descriptor[0])
