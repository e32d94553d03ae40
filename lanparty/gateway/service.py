"""The gateway's Trio shell: the LAN interface bridged into a room, kept alive.

run_gateway
├── packet socket opened, receive offloads off
└── session supervision (``SessionSupervisor``): connect, bridge, and after
    a loss reconnect with capped exponential backoff and jitter (a permanent
    reject, an eviction or the interface going away ends it)
    └── per session (``run_device_bridge`` with the LAN as its device):
        ├── LAN -> relay: packet socket batch -> GatewayBridge.from_lan -> session
        ├── relay -> LAN: inside the transport's pump, each wake-up's frames ->
        │   learn remote sources -> packet socket (``write_from_relay``, no task switch)
        ├── relay events: peer_joined / peer_left / disconnect
        ├── CAM refresher: keeps remote MACs on the gateway's switch port
        └── stats, logged every ``stats_interval_s``
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import attrs
import structlog
import trio

from lanparty.backoff import Backoff
from lanparty.credentials import GatewayCredentials
from lanparty.ctrl import Disconnect, PeerJoined, PeerLeft, Role, Stats
from lanparty.endpoint.bridge import run_device_bridge
from lanparty.endpoint.session import RelayEndpoint, Session, open_session, raise_if_evicted
from lanparty.endpoint.supervisor import SessionEnd, SessionSupervisor
from lanparty.gateway.bridge import GatewayBridge
from lanparty.gateway.cam import DEFAULT_REFRESH_INTERVAL_S, CamRefresher
from lanparty.gateway.offloads import receive_offloads_off
from lanparty.gateway.packet_socket import PacketSocket
from lanparty.obs import events
from lanparty.proto import DropReason, format_mac, parse_mac
from lanparty.transport import TransportSettings

log = structlog.get_logger(component="gateway")


@attrs.frozen
class GatewayConfig:
    interface: str
    relay: RelayEndpoint
    credentials: GatewayCredentials
    state_dir: Path | None = None
    # What loading the keys did this start (for the log line).
    keys_created: bool = False
    invite_rotated: bool = False
    settings: TransportSettings = attrs.field(factory=TransportSettings)
    cam_refresh_s: float = DEFAULT_REFRESH_INTERVAL_S
    stats_interval_s: float = 30.0
    # None: the native shim if it is built; False: pure Python; True: the shim or fail.
    native: bool | None = None
    reconnect_initial_s: float = 0.5
    reconnect_cap_s: float = 30.0


async def run_gateway(
    config: GatewayConfig,
    *,
    task_status: trio.TaskStatus[PacketSocket] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bridge until cancelled. Raises ``RejectedError`` for a permanent refusal,
    ``EvictedError`` when the room ended our place, ``HostNetworkError`` when the
    interface went away."""
    sock = PacketSocket.open(config.interface, native=config.native)
    try:
        with receive_offloads_off(config.interface):
            log.info(
                "gateway_started",
                interface=config.interface,
                mac=format_mac(sock.interface_mac),
                native_io=sock.native,
                relay=f"{config.relay.host}:{config.relay.port}",
                room=config.credentials.room_id,
                room_name=config.credentials.room_name,
                state_dir=None if config.state_dir is None else str(config.state_dir),
                new_keys=config.keys_created,
            )
            task_status.started(sock)
            supervisor = SessionSupervisor(
                functools.partial(
                    open_session,
                    config.relay,
                    credentials=config.credentials,
                    mac=sock.interface_mac,
                    settings=config.settings,
                ),
                Backoff(initial_s=config.reconnect_initial_s, cap_s=config.reconnect_cap_s),
                room=config.credentials.room_name or config.credentials.room_id,
                log=log,
            )
            await supervisor.run(lambda session: _SessionBridge(session, sock, config).run())
    finally:
        sock.close()


