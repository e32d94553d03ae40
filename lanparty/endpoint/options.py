"""Command-line options every endpoint (gateway, client) shares: the relay and trust.

The gateway says where the relay is and how to trust it (the relay prints
that command line):

    --relay HOST:PORT and one of
    --relay-pin sha256:...   --relay-ca-cert FILE   --server-name NAME (system trust)

A client is given the invite the party's gateway printed, which holds all of
it and the room and its key:

    --invite lanparty://HOST:PORT/ROOMID?pin=sha256:...&key=...

Options given next to ``--invite`` replace its parts: ``--relay``,
``--relay-pin`` or ``--relay-ca-cert`` (either replaces the invite's pin),
``--server-name``. Read the result with ``relay_endpoint_from_args``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lanparty.endpoint.session import RelayEndpoint
from lanparty.errors import ConfigError
from lanparty.invite import Invite
from lanparty.transport import PinnedCertificate, QuicBackend, SpkiPin, SystemTrust, Trust

DEFAULT_RELAY_PORT = 4433
_MISSING_INVITE = (
    "say which room to join: --invite 'lanparty://...' (the party's gateway prints it; "
    "ask the party's host)"
)
_MISSING_RELAY = (
    "say which relay to use: --relay HOST:PORT --relay-pin sha256:... "
    "(the relay prints this command line)"
)


def add_relay_arguments(parser: argparse.ArgumentParser, *, invite: bool) -> None:
    """The relay's address and trust; ``invite`` adds ``--invite`` (clients)."""
    description = (
        "an invite; the other options replace its parts"
        if invite
        else "--relay and a trust option, as the relay prints them"
    )
    group = parser.add_argument_group("relay", description)
    if invite:
        group.add_argument(
            "--invite",
            metavar="lanparty://HOST:PORT/ROOMID?pin=...&key=...",
            help="the relay, its pin, the room and its key in one string, as the party's "
            "gateway prints it",
        )
    group.add_argument(
        "--relay",
        metavar="HOST[:PORT]",
        help=f"the relay's address (default port {DEFAULT_RELAY_PORT})",
    )
    trust = group.add_mutually_exclusive_group()
    trust.add_argument(
        "--relay-pin",
        metavar="sha256:HEX",
        help="SHA-256 pin of the relay's public key, as the relay prints it",
    )
    trust.add_argument(
        "--relay-ca-cert",
        type=Path,
        metavar="FILE",
        help="the relay's certificate (or its CA), DER or PEM",
    )
    group.add_argument(
        "--server-name",
        metavar="NAME",
        help="the relay's name: checked against the system trust store when no "
        "pin or certificate is given, otherwise only sent as SNI",
    )
    group.add_argument("--quic-backend", choices=[b.value for b in QuicBackend],
                       default=QuicBackend.QH3.value)  # fmt: skip


def parse_relay_address(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port``; the port defaults to 4433."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"--relay wants HOST or HOST:PORT, not {text!r}")
    if not port_text:
        return host, DEFAULT_RELAY_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{text!r} has no valid port (1 to 65535)")
    return host, int(port_text)


def invite_from_args(args: argparse.Namespace) -> Invite | None:
    """The ``--invite`` given, parsed (``ConfigError`` if it is bad), or None."""
    text = getattr(args, "invite", None)
    return None if text is None else Invite.parse(text)


def required_invite_from_args(args: argparse.Namespace) -> Invite:
    """The client's ``--invite``, parsed; ``ConfigError`` when missing or bad."""
    invite = invite_from_args(args)
    if invite is None:
        raise ConfigError(_MISSING_INVITE)
    return invite


def trust_from_args(args: argparse.Namespace) -> Trust:
    if args.relay_pin is not None:
        return SpkiPin.parse(args.relay_pin)
    if args.relay_ca_cert is not None:
        return PinnedCertificate.from_file(args.relay_ca_cert)
    invite = invite_from_args(args)
    if invite is not None:
        # An invite without a pin is for a relay with a public CA certificate.
        return SystemTrust() if invite.pin is None else SpkiPin.parse(invite.pin)
    if args.server_name is None:
        raise ConfigError(
            "say how to trust the relay: --relay-pin sha256:... (the relay prints it), "
            "--relay-ca-cert FILE, or --server-name NAME for a relay with a public certificate"
        )
    return SystemTrust()


def relay_endpoint_from_args(args: argparse.Namespace) -> RelayEndpoint:
    """Where the relay is and how to trust it (``--relay`` first, else the invite)."""
    invite = invite_from_args(args)
    if args.relay is not None:
        host, port = parse_relay_address(args.relay)
    elif invite is not None:
        host, port = invite.host, invite.port
    else:
        raise ConfigError(_MISSING_INVITE if hasattr(args, "invite") else _MISSING_RELAY)
    server_name = args.server_name
    if server_name is None and invite is not None and invite.server_name is not None:
        server_name = invite.server_name
    return RelayEndpoint(host, port, trust_from_args(args), server_name=server_name)
