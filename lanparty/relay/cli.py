"""``lanparty-relay`` / ``python -m lanparty.relay``: the command line.

Exit codes (``lanparty.errors.ExitCode``): 0 after Ctrl+C or SIGTERM, 1 for
another failure, 2 for a configuration error (a port it may not listen on
included).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
import trio

from lanparty import __version__
from lanparty.capabilities import Capability, lacks, missing_capability
from lanparty.credentials import is_sha256_hex
from lanparty.errors import ConfigError, ExitCode, LanpartyError, find_error
from lanparty.invite import check_invite_host
from lanparty.obs import add_log_level_argument, configure_logging, events
from lanparty.obs.notify import notify_ready, notify_stopping
from lanparty.relay.metrics import start_metrics_server
from lanparty.relay.service import (
    MAX_PENDING_HELLOS,
    MAX_PENDING_HELLOS_PER_SOURCE,
    Relay,
    RelayConfig,
)
from lanparty.relay.switch import RelayLimits
from lanparty.signals import wait_for_termination
from lanparty.transport import (
    QuicBackend,
    RetryPolicy,
    ServerIdentity,
    TransportSettings,
    load_or_create_dev_identity,
    load_server_identity,
)

log = structlog.get_logger(component="relay")

DEFAULT_PORT = 4433
_PORT_SHORTHAND = re.compile(r"(\d{1,5})(?:/udp)?")
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:bit/s|bps|bit)?")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_listen(text: str) -> tuple[str, int]:
    """``0.0.0.0:443``, ``[::]:443``, ``relay.example.net:443`` or ``443/udp`` (all addresses)."""
    text = text.strip()
    shorthand = _PORT_SHORTHAND.fullmatch(text)
    if shorthand:
        return "::", _port(shorthand.group(1), text)
    if text.startswith("["):
        host, separator, port = text[1:].partition("]:")
    else:
        host, separator, port = text.rpartition(":")
        if ":" in host:
            raise ConfigError(
                f"write an IPv6 listen address in brackets, like [::]:443, not {text!r}"
            )
    if not separator or not host:
        raise ConfigError(f"--listen wants HOST:PORT, [IPv6]:PORT or PORT/udp, not {text!r}")
    return host, _port(port, text)


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``9100`` (loopback only: metrics are not for the internet), or ``HOST:PORT``."""
    stripped = text.strip()
    if stripped.isdigit():
        return "127.0.0.1", _port(stripped, text)
    if _PORT_SHORTHAND.fullmatch(stripped):
        raise ConfigError(f"--metrics wants PORT or HOST:PORT (TCP), not {text!r}")
    return parse_listen(stripped)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"{whole!r} has no valid UDP port (0 to 65535)")
    return int(text)


def parse_rate_bps(text: str) -> float:
    """``100M``, ``100Mbit``, ``2.5G``, ``800k`` or a plain number of bits per second."""
    match = _RATE.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{text!r} is not a rate like 100M or 800k (bits per second)")
    return float(match.group(1)) * _SUFFIX[match.group(2).lower()]


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY`` (its first entry) in a unit, else the user's XDG state."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lanparty" / "relay"


UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def listen_refusal(port: int, error: OSError) -> str | None:
    """The sentence for a bind the kernel refused for want of CAP_NET_BIND_SERVICE, else None."""
    if not isinstance(error, PermissionError) or not lacks(Capability.NET_BIND_SERVICE):
        return None
    try:
        first_unprivileged = int(UNPRIVILEGED_PORT_START.read_text().strip())
    except (OSError, ValueError):
        first_unprivileged = 1024
    if port >= first_unprivileged:
        return None
    return missing_capability(
        f"listening on port {port} (below {first_unprivileged})",
        Capability.NET_BIND_SERVICE,
        unit_hint="examples/systemd/lanparty-relay.service",
    )


