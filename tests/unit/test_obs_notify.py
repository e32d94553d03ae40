"""sd_notify: the datagram a service manager holding ``$NOTIFY_SOCKET`` receives."""

from __future__ import annotations

import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanparty.obs.notify import notify, notify_ready, notify_stopping

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="AF_UNIX datagrams")


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A datagram socket standing in for systemd, and the environment that points at it."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, {"NOTIFY_SOCKET": str(path)}


def test_ready_with_a_status_line(manager: tuple[socket.socket, dict[str, str]]) -> None:
    sock, environ = manager
    assert notify_ready("listening on\n[::]:443", environ=environ)
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on [::]:443"


def test_stopping(manager: tuple[socket.socket, dict[str, str]]) -> None:
    sock, environ = manager
    assert notify_stopping(environ=environ)
    assert sock.recv(4096).split(b"\n")[0] == b"STOPPING=1"


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"lanparty-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert notify_ready(environ={"NOTIFY_SOCKET": f"@{name}"})
        assert sock.recv(4096) == b"READY=1"


def test_without_the_variable_nothing_is_sent() -> None:
    assert not notify("READY=1", environ={})
    assert not notify_ready(environ={"NOTIFY_SOCKET": ""})


def test_a_socket_nobody_holds_is_not_an_error(tmp_path: Path) -> None:
    assert not notify_ready(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notify_ready(environ={"NOTIFY_SOCKET": "vsock:2:1234"})
