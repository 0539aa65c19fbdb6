"""``part_contexts``: one sequential pass over a file -> digest, preHash and every part's hashCtx.

The whole range is hashed by a single ``kd_scan_fd`` (or ``kd_scan_buffer``)
call on a worker thread, without the GIL; the calling thread only polls the
scan's progress counter, so a busy Python thread elsewhere does not slow the
hashing down, and Ctrl-C cancels the scan promptly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import stat
import threading
from typing import Any, BinaryIO, Callable, Optional, Union, cast

from ._exceptions import FileChangedError, ValidationError
from ._hashing import Algorithm, HashState
from ._native import ALGORITHMS, DIGEST_SIZES, WORDS, ffi, lib

__all__ = ["FileContexts", "PartContext", "part_contexts"]

#: bytes hashed for KooDrive's ``preHash``
PRE_HASH_BYTES = 1024
_POLL_SECONDS = 0.05
# below this many bytes the scan runs on the calling thread (no progress
# polling needed, and a thread start would cost more than the hashing)
_INLINE_SCAN_BYTES = 4 * 1024 * 1024

Source = Union[str, "os.PathLike[str]", "os.PathLike[bytes]", BinaryIO, Any]
ProgressCallback = Callable[[int], object]


@dataclasses.dataclass(frozen=True)
class PartContext:
    """One part: number (from 1), size, offset and the words before it (None for part 1)."""

    part_number: int
    part_size: int
    part_offset: int
    hash_ctx: Optional[tuple[int, ...]]

    def to_multi_part(self) -> dict[str, Any]:
        """This part as an uploadUrl ``multiParts`` entry (part 1 has no ``hashCtx``)."""
        entry: dict[str, Any] = {
            "partNumber": self.part_number,
            "partSize": self.part_size,
            "partOffset": self.part_offset,
        }
        if self.hash_ctx is not None:
            entry["hashCtx"] = list(self.hash_ctx)
        return entry


@dataclasses.dataclass(frozen=True)
class FileContexts:
    """Result of :func:`part_contexts`.

    ``digest`` is the hex digest of the whole source with ``algorithm``;
    ``pre_hash`` is the hex SHA-256 of its first 1024 bytes whatever the
    algorithm (KooDrive's ``preHash``).
    """

    size: int
    algorithm: Algorithm
    digest: str
    pre_hash: str
    part_size: int
    parts: tuple[PartContext, ...]

    def part_state(self, part_number: int) -> HashState:
        """The :class:`HashState` before ``part_number`` (the IV for part 1)."""
        if not 1 <= part_number <= len(self.parts):
            raise ValueError(f"part_number must be in 1..{len(self.parts)}, got {part_number}")
        part = self.parts[part_number - 1]
        if part.hash_ctx is None:
            return HashState.initial(self.algorithm)
        return HashState(self.algorithm, part.hash_ctx, part.part_offset)

    def to_multi_parts(self) -> list[dict[str, Any]]:
        """All parts exactly as an uploadUrl request's ``multiParts``."""
        return [part.to_multi_part() for part in self.parts]

    def to_dict(self) -> dict[str, Any]:
        """The ``koodrive-fast hash --json`` document (camelCase)."""
        return {
            "size": self.size,
            "algorithm": self.algorithm,
            "digest": self.digest,
            "preHash": self.pre_hash,
            "partSize": self.part_size,
            "multiParts": self.to_multi_parts(),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def _check_part_size(part_size: object) -> int:
    if not isinstance(part_size, int) or isinstance(part_size, bool):
        raise TypeError(f"part_size must be an int, got {type(part_size).__name__}")
    if part_size <= 0 or part_size % 64:
        raise ValidationError("part_size", f"must be a positive multiple of 64, got {part_size}")
    return part_size


def _check_algorithm(algorithm: object) -> Algorithm:
    if algorithm == "sha256":
        return "sha256"
    if algorithm == "sha1":
        return "sha1"
    raise ValidationError("algorithm", f"must be 'sha256' or 'sha1', got {algorithm!r}")


def _join_through_interrupts(thread: threading.Thread) -> None:
    """Wait for a cancelled scan to stop even if Ctrl-C is pressed again.

    The scan reads the caller's file descriptor and writes into arrays the
    caller frees, so returning while it still runs is never safe.
    """
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt:
            continue


_PLAIN_FILE_TYPES = (io.BufferedReader, io.BufferedRandom)


def _plain_file(source: object) -> Optional[Any]:
    """``source`` (or the file inside a tempfile wrapper) when it reads straight from its fd."""
    for candidate in (source, getattr(source, "file", None)):
        if isinstance(candidate, io.FileIO):
            return candidate
        if isinstance(candidate, _PLAIN_FILE_TYPES) and isinstance(
            getattr(candidate, "raw", None), io.FileIO
        ):
            return candidate
    return None


class _Scan:
    """One native scan of ``length`` bytes, with its output arrays kept alive."""

    def __init__(self, algorithm: Algorithm, part_size: int, length: int) -> None:
        self.algorithm = algorithm
        self.length = length
        self.words = WORDS[algorithm]
        self.boundaries = max(0, -(-length // part_size) - 1)
        self.scan = ffi.new("kd_scan *")
        self.states = ffi.new("uint32_t[]", max(1, self.boundaries * self.words))
        lib.kd_hash_init(ffi.addressof(self.scan[0], "ctx"), ALGORITHMS[algorithm])
        self.scan.stride = part_size
        self.scan.states = self.states
        self.scan.max_states = self.boundaries
        self.status: Optional[int] = None

    def run(self, call: Callable[[], int], progress: Optional[ProgressCallback]) -> int:
        """Run ``call`` (the native scan); report progress; cancel on any exception."""
        if progress is None and self.length <= _INLINE_SCAN_BYTES:
            return call()

        def worker() -> None:
            self.status = call()

        thread = threading.Thread(target=worker, name="koodrive-fast-scan", daemon=True)
        thread.start()
        reported = 0
        try:
            while thread.is_alive():
                thread.join(_POLL_SECONDS)
                if progress is not None:
                    done = int(lib.kd_scan_bytes_done(self.scan))
                    if done > reported:
                        progress(done - reported)
                        reported = done
        except BaseException:
            lib.kd_scan_cancel(self.scan)
            _join_through_interrupts(thread)
            raise
        if progress is not None and self.status == lib.KD_OK and reported < self.length:
            progress(self.length - reported)
        assert self.status is not None
        return self.status

    def result(self, part_size: int, pre_hash: str) -> FileContexts:
        out = ffi.new("uint8_t[]", DIGEST_SIZES[self.algorithm])
        lib.kd_hash_digest(ffi.addressof(self.scan[0], "ctx"), out)
        flat = ffi.unpack(self.states, self.boundaries * self.words) if self.boundaries else []
        parts = []
        for index in range(self.boundaries + 1):
            offset = index * part_size
            words = tuple(flat[(index - 1) * self.words : index * self.words]) if index else None
            size = min(part_size, self.length - offset)
            parts.append(PartContext(index + 1, size, offset, words))
        return FileContexts(
            size=self.length,
            algorithm=self.algorithm,
            digest=bytes(ffi.buffer(out)).hex(),
            pre_hash=pre_hash,
            part_size=part_size,
            parts=tuple(parts),
        )


def _scan_error(status: int, scan: _Scan, name: str) -> Exception:
    if status == lib.KD_ESHORT:
        return FileChangedError(f"{name} got shorter while it was being hashed", path=name)
    if status == lib.KD_EIO:
        errno = int(scan.scan.error)
        return OSError(errno, f"reading {name} failed: {os.strerror(errno)}")
    if status == lib.KD_ENOMEM:
        return MemoryError(f"out of memory while hashing {name}")
    return RuntimeError(f"native scan of {name} failed with status {status}")


def _regular_file_stat(fd: int, name: str) -> os.stat_result:
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{name} is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError("source", f"{name} is not a regular file")
    return info


def _contexts_of_fd(
    fd: int,
    offset: int,
    name: str,
    algorithm: Algorithm,
    part_size: int,
    progress: Optional[ProgressCallback],
) -> FileContexts:
    before = _regular_file_stat(fd, name)
    length = max(0, before.st_size - offset)
    pre_hash = hashlib.sha256(os.pread(fd, PRE_HASH_BYTES, offset)).hexdigest()
    scan = _Scan(algorithm, part_size, length)
    status = scan.run(lambda: int(lib.kd_scan_fd(scan.scan, fd, offset, length)), progress)
    if status != lib.KD_OK:
        raise _scan_error(status, scan, name)
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChangedError(f"{name} changed while it was being hashed", path=name)
    return scan.result(part_size, pre_hash)


def _contexts_of_buffer(
    view: memoryview,
    algorithm: Algorithm,
    part_size: int,
    progress: Optional[ProgressCallback],
) -> FileContexts:
    length = view.nbytes
    pre_hash = hashlib.sha256(view[:PRE_HASH_BYTES]).hexdigest()
    scan = _Scan(algorithm, part_size, length)
    data = ffi.from_buffer(view)
    status = scan.run(lambda: int(lib.kd_scan_buffer(scan.scan, data, length)), progress)
    if status != lib.KD_OK:
        raise _scan_error(status, scan, "buffer")
    return scan.result(part_size, pre_hash)


def part_contexts(
    source: Source,
    part_size: int,
    algorithm: str = "sha256",
    *,
    progress: Optional[ProgressCallback] = None,
) -> FileContexts:
    """Hash ``source`` once, sequentially, and return the digest and every part's context.

    ``source`` is one of:

    - a path (``str`` or ``os.PathLike``) -- the whole file;
    - a binary file from ``open(path, "rb")`` (or ``"r+b"``, or a
      ``tempfile`` file) -- from its current position to the end of the file,
      which is where the position is left.  Other objects with ``fileno()``
      (``gzip.GzipFile``, sockets) raise ``TypeError``: their descriptor does
      not hold the bytes they read;
    - an ``io.BytesIO`` -- likewise from its current position;
    - a buffer (``bytes``, ``bytearray``, ``memoryview``, ``mmap``) -- all of it.

    ``part_size`` is any positive multiple of 64 (``ValidationError``, a
    ``ValueError``, otherwise).  ``progress(n)`` is called on the calling
    thread with the number of bytes hashed since the previous call; if it
    raises, the scan is cancelled and the exception propagates (as does
    ``KeyboardInterrupt``).  A file that is shortened, grown or modified
    during the scan raises :class:`~koodrive_fast.FileChangedError`.
    """
    part_size = _check_part_size(part_size)
    checked_algorithm = _check_algorithm(algorithm)
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable or None")

    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is then rejected)
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            return _contexts_of_fd(fd, 0, name, checked_algorithm, part_size, progress)
        finally:
            os.close(fd)

    if isinstance(source, io.TextIOBase):
        raise TypeError("source must be opened in binary mode ('rb'), not text mode")
    file_object = _plain_file(source)
    if file_object is not None:
        file_object.flush()  # unwritten data of an 'r+b' file must reach the fd
        fd = file_object.fileno()
        name = str(getattr(file_object, "name", f"fd {fd}"))
        _regular_file_stat(fd, name)
        offset = file_object.tell()
        result = _contexts_of_fd(fd, offset, name, checked_algorithm, part_size, progress)
        file_object.seek(offset + result.size)
        return result
    if hasattr(source, "fileno") and not isinstance(source, io.BytesIO):
        raise TypeError(
            f"source {type(source).__name__} is not a plain binary file (its fileno() may "
            "not hold the bytes it reads, as with gzip.GzipFile); pass a path instead"
        )

    if isinstance(source, io.BytesIO):
        offset = source.tell()
        with source.getbuffer() as whole:
            result = _contexts_of_buffer(whole[offset:], checked_algorithm, part_size, progress)
        source.seek(offset + result.size)
        return result

    try:
        view = memoryview(cast(Any, source))
    except TypeError:
        raise TypeError(
            "source must be a path, a binary file object with fileno(), an io.BytesIO "
            f"or a bytes-like object, got {type(source).__name__}"
        ) from None
    with view:
        return _contexts_of_buffer(view.cast("B"), checked_algorithm, part_size, progress)
