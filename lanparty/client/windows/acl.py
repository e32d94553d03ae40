"""Who may change a file or directory on Windows: its owner and access list, judged.

    owner, dacl = file_security.owner_and_dacl(path)      # Windows only
    problem = judge(owner, dacl, user=current_user)         # None: only administrators

The journal of host-network changes is replayed by an elevated client, so
nobody else may write it or its directory (``journal.py``). On Windows
that is the object's owner and its DACL (discretionary access list), read
with ``GetNamedSecurityInfoW`` and parsed here from bytes at the offsets of
the checked declarations (``_decl_advapi32``: ``ACL``, ``ACE_HEADER``,
``ACCESS_ALLOWED_ACE``, ``SID``; MS-DTYP 2.4.2 and 2.4.4 give the same).
Pure: importable and tested anywhere.

The rules (``judge``):

- The owner is the Administrators group, SYSTEM, or the elevated user
  running the client (``user``): an owner may always rewrite the access
  list, so anyone else could let themselves in later. (That user's own
  unelevated programs carry the same SID: User Account Control is no
  security boundary, Microsoft says. What lanparty makes is owned by
  Administrators.)
- No allowing entry grants a right to change anything (``WRITE_RIGHTS``:
  write or append data, add files or subdirectories, delete children,
  write attributes, delete, change the access list or the owner, generic
  write or all) to anyone but those, CREATOR OWNER and OWNER RIGHTS (both
  stand for the owner) and TrustedInstaller. Entries that only pass to
  new files and subdirectories (inherit-only) count too: the journal is a
  new file there. Denying entries take rights away: they are not judged.
- No access list at all (a NULL DACL) lets everyone do everything.
- An allowing entry of a kind a file system does not use (object, or
  compound) is not understood, so not trusted.

What a new journal directory gets instead (``ADMIN_ONLY_SDDL``): owner
Administrators, a protected list (nothing inherited from %ProgramData%,
whose Users may create files and folders) of full control for
Administrators and SYSTEM, passed to the files and folders in it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

import attrs

from lanparty.client.windows._decl_advapi32 import CONSTANTS, ffi

__all__ = [
    "ADMINISTRATORS",
    "ADMIN_ONLY_SDDL",
    "SYSTEM",
    "WRITE_RIGHTS",
    "Ace",
    "describe_sid",
    "judge",
    "parse_acl",
    "sid_length",
    "sid_string",
]

_NT = 5
_CREATOR = 3
ADMINISTRATORS: Final = (
    f"S-1-{_NT}-{CONSTANTS['SECURITY_BUILTIN_DOMAIN_RID']}-{CONSTANTS['DOMAIN_ALIAS_RID_ADMINS']}"
)
SYSTEM: Final = f"S-1-{_NT}-{CONSTANTS['SECURITY_LOCAL_SYSTEM_RID']}"
USERS: Final = (
    f"S-1-{_NT}-{CONSTANTS['SECURITY_BUILTIN_DOMAIN_RID']}-{CONSTANTS['DOMAIN_ALIAS_RID_USERS']}"
)
CREATOR_OWNER: Final = f"S-1-{_CREATOR}-{CONSTANTS['SECURITY_CREATOR_OWNER_RID']}"
OWNER_RIGHTS: Final = "S-1-3-4"
TRUSTED_INSTALLER: Final = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
ADMIN_ONLY_SDDL: Final = "O:BAD:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)"
"""A new journal directory's security descriptor (SDDL: owner BA; protected DACL)."""

WRITE_RIGHTS: Final = (
    CONSTANTS["FILE_WRITE_DATA"]
    | CONSTANTS["FILE_APPEND_DATA"]
    | CONSTANTS["FILE_WRITE_EA"]
    | CONSTANTS["FILE_DELETE_CHILD"]
    | CONSTANTS["FILE_WRITE_ATTRIBUTES"]
    | CONSTANTS["DELETE"]
    | CONSTANTS["WRITE_DAC"]
    | CONSTANTS["WRITE_OWNER"]
    | CONSTANTS["GENERIC_ALL"]
    | CONSTANTS["GENERIC_WRITE"]
)

_ALLOWING: Final = frozenset(
    {CONSTANTS["ACCESS_ALLOWED_ACE_TYPE"], CONSTANTS["ACCESS_ALLOWED_CALLBACK_ACE_TYPE"]}
)
_DENYING: Final = frozenset(
    {
        CONSTANTS["ACCESS_DENIED_ACE_TYPE"],
        CONSTANTS["ACCESS_DENIED_OBJECT_ACE_TYPE"],
        CONSTANTS["ACCESS_DENIED_CALLBACK_ACE_TYPE"],
        CONSTANTS["ACCESS_DENIED_CALLBACK_OBJECT_ACE_TYPE"],
    }
)
_WELL_KNOWN: Final = {
    "S-1-1-0": "Everyone",
    "S-1-5-11": "Authenticated Users",
    "S-1-5-4": "INTERACTIVE",
    USERS: "Users",
    ADMINISTRATORS: "Administrators",
    SYSTEM: "SYSTEM",
    CREATOR_OWNER: "CREATOR OWNER",
    "S-1-3-1": "CREATOR GROUP",
    OWNER_RIGHTS: "OWNER RIGHTS",
    TRUSTED_INSTALLER: "TrustedInstaller",
}

