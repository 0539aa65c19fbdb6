"""The one wrapper over the native scan (``kd_scan_fd`` / ``kd_scan_buffer``).

:class:`NativeScan` owns one ``kd_scan`` and the array the C core writes the
chaining state into at every ``stride`` boundary.  It can run on the calling
thread (:meth:`run_inline`) or on its own thread (:meth:`start`), in which
case the owner polls :meth:`poll` for the states and bytes published so far
(the C side publishes them with release stores; the reads are acquire loads).
``part_contexts`` and the upload engine's hash feed both use it, and
:func:`scan_status_error` is the one mapping of a scan status to an exception.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional, Sequence

from ._exceptions import FileChangedError, LocalFileError, KooDriveError
from ._native import ALGORITHMS, DIGEST_SIZES, WORDS, ffi, lib

__all__ = ["NativeScan", "ScanCancelled", "scan_status_error", "join_through_interrupts"]


class ScanCancelled(KooDriveError):
    """The scan was cancelled by its owner."""


def scan_status_error(status: int, errno: int, name: str) -> KooDriveError:
    """The exception for a failed scan (``status`` is a ``KD_E*`` code)."""
    if status == lib.KD_ESHORT:
        return FileChangedError(f"{name} got shorter while it was being hashed", path=name)
    if status == lib.KD_ECANCELLED:
        return ScanCancelled("hashing cancelled")
    if status == lib.KD_EIO:
        return LocalFileError(f"reading {name} failed: {os.strerror(errno)}", path=name, errno=errno)
    if status == lib.KD_ENOMEM:
        return LocalFileError(f"out of memory while hashing {name}", path=name)
    return LocalFileError(f"hashing {name} failed (native status {status})", path=name)


def join_through_interrupts(thread: threading.Thread) -> None:
    """Wait for a cancelled scan to stop even if Ctrl-C is pressed again.

    The scan reads the caller's file descriptor and writes into arrays owned
    here, so returning while it still runs is never safe.
    """
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt:
            continue


class NativeScan:
    """One scan of ``length`` bytes; the state at each ``stride`` boundary is recorded.

    ``start_words``/``start_length`` resume from a known state (a checkpoint);
    ``allowed_end`` (absolute byte offset, 0 = no limit) holds the scan back
    until :meth:`allow` moves it (the uploader keeps hashing a window ahead).
    """

    def __init__(
        self,
        algorithm: str,
        *,
        stride: int,
        length: int,
        start_words: Optional[Sequence[int]] = None,
        start_length: int = 0,
        read_size: int = 0,
        allowed_end: int = 0,
    ) -> None:
        self.algorithm = algorithm
        self.words = WORDS[algorithm]
        self.length = length
        self.boundaries = max(0, -(-length // stride) - 1)
        self._scan: Any = ffi.new("kd_scan *")
        ctx = ffi.addressof(self._scan[0], "ctx")
        alg = ALGORITHMS[algorithm]
        if start_words is None:
            rc = lib.kd_hash_init(ctx, alg)
        else:
            rc = lib.kd_hash_set_state(ctx, alg, ffi.new("uint32_t[]", list(start_words)), start_length)
        if rc != lib.KD_OK:
            raise LocalFileError(f"cannot start hashing (native status {rc})")
        self._states: Any = ffi.new("uint32_t[]", max(1, self.boundaries * self.words))
        self._scan.states = self._states
        self._scan.max_states = self.boundaries
        self._scan.stride = stride
        if read_size:
            self._scan.read_size = read_size
        self._scan.allowed_end = allowed_end
        self.status: Optional[int] = None
        self._thread: Optional[threading.Thread] = None

    # -- running

    def run_inline(self, call: Callable[[Any], int]) -> int:
        self.status = int(call(self._scan))
        return self.status

    def start(self, call: Callable[[Any], int]) -> None:
        """Run ``call(kd_scan*)`` (the GIL-free C call) on a new thread."""

        def body() -> None:
            self.status = int(call(self._scan))

        self._thread = threading.Thread(target=body, name="koodrive-fast-scan", daemon=True)
        self._thread.start()

    def start_fd(self, fd: int, offset: int) -> None:
        self.start(lambda scan: lib.kd_scan_fd(scan, fd, offset, self.length))

    def finished(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished()

    def cancel_and_join(self) -> None:
        """Stop the scan and wait for its thread (never leaves it running)."""
        lib.kd_scan_cancel(self._scan)
        if self._thread is not None:
            join_through_interrupts(self._thread)

    def allow(self, end: int) -> None:
        lib.kd_scan_allow(self._scan, end)

    # -- results

    def states_done(self) -> int:
        return int(lib.kd_scan_states_done(self._scan))

    def bytes_done(self) -> int:
        return int(lib.kd_scan_bytes_done(self._scan))

    def state(self, index: int) -> tuple[int, ...]:
        return tuple(self._states[index * self.words : (index + 1) * self.words])

    def all_states(self) -> list[int]:
        return list(ffi.unpack(self._states, self.boundaries * self.words)) if self.boundaries else []

    def error(self, name: str) -> KooDriveError:
        assert self.status is not None and self.status != lib.KD_OK
        return scan_status_error(self.status, int(self._scan.error), name)

    @property
    def ok(self) -> bool:
        return bool(self.status == lib.KD_OK)

    def digest(self) -> str:
        out = ffi.new("uint8_t[]", DIGEST_SIZES[self.algorithm])
        lib.kd_hash_digest(ffi.addressof(self._scan[0], "ctx"), out)
        return bytes(ffi.buffer(out)).hex()
