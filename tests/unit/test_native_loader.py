"""Loading the C shim: the module when it was built, None (and the fallback) when not."""

from __future__ import annotations

import sys

import pytest

from lanparty import _native_loader


def test_the_built_shim_is_loaded() -> None:
    module = _native_loader.load_native()
    assert module is not None, "pip install -e . did not build lanparty._native"
    assert hasattr(module.lib, "lp_tap_read_batch")
    assert hasattr(module.lib, "lp_recv_batch")
    assert _native_loader.native_available()


def test_a_shim_that_cannot_be_imported_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lanparty._native", None)  # makes the import fail
    assert _native_loader.load_native() is None
    assert not _native_loader.native_available()


def test_elsewhere_than_linux_the_shim_is_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert not _native_loader.native_available()