_SID_HEADER_BYTES: Final = int(ffi.offsetof("SID", "SubAuthority"))
_SUB_AUTHORITY_BYTES: Final = int(ffi.sizeof("uint32_t"))
_ACL_HEADER_BYTES: Final = int(ffi.sizeof("ACL"))
_ACL_SIZE_AT: Final = int(ffi.offsetof("ACL", "AclSize"))
_ACE_HEADER_BYTES: Final = int(ffi.sizeof("ACE_HEADER"))
_MASK_AT: Final = int(ffi.offsetof("ACCESS_ALLOWED_ACE", "Mask"))
_SID_AT: Final = int(ffi.offsetof("ACCESS_ALLOWED_ACE", "SidStart"))


@attrs.frozen
class Ace:
    """One entry of an access list."""

    kind: int
    """``AceType`` (``ACCESS_ALLOWED_ACE_TYPE``, ...)."""
    flags: int
    """``AceFlags`` (inheritance)."""
    mask: int
    sid: str | None
    """Whom it is for; None for the kinds whose SID is not at ``SidStart`` (object entries)."""


def sid_length(header: bytes) -> int:
    """The length of the SID that starts with ``header`` (its first 8 bytes at least)."""
    if len(header) < _SID_HEADER_BYTES:
        raise ValueError("a SID is at least 8 bytes long")
    return _SID_HEADER_BYTES + header[1] * _SUB_AUTHORITY_BYTES


def sid_string(data: bytes) -> str:
    """The string form (``S-1-5-32-544``) of the binary SID at the start of ``data``."""
    length = sid_length(data)
    if data[0] != CONSTANTS["SID_REVISION"] or len(data) < length:
        raise ValueError(f"not a SID: {data[:length].hex()}")
    authority = int.from_bytes(data[2:_SID_HEADER_BYTES], "big")
    count = data[1]
    rids = struct.unpack_from(f"<{count}I", data, _SID_HEADER_BYTES)
    return "-".join(["S", str(data[0]), str(authority), *map(str, rids)])


def parse_acl(data: bytes) -> list[Ace]:
    """The entries of the ACL at the start of ``data`` (``ValueError`` if it is malformed)."""
    if len(data) < _ACL_HEADER_BYTES:
        raise ValueError("an ACL is at least 8 bytes long")
    size, count = struct.unpack_from("<HH", data, _ACL_SIZE_AT)
    if size > len(data):
        raise ValueError(f"the ACL says it has {size} bytes, {len(data)} are there")
    entries: list[Ace] = []
    at = _ACL_HEADER_BYTES
    for _ in range(count):
        if at + _ACE_HEADER_BYTES > size:
            raise ValueError("an ACL entry runs past its list")
        kind, flags, ace_size = struct.unpack_from("<BBH", data, at)
        if ace_size < _SID_AT or at + ace_size > size:
            raise ValueError(f"an ACL entry of {ace_size} bytes does not fit")
        (mask,) = struct.unpack_from("<I", data, at + _MASK_AT)
        sid = None
        if kind in _ALLOWING or kind == CONSTANTS["ACCESS_DENIED_ACE_TYPE"]:
            sid = sid_string(data[at + _SID_AT : at + ace_size])
        entries.append(Ace(kind, flags, mask, sid))
        at += ace_size
    return entries


def describe_sid(sid: str) -> str:
    """A SID with the name a player knows, where it is a well-known one."""
    name = _WELL_KNOWN.get(sid)
    return f"{name} ({sid})" if name else sid


def judge(owner: str, dacl: Iterable[Ace] | None, *, user: str | None) -> str | None:
    """What lets someone other than administrators change the object; None: nothing.

    ``user``: the SID of the elevated user running the client (None when
    the process is not elevated: then only Administrators and SYSTEM).
    """
    trusted = {ADMINISTRATORS, SYSTEM} | ({user} if user else set())
    if owner not in trusted:
        return f"it belongs to {describe_sid(owner)}, not to the Administrators group"
    if dacl is None:
        return "it has no access list at all, which lets everyone change it"
    also_trusted = trusted | {CREATOR_OWNER, OWNER_RIGHTS, TRUSTED_INSTALLER}
    for ace in dacl:
        if ace.kind in _DENYING:
            continue
        if ace.kind not in _ALLOWING or ace.sid is None:
            return f"its access list has an entry lanparty cannot judge (type {ace.kind:#x})"
        if ace.sid not in also_trusted and ace.mask & WRITE_RIGHTS:
            return f"its access list lets {describe_sid(ace.sid)} change it (rights {ace.mask:#x})"
    return None
