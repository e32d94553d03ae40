"""cffi (ABI mode) declarations of advapi32.dll: the registry, the process token, file security.

Pure declarations, importable on any OS (see ``_decl_kernel32``).
``registry.py``, ``elevation.py`` and ``file_security.py`` open the DLL
(Windows only). The registry functions and ``GetNamedSecurityInfoW``
return their Win32 error code instead of setting the thread's last error.

The security structs (``ACL``, ``ACE_HEADER``, ``ACCESS_ALLOWED_ACE``,
``SID``) are declared for their layout: ``acl.py`` reads an access list
as bytes at these offsets (``SID`` with one sub-authority, as winnt.h has
it: ``SubAuthority[ANYSIZE_ARRAY]``).
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

typedef struct _SID_AND_ATTRIBUTES {
    void *Sid;
    uint32_t Attributes;
} SID_AND_ATTRIBUTES;

typedef struct _TOKEN_USER {
    SID_AND_ATTRIBUTES User;
} TOKEN_USER;

typedef struct _SID_IDENTIFIER_AUTHORITY {
    uint8_t Value[6];
} SID_IDENTIFIER_AUTHORITY;

typedef struct _SID {
    uint8_t Revision;
    uint8_t SubAuthorityCount;
    SID_IDENTIFIER_AUTHORITY IdentifierAuthority;
    uint32_t SubAuthority[1];
} SID;

typedef struct _ACL {
    uint8_t AclRevision;
    uint8_t Sbz1;
    uint16_t AclSize;
    uint16_t AceCount;
    uint16_t Sbz2;
} ACL;

typedef struct _ACE_HEADER {
    uint8_t AceType;
    uint8_t AceFlags;
    uint16_t AceSize;
} ACE_HEADER;

typedef struct _ACCESS_ALLOWED_ACE {
    ACE_HEADER Header;
    uint32_t Mask;
    uint32_t SidStart;
} ACCESS_ALLOWED_ACE;

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

uint32_t WINAPI GetNamedSecurityInfoW(
    const uint16_t *pObjectName,
    int32_t ObjectType,
    uint32_t SecurityInfo,
    void **ppsidOwner,
    void **ppsidGroup,
    ACL **ppDacl,
    ACL **ppSacl,
    void **ppSecurityDescriptor);
int32_t WINAPI ConvertStringSecurityDescriptorToSecurityDescriptorW(
    const uint16_t *StringSecurityDescriptor,
    uint32_t StringSDRevision,
    void **SecurityDescriptor,
    uint32_t *SecurityDescriptorSize);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

HEADERS: Final = ("windows.h", "aclapi.h", "sddl.h")
STRUCTS: Final = (
    "HKEY",
    "TOKEN_ELEVATION",
    "SID_AND_ATTRIBUTES",
    "TOKEN_USER",
    "SID_IDENTIFIER_AUTHORITY",
    "SID",
    "ACL",
    "ACE_HEADER",
    "ACCESS_ALLOWED_ACE",
)

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
    "TokenUser": 1,
    "TokenElevation": 20,
    # file security (GetNamedSecurityInfoW, SDDL)
    "SE_FILE_OBJECT": 1,
    "OWNER_SECURITY_INFORMATION": 0x1,
    "DACL_SECURITY_INFORMATION": 0x4,
    "SDDL_REVISION_1": 1,
    "SID_REVISION": 1,
    "ACCESS_ALLOWED_ACE_TYPE": 0x0,
    "ACCESS_DENIED_ACE_TYPE": 0x1,
    "ACCESS_ALLOWED_OBJECT_ACE_TYPE": 0x5,
    "ACCESS_DENIED_OBJECT_ACE_TYPE": 0x6,
    "ACCESS_ALLOWED_CALLBACK_ACE_TYPE": 0x9,
    "ACCESS_DENIED_CALLBACK_ACE_TYPE": 0xA,
    "ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE": 0xB,
    "ACCESS_DENIED_CALLBACK_OBJECT_ACE_TYPE": 0xC,
    "OBJECT_INHERIT_ACE": 0x1,
    "CONTAINER_INHERIT_ACE": 0x2,
    "INHERIT_ONLY_ACE": 0x8,
    "INHERITED_ACE": 0x10,
    "FILE_WRITE_DATA": 0x2,
    "FILE_APPEND_DATA": 0x4,
    "FILE_WRITE_EA": 0x10,
    "FILE_DELETE_CHILD": 0x40,
    "FILE_WRITE_ATTRIBUTES": 0x100,
    "DELETE": 0x10000,
    "WRITE_DAC": 0x40000,
    "WRITE_OWNER": 0x80000,
    "GENERIC_ALL": 0x10000000,
    "GENERIC_WRITE": 0x40000000,
    "FILE_ALL_ACCESS": 0x1F01FF,
    "FILE_GENERIC_READ": 0x120089,
    "FILE_GENERIC_EXECUTE": 0x1200A0,
    # the well-known SIDs' relative ids (their authorities, 1 world, 3 creator and 5 NT, are
    # struct initialisers in winnt.h, not constants: MS-DTYP 2.4.2.4 gives them)
    "SECURITY_CREATOR_OWNER_RID": 0,
    "SECURITY_LOCAL_SYSTEM_RID": 18,
    "SECURITY_BUILTIN_DOMAIN_RID": 32,
    "DOMAIN_ALIAS_RID_ADMINS": 544,
    "DOMAIN_ALIAS_RID_USERS": 545,
    "ERROR_INSUFFICIENT_BUFFER": 122,
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
