"""TAP-Windows6 adapters found in a fake registry, and the choice of the one to use."""

from __future__ import annotations

import uuid

import pytest

from lanparty.client.windows.adapters import (
    ADAPTER_CLASS_KEY,
    NETWORK_CONNECTIONS_KEY,
    RegistryAccessError,
    TapAdapter,
    adapters_to_try,
    find_tap_adapters,
    format_network_address,
    parse_network_address,
)
from lanparty.errors import ConfigError, HostNetworkError

MAC = bytes.fromhex("02ab12345678")
OTHER_MAC = bytes.fromhex("00ff12345678")
ACCESS_DENIED = 5


class FakeRegistry:
    """``RegistryEditor`` over a dictionary of key path -> values (paths under HKLM)."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, str]] = {}
        self.unreadable: set[str] = set()
        self.read_only: set[str] = set()
        self.writes: list[tuple[str, str, str]] = []

    def add_key(self, path: str, **values: str) -> None:
        self.keys.setdefault(path, {}).update(values)

    def _check(self, path: str) -> None:
        if path in self.unreadable:
            raise RegistryAccessError(path, ACCESS_DENIED, "Access is denied.")

    def subkey_names(self, path: str) -> list[str]:
        self._check(path)
        if path not in self.keys:
            raise RegistryAccessError(path, 2, "The system cannot find the file specified.")
        prefix = path + "\\"
        return list(
            dict.fromkeys(
                key[len(prefix) :].split("\\")[0] for key in self.keys if key.startswith(prefix)
            )
        )

    def read_string(self, path: str, name: str) -> str | None:
        self._check(path)
        return self.keys.get(path, {}).get(name)

    def write_string(self, path: str, name: str, value: str) -> None:
        self._check(path)
        if path in self.read_only:
            raise RegistryAccessError(path, ACCESS_DENIED, "Access is denied.")
        if path not in self.keys:
            raise RegistryAccessError(path, 2, "The system cannot find the file specified.")
        self.keys[path][name] = value
        self.writes.append((path, name, value))


def add_tap_adapter(
    registry: FakeRegistry,
    subkey: str,
    *,
    name: str | None,
    component_id: str = "tap0901",
    guid: uuid.UUID | None = None,
    **values: str,
) -> str:
    """A TAP adapter's class subkey (and connection name, if any); its instance id."""
    instance_id = "{" + str(guid or uuid.uuid4()).upper() + "}"
    registry.add_key(ADAPTER_CLASS_KEY)
    registry.add_key(
        f"{ADAPTER_CLASS_KEY}\\{subkey}",
        ComponentId=component_id,
        NetCfgInstanceId=instance_id,
        DriverDesc="TAP-Windows Adapter V9",
        **values,
    )
    if name is not None:
        registry.add_key(f"{NETWORK_CONNECTIONS_KEY}\\{instance_id}\\Connection", Name=name)
    return instance_id


def tap(name: str, *, network_address: bytes | None = None) -> TapAdapter:
    guid = uuid.uuid4()
    return TapAdapter(
        instance_id="{" + str(guid).upper() + "}",
        guid=guid,
        name=name,
        description="TAP-Windows Adapter V9",
        class_subkey="0001",
        network_address=network_address,
    )


def test_tap_adapters_are_found_by_component_id_in_any_case() -> None:
    registry = FakeRegistry()
    first = add_tap_adapter(registry, "0003", name="LAN party")
    second = add_tap_adapter(registry, "0001", name="OpenVPN TAP", component_id="ROOT\\TAP0901")
    add_tap_adapter(registry, "0000", name="Ethernet", component_id="PCI\\VEN_8086&DEV_15B8")
    add_tap_adapter(registry, "0002", name="WireGuard", component_id="wireguard")
    adapters = find_tap_adapters(registry)
    assert [(a.name, a.instance_id, a.class_subkey) for a in adapters] == [
        ("OpenVPN TAP", second, "0001"),
        ("LAN party", first, "0003"),
    ]
    assert adapters[1].guid == uuid.UUID(first)
    assert adapters[1].description == "TAP-Windows Adapter V9"


def test_unreadable_and_incomplete_subkeys_are_skipped() -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0001", name="LAN party")
    registry.add_key(f"{ADAPTER_CLASS_KEY}\\Properties", ComponentId="tap0901")
    registry.unreadable.add(f"{ADAPTER_CLASS_KEY}\\Properties")
    registry.add_key(f"{ADAPTER_CLASS_KEY}\\0002", ComponentId="tap0901")  # no instance id
    registry.add_key(
        f"{ADAPTER_CLASS_KEY}\\0003", ComponentId="tap0901", NetCfgInstanceId="not-a-guid"
    )
    assert [adapter.name for adapter in find_tap_adapters(registry)] == ["LAN party"]


def test_an_adapter_without_a_connection_name_goes_by_its_guid() -> None:
    registry = FakeRegistry()
    instance_id = add_tap_adapter(registry, "0001", name=None)
    (adapter,) = find_tap_adapters(registry)
    assert adapter.name == instance_id


