"""``WindowsPlatform``: privileges, host network and adapter, wired to fakes.

No Windows here: the Windows-only modules refuse to import on Linux (tested
below). To test their logic all the same, ``imported_as_on_windows`` imports
them with ``sys.platform`` saying "win32" for the duration of the import;
nothing in them touches a DLL until called, and the tests replace what
would. Everything that import added to ``sys.modules`` is removed after.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

from lanparty.client.windows.adapters import ADAPTER_CLASS_KEY, TapAdapter
from lanparty.errors import ConfigError
from tests.unit.test_client_windows_adapters import FakeRegistry, add_tap_adapter

WINDOWS_ONLY_MODULES = [
    "lanparty.client.windows.registry",
    "lanparty.client.windows.tap",
    "lanparty.client.windows.elevation",
    "lanparty.client.windows.platform",
]
MAC = bytes.fromhex("02ab12345678")


@contextlib.contextmanager
def imported_as_on_windows(name: str) -> Iterator[types.ModuleType]:
    """Module ``name`` imported as if on Windows; forgotten again on exit.

    Forgotten: the lanparty modules that this import loaded (``name`` and the
    Windows-only modules it imports) leave ``sys.modules`` and their package,
    so that a later import on Linux fails as it should.
    """
    before = set(sys.modules)
    platform = sys.platform
    sys.platform = "win32"
    try:
        module = importlib.import_module(name)
    finally:
        sys.platform = platform
        loaded = [added for added in set(sys.modules) - before if added.startswith("lanparty.")]
    try:
        yield module
    finally:
        for added in loaded:
            parent_name, _, child = added.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None and getattr(parent, child, None) is sys.modules.get(added):
                delattr(parent, child)
            sys.modules.pop(added, None)


@pytest.mark.parametrize("name", WINDOWS_ONLY_MODULES)
def test_windows_only_modules_refuse_to_import_elsewhere(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=rf"{name} needs Windows; this is linux"):
        importlib.import_module(name)
    assert name not in sys.modules


def test_the_current_platform_on_windows_is_this_one() -> None:
    with imported_as_on_windows("lanparty.client.windows.platform") as module:
        platform = module.WindowsPlatform(private_network=True)
        assert platform.private_network is True
        assert platform.default_adapter_name is None
        assert module.WindowsPlatform().private_network is False


@pytest.fixture
def platform_module() -> Iterator[types.ModuleType]:
    with imported_as_on_windows("lanparty.client.windows.platform") as module:
        yield module


class FakeElevation:
    def __init__(self, *, elevated: bool, relaunched: bool = False) -> None:
        self.elevated = elevated
        self.relaunched = relaunched
        self.relaunches: list[list[str]] = []

    def is_elevated(self) -> bool:
        return self.elevated

    def relaunched_but_not_elevated(self) -> bool:
        return self.relaunched

    def relaunch_elevated(self, argv: Sequence[str]) -> None:
        self.relaunches.append(list(argv))


def use_elevation(
    monkeypatch: pytest.MonkeyPatch, module: types.ModuleType, fake: FakeElevation
) -> None:
    for name in ("is_elevated", "relaunched_but_not_elevated", "relaunch_elevated"):
        monkeypatch.setattr(module.elevation, name, getattr(fake, name))


def test_an_elevated_process_goes_on(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeElevation(elevated=True)
    use_elevation(monkeypatch, platform_module, fake)
    assert platform_module.WindowsPlatform().ensure_privileges(["--invite", "x"]) is True
    assert fake.relaunches == []


def test_an_unelevated_process_relaunches_itself_and_steps_aside(
    platform_module: types.ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeElevation(elevated=False)
    use_elevation(monkeypatch, platform_module, fake)
    argv = ["--invite", "lanparty://relay:5000/room", "--tap", "LAN party"]
    assert platform_module.WindowsPlatform().ensure_privileges(argv) is False
    assert fake.relaunches == [argv]
    assert "continuing as administrator in a new window" in capsys.readouterr().err


def test_a_relaunched_copy_still_unelevated_stops_instead_of_looping(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeElevation(elevated=False, relaunched=True)
    use_elevation(monkeypatch, platform_module, fake)
    with pytest.raises(ConfigError, match="Run as administrator"):
        platform_module.WindowsPlatform().ensure_privileges([])
    assert fake.relaunches == []


def test_the_host_network_is_the_ip_helper_one_restored_when_the_window_closes(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console control handler spans the host network: everything the client
    changes is put back inside it, so closing the window waits for that."""
    hostnet = types.ModuleType("lanparty.client.windows.hostnet")
    events: list[str] = []

    class WindowsHostNetwork:
        def __enter__(self) -> WindowsHostNetwork:
            events.append("host network open")
            return self

        def __exit__(self, *exc_info: object) -> None:
            events.append("host network closed")

    @contextlib.contextmanager
    def interrupt_on_close() -> Iterator[None]:
        events.append("close handler on")
        yield
        events.append("close handler off")

    hostnet.WindowsHostNetwork = WindowsHostNetwork  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lanparty.client.windows.hostnet", hostnet)
    monkeypatch.setattr(platform_module.console, "interrupt_on_close", interrupt_on_close)
    with platform_module.WindowsPlatform().open_host_network() as opened:
        assert isinstance(opened, WindowsHostNetwork)
        assert events == ["close handler on", "host network open"]
    assert events[2:] == ["host network closed", "close handler off"]


class AdapterSetUp:
    """Fakes for ``open_adapter``: the registry, the TAP and the network profile."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
        self.registry = FakeRegistry()
        self.events: list[tuple[str, Any]] = []
        self.tap = types.SimpleNamespace(
            index=0x0006_0000_0100_0000, interface_index=17, name="LAN party"
        )
        self.max_frame: int | None = None
        self.connect_media = True
        monkeypatch.setattr(module, "WindowsRegistry", lambda: self.registry)
        monkeypatch.setattr(module, "open_windows_tap", self.open_windows_tap)
        profile = types.ModuleType("lanparty.client.windows.profile")
        profile.private_network_profile = self.private_network_profile  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "lanparty.client.windows.profile", profile)

    @contextlib.asynccontextmanager
    async def open_windows_tap(
        self,
        candidates: Sequence[TapAdapter],
        *,
        chosen_by_user: bool,
        mac: bytes,
        mtu: int,
        max_frame: int | None,
        connect_media: bool,
    ) -> AsyncIterator[Any]:
        self.events.append(("tap open", ([c.name for c in candidates], chosen_by_user, mac, mtu)))
        self.max_frame = max_frame
        self.connect_media = connect_media
        yield self.tap
        self.events.append(("tap closed", None))

    @contextlib.asynccontextmanager
    async def private_network_profile(self, index: int) -> AsyncIterator[None]:
        self.events.append(("private", index))
        yield
        self.events.append(("profile restored", index))


async def test_open_adapter_finds_opens_and_closes_the_tap(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = AdapterSetUp(monkeypatch, platform_module)
    add_tap_adapter(setup.registry, "0001", name="LAN party")
    platform = platform_module.WindowsPlatform()
    async with platform.open_adapter(None, mac=MAC, mtu=1400) as tap:
        assert tap is setup.tap
    assert setup.events == [
        ("tap open", (["LAN party"], False, MAC, 1400)),
        ("tap closed", None),
    ]


async def test_the_rooms_max_frame_reaches_the_tap(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = AdapterSetUp(monkeypatch, platform_module)
    add_tap_adapter(setup.registry, "0001", name="LAN party")
    platform = platform_module.WindowsPlatform()
    async with platform.open_adapter(None, mac=MAC, mtu=1500, max_frame=1518):
        assert setup.max_frame == 1518
    async with platform.open_adapter(None, mac=MAC, mtu=1500):
        assert setup.max_frame is None  # the TAP works it out from the MTU


async def test_the_media_can_be_left_disconnected_for_the_caller_to_connect(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = AdapterSetUp(monkeypatch, platform_module)
    add_tap_adapter(setup.registry, "0001", name="LAN party")
    platform = platform_module.WindowsPlatform()
    async with platform.open_adapter(None, mac=MAC, mtu=1400):
        assert setup.connect_media is True  # as before, unless asked
    async with platform.open_adapter(None, mac=MAC, mtu=1400, connect_media=False):
        assert setup.connect_media is False


async def test_a_named_adapter_is_chosen_by_the_user(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = AdapterSetUp(monkeypatch, platform_module)
    add_tap_adapter(setup.registry, "0001", name="LAN party")
    add_tap_adapter(setup.registry, "0002", name="OpenVPN TAP")
    async with platform_module.WindowsPlatform().open_adapter("lan PARTY", mac=MAC, mtu=1400):
        pass
    assert setup.events[0] == ("tap open", (["LAN party"], True, MAC, 1400))


async def test_private_network_lasts_as_long_as_the_adapter(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = AdapterSetUp(monkeypatch, platform_module)
    add_tap_adapter(setup.registry, "0001", name="LAN party")
    platform = platform_module.WindowsPlatform(private_network=True)
    async with platform.open_adapter(None, mac=MAC, mtu=1400):
        assert setup.events[-1] == ("private", 17)  # PowerShell's -InterfaceIndex
    assert [event for event, _ in setup.events] == [
        "tap open",
        "private",
        "profile restored",
        "tap closed",
    ]


async def test_no_adapter_installed_is_a_config_error_before_anything_opens(
    platform_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = AdapterSetUp(monkeypatch, platform_module)
    setup.registry.add_key(ADAPTER_CLASS_KEY)
    with pytest.raises(ConfigError, match="no TAP-Windows adapter is installed"):
        async with platform_module.WindowsPlatform().open_adapter(None, mac=MAC, mtu=1400):
            pass
    assert setup.events == []
