"""Build script: metadata lives in pyproject.toml; this wires the cffi module
and tags the wheel ``cp39-abi3`` (one wheel for CPython 3.9 and every later one)."""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
from build_kdsha import LIMITED_API_TAG, stable_abi

setup(
    cffi_modules=["csrc/build_kdsha.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": LIMITED_API_TAG}} if stable_abi() else {},
)
