"""``run_client`` with a fake platform, a fake adapter and fake sessions: the order of the
set-up, and what happens to the PC's frames while no session carries them.

The host has Windows' semantics (``WindowsFakeHostNetwork``): Ethernet (3,
automatic metric 25) with the default route, and a TAP-Windows adapter (12)
whose routes count only once its media is connected. ``open_session`` is
replaced by ``FakeRelay``, which admits a session each time the test lets it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from lanparty.client import service
from lanparty.client.hostnet import HostNetwork, Route
from lanparty.client.journal import Journal
from lanparty.client.platform import TapAddressKeeper, VirtualAdapter
from lanparty.client.service import ClientConfig, ClientStatus, run_client
from lanparty.credentials import ClientCredentials
from lanparty.ctrl import Disconnect
from lanparty.endpoint.session import RelayEndpoint, RelayEvent
from lanparty.errors import HostNetworkError, find_error
from lanparty.obs import TrafficCounters, events
from lanparty.transport import SpkiPin, TransportSettings
from tests.fakes.hostnet import Call
from tests.fakes.windows_hostnet import WindowsFakeHostNetwork

ETH, TAP = 3, 12
ROOM = "a" * 26
ROOM_MTU = 1380
RELAY = ip_address("198.18.5.9")
ETH_GATEWAY = ip_address("198.18.0.1")
ETH_DEFAULT = Route(ip_network("0.0.0.0/0"), ETH_GATEWAY, ETH, 0)
RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ETH_GATEWAY, ETH, 0)


class FakeAdapter:
    """A TAP whose PC sends frames when the test says (``pc_sends``); it reads, as the
    Linux TAP does, only while a task waits in ``receive_batch``."""

    name = "fake-tap"
    index = TAP
    dropped_frames = 0

    def __init__(self, net: WindowsFakeHostNetwork, mtu: int) -> None:
        self.net = net
        self.mtu = mtu
        self.discarding = False
        self.discarded_frames = 0
        self.unread: list[bytes] = []
        self.read: list[bytes] = []
        self.received: list[bytes] = []  # what the PC got from the relay
        self.gone = False
        self._pc_sent = trio.lowlevel.ParkingLot()

    def ipv4_address(self) -> str | None:
        return None

    async def connect_media(self) -> None:
        await trio.lowlevel.checkpoint()
        self.net.calls.append(Call("connect_media", ()))
        self.net.disconnected.discard(TAP)

    def set_discarding(self, discarding: bool) -> None:
        self.discarding = discarding

    def pc_sends(self, *frames: bytes) -> None:
        self.unread += frames
        self._pc_sent.unpark_all()

    async def receive_batch(self) -> list[bytes]:
        while True:
            await trio.lowlevel.checkpoint()
            if not self.unread:
                await self._pc_sent.park()
                continue
            frames, self.unread = self.unread, []
            if not self.discarding:
                self.read += frames
                return frames
            self.discarded_frames += len(frames)

    def send_batch(self, frames: Sequence[bytes]) -> int:
        if self.gone:
            raise HostNetworkError("the TAP went away")
        self.received += frames
        return len(frames)


class FakePlatform:
    default_adapter_name: str | None = None

    def __init__(self, net: WindowsFakeHostNetwork) -> None:
        self.net = net
        self.adapter: FakeAdapter | None = None

    def ensure_privileges(self, argv: Sequence[str]) -> bool:
        return True

    @contextmanager
    def open_host_network(self) -> Iterator[HostNetwork]:
        yield self.net

    @asynccontextmanager
    async def open_adapter(
        self, name: str | None, *, mac: bytes, mtu: int, connect_media: bool = True
    ) -> AsyncIterator[VirtualAdapter]:
        self.net.calls.append(Call("open_adapter", (connect_media,)))
        self.adapter = FakeAdapter(self.net, mtu)
        if connect_media:
            await self.adapter.connect_media()
        try:
            yield self.adapter
        finally:
            self.net.disconnected.add(TAP)  # the handle closed: media disconnected

    def tap_address_keeper(
        self, adapter: VirtualAdapter, *, mac: bytes, use_party_dns: bool, metric: int | None
    ) -> TapAddressKeeper | None:
        return None  # Windows' own DHCP client


class FakeConnection:
    def __init__(self) -> None:
        self.counters = TrafficCounters()


class FakeSession:
    def __init__(self) -> None:
        self.mtu = ROOM_MTU
        self.peers: dict[int, object] = {}
        self.counters = TrafficCounters()
        self.connection = FakeConnection()
        self.sent: list[bytes] = []
        self.handler: Callable[[list[bytes]], None] | None = None
        self.left = False
        self._send_event, self._events = trio.open_memory_channel[RelayEvent](10)

    def send_frames(self, frames: Sequence[bytes]) -> int:
        self.sent += frames
        return len(frames)

    def deliver_frames_to(self, handler: Callable[[list[bytes]], None] | None) -> None:
        self.handler = handler

    async def next_event(self) -> RelayEvent:
        return await self._events.receive()

    def relay_disconnects(self) -> None:
        self._send_event.send_nowait(Disconnect(reason="relay shutting down"))


class FakeRelay:
    """Admits one session each time ``admit`` is called (the first at once)."""

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []
        self._admissions = trio.Semaphore(1)

    def admit(self) -> None:
        self._admissions.release()

    @asynccontextmanager
    async def open_session(
        self,
        relay: RelayEndpoint,
        *,
        credentials: ClientCredentials,
        mac: bytes,
        settings: TransportSettings | None = None,
    ) -> AsyncIterator[FakeSession]:
        await self._admissions.acquire()
        session = FakeSession()
        self.sessions.append(session)
        # As the real one: the connection's pump runs in a nursery of the session's context,
        # which only the task that entered it may leave.
        async with trio.open_nursery():
            try:
                yield session
            finally:
                session.left = True


@pytest.fixture
def net() -> WindowsFakeHostNetwork:
    net = WindowsFakeHostNetwork()
    net.add_interface(ETH, metric=None, automatic_metric=25)
    net.add_interface(TAP, metric=None, automatic_metric=35)
    net.disconnected.add(TAP)  # the TAP-Windows adapter, not open
    net.routes += [ETH_DEFAULT, Route(ip_network("198.18.0.0/24"), None, ETH, 256)]
    return net


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> FakeRelay:
    relay = FakeRelay()
    monkeypatch.setattr(service, "open_session", relay.open_session)
    return relay


def client_config(tmp_path: Path) -> ClientConfig:
    return ClientConfig(
        relay=RelayEndpoint(str(RELAY), 4433, SpkiPin.parse("sha256:" + "3f" * 32)),
        room=ROOM,
        client_key=bytes(32),
        room_name="Saturday LAN",
        identity_path=tmp_path / "identity.json",
        journal_path=tmp_path / "journal.json",
        reconnect_initial_s=1.0,
        status_interval_s=60.0,
    )


def start(tmp_path: Path, net: WindowsFakeHostNetwork) -> functools.partial[object]:
    return functools.partial(run_client, client_config(tmp_path), platform=FakePlatform(net))


def frame(number: int) -> bytes:
    return bytes.fromhex("ffffffffffff02aabbccdd01") + b"\x88\xb5" + bytes([number]) * 50


# the set-up's order (issue 13, item 2)


async def test_the_relay_route_is_pinned_before_the_tap_connects_then_checked(
    tmp_path: Path, net: WindowsFakeHostNetwork, relay: FakeRelay
) -> None:
    """A route left on the TAP covers the relay: pinned after the media connects, the
    relay's own traffic would go into the tunnel."""
    net.routes.append(Route(ip_network("198.18.5.0/24"), None, TAP, 0))
    net.addresses[TAP] = [ip_interface("198.18.5.7/24")]  # the LAN's subnet: the route stays
    before = net.snapshot()
    async with trio.open_nursery() as nursery:
        assert await nursery.start(start(tmp_path, net)) == "fake-tap"
        assert RELAY_ROUTE in net.routes
        assert (await net.best_route(RELAY)).interface_index == ETH
        steps = [
            call
            for call in net.calls
            if call.method in ("best_route", "open_adapter", "add_route", "connect_media")
        ]
        assert steps[:5] == [
            Call("best_route", (RELAY,)),  # before the TAP
            Call("open_adapter", (False,)),  # its link down
            Call("add_route", (RELAY_ROUTE,)),  # pinned from the answer before the TAP
            Call("connect_media", ()),
            Call("best_route", (RELAY,)),  # the pin checked
        ]
        nursery.cancel_scope.cancel()
    assert net.snapshot() == before
    assert Journal(tmp_path / "journal.json").pending() == []


async def test_a_tap_route_that_wins_once_connected_stops_the_client(
    tmp_path: Path, net: WindowsFakeHostNetwork, relay: FakeRelay
) -> None:
    net.routes.append(Route(ip_network("198.18.5.9/32"), None, TAP, 0))  # a leftover host route
    net.addresses[TAP] = [ip_interface("198.18.5.7/24")]  # inside the LAN: the route guard keeps it
    before = net.snapshot()
    started = False

    async def start_client() -> None:
        nonlocal started
        async with trio.open_nursery() as nursery:
            await nursery.start(start(tmp_path, net))
            started = True
            nursery.cancel_scope.cancel()

    with pytest.raises(BaseExceptionGroup) as caught:  # the error, in the client's nursery
        await start_client()
    assert not started
    error = find_error(caught.value, HostNetworkError)
    assert error is not None
    assert "not the pinned route" in str(error)
    assert net.snapshot() == before
    assert Journal(tmp_path / "journal.json").pending() == []


# frames while no session carries them (issue 13, item 5)


async def test_frames_sent_while_reconnecting_are_discarded_not_carried_late(
    tmp_path: Path,
    net: WindowsFakeHostNetwork,
    relay: FakeRelay,
    autojump_clock: trio.testing.MockClock,
) -> None:
    platform = FakePlatform(net)
    run = functools.partial(run_client, client_config(tmp_path), platform=platform)
    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        adapter = platform.adapter
        assert adapter is not None
        await trio.testing.wait_all_tasks_blocked()
        assert not adapter.discarding  # the first session carries frames
        adapter.pc_sends(frame(1))
        await trio.testing.wait_all_tasks_blocked()
        first = relay.sessions[0]
        assert first.sent == [frame(1)]

        first.relay_disconnects()
        await trio.testing.wait_all_tasks_blocked()
        assert adapter.discarding
        assert first.left  # its connection closed at once, not when the client ends
        adapter.pc_sends(frame(2), frame(3))  # nobody to send them to
        await trio.testing.wait_all_tasks_blocked()
        assert adapter.unread == []  # read all the same: not left for the next session
        assert adapter.discarded_frames == 2

        with structlog.testing.capture_logs() as logs:
            await trio.sleep(61)  # a status line while reconnecting
        statuses = [log for log in logs if log["event"] == events.CLIENT_STATUS]
        assert statuses[-1]["discarded"] == 2
        assert "discarded 2" in statuses[-1]["status"]

        relay.admit()
        await trio.sleep(5)  # past the backoff
        second = relay.sessions[1]
        assert not adapter.discarding
        adapter.pc_sends(frame(4))
        await trio.testing.wait_all_tasks_blocked()
        assert second.sent == [frame(4)]
        nursery.cancel_scope.cancel()


