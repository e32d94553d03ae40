"""Finding the TAP-Windows6 adapters in the registry, and choosing the one to use.

Pure logic over a small ``RegistryReader`` (the real one, over advapi32, is
``registry.WindowsRegistry``, Windows only; tests use a dictionary), so this
module imports on any OS. Where things are (windows-facts 1.2):

- every network adapter has a subkey ``0000``, ``0001``, ... of the adapter
  class key; a TAP-Windows6 adapter's has ``ComponentId`` ``tap0901`` or
  ``root\\tap0901`` (any case) and ``NetCfgInstanceId``, its GUID in braces;
  some subkeys (``Properties``) cannot be read by a normal user and are
  skipped, as OpenVPN does;
- its connection name (what Control Panel > Network Connections shows, and
  what ``--tap`` takes) is ``Name`` under the Network key's
  ``{GUID}\\Connection``;
- its device is ``\\\\.\\Global\\{GUID}.tap``;
- ``NetworkAddress`` in its class subkey is the MAC the driver takes when
  the adapter starts (windows-facts 1.4), set by ``set-adapter-mac``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Final, Protocol

import attrs

from lanparty.errors import ConfigError, HostNetworkError
from lanparty.proto.mac import format_mac

__all__ = [
    "ADAPTER_CLASS_KEY",
    "NETWORK_CONNECTIONS_KEY",
    "TAP_COMPONENT_IDS",
    "TAP_DRIVER_DOWNLOAD",
    "RegistryAccessError",
    "RegistryEditor",
    "RegistryReader",
    "TapAdapter",
    "adapters_to_try",
    "find_tap_adapters",
    "format_network_address",
    "parse_network_address",
]

_NETWORK_ADAPTER_CLASS: Final = "{4D36E972-E325-11CE-BFC1-08002BE10318}"
ADAPTER_CLASS_KEY: Final = "SYSTEM\\CurrentControlSet\\Control\\Class\\" + _NETWORK_ADAPTER_CLASS
NETWORK_CONNECTIONS_KEY: Final = (
    "SYSTEM\\CurrentControlSet\\Control\\Network\\" + _NETWORK_ADAPTER_CLASS
)
TAP_COMPONENT_IDS: Final = frozenset({"tap0901", "root\\tap0901"})
# USERMODEDEVICEDIR and TAP_WIN_SUFFIX of TAP6 src/tap-windows.h.
_DEVICE_DIRECTORY: Final = "\\\\.\\Global\\"
_DEVICE_SUFFIX: Final = ".tap"
TAP_DRIVER_DOWNLOAD: Final = (
    "install OpenVPN's TAP-Windows6 driver: the tap-windows6 installer from "
    "https://github.com/OpenVPN/tap-windows6/releases, or the OpenVPN installer from "
    'https://openvpn.net/community-downloads/ with its "TAP-Windows" (TAP Virtual '
    'Ethernet Adapter) component chosen under "Customize"'
)
_NETWORK_ADDRESS_SEPARATORS: Final = re.compile("[-:]")
_NETWORK_ADDRESS: Final = re.compile("[0-9A-Fa-f]{12}")


class RegistryAccessError(Exception):
    """A registry key or value exists but cannot be opened or read (access denied, ...)."""

    def __init__(self, path: str, winerror: int, reason: str) -> None:
        super().__init__(f"HKLM\\{path}: {reason} (error {winerror})")
        self.path = path
        self.winerror = winerror
        self.reason = reason


class RegistryReader(Protocol):
    """Read-only access to ``HKEY_LOCAL_MACHINE``; paths are relative to it."""

    def subkey_names(self, path: str) -> list[str]:
        """The names of the key's subkeys; ``RegistryAccessError`` if it cannot be listed."""
        ...

    def read_string(self, path: str, name: str) -> str | None:
        """A ``REG_SZ`` value; None when the key or value does not exist or is no string.

        ``RegistryAccessError`` when the key cannot be opened or the value read.
        """
        ...


class RegistryEditor(RegistryReader, Protocol):
    def write_string(self, path: str, name: str, value: str) -> None:
        """Set a ``REG_SZ`` value of an existing key; ``RegistryAccessError`` when refused."""
        ...


@attrs.frozen
class TapAdapter:
    """One installed TAP-Windows6 adapter, as the registry describes it."""

    instance_id: str
    """``NetCfgInstanceId``, braces included, as the registry spells it."""
    guid: uuid.UUID
    name: str
    """The connection name (Network Connections); the instance id when it has none."""
    description: str
    """``DriverDesc``: how Device Manager lists it (e.g. "TAP-Windows Adapter V9")."""
    class_subkey: str
    """Its subkey of the adapter class key, e.g. ``0007``."""
    network_address: bytes | None
    """The MAC in its ``NetworkAddress`` value, if set and well formed."""

    @property
    def device_path(self) -> str:
        r"""``\\.\Global\{GUID}.tap``, the path ``CreateFileW`` opens."""
        return f"{_DEVICE_DIRECTORY}{self.instance_id}{_DEVICE_SUFFIX}"

    @property
    def class_key(self) -> str:
        """The registry key (under HKLM) holding its settings, ``NetworkAddress`` among them."""
        return f"{ADAPTER_CLASS_KEY}\\{self.class_subkey}"

    def matches(self, requested: str) -> bool:
        """Whether ``--tap requested`` means this adapter: its name (any case) or its GUID."""
        if requested.strip().casefold() == self.name.casefold():
            return True
        try:
            return uuid.UUID(requested.strip()) == self.guid
        except ValueError:
            return False


