"""``lanparty-gateway IFACE`` / ``python -m lanparty.gateway --interface IFACE``.

On start the gateway loads (or, the first time, makes) its room keys and
prints the invite players need, one line starting ``invite: lanparty://``
(unless stdout is the journal: the invite is a secret, and the journal is
read by more people than the party's host). It keeps what the invite needs
in its state directory, so ``lanparty-gateway invite --state-dir DIR``
prints the same line again without connecting.

Under systemd (``Type=notify``) it says ``READY=1`` once the packet socket
is open and GRO/LRO are off, and ``STOPPING=1`` on SIGTERM.

Exit codes (``lanparty.errors.ExitCode``): 0 after Ctrl+C or SIGTERM, 1
for another failure, 2 for a configuration error (a missing capability included), 3 when the relay
refuses us for good (no operator token it accepts, another gateway with
our keys took our place, ...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog
import trio

from lanparty import __version__
from lanparty.credentials import GatewayCredentials, is_room_name
from lanparty.endpoint.options import (
    add_relay_arguments,
    parse_relay_address,
    relay_endpoint_from_args,
)
from lanparty.endpoint.session import EvictedError, RejectedError
from lanparty.errors import ConfigError, ExitCode, LanpartyError, find_error
from lanparty.gateway.cam import DEFAULT_REFRESH_INTERVAL_S
from lanparty.gateway.keys import (
    check_private_state_dir,
    default_state_dir,
    load_or_create_keys,
    read_invite,
    read_operator_token,
    write_invite_details,
)
from lanparty.gateway.service import GatewayConfig, run_gateway
from lanparty.invite import Invite
from lanparty.obs import add_log_level_argument, configure_logging, events
from lanparty.obs.journal import is_journal_stream
from lanparty.obs.notify import notify_ready, notify_stopping
from lanparty.secret_files import write_secret_text
from lanparty.signals import wait_for_termination
from lanparty.transport import PinnedCertificate, QuicBackend, SpkiPin, TransportSettings, spki_pin

log = structlog.get_logger(component="gateway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanparty-gateway",
        description="Bridge a wired LAN interface into a lanparty room (Linux; root, or "
        "CAP_NET_RAW and CAP_NET_ADMIN). Prints the invite players need; "
        "'lanparty-gateway invite' prints it again.",
    )
    parser.add_argument("--version", action="version", version=f"lanparty {__version__}")
    parser.add_argument(
        "interface", nargs="?",
        help="the wired LAN interface, e.g. eth0 (the word 'invite' instead prints the "
        "kept invite: lanparty-gateway invite --state-dir DIR)",
    )  # fmt: skip
    parser.add_argument(
        "--interface", dest="interface_option", metavar="IFACE",
        help="the same as the positional interface",
    )  # fmt: skip
    add_relay_arguments(parser, invite=False)
    room = parser.add_argument_group("room")
    room.add_argument(
        "--state-dir", type=Path, default=None,
        help=f"where the room's keys are kept (default {default_state_dir()})",
    )  # fmt: skip
    room.add_argument(
        "--room-name", metavar="LABEL",
        help="the room's name shown to players (1-32 letters, digits, spaces, _ or -)",
    )  # fmt: skip
    room.add_argument(
        "--rotate-invite", action="store_true",
        help="make a new invite key: players on the old invite are disconnected",
    )  # fmt: skip
    room.add_argument(
        "--invite-out", type=Path, metavar="FILE",
        help="also write the invite to FILE (mode 0600)",
    )  # fmt: skip
    room.add_argument(
        "--operator-token-file", type=Path, metavar="FILE",
        help="a token from the relay's operator, for relays that open rooms only for "
        "listed gateways (a file only you can read)",
    )  # fmt: skip
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


def interface_from_args(args: argparse.Namespace) -> str:
    given = {name for name in (args.interface, args.interface_option) if name is not None}
    if not given:
        raise ConfigError("say which LAN interface to bridge: lanparty-gateway eth0")
    if len(given) > 1:
        raise ConfigError(f"two interfaces given: {' and '.join(sorted(given))}; give one")
    interface: str = given.pop()
    return interface


def build_config(args: argparse.Namespace) -> GatewayConfig:
    """The configuration; loads or makes the room's keys (a ``ConfigError`` if it cannot)."""
    if args.cam_refresh_s <= 0 or args.stats_interval_s <= 0:
        raise ConfigError("--cam-refresh-s and --stats-interval-s must be positive")
    if args.room_name is not None and not is_room_name(args.room_name):
        raise ConfigError(
            f"--room-name {args.room_name!r}: use 1 to 32 letters, digits, spaces, '_' or '-'"
        )
    interface = interface_from_args(args)
    relay = relay_endpoint_from_args(args)
    token = None if args.operator_token_file is None else read_operator_token(
        args.operator_token_file
    )  # fmt: skip
    state_dir = args.state_dir if args.state_dir is not None else default_state_dir()
    keys = load_or_create_keys(state_dir, rotate_invite=args.rotate_invite)
    return GatewayConfig(
        interface=interface,
        relay=relay,
        credentials=GatewayCredentials(
            gateway_key=keys.gateway_key,
            client_key=keys.client_key,
            room_name=args.room_name,
            operator_token=token,
        ),
        state_dir=state_dir,
        keys_created=keys.created,
        invite_rotated=keys.rotated,
        settings=TransportSettings(backend=QuicBackend(args.quic_backend)),
        cam_refresh_s=args.cam_refresh_s,
        stats_interval_s=args.stats_interval_s,
        native=False if args.no_native else None,
    )