def test_an_unreadable_connection_name_is_not_fatal() -> None:
    registry = FakeRegistry()
    instance_id = add_tap_adapter(registry, "0001", name="LAN party")
    registry.unreadable.add(f"{NETWORK_CONNECTIONS_KEY}\\{instance_id}\\Connection")
    (adapter,) = find_tap_adapters(registry)
    assert adapter.name == instance_id


def test_an_unreadable_adapter_class_key_is_a_host_network_error() -> None:
    registry = FakeRegistry()
    registry.add_key(ADAPTER_CLASS_KEY)
    registry.unreadable.add(ADAPTER_CLASS_KEY)
    with pytest.raises(HostNetworkError, match="cannot list the network adapters"):
        find_tap_adapters(registry)


def test_the_device_path_and_class_key_come_from_the_registry() -> None:
    registry = FakeRegistry()
    guid = uuid.UUID("5b8f4e5e-2b6d-4c4a-9d7e-0e3f8a1b2c3d")
    add_tap_adapter(registry, "0007", name="LAN party", guid=guid)
    (adapter,) = find_tap_adapters(registry)
    assert adapter.device_path == r"\\.\Global\{5B8F4E5E-2B6D-4C4A-9D7E-0E3F8A1B2C3D}.tap"
    assert adapter.class_key == (
        r"SYSTEM\CurrentControlSet\Control\Class\{4D36E972-E325-11CE-BFC1-08002BE10318}\0007"
    )


def test_the_configured_network_address_is_read() -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0001", name="ours", NetworkAddress="02AB12345678")
    add_tap_adapter(registry, "0002", name="dashes", NetworkAddress="02-ab-12-34-56-78")
    add_tap_adapter(registry, "0003", name="junk", NetworkAddress="hello")
    add_tap_adapter(registry, "0004", name="unset")
    assert [a.network_address for a in find_tap_adapters(registry)] == [MAC, MAC, None, None]


def test_network_address_format() -> None:
    assert format_network_address(MAC) == "02AB12345678"
    assert parse_network_address(format_network_address(MAC)) == MAC
    assert parse_network_address("02:ab:12:34:56:78") == MAC
    assert parse_network_address("02AB1234567") is None
    assert parse_network_address("02AB123456789") is None
    with pytest.raises(ValueError, match="6 bytes"):
        format_network_address(b"\x02\x00")


def test_no_adapter_says_how_to_install_tap_windows6() -> None:
    with pytest.raises(ConfigError) as caught:
        adapters_to_try([], None, mac=MAC)
    message = str(caught.value)
    assert "no TAP-Windows adapter is installed" in message
    assert "https://github.com/OpenVPN/tap-windows6/releases" in message
    assert "TAP-Windows" in message
    assert "https://openvpn.net/community-downloads/" in message


def test_the_only_adapter_is_used_without_tap() -> None:
    only = tap("LAN party")
    assert adapters_to_try([only], None, mac=MAC) == [only]
    assert adapters_to_try([only], None, mac=None) == [only]


@pytest.mark.parametrize("requested", ["OpenVPN TAP", "openvpn tap", " OPENVPN TAP "])
def test_tap_chooses_by_connection_name_in_any_case(requested: str) -> None:
    adapters = [tap("LAN party"), tap("OpenVPN TAP")]
    assert adapters_to_try(adapters, requested, mac=MAC) == [adapters[1]]


def test_tap_also_takes_the_guid_with_or_without_braces() -> None:
    adapters = [tap("LAN party"), tap("OpenVPN TAP")]
    guid = adapters[1].guid
    assert adapters_to_try(adapters, str(guid), mac=MAC) == [adapters[1]]
    assert adapters_to_try(adapters, "{" + str(guid).upper() + "}", mac=MAC) == [adapters[1]]


def test_an_unknown_name_lists_the_adapters_there_are() -> None:
    adapters = [tap("LAN party"), tap("OpenVPN TAP")]
    with pytest.raises(ConfigError) as caught:
        adapters_to_try(adapters, "lanparty0", mac=MAC)
    message = str(caught.value)
    assert 'no TAP-Windows adapter called "lanparty0"' in message
    assert '"LAN party", "OpenVPN TAP"' in message
    assert "--tap" in message


def test_several_adapters_and_none_chosen_lists_them_and_asks_for_tap() -> None:
    adapters = [tap("LAN party"), tap("OpenVPN TAP", network_address=OTHER_MAC)]
    for mac in (MAC, None):
        with pytest.raises(ConfigError) as caught:
            adapters_to_try(adapters, None, mac=mac)
        message = str(caught.value)
        assert "there are 2 TAP-Windows adapters here" in message
        assert '"LAN party", "OpenVPN TAP"' in message
        assert 'choose one with --tap "NAME"' in message


def test_several_adapters_the_ones_set_to_our_mac_are_tried() -> None:
    ours = tap("LAN party", network_address=MAC)
    also_ours = tap("Spare", network_address=MAC)
    adapters = [tap("OpenVPN TAP"), ours, tap("Other", network_address=OTHER_MAC), also_ours]
    assert adapters_to_try(adapters, None, mac=MAC) == [ours, also_ours]
