"""Build script: metadata lives in pyproject.toml; this wires the cffi module."""

from setuptools import setup

setup(cffi_modules=["csrc/build_kdsha.py:ffibuilder"])
