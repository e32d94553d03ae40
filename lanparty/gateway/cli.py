"""``lanparty-gateway IFACE`` / ``python -m lanparty.gateway IFACE``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio

from lanparty import __version__
from lanparty.endpoint_options import add_relay_arguments, relay_endpoint_from_args, room_from_args
from lanparty.errors import ConfigError, LanpartyError, find_error
from lanparty.gateway.cam import DEFAULT_REFRESH_INTERVAL_S
from lanparty.gateway.service import GatewayConfig, run_gateway
from lanparty.obs import add_log_level_argument, configure_logging
from lanparty.session import RejectedError
from lanparty.signals import cancel_on_termination
from lanparty.transport import QuicBackend, TransportSettings

EXIT_REFUSED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanparty-gateway",
        description="Bridge a wired LAN interface into a lanparty room (Linux, root).",
    )
    parser.add_argument("--version", action="version", version=f"lanparty {__version__}")
    parser.add_argument("interface", help="the wired LAN interface, e.g. eth0")
    add_relay_arguments(parser)
    parser.add_argument(
        "--cam-refresh-s",
        type=float,
        default=DEFAULT_REFRESH_INTERVAL_S,
        help="refresh remote MACs in the LAN switch this often (default %(default)s)",
    )
    parser.add_argument("--stats-interval-s", type=float, default=30.0)
    parser.add_argument("--no-native", action="store_true", help="use the pure-Python packet path")
    add_log_level_argument(parser)
    return parser


def build_config(args: argparse.Namespace) -> GatewayConfig:
    if args.cam_refresh_s <= 0 or args.stats_interval_s <= 0:
        raise ConfigError("--cam-refresh-s and --stats-interval-s must be positive")
    return GatewayConfig(
        interface=args.interface,
        relay=relay_endpoint_from_args(args),
        room=room_from_args(args),
        settings=TransportSettings(backend=QuicBackend(args.quic_backend)),
        cam_refresh_s=args.cam_refresh_s,
        stats_interval_s=args.stats_interval_s,
        native=False if args.no_native else None,
    )


async def _run(config: GatewayConfig) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(cancel_on_termination, nursery.cancel_scope)
        await run_gateway(config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(args.log_level)
        config = build_config(args)
    except ConfigError as exc:
        print(f"lanparty-gateway: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(_run, config)
    except (LanpartyError, BaseExceptionGroup) as exc:
        error = find_error(exc, LanpartyError)
        if error is None:
            raise
        print(f"lanparty-gateway: {error}", file=sys.stderr)
        if isinstance(error, RejectedError):
            return EXIT_REFUSED
        return 2 if isinstance(error, ConfigError) else 1
    return 0