async def test_frames_are_discarded_until_the_first_session_carries_them(
    tmp_path: Path, net: WindowsFakeHostNetwork, relay: FakeRelay
) -> None:
    """Set while the TAP opens: set-up takes a moment, and nothing carries frames then."""
    discarding: list[bool] = []

    class RecordingAdapter(FakeAdapter):
        async def connect_media(self) -> None:
            discarding.append(self.discarding)
            await super().connect_media()

    class RecordingPlatform(FakePlatform):
        @asynccontextmanager
        async def open_adapter(
            self, name: str | None, *, mac: bytes, mtu: int, connect_media: bool = True
        ) -> AsyncIterator[VirtualAdapter]:
            self.adapter = RecordingAdapter(self.net, mtu)
            yield self.adapter

    run = functools.partial(run_client, client_config(tmp_path), platform=RecordingPlatform(net))
    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        assert discarding == [True]
        nursery.cancel_scope.cancel()


async def test_a_tap_that_goes_away_under_the_pump_ends_the_client(
    tmp_path: Path,
    net: WindowsFakeHostNetwork,
    relay: FakeRelay,
    autojump_clock: trio.testing.MockClock,
) -> None:
    platform = FakePlatform(net)
    before = net.snapshot()

    async def client() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(run_client, client_config(tmp_path), platform=platform)
            )
            await trio.testing.wait_all_tasks_blocked()
            adapter, session = platform.adapter, relay.sessions[0]
            assert adapter is not None
            assert session.handler is not None
            session.handler([frame(1)])  # the transport's pump
            assert adapter.received == [frame(1)]
            adapter.gone = True
            session.handler([frame(2)])  # no error into the pump: the client ends instead

    with pytest.raises(BaseExceptionGroup) as caught:
        await client()
    assert isinstance(find_error(caught.value, HostNetworkError), HostNetworkError)
    assert len(relay.sessions) == 1  # no reconnect fixes a TAP that is gone
    assert net.snapshot() == before


# the status line


def test_the_status_line_says_what_a_player_needs() -> None:
    status = ClientStatus(
        connected=True, room="party", peers=2, mtu=1389, tap_ipv4="198.19.0.100",
        tap_to_relay_frames=3, tap_to_relay_bytes=300, relay_to_tap_frames=4,
        relay_to_tap_bytes=400, drops=1, discarded=0,
    )  # fmt: skip
    assert status.describe() == (
        "connected to room party (2 peers, MTU 1389), TAP 198.19.0.100; sent 3 frames "
        "(300 bytes), received 4 frames (400 bytes), dropped 1"
    )
    offline = ClientStatus(
        connected=False, room="party", peers=0, mtu=1389, tap_ipv4=None,
        tap_to_relay_frames=0, tap_to_relay_bytes=0, relay_to_tap_frames=0,
        relay_to_tap_bytes=0, drops=0, discarded=7,
    )  # fmt: skip
    assert offline.describe() == (
        "reconnecting to room party (0 peers, MTU 1389), TAP no IPv4 address yet; sent 0 "
        "frames (0 bytes), received 0 frames (0 bytes), dropped 0, discarded 7 while "
        "disconnected"
    )
