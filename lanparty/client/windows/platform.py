"""The Windows back end (placeholder until TAP-Windows6 and IP Helper support land)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager

from lanparty.client.hostnet import HostNetwork
from lanparty.client.platform import VirtualAdapter
from lanparty.errors import ConfigError


class WindowsPlatform:
    default_adapter_name: str | None = None

    def __init__(self, *, private_network: bool = False) -> None:
        self.private_network = private_network

    def ensure_privileges(self, argv: Sequence[str]) -> bool:
        raise ConfigError("the Windows client is not there yet")

    def open_host_network(self) -> AbstractContextManager[HostNetwork]:
        raise ConfigError("the Windows client is not there yet")

    def open_adapter(
        self, name: str | None, *, mac: bytes, mtu: int
    ) -> AbstractAsyncContextManager[VirtualAdapter]:
        raise ConfigError("the Windows client is not there yet")
