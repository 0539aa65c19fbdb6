"""Loads the compiled hash core, checks its version and initialises dispatch.

Everything else in the package reaches C through ``ffi`` and ``lib`` from
here; users never see them.
"""

from __future__ import annotations

from ._version import __version__

try:
    from ._kdsha import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "koodrive_fast's compiled hash core is missing; reinstall with "
        "`pip install .` (a C compiler is needed to build from source)"
    ) from exc

__all__ = ["ffi", "lib", "ALGORITHMS", "WORDS", "DIGEST_SIZES", "kernel_names"]


def _check_version() -> None:
    built = ffi.string(lib.kd_version()).decode()
    if built != __version__:
        raise ImportError(
            f"koodrive_fast {__version__} found a compiled core built for {built}; "
            "rebuild it (`pip install -e .` or `pip install --force-reinstall .`)"
        )


def _usable_kernels() -> tuple[str, ...]:
    """The kernels this CPU can run for SHA-256 or SHA-1, best first."""
    return tuple(
        name for name in kernel_names
        if any(lib.kd_kernel_available(alg, name.encode()) for alg in (lib.KD_ALG_SHA256, lib.KD_ALG_SHA1))
    )


def _init() -> None:
    import os

    from ._exceptions import KernelUnavailableError

    rc = lib.kd_init()
    if rc == lib.KD_OK:
        return
    usable = _usable_kernels()
    forced = os.environ.get("KOODRIVE_FAST_KERNEL", "")
    if forced and forced != "auto":
        raise KernelUnavailableError(
            f"KOODRIVE_FAST_KERNEL={forced!r} is not a kernel this CPU can run; "
            f"use one of: {', '.join(usable)} (or auto)",
            usable=usable,
        )
    raise KernelUnavailableError(
        "koodrive_fast hash core failed to initialise: "
        + ffi.string(lib.kd_init_error()).decode(),
        usable=usable,
    )


#: every kernel name the core knows, best first
kernel_names = ("sha-ni", "armv8", "avx2", "portable")

_check_version()
_init()

#: algorithm name -> C constant
ALGORITHMS = {"sha256": lib.KD_ALG_SHA256, "sha1": lib.KD_ALG_SHA1}
#: algorithm name -> number of 32-bit chaining words
WORDS = {"sha256": 8, "sha1": 5}
#: algorithm name -> digest size in bytes
DIGEST_SIZES = {"sha256": 32, "sha1": 20}
