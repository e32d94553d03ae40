"""The Linux back end: a TAP device on /dev/net/tun and the host's routes over netlink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager

from lanparty.client.hostnet import HostNetwork
from lanparty.client.linux.dhcp import LinuxTapAddress
from lanparty.client.linux.hostnet import LinuxHostNetwork
from lanparty.client.linux.tap import DEFAULT_TAP_NAME, TapDevice
from lanparty.client.platform import TapAddressKeeper, VirtualAdapter


class LinuxPlatform:
    default_adapter_name: str | None = DEFAULT_TAP_NAME

    def ensure_privileges(self, argv: Sequence[str]) -> bool:
        # Root is not the only way (CAP_NET_ADMIN is enough): the TAP and
        # netlink calls say what is missing when they are refused.
        del argv
        return True

    def open_host_network(self) -> AbstractContextManager[HostNetwork]:
        return LinuxHostNetwork()

    @asynccontextmanager
    async def open_adapter(
        self, name: str | None, *, mac: bytes, mtu: int, connect_media: bool = True
    ) -> AsyncIterator[VirtualAdapter]:
        del connect_media  # a new TAP device is up at once (TapDevice.connect_media)
        with TapDevice.open(name or DEFAULT_TAP_NAME, mac=mac, mtu=mtu) as tap:
            yield tap

    def tap_address_keeper(
        self, adapter: VirtualAdapter, *, mac: bytes, use_party_dns: bool, metric: int | None
    ) -> TapAddressKeeper | None:
        return LinuxTapAddress(
            adapter.name, adapter.index, mac, use_party_dns=use_party_dns, metric=metric
        )
