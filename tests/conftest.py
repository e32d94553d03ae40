"""Shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that runs a ``main()`` configures logging onto its captured stderr.

    That stream is closed after the test: put structlog back so later tests
    do not write to it.
    """
    yield
    structlog.reset_defaults()
