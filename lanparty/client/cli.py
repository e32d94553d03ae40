"""``lanparty-client`` / ``python -m lanparty.client --invite lanparty://...``.

Exit codes (``lanparty.errors.ExitCode``): 0 after Ctrl+C or SIGTERM (the
host restored, the TAP gone), 1 for another failure, 2 for a configuration
error, 3 when the relay refuses us for good (an invite whose key no longer
opens the room, a MAC it will not take, ...).

Windows also has commands of its own (``lanparty-client install-shortcut
INVITE``, ...), given as the first argument and run by
``lanparty.client.windows.commands``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from lanparty import __version__
from lanparty.client.identity import parse_virtual_mac
from lanparty.client.platform import ClientPlatform, current_platform
from lanparty.client.service import ClientConfig, run_client
from lanparty.endpoint.options import (
    add_relay_arguments,
    relay_endpoint_from_args,
    required_invite_from_args,
)
from lanparty.endpoint.session import EvictedError, RejectedError
from lanparty.errors import ConfigError, ExitCode, LanpartyError, find_error
from lanparty.obs import add_log_level_argument, configure_logging
from lanparty.signals import wait_for_termination
from lanparty.transport import QuicBackend, TransportSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanparty-client",
        description="Join a lanparty room: this PC gets a virtual LAN interface (root).",
    )
    parser.add_argument("--version", action="version", version=f"lanparty {__version__}")
    add_relay_arguments(parser, invite=True)
    parser.add_argument(
        "--tap", metavar="NAME",
        help="the virtual interface (Linux: the name to create, default lanparty0; "
        "Windows: which TAP-Windows adapter, by connection name, default the only one)",
    )  # fmt: skip
    parser.add_argument(
        "--identity", type=Path, metavar="FILE",
        help="where this PC's virtual MAC is kept (default: the user's config directory)",
    )  # fmt: skip
    parser.add_argument(
        "--virtual-mac", metavar="MAC",
        help="use this MAC (02:xx:xx:xx:xx:xx) instead of the one in the identity file",
    )  # fmt: skip
    parser.add_argument(
        "--journal", type=Path, metavar="FILE",
        help="where pending host changes are kept (default: the user's state directory)",
    )  # fmt: skip
    parser.add_argument("--watchdog-interval-s", type=float, default=5.0,
                        help="check the relay route this often (default %(default)s)")  # fmt: skip
    parser.add_argument("--status-interval-s", type=float, default=30.0,
                        help="log a status line this often (default %(default)s)")  # fmt: skip
    parser.add_argument(
        "--no-dhcp", action="store_true",
        help="Linux: do not take the TAP's IPv4 address by DHCP (leave it to your own tools)",
    )  # fmt: skip
    parser.add_argument(
        "--use-party-dns", action="store_true",
        help="use the DNS servers the party's DHCP server offers, on the TAP only (Linux: with "
        "systemd-resolved, otherwise they are only logged; Windows: as its DHCP client sets them)",
    )  # fmt: skip
    parser.add_argument(
        "--private-network", action="store_true",
        help="Windows: mark the TAP's network Private while running (LAN games and file "
        "sharing are blocked on Public networks); put back on exit",
    )  # fmt: skip
    add_log_level_argument(parser)
    return parser


def build_config(args: argparse.Namespace) -> ClientConfig:
    if args.watchdog_interval_s <= 0 or args.status_interval_s <= 0:
        raise ConfigError("--watchdog-interval-s and --status-interval-s must be positive")
    if args.virtual_mac is not None:
        parse_virtual_mac(args.virtual_mac)  # a bad MAC is an error now
    invite = required_invite_from_args(args)
    return ClientConfig(
        relay=relay_endpoint_from_args(args),
        room=invite.room,
        client_key=invite.client_key,
        room_name=invite.name,
        tap_name=args.tap,
        identity_path=args.identity,
        virtual_mac=args.virtual_mac,
        journal_path=args.journal,
        settings=TransportSettings(backend=QuicBackend(args.quic_backend)),
        watchdog_interval_s=args.watchdog_interval_s,
        status_interval_s=args.status_interval_s,
        private_network=args.private_network,
        dhcp=not args.no_dhcp,
        use_party_dns=args.use_party_dns,
    )


STOP_GRACE_S = 3.0
"""After Ctrl+C or SIGTERM, how long the client may take to leave the party on its own
(release the DHCP lease) before it is cancelled; a second signal cancels at once."""


async def _run(config: ClientConfig, platform: ClientPlatform) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(_stop_on_termination, stop, nursery.cancel_scope)
        await run_client(config, platform=platform, stop=stop)
        nursery.cancel_scope.cancel()


async def _stop_on_termination(
    stop: trio.Event,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The first SIGINT or SIGTERM sets ``stop``; a second, or ``STOP_GRACE_S``, cancels."""
    await wait_for_termination(task_status=task_status)
    stop.set()
    with trio.move_on_after(STOP_GRACE_S):
        await wait_for_termination()
    scope.cancel()


WINDOWS_COMMANDS = frozenset({"install-shortcut", "set-adapter-mac"})


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if sys.platform == "win32":
        from lanparty.client.windows.elevation import keep_window_open_on_error  # noqa: PLC0415

        keep_window_open_on_error(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in WINDOWS_COMMANDS:
        return _windows_command(arguments)
    args = build_parser().parse_args(arguments)
    try:
        configure_logging(args.log_level)
        config = build_config(args)
        platform = current_platform(private_network=config.private_network)
        if not platform.ensure_privileges(arguments):
            return ExitCode.OK  # an elevated copy of this program runs in our place
    except ConfigError as exc:
        print(f"lanparty-client: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    try:
        trio.run(_run, config, platform)
    except (LanpartyError, BaseExceptionGroup) as exc:
        error = find_error(exc, LanpartyError)
        if error is None:
            raise
        if isinstance(error, RejectedError):
            print(
                f"lanparty-client: {error}. Trying again will not help: ask the party's host "
                "for a current invite.",
                file=sys.stderr,
            )
            return ExitCode.REFUSED
        if isinstance(error, EvictedError):
            print(f"lanparty-client: {error}.", file=sys.stderr)
            return ExitCode.REFUSED
        print(f"lanparty-client: {error}", file=sys.stderr)
        return ExitCode.CONFIG if isinstance(error, ConfigError) else ExitCode.FAILED
    return ExitCode.OK


def _windows_command(arguments: list[str]) -> int:
    if sys.platform != "win32":
        print(f"lanparty-client: {arguments[0]} is a Windows command", file=sys.stderr)
        return ExitCode.CONFIG
    from lanparty.client.windows.commands import run_command  # noqa: PLC0415

    return run_command(arguments[0], arguments[1:])