def find_tap_adapters(registry: RegistryReader) -> list[TapAdapter]:
    """Every TAP-Windows6 adapter in the registry, in class-subkey order.

    Subkeys that cannot be read, or are not TAP adapters, are skipped.
    ``HostNetworkError`` when the adapter class key itself cannot be listed.
    """
    try:
        subkeys = registry.subkey_names(ADAPTER_CLASS_KEY)
    except RegistryAccessError as exc:
        raise HostNetworkError(
            f"cannot list the network adapters in the registry ({exc}); lanparty looks for "
            "its TAP-Windows adapter there"
        ) from exc
    adapters = []
    for subkey in sorted(subkeys):
        adapter = _read_adapter(registry, subkey)
        if adapter is not None:
            adapters.append(adapter)
    return adapters


def _read_adapter(registry: RegistryReader, subkey: str) -> TapAdapter | None:
    path = f"{ADAPTER_CLASS_KEY}\\{subkey}"
    component_id = _read_or_none(registry, path, "ComponentId")
    if component_id is None or component_id.strip().casefold() not in TAP_COMPONENT_IDS:
        return None
    instance_id = _read_or_none(registry, path, "NetCfgInstanceId")
    if instance_id is None:
        return None
    instance_id = instance_id.strip()
    try:
        guid = uuid.UUID(instance_id)
    except ValueError:
        return None
    connection = f"{NETWORK_CONNECTIONS_KEY}\\{instance_id}\\Connection"
    name = _read_or_none(registry, connection, "Name")
    address = _read_or_none(registry, path, "NetworkAddress")
    return TapAdapter(
        instance_id=instance_id,
        guid=guid,
        name=name.strip() if name and name.strip() else instance_id,
        description=_read_or_none(registry, path, "DriverDesc") or "TAP-Windows Adapter V9",
        class_subkey=subkey,
        network_address=None if address is None else parse_network_address(address),
    )


def _read_or_none(registry: RegistryReader, path: str, name: str) -> str | None:
    try:
        return registry.read_string(path, name)
    except RegistryAccessError:
        return None


def adapters_to_try(
    adapters: Sequence[TapAdapter], requested: str | None, *, mac: bytes | None
) -> list[TapAdapter]:
    """The adapters to open, in order, for ``--tap requested`` (None: not given).

    - ``requested``: that adapter, by connection name or GUID, alone;
    - not given, one adapter: that one;
    - not given, several: those whose ``NetworkAddress`` is ``mac`` (this
      PC's identity, set there by ``set-adapter-mac``); the caller skips one
      in use by another program and tries the next. None of them, or
      ``mac`` None: the player must choose.

    ``ConfigError`` saying what to do when there is nothing to try.
    """
    if not adapters:
        raise ConfigError(
            f"no TAP-Windows adapter is installed; lanparty needs one. To {TAP_DRIVER_DOWNLOAD}; "
            "then run lanparty-client again"
        )
    names = _names(adapters)
    if requested is not None:
        chosen = [adapter for adapter in adapters if adapter.matches(requested)]
        if not chosen:
            raise ConfigError(
                f'there is no TAP-Windows adapter called "{requested}"; the TAP-Windows '
                f"adapters here are {names}. Give --tap one of those names (Control Panel > "
                "Network Connections shows them)"
            )
        return chosen[:1]
    if len(adapters) == 1:
        return list(adapters)
    if mac is not None:
        ours = [adapter for adapter in adapters if adapter.network_address == mac]
        if ours:
            return ours
    return _must_choose(adapters, names, mac)


def _must_choose(adapters: Sequence[TapAdapter], names: str, mac: bytes | None) -> list[TapAdapter]:
    mac_clause = "" if mac is None else f", none of them set to this PC's MAC {format_mac(mac)},"
    raise ConfigError(
        f"there are {len(adapters)} TAP-Windows adapters here ({names}){mac_clause} and "
        f'lanparty does not guess which one is free for it: choose one with --tap "NAME", '
        f'e.g. --tap "{adapters[0].name}"'
    )


def _names(adapters: Sequence[TapAdapter]) -> str:
    return ", ".join(f'"{adapter.name}"' for adapter in adapters)


def format_network_address(mac: bytes) -> str:
    """The ``NetworkAddress`` form of a MAC: 12 upper-case hex digits, no separators."""
    format_mac(mac)  # raises on a wrong length
    return mac.hex().upper()


def parse_network_address(text: str) -> bytes | None:
    """A ``NetworkAddress`` value as 6 bytes; None when it is not a MAC.

    Dashes and colons are accepted (ZeroTier writes dashes, windows-facts 1.4).
    """
    digits = _NETWORK_ADDRESS_SEPARATORS.sub("", text.strip())
    if _NETWORK_ADDRESS.fullmatch(digits) is None:
        return None
    return bytes.fromhex(digits)
