"""The local file being uploaded: its identity, a safe open, and a shared descriptor.

:class:`FileIdentity` is what "the same file, unchanged" means everywhere
(change detection, checkpoint keys, the sync snapshot): size, ``mtime_ns``,
``ctime_ns``, inode and device.  ``ctime`` matters: an in-place edit that
restores the mtime (``touch -r``, tools that keep timestamps) still moves it.

:class:`SourceFile` opens a path without ever blocking (``O_NONBLOCK``: a
FIFO swapped in for the file is rejected instead of waiting for a writer),
checks the opened descriptor is the regular file that was stat'ed, refuses
a file that yields data past its reported size (``/proc`` files report 0),
and is reference-counted: the descriptor is closed only when the owner *and*
every part sender that borrowed it have released it, so no thread can
``pread`` a reused descriptor.
"""

from __future__ import annotations

import dataclasses
import os
import stat as stat_module
import threading
from typing import Union

from ._exceptions import FileChangedError, LocalFileError, ValidationError

__all__ = ["FileIdentity", "SourceFile", "stat_identity", "check_path"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class FileIdentity:
    """Size, mtime, ctime, inode and device of a file: all equal means unchanged."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def differences(self, other: FileIdentity) -> list[str]:
        """Names of the fields that differ (empty when the file is unchanged)."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def check_path(path: object) -> str:
    """An absolute path string, or :class:`ValidationError`."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError("path", f"must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise ValidationError("path", "must be a text path, not bytes")
    if "\0" in text:
        raise ValidationError("path", "must not contain a NUL character")
    if not text:
        raise ValidationError("path", "must not be empty")
    return os.path.abspath(text)


def stat_identity(path: str) -> tuple[os.stat_result, FileIdentity]:
    """``os.stat`` of a regular file, or :class:`ValidationError` saying why not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValidationError("path", f"no such file: {path}") from None
    except OSError as exc:
        raise ValidationError("path", f"cannot stat {path}: {exc.strerror}") from None
    if not stat_module.S_ISREG(st.st_mode):
        raise ValidationError("path", f"not a regular file: {path}")
    return st, FileIdentity.of(st)


class SourceFile:
    """An open, verified, reference-counted read-only descriptor of the source file."""

    def __init__(self, path: str, expected: FileIdentity) -> None:
        self.path = path
        self.identity = expected
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise LocalFileError(f"cannot open {path}: {exc.strerror}", path=path, errno=exc.errno) from None
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise LocalFileError(f"{path} is no longer a regular file", path=path)
            changed = expected.differences(FileIdentity.of(st))
            if changed:
                raise FileChangedError(
                    f"{path} changed between stat and open ({', '.join(changed)})", path=path
                )
            self._check_no_data_past(fd, st.st_size)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._lock = threading.Lock()
        self._users = 1  # the owner
        self._closed = False

    def _check_no_data_past(self, fd: int, size: int) -> None:
        try:
            extra = os.pread(fd, 1, size)
        except OSError as exc:
            raise LocalFileError(f"reading {self.path} failed: {exc.strerror}", path=self.path, errno=exc.errno) from None
        if extra:
            raise LocalFileError(
                f"{self.path} yields data past its reported size of {size} bytes "
                "(a special or growing file); copy it to a regular file first",
                path=self.path,
            )

    # -- sharing

    def borrow(self) -> int:
        """Take a reference for a part sender; returns the descriptor."""
        with self._lock:
            if self._closed:
                raise LocalFileError(f"{self.path} is already closed", path=self.path)
            self._users += 1
            return self.fd

    def release(self) -> None:
        """Drop a reference; the last one closes the descriptor."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._closed:
                return
            self._closed = True
        os.close(self.fd)

    # -- change detection

    def check_unchanged(self) -> None:
        """:class:`FileChangedError` if the path or the open file no longer match the identity."""
        try:
            by_path = FileIdentity.of(os.stat(self.path))
        except OSError as exc:
            raise FileChangedError(f"{self.path} disappeared: {exc.strerror}", path=self.path) from None
        by_fd = FileIdentity.of(os.fstat(self.fd))
        changed = sorted(set(self.identity.differences(by_path)) | set(self.identity.differences(by_fd)))
        if changed:
            raise FileChangedError(
                f"{self.path} changed during the upload ({', '.join(changed)} differ); "
                "nothing was completed; run the upload again",
                path=self.path,
            )
        self._check_no_data_past(self.fd, self.identity.size)
