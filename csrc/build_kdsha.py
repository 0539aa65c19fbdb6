"""cffi builder for the native hash core (API / out-of-line mode).

The cdef is the region between ``BEGIN CDEF`` and ``END CDEF`` in
``csrc/kd_sha.h``, the same header the C sources include.  The package
version is stamped into the module (``kd_version()``) and checked at import.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCES = ["kd_dispatch.c", "kd_hash.c", "kd_portable.c", "kd_recv.c"]
SOURCES += sorted(
    name for name in os.listdir(HERE) if name.startswith("kd_k_") and name.endswith(".c")
)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _package_version() -> str:
    text = _read(os.path.join(ROOT, "src", "koodrive_fast", "_version.py"))
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise RuntimeError("cannot find __version__ in src/koodrive_fast/_version.py")
    return match.group(1)


def _cdef() -> str:
    header = _read(os.path.join(HERE, "kd_sha.h"))
    match = re.search(r"/\* BEGIN CDEF \*/(.*)/\* END CDEF \*/", header, re.S)
    if not match:
        raise RuntimeError("kd_sha.h has no CDEF region")
    return match.group(1)


#: The wheel's stable-ABI floor (``requires-python`` in pyproject.toml).
LIMITED_API_TAG = "cp39"


def stable_abi() -> bool:
    """Build one ``abi3`` extension for every CPython >= 3.9, except where the
    stable ABI does not exist: debug and free-threaded builds, other Pythons."""
    return (
        sys.implementation.name == "cpython"
        and not hasattr(sys, "gettotalrefcount")
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
    )


def _compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    return ["-O3", "-Wall", "-Wextra", "-std=c11", "-fno-strict-aliasing"]


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "koodrive_fast._kdsha",
    '#include "kd_sha.h"\n',
    sources=[os.path.join("csrc", name) for name in SOURCES],
    include_dirs=["csrc"],
    # headers, so an edited kernel table or cdef rebuilds every object
    depends=sorted(os.path.join("csrc", n) for n in os.listdir(HERE) if n.endswith(".h")),
    define_macros=[("KD_PACKAGE_VERSION", '"%s"' % _package_version())],
    extra_compile_args=_compile_args(),
    libraries=[] if sys.platform == "win32" else ["pthread"],
    py_limited_api=stable_abi(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
