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
from typing import Any, BinaryIO, Callable, Optional, Union, cast

from ._exceptions import FileChangedError, ValidationError
from ._hashing import Algorithm, HashState
from ._native import ffi, lib
from ._scanfeed import NativeScan
from ._source import FileIdentity

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


def _run_scan(
    scan: NativeScan, call: Callable[[Any], int], progress: Optional[ProgressCallback]
) -> None:
    """Run the native scan (inline when small and unobserved); report progress; cancel on any exception."""
    if progress is None and scan.length <= _INLINE_SCAN_BYTES:
        scan.run_inline(call)
        return
    scan.start(call)
    reported = 0
    try:
        while not scan.wait(_POLL_SECONDS):
            if progress is not None:
                done = scan.bytes_done()
                if done > reported:
                    progress(done - reported)
                    reported = done
    except BaseException:
        scan.cancel_and_join()
        raise
    if progress is not None and scan.ok and reported < scan.length:
        progress(scan.length - reported)


def _result(scan: NativeScan, algorithm: Algorithm, part_size: int, pre_hash: str) -> FileContexts:
    flat = scan.all_states()
    words = scan.words
    parts = []
    for index in range(scan.boundaries + 1):
        offset = index * part_size
        ctx = tuple(flat[(index - 1) * words : index * words]) if index else None
        parts.append(PartContext(index + 1, min(part_size, scan.length - offset), offset, ctx))
    return FileContexts(
        size=scan.length, algorithm=algorithm, digest=scan.digest(), pre_hash=pre_hash,
        part_size=part_size, parts=tuple(parts),
    )


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
    scan = NativeScan(algorithm, stride=part_size, length=length)
    _run_scan(scan, lambda raw: int(lib.kd_scan_fd(raw, fd, offset, length)), progress)
    if not scan.ok:
        raise scan.error(name)
    if FileIdentity.of(os.fstat(fd)) != FileIdentity.of(before):
        raise FileChangedError(f"{name} changed while it was being hashed", path=name)
    return _result(scan, algorithm, part_size, pre_hash)


def _contexts_of_buffer(
    view: memoryview,
    algorithm: Algorithm,
    part_size: int,
    progress: Optional[ProgressCallback],
) -> FileContexts:
    length = view.nbytes
    pre_hash = hashlib.sha256(view[:PRE_HASH_BYTES]).hexdigest()
    scan = NativeScan(algorithm, stride=part_size, length=length)
    data = ffi.from_buffer(view)
    _run_scan(scan, lambda raw: int(lib.kd_scan_buffer(raw, data, length)), progress)
    if not scan.ok:
        raise scan.error("buffer")
    return _result(scan, algorithm, part_size, pre_hash)


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