def invite_for(args: argparse.Namespace, config: GatewayConfig) -> Invite:
    """The invite players need: this relay, its pin, the room and its key."""
    host, port = parse_relay_address(args.relay)
    trust = config.relay.trust
    if isinstance(trust, SpkiPin):
        pin: str | None = trust.pin
    elif isinstance(trust, PinnedCertificate):
        # The relay's own (self-signed) certificate; for a CA, give --relay-pin instead.
        pin = spki_pin(trust.certificates[0])
    else:
        pin = None
    return Invite(
        host=host,
        port=port,
        room=config.credentials.room_id,
        client_key=config.credentials.client_key,
        pin=pin,
        name=config.credentials.room_name,
        server_name=config.relay.server_name,
    )


def build_invite_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanparty-gateway invite",
        description="Print the room's invite from the gateway's state directory, without "
        "connecting (the line the gateway printed when it started).",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None,
        help=f"the gateway's state directory (default {default_state_dir()})",
    )  # fmt: skip
    return parser


def print_invite(argv: Sequence[str]) -> int:
    """``lanparty-gateway invite``: the kept invite, from a directory only its owner can read."""
    args = build_invite_parser().parse_args(argv)
    state_dir = args.state_dir if args.state_dir is not None else default_state_dir()
    try:
        check_private_state_dir(state_dir)
        invite = read_invite(state_dir)
    except ConfigError as exc:
        print(f"lanparty-gateway invite: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    print(f"invite: {invite.format()}")
    return ExitCode.OK


async def _stop_on_termination(
    scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    await wait_for_termination(task_status=task_status)
    notify_stopping()
    scope.cancel()


async def _run(config: GatewayConfig) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(_stop_on_termination, nursery.cancel_scope)
        await nursery.start(run_gateway, config)
        notify_ready(
            f"bridging {config.interface} into room {config.credentials.room_id} "
            f"via {config.relay.host}:{config.relay.port}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["invite"]:
        return print_invite(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        configure_logging(args.log_level, identifier="lanparty-gateway")
        config = build_config(args)
        invite = invite_for(args, config)
        if config.state_dir is not None:
            write_invite_details(config.state_dir, invite)
        if args.invite_out is not None:
            write_secret_text(args.invite_out, invite.format() + "\n", private_dir=False)
    except ConfigError as exc:
        print(f"lanparty-gateway: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if config.invite_rotated:
        print("a new invite key was made: players on the old invite are disconnected")
    print(f"room: {config.credentials.room_id} ({config.credentials.room_name or 'no name'})")
    if is_journal_stream(sys.stdout):
        print(
            "players join with the room's invite, kept out of the journal; print it with: "
            f"lanparty-gateway invite --state-dir {config.state_dir}"
        )
    else:
        print("players join with this invite (keep it among your players: it opens the room):")
        print(f"invite: {invite.format()}")
    sys.stdout.flush()
    if config.invite_rotated:
        log.info(
            events.INVITE_ROTATED, room=config.credentials.room_id, state_dir=str(config.state_dir)
        )
    try:
        trio.run(_run, config)
    except (LanpartyError, BaseExceptionGroup) as exc:
        error = find_error(exc, LanpartyError)
        if error is None:
            raise
        print(f"lanparty-gateway: {error}", file=sys.stderr)
        if isinstance(error, RejectedError | EvictedError):
            return ExitCode.REFUSED
        return ExitCode.CONFIG if isinstance(error, ConfigError) else ExitCode.FAILED
    return ExitCode.OK
