"""Only what pyproject.toml cannot say: the cffi-built C shim (native/)."""

import sys

from setuptools import setup

setup(
    cffi_modules=["native/build_native.py:ffibuilder"] if sys.platform.startswith("linux") else [],
)