def build_parser() -> argparse.ArgumentParser:
    defaults = RelayLimits()
    parser = argparse.ArgumentParser(
        prog="lanparty-relay",
        description="The lanparty relay: rooms where a LAN party gateway and remote players meet.",
    )
    parser.add_argument("--version", action="version", version=f"lanparty {__version__}")
    parser.add_argument(
        "--listen",
        default=f"{DEFAULT_PORT}/udp",
        type=_config(parse_listen),
        help=f"UDP address: HOST:PORT, [::]:PORT or PORT/udp for all (default {DEFAULT_PORT}/udp)",
    )
    parser.add_argument(
        "--public-host",
        type=_config(check_invite_host),
        metavar="NAME",
        help="the name or address gateways and players reach this relay at, for the printed "
        "gateway command line (default: the listen address, or the placeholder HOST when "
        "listening on all addresses)",
    )
    cert = parser.add_argument_group("certificate (default: a development certificate, kept)")
    cert.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="where the development certificate's key is kept (default %(default)s)",
    )
    cert.add_argument(
        "--dev-cert-name",
        action="append",
        default=[],
        metavar="NAME",
        help="add a DNS name or IP address to the development certificate",
    )
    cert.add_argument(
        "--dev-cert-der-out",
        type=Path,
        metavar="FILE",
        help="write the certificate (DER) for endpoints to pin with --relay-ca-cert",
    )
    cert.add_argument("--cert", type=Path, help="operator's PEM certificate chain")
    cert.add_argument("--key", type=Path, help="operator's PEM private key (unencrypted)")
    rooms = parser.add_argument_group("rooms")
    rooms.add_argument(
        "--mtu",
        type=int,
        default=defaults.relay_mtu,
        help="room IP MTU ceiling (default %(default)s)",
    )
    rooms.add_argument("--max-rooms", type=int, default=defaults.max_rooms)
    rooms.add_argument("--max-clients-per-room", type=int, default=defaults.max_clients_per_room)
    rooms.add_argument("--max-peers", type=int, default=defaults.max_peers)
    rooms.add_argument(
        "--lan-mac-ageing-s",
        type=float,
        default=defaults.lan_mac_ageing_s,
        help="forget a MAC learned behind a gateway after this long unseen (default %(default)s)",
    )
    rooms.add_argument(
        "--max-learned-macs-per-room",
        type=int,
        default=defaults.max_learned_macs_per_room,
        help="MACs learned behind a gateway, per room (default %(default)s)",
    )
    rooms.add_argument(
        "--room-grace-s",
        type=float,
        default=defaults.room_grace_s,
        help="how long a room outlives its gateway, its players staying connected "
        "(default %(default)s)",
    )
    rooms.add_argument(
        "--gateway-tokens",
        type=Path,
        metavar="FILE",
        help="open rooms only for gateways with a listed operator token: FILE holds the "
        "SHA-256 hex of each allowed token, one a line (default: any gateway may open rooms)",
    )
    rooms.add_argument(
        "--max-rooms-per-source",
        type=int,
        default=defaults.max_rooms_per_source,
        help="rooms the gateways of one address (an IPv6 /64) may open (default %(default)s)",
    )
    rooms.add_argument(
        "--max-pending-hellos",
        type=int,
        default=MAX_PENDING_HELLOS,
        help="connections waiting to say hello, in all; when full, a newcomer takes the "
        "oldest slot of the source holding the most (default %(default)s)",
    )
    rooms.add_argument(
        "--max-pending-hellos-per-source",
        type=int,
        default=MAX_PENDING_HELLOS_PER_SOURCE,
        help="connections waiting to say hello from one address or /64 (default %(default)s)",
    )
    rooms.add_argument(
        "--malformed-limit",
        type=int,
        default=defaults.malformed_limit,
        help="malformed datagrams per 10 s before a peer is disconnected",
    )
    limits = parser.add_argument_group("client rate limits")
    limits.add_argument("--client-broadcast-pps", type=float, default=defaults.client_broadcast_pps)
    limits.add_argument(
        "--client-broadcast-burst", type=float, default=defaults.client_broadcast_burst
    )
    limits.add_argument(
        "--client-unknown-unicast-pps", type=float, default=defaults.client_unknown_unicast_pps
    )
    limits.add_argument(
        "--client-unknown-unicast-burst", type=float, default=defaults.client_unknown_unicast_burst
    )
    limits.add_argument(
        "--client-bps",
        type=_config(parse_rate_bps),
        default=defaults.client_bps,
        help="total rate per client, e.g. 100M (default 100M)",
    )
    limits.add_argument(
        "--client-burst-bytes",
        type=float,
        default=defaults.client_burst_bytes,
        help="bytes a client may send at once above --client-bps (default %(default)g); "
        "below ~200 KB it also caps the rate, being refilled once per wake-up",
    )
    limits.add_argument(
        "--client-pps",
        type=float,
        default=defaults.client_pps,
        help="datagrams per second from one client, whatever their size (default %(default)g)",
    )
    limits.add_argument("--client-pps-burst", type=float, default=defaults.client_pps_burst)
    limits.add_argument(
        "--gateway-bps",
        type=_config(parse_rate_bps),
        default=defaults.gateway_bps,
        help="total rate per gateway, e.g. 1G (default: bounded by --gateway-pps only)",
    )
    limits.add_argument(
        "--gateway-pps",
        type=float,
        default=defaults.gateway_pps,
        help="datagrams per second from one gateway (default %(default)g)",
    )
    limits.add_argument("--gateway-pps-burst", type=float, default=defaults.gateway_pps_burst)
    parser.add_argument(
        "--client-vlan-tags",
        choices=["drop", "allow"],
        default="allow" if defaults.allow_client_vlan_tags else "drop",
        help="VLAN-tagged frames from players (a VID other than 0; default %(default)s: on a "
        "trunk port they would reach other VLANs)",
    )
    parser.add_argument(
        "--metrics",
        type=_config(parse_metrics_address),
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (a port alone: 127.0.0.1)",
    )
    parser.add_argument(
        "--quic-backend", choices=[b.value for b in QuicBackend], default=QuicBackend.QH3.value
    )
    parser.add_argument(
        "--retry",
        choices=[p.value for p in RetryPolicy],
        default=RetryPolicy.AUTO.value,
        help="make new clients prove their address with a QUIC Retry: when handshakes "
        "come fast (auto, the default), always, or never",
    )
    add_log_level_argument(parser)
    return parser


