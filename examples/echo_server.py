"""A QUIC datagram echo server on the lanparty transport.

Used by the transport benchmark and the multi-process transport test; also a
small example of ``lanparty.transport.serve``. On start it prints one JSON
line with the bound address and the certificate's SPKI pin, then serves
until interrupted. Datagrams are echoed (``--mode echo``) or only counted
(``--mode sink``); any control message is answered with a ``stats``
message holding the connection's counters.

    python examples/echo_server.py --listen 127.0.0.1:0 --state-dir /tmp/echo

Ctrl+C or SIGTERM stops it with exit code 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import trio

from lanparty.ctrl import Stats
from lanparty.obs import add_log_level_argument, configure_logging
from lanparty.signals import cancel_on_termination
from lanparty.transport import (
    Connection,
    ConnectionClosedError,
    QuicBackend,
    QuicServer,
    TransportSettings,
    load_or_create_dev_identity,
    serve,
)


async def handle(connection: Connection, echo: bool) -> None:
    async def answer_control() -> None:
        while True:
            await connection.receive_control()
            connection.send_control(Stats(**connection.counters.snapshot().log_fields()))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_control)
            while True:
                frames = await connection.receive_datagrams()
                if echo:
                    connection.send_datagrams(frames)
    except* ConnectionClosedError:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to bind")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--backend", choices=[b.value for b in QuicBackend], default="qh3")
    parser.add_argument("--mode", choices=["echo", "sink"], default="echo")
    parser.add_argument("--send-queue-frames", type=int, default=256)
    add_log_level_argument(parser, default="warning")
    args = parser.parse_args()
    configure_logging(args.log_level)
    host, _, port = args.listen.rpartition(":")
    identity = load_or_create_dev_identity(args.state_dir)
    settings = TransportSettings(
        backend=QuicBackend(args.backend), send_queue_frames=args.send_queue_frames
    )
    echo = args.mode == "echo"

    async def handler(connection: Connection) -> None:
        await handle(connection, echo)

    async with trio.open_nursery() as nursery:
        await nursery.start(cancel_on_termination, nursery.cancel_scope)
        server: QuicServer = await nursery.start(
            serve, host.strip("[]"), int(port), identity, handler, settings
        )
        address = server.address
        print(json.dumps({"host": address[0], "port": address[1], "pin": identity.spki_pin}))
        sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main)
