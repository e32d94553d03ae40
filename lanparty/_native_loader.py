"""Loading the C shim ``lanparty._native`` (built from ``native/`` by the package install).

The gateway's packet socket and the client's TAP device use it when it was
built and fall back to pure Python when it was not (no C compiler at install
time, or not Linux). Nothing is cached: a test that makes the import fail
(``sys.modules["lanparty._native"] = None``) sees the fallback at once.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["load_native", "native_available"]


def load_native() -> Any | None:
    """The cffi module of the C shim, or None when it was not built."""
    try:
        return importlib.import_module("lanparty._native")
    except ImportError:
        return None


def native_available() -> bool:
    """Whether the C shim was built and can be loaded (only ever on Linux)."""
    return sys.platform == "linux" and load_native() is not None
