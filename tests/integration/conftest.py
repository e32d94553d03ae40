"""Shared fixtures for tests over real UDP sockets on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanparty.transport import QuicBackend, ServerIdentity, load_or_create_dev_identity


@pytest.fixture(scope="session")
def dev_identity(tmp_path_factory: pytest.TempPathFactory) -> ServerIdentity:
    return load_or_create_dev_identity(tmp_path_factory.mktemp("relay-state"))


@pytest.fixture(params=[QuicBackend.QH3, QuicBackend.AIOQUIC], ids=str)
def backend(request: pytest.FixtureRequest) -> QuicBackend:
    value: QuicBackend = request.param
    return value


@pytest.fixture
def pem_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write