class _SessionBridge:
    """The LAN's side of one relay session: the bridge's device, relay events, CAM, stats."""

    def __init__(self, session: Session, sock: PacketSocket, config: GatewayConfig) -> None:
        self.session = session
        self.sock = sock
        self.config = config
        self.bridge = GatewayBridge(session.max_frame)
        self.cam = CamRefresher(sock.interface_mac, config.cam_refresh_s)
        self.peer_macs: dict[int, bytes] = {}
        self.cam_changed = trio.Event()
        for peer in session.peers.values():
            if peer.role is Role.CLIENT:
                self.peer_joined(peer.peer_id, peer.mac)

    async def run(self) -> SessionEnd:
        end = await run_device_bridge(
            self.session, self, self.relay_events, also=(self.refresh_cam, self.report)
        )
        self.log_stats()
        return end

    def add_remote(self, mac: bytes) -> None:
        self.bridge.remote_macs.add(mac)
        if self.cam.add(mac, trio.current_time()):
            self.cam_changed.set()
            self.cam_changed = trio.Event()

    def peer_joined(self, peer_id: int, mac_text: str) -> None:
        self.peer_macs[peer_id] = parse_mac(mac_text)
        self.add_remote(self.peer_macs[peer_id])

    def peer_left(self, peer_id: int) -> None:
        mac = self.peer_macs.pop(peer_id, None)
        if mac is not None:
            self.cam.remove(mac)
            self.bridge.forget(mac)

    async def read_for_relay(self) -> list[bytes]:
        """The LAN's next frames for the relay (those ``GatewayBridge.from_lan`` lets through)."""
        sock = self.sock
        await sock.wait_readable()
        return self.bridge.from_lan(sock.read_batch())

    def write_from_relay(self, frames: list[bytes]) -> None:
        """Frames from the relay onto the LAN, called by the transport's pump (no waiting)."""
        for mac in self.bridge.learn_remote_sources(frames):
            self.add_remote(mac)
        sent = self.sock.write_batch(frames)
        counters = self.bridge.lan_counters
        counters.tx_frames += sent
        # Exact unless the kernel refused a frame mid-batch (then approximate).
        counters.tx_bytes += sum(len(f) for f in frames[:sent])
        if sent < len(frames):
            counters.drops[DropReason.SEND_QUEUE_FULL] += len(frames) - sent

    async def refresh_cam(self) -> None:
        cam = self.cam
        while True:
            frames = cam.due_frames(trio.current_time())
            if frames:
                self.sock.write_batch(frames)
            with trio.move_on_at(cam.next_due_at() or math.inf):
                await self.cam_changed.wait()

    async def report(self) -> None:
        while True:
            await trio.sleep(self.config.stats_interval_s)
            self.log_stats()

    async def relay_events(self) -> str:
        while True:
            event = await self.session.next_event()
            if isinstance(event, PeerJoined) and event.role is Role.CLIENT:
                self.peer_joined(event.peer_id, event.mac)
            elif isinstance(event, PeerLeft):
                self.peer_left(event.peer_id)
            elif isinstance(event, Stats):
                log.debug(events.STATS, rx_frames=event.rx_frames, drops=event.drops_by_reason())
            elif isinstance(event, Disconnect):
                return raise_if_evicted(event, Role.GATEWAY)

    def log_stats(self) -> None:
        lan = self.bridge.lan_counters
        relay = self.session.connection.counters
        drops = lan.drops + relay.drops + self.session.counters.drops
        log.info(
            events.STATS,
            lan_rx_frames=lan.rx_frames,
            lan_rx_bytes=lan.rx_bytes,
            lan_tx_frames=lan.tx_frames,
            lan_tx_bytes=lan.tx_bytes,
            relay_tx_frames=relay.tx_frames,
            relay_rx_frames=relay.rx_frames,
            drops={str(reason): count for reason, count in drops.items()},
            remote_macs_refreshed=len(self.cam.macs),
            # Frames still longer than the room allows after segmentation.
            lan_truncated_frames=self.sock.truncated_frames,
            # Offloaded packets (partial checksums, GSO) made whole, and those that could not be.
            lan_segmented_packets=self.sock.segmented_packets,
            lan_checksummed_frames=self.sock.checksummed_frames,
            lan_offload_drops={str(reason): n for reason, n in self.sock.offload_drops.items()},
        )