def _config(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Turn a parser's ConfigError into argparse's clean usage error."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def load_identity(args: argparse.Namespace) -> tuple[ServerIdentity, str]:
    if (args.cert is None) != (args.key is None):
        raise ConfigError("--cert and --key go together")
    if args.cert is not None:
        return load_server_identity(args.cert, args.key), f"operator certificate {args.cert}"
    identity = load_or_create_dev_identity(args.state_dir, args.dev_cert_name)
    return identity, f"development certificate (key kept in {args.state_dir})"


def build_config(args: argparse.Namespace, identity: ServerIdentity) -> RelayConfig:
    limits = RelayLimits(
        relay_mtu=args.mtu,
        max_rooms=args.max_rooms,
        max_clients_per_room=args.max_clients_per_room,
        max_peers=args.max_peers,
        malformed_limit=args.malformed_limit,
        lan_mac_ageing_s=args.lan_mac_ageing_s,
        max_learned_macs_per_room=args.max_learned_macs_per_room,
        client_broadcast_pps=args.client_broadcast_pps,
        client_broadcast_burst=args.client_broadcast_burst,
        client_unknown_unicast_pps=args.client_unknown_unicast_pps,
        client_unknown_unicast_burst=args.client_unknown_unicast_burst,
        client_bps=args.client_bps,
        client_burst_bytes=args.client_burst_bytes,
        gateway_bps=args.gateway_bps,
        room_grace_s=args.room_grace_s,
        client_pps=args.client_pps,
        client_pps_burst=args.client_pps_burst,
        gateway_pps=args.gateway_pps,
        gateway_pps_burst=args.gateway_pps_burst,
        max_rooms_per_source=args.max_rooms_per_source,
        allow_client_vlan_tags=args.client_vlan_tags == "allow",
    )
    host, port = args.listen
    return RelayConfig(
        host=host,
        port=port,
        identity=identity,
        limits=limits,
        settings=TransportSettings(
            backend=QuicBackend(args.quic_backend), retry=RetryPolicy(args.retry)
        ),
        log_decisions=args.log_level == "debug",
        operator_token_hashes=(
            None if args.gateway_tokens is None else read_gateway_tokens(args.gateway_tokens)
        ),
        max_pending_hellos=_at_least_one("--max-pending-hellos", args.max_pending_hellos),
        max_pending_hellos_per_source=_at_least_one(
            "--max-pending-hellos-per-source", args.max_pending_hellos_per_source
        ),
    )


def _at_least_one(option: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"{option} must be at least 1, not {value}")
    return value


def read_gateway_tokens(path: Path) -> frozenset[str]:
    """``--gateway-tokens``: one SHA-256 hex a line; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --gateway-tokens {path}: {exc}") from exc
    hashes = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        if not is_sha256_hex(entry):
            raise ConfigError(
                f"--gateway-tokens {path}, line {number}: not a SHA-256 hex digest "
                "(64 hex digits; make one with: printf %s TOKEN | sha256sum)"
            )
        hashes.add(entry)
    if not hashes:
        raise ConfigError(f"--gateway-tokens {path} lists no token: no gateway could open a room")
    return frozenset(hashes)


HOST_PLACEHOLDER = "HOST"
_WILDCARD_HOSTS = frozenset({"", "::", "0.0.0.0"})


def gateway_command(listen_host: str, port: int, pin: str, public_host: str | None) -> str:
    """The command line a party's host runs on its gateway (HOST when the name is unknown).

    The host is ``--public-host``, else the listen address unless it is a
    wildcard (then HOST: the relay cannot know the name it is reached at).
    """
    host = public_host
    if host is None and listen_host not in _WILDCARD_HOSTS:
        host = listen_host
    try:
        shown = check_invite_host(host or HOST_PLACEHOLDER)
    except ConfigError:  # a listen address an invite cannot hold (an IPv6 zone, say)
        shown = HOST_PLACEHOLDER
    if ":" in shown:
        shown = f"[{shown}]"
    return f"lanparty-gateway eth0 --relay {shown}:{port} --relay-pin {pin}"


async def run(config: RelayConfig, args: argparse.Namespace, certificate: str) -> None:
    relay = Relay(config)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(relay.serve)
        host, port = server.address[:2]
        shown_host = f"[{host}]" if ":" in host else host
        print(
            f"lanparty relay listening on {shown_host}:{port} (UDP), QUIC library "
            f"{config.settings.backend}"
        )
        print(f"certificate: {certificate}")
        print(f"pin: {config.identity.spki_pin}")
        command = gateway_command(host, port, config.identity.spki_pin, args.public_host)
        print(f"gateway: {command}")
        print("  (a party's host runs this on its gateway, which prints the players' invite)")
        if config.operator_token_hashes is not None:
            print(
                f"rooms: only gateways with one of the {len(config.operator_token_hashes)} "
                "listed operator tokens (--operator-token-file) may open rooms"
            )
        if args.metrics is not None:
            metrics_host, metrics_port = start_metrics_server(relay.metrics, *args.metrics)
            print(f"metrics: http://{metrics_host}:{metrics_port}/metrics")
        sys.stdout.flush()
        log.info(
            events.RELAY_LISTENING, address=f"{shown_host}:{port}", pin=config.identity.spki_pin
        )
        notify_ready(f"listening on {shown_host}:{port} (UDP), pin {config.identity.spki_pin}")
        signal_number = await wait_for_termination()
        notify_stopping()
        log.info(events.RELAY_STOPPED, signal=signal_number, peers=relay.switch.peer_count)
        await relay.disconnect_all()
        nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level, identifier="lanparty-relay")
        identity, certificate = load_identity(args)
        if args.dev_cert_der_out is not None:
            args.dev_cert_der_out.write_bytes(identity.certificate_der())
        config = build_config(args, identity)
    except (ConfigError, OSError) as exc:
        print(f"lanparty-relay: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    try:
        trio.run(run, config, args, certificate)
    except (OSError, LanpartyError, BaseExceptionGroup) as exc:
        error = find_error(exc, (OSError, LanpartyError))
        if error is None:
            raise
        if isinstance(error, OSError):
            host, port = args.listen
            refusal = listen_refusal(port, error)
            if refusal is not None:  # no restart can help: a configuration error
                print(f"lanparty-relay: {refusal}", file=sys.stderr)
                return ExitCode.CONFIG
            print(f"lanparty-relay: cannot listen on {host}:{port}: {error}", file=sys.stderr)
        else:
            print(f"lanparty-relay: {error}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK
