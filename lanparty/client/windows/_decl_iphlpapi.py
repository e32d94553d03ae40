"""cffi (ABI mode) declarations of the iphlpapi.dll calls behind the Windows guards.

Pure declarations: this module imports on any OS, so that the layout test
(``tests/winlayout.py``) checks them against the mingw-w64 headers on Linux
and ``routes.py`` fills and reads these structs in unit tests. Only
``iphlpapi.py`` opens the DLL (Windows only).

The layouts are the x64 ones of windows-facts 2.2, written with fixed-width
types so that cffi on Linux x86-64 computes the same sizes and offsets.
Left out, on purpose:

- ``NET_LUID.Info`` (24/24/16 bit-fields over ``Value``): the LUID is used
  whole, as ``Value`` (windows-facts 2.2 gives the decoding if ever needed);
- ``SOCKADDR_IN6``'s ``sin6_scope_struct`` (a union member beside
  ``sin6_scope_id``), ``SCOPE_ID``'s bit-fields and ``LARGE_INTEGER``'s
  halves: the whole 32- or 64-bit value only;
- ``NL_INTERFACE_OFFLOAD_ROD`` (eight 1-bit fields): one ``uint8_t``.

Enums (``MIB_NOTIFICATION_TYPE``, ``NL_ROUTER_DISCOVERY_BEHAVIOR``, ...)
are ``int32_t``, ``BOOLEAN`` is ``uint8_t`` and ``HANDLE`` is ``void *``.

The tables end in ``Table[1]`` as the header has it (``ANY_SIZE``), so that
their sizes match the header's too; rows past the first are read through a
pointer to the first (``routes.table_rows``), which cffi does not
bounds-check (windows-facts 3.2).
"""

from __future__ import annotations

from typing import Final

import cffi  # type: ignore[import-untyped]

CDEF: Final = """
typedef union _NET_LUID_LH {
    uint64_t Value;
} NET_LUID;

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

typedef struct in_addr {
    union {
        struct { uint8_t s_b1, s_b2, s_b3, s_b4; } S_un_b;
        struct { uint16_t s_w1, s_w2; } S_un_w;
        uint32_t S_addr;
    } S_un;
} IN_ADDR;

typedef struct in6_addr {
    union {
        uint8_t Byte[16];
        uint16_t Word[8];
    } u;
} IN6_ADDR;

typedef struct sockaddr_in {
    uint16_t sin_family;
    uint16_t sin_port;
    IN_ADDR sin_addr;
    uint8_t sin_zero[8];
} SOCKADDR_IN;

typedef struct sockaddr_in6 {
    uint16_t sin6_family;
    uint16_t sin6_port;
    uint32_t sin6_flowinfo;
    IN6_ADDR sin6_addr;
    uint32_t sin6_scope_id;
} SOCKADDR_IN6;

typedef union _SOCKADDR_INET {
    SOCKADDR_IN Ipv4;
    SOCKADDR_IN6 Ipv6;
    uint16_t si_family;
} SOCKADDR_INET;

typedef struct _IP_ADDRESS_PREFIX {
    SOCKADDR_INET Prefix;
    uint8_t PrefixLength;
} IP_ADDRESS_PREFIX;

typedef struct _MIB_IPFORWARD_ROW2 {
    NET_LUID InterfaceLuid;
    uint32_t InterfaceIndex;
    IP_ADDRESS_PREFIX DestinationPrefix;
    SOCKADDR_INET NextHop;
    uint8_t SitePrefixLength;
    uint32_t ValidLifetime;
    uint32_t PreferredLifetime;
    uint32_t Metric;
    int32_t Protocol;
    uint8_t Loopback;
    uint8_t AutoconfigureAddress;
    uint8_t Publish;
    uint8_t Immortal;
    uint32_t Age;
    int32_t Origin;
} MIB_IPFORWARD_ROW2;

typedef struct _MIB_IPFORWARD_TABLE2 {
    uint32_t NumEntries;
    MIB_IPFORWARD_ROW2 Table[1];
} MIB_IPFORWARD_TABLE2;

typedef struct _MIB_IPINTERFACE_ROW {
    uint16_t Family;
    NET_LUID InterfaceLuid;
    uint32_t InterfaceIndex;
    uint32_t MaxReassemblySize;
    uint64_t InterfaceIdentifier;
    uint32_t MinRouterAdvertisementInterval;
    uint32_t MaxRouterAdvertisementInterval;
    uint8_t AdvertisingEnabled;
    uint8_t ForwardingEnabled;
    uint8_t WeakHostSend;
    uint8_t WeakHostReceive;
    uint8_t UseAutomaticMetric;
    uint8_t UseNeighborUnreachabilityDetection;
    uint8_t ManagedAddressConfigurationSupported;
    uint8_t OtherStatefulConfigurationSupported;
    uint8_t AdvertiseDefaultRoute;
    int32_t RouterDiscoveryBehavior;
    uint32_t DadTransmits;
    uint32_t BaseReachableTime;
    uint32_t RetransmitTime;
    uint32_t PathMtuDiscoveryTimeout;
    int32_t LinkLocalAddressBehavior;
    uint32_t LinkLocalAddressTimeout;
    uint32_t ZoneIndices[16];
    uint32_t SitePrefixLength;
    uint32_t Metric;
    uint32_t NlMtu;
    uint8_t Connected;
    uint8_t SupportsWakeUpPatterns;
    uint8_t SupportsNeighborDiscovery;
    uint8_t SupportsRouterDiscovery;
    uint32_t ReachableTime;
    uint8_t TransmitOffload;
    uint8_t ReceiveOffload;
    uint8_t DisableDefaultRoutes;
} MIB_IPINTERFACE_ROW;

typedef struct _MIB_UNICASTIPADDRESS_ROW {
    SOCKADDR_INET Address;
    NET_LUID InterfaceLuid;
    uint32_t InterfaceIndex;
    int32_t PrefixOrigin;
    int32_t SuffixOrigin;
    uint32_t ValidLifetime;
    uint32_t PreferredLifetime;
    uint8_t OnLinkPrefixLength;
    uint8_t SkipAsSource;
    int32_t DadState;
    uint32_t ScopeId;
    int64_t CreationTimeStamp;
} MIB_UNICASTIPADDRESS_ROW;

typedef struct _MIB_UNICASTIPADDRESS_TABLE {
    uint32_t NumEntries;
    MIB_UNICASTIPADDRESS_ROW Table[1];
} MIB_UNICASTIPADDRESS_TABLE;

uint32_t WINAPI ConvertInterfaceGuidToLuid(const GUID *InterfaceGuid, NET_LUID *InterfaceLuid);
uint32_t WINAPI ConvertInterfaceLuidToIndex(
    const NET_LUID *InterfaceLuid, uint32_t *InterfaceIndex);
uint32_t WINAPI ConvertInterfaceIndexToLuid(uint32_t InterfaceIndex, NET_LUID *InterfaceLuid);
uint32_t WINAPI ConvertInterfaceLuidToGuid(const NET_LUID *InterfaceLuid, GUID *InterfaceGuid);

void WINAPI InitializeIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
uint32_t WINAPI GetIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
uint32_t WINAPI SetIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);

uint32_t WINAPI GetIpForwardTable2(uint16_t Family, MIB_IPFORWARD_TABLE2 **Table);
void WINAPI InitializeIpForwardEntry(MIB_IPFORWARD_ROW2 *Row);
uint32_t WINAPI CreateIpForwardEntry2(const MIB_IPFORWARD_ROW2 *Row);
uint32_t WINAPI DeleteIpForwardEntry2(const MIB_IPFORWARD_ROW2 *Row);
uint32_t WINAPI GetBestRoute2(
    NET_LUID *InterfaceLuid,
    uint32_t InterfaceIndex,
    const SOCKADDR_INET *SourceAddress,
    const SOCKADDR_INET *DestinationAddress,
    uint32_t AddressSortOptions,
    MIB_IPFORWARD_ROW2 *BestRoute,
    SOCKADDR_INET *BestSourceAddress);

uint32_t WINAPI GetUnicastIpAddressTable(uint16_t Family, MIB_UNICASTIPADDRESS_TABLE **Table);

typedef void (WINAPI *PIPFORWARD_CHANGE_CALLBACK)(
    void *CallerContext, MIB_IPFORWARD_ROW2 *Row, int32_t NotificationType);
uint32_t WINAPI NotifyRouteChange2(
    uint16_t AddressFamily,
    PIPFORWARD_CHANGE_CALLBACK Callback,
    void *CallerContext,
    uint8_t InitialNotification,
    void **NotificationHandle);
uint32_t WINAPI CancelMibChangeNotify2(void *NotificationHandle);

void WINAPI FreeMibTable(void *Memory);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

HEADERS: Final = ("winsock2.h", "ws2ipdef.h", "windows.h", "iphlpapi.h")
STRUCTS: Final = (
    "NET_LUID",
    "GUID",
    "IN_ADDR",
    "IN6_ADDR",
    "SOCKADDR_IN",
    "SOCKADDR_IN6",
    "SOCKADDR_INET",
    "IP_ADDRESS_PREFIX",
    "MIB_IPFORWARD_ROW2",
    "MIB_IPFORWARD_TABLE2",
    "MIB_IPINTERFACE_ROW",
    "MIB_UNICASTIPADDRESS_ROW",
    "MIB_UNICASTIPADDRESS_TABLE",
    "PIPFORWARD_CHANGE_CALLBACK",
)

CONSTANTS: Final = {
    "AF_UNSPEC": 0,
    "AF_INET": 2,
    "AF_INET6": 23,  # not Linux's 10 (windows-facts 2.1)
    "NO_ERROR": 0,
    "ERROR_FILE_NOT_FOUND": 2,
    "ERROR_ACCESS_DENIED": 5,
    "ERROR_NOT_SUPPORTED": 50,
    "ERROR_INVALID_PARAMETER": 87,
    "ERROR_NOT_FOUND": 1168,
    "ERROR_NETWORK_UNREACHABLE": 1231,
    "ERROR_OBJECT_ALREADY_EXISTS": 5010,
    "MIB_IPPROTO_NETMGMT": 3,
    "IpDadStatePreferred": 4,
    "MibParameterNotification": 0,
    "MibAddInstance": 1,
    "MibDeleteInstance": 2,
    "MibInitialNotification": 3,
    "RouterDiscoveryDisabled": 0,
    "RouterDiscoveryEnabled": 1,
    "RouterDiscoveryDhcp": 2,
}
