"""One options object for uploads: :class:`UploadOptions`.

Everything that says *how* to upload (concurrency, part size, flash upload,
resume, checkpoint directory, retry policy, windows, timeouts) lives here,
validated once at construction; ``Client.upload``, ``AsyncClient.upload``,
the :class:`~koodrive_fast.TransferManager` and the CLI all take it.  What a
single call is *about* (the path, the target folder, the name, a progress
callback) stays a call argument.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal, Optional, Union

from ._config import MiB
from ._exceptions import ValidationError
from ._retry import RetryPolicy

__all__ = ["UploadOptions", "RapidMode", "MAX_URLS_PER_REQUEST"]

#: ``rapid``: always try a flash upload, never, or when it costs little
RapidMode = Literal[True, False, "auto"]
MAX_URLS_PER_REQUEST = 100

PathLike = Union[str, "os.PathLike[str]"]


def _require_int(name: str, value: object, low: int, high: Optional[int] = None) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValidationError(f"UploadOptions.{name}", f"must be an int {bound}, got {value!r}")


def _require_seconds(name: str, value: object, *, positive: bool = False) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not value >= 0
        or (positive and value == 0)
    ):
        rule = "> 0" if positive else ">= 0"
        raise ValidationError(f"UploadOptions.{name}", f"must be a number of seconds {rule}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class UploadOptions:
    """How to upload; frozen and validated (``ValidationError`` on a bad field).

    * ``concurrency`` — parts of one file in flight at once (1..256).
    * ``part_size`` — bytes per part; ``None`` picks one (≥ 8 MiB, ≤ 10000 parts).
    * ``rapid`` — flash upload: ``True``, ``False`` or ``"auto"`` (only when it
      costs little: at most ``rapid_auto_max_parts`` parts, or the digest is
      known from a checkpoint).
    * ``resume`` — keep a checkpoint and continue an interrupted upload.
    * ``checkpoint_dir`` — where checkpoints live; ``None`` means
      ``$XDG_CACHE_HOME/koodrive-fast`` (if that cannot be written, the upload
      runs without resume and says so once).  A directory named here that
      cannot be written is a :class:`ValidationError` before any request.
    * ``retry`` — the :class:`RetryPolicy` for part PUTs; ``None`` uses the
      client's (the same policy as its API calls).
    * ``bwlimit`` — at most this many bytes per second for the whole run (all
      senders, and all files of a :class:`~koodrive_fast.TransferManager`),
      or ``None`` for no limit.
    * ``auto_rename`` — KooDrive's rename mode on a name clash (2, 3 or 4), or
      ``None`` for the server's default.
    * ``read_size`` — bytes per read of a part body (memory: see below).
    * ``scan_read_size`` — bytes per read of the hash scan.
    * ``timeout`` — seconds without progress before a part PUT fails (retried).
    * ``url_window`` — parts holding URLs queued ahead of the senders
      (default 2 × concurrency, at most 100).
    * ``hash_window`` — hashed parts that may wait for upload before the scan
      pauses (default 2 × concurrency + 2): parts leave while their pages are
      still in the page cache.
    * ``url_refresh_margin`` — refresh a URL before use when it expires within
      min(this, half its lifetime) seconds.
    * ``max_url_refreshes`` — fresh URLs per part after 403 "expired".
    * ``max_task_restarts`` — new server tasks after 13000401 (task lost).
    * ``checkpoint_interval`` — at most one checkpoint write per this many seconds.
    * ``drop_page_cache`` — after a part is stored, advise the kernel that its
      pages may go (``POSIX_FADV_DONTNEED``), so a huge upload does not evict
      the user's working set.

    Memory of one file's upload, beyond the interpreter and httpx::

        2 × concurrency × read_size      part bodies (the chunk being sent and the next)
      + 3 × scan_read_size               the native scan's read-ahead ring
      + 64 B × number of parts           contexts, checkpoint
    """

    concurrency: int = 8
    part_size: Optional[int] = None
    rapid: RapidMode = "auto"
    resume: bool = True
    checkpoint_dir: Optional[PathLike] = None
    retry: Optional[RetryPolicy] = None
    auto_rename: Optional[int] = None
    bwlimit: Optional[float] = None
    read_size: int = 1 * MiB
    scan_read_size: int = 4 * MiB
    timeout: float = 120.0
    url_window: Optional[int] = None
    hash_window: Optional[int] = None
    url_refresh_margin: float = 300.0
    max_url_refreshes: int = 5
    max_task_restarts: int = 2
    checkpoint_interval: float = 1.0
    rapid_auto_max_parts: int = 2
    drop_page_cache: bool = True

    def __post_init__(self) -> None:
        _require_int("concurrency", self.concurrency, 1, 256)
        if self.part_size is not None:
            _require_int("part_size", self.part_size, 64)
        if self.rapid not in (True, False, "auto") or (
            isinstance(self.rapid, int) and not isinstance(self.rapid, bool)
        ):
            raise ValidationError("UploadOptions.rapid", f'must be True, False or "auto", got {self.rapid!r}')
        for flag in ("resume", "drop_page_cache"):
            if not isinstance(getattr(self, flag), bool):
                raise ValidationError(f"UploadOptions.{flag}", "must be a bool")
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, (str, os.PathLike)):
            raise ValidationError("UploadOptions.checkpoint_dir", "must be a path or None")
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise ValidationError("UploadOptions.retry", f"must be a RetryPolicy, got {type(self.retry).__name__}")
        if self.auto_rename is not None and (
            isinstance(self.auto_rename, bool) or self.auto_rename not in (2, 3, 4)
        ):
            raise ValidationError("UploadOptions.auto_rename", f"must be 2, 3, 4 or None, got {self.auto_rename!r}")
        if self.bwlimit is not None and (
            isinstance(self.bwlimit, bool)
            or not isinstance(self.bwlimit, (int, float))
            or not self.bwlimit >= 1024
        ):
            raise ValidationError("UploadOptions.bwlimit", f"must be at least 1024 bytes/s or None, got {self.bwlimit!r}")
        _require_int("read_size", self.read_size, 64, 64 * MiB)
        _require_int("scan_read_size", self.scan_read_size, 64, 256 * MiB)
        _require_seconds("timeout", self.timeout, positive=True)
        for name in ("url_window", "hash_window"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), 1)
        _require_seconds("url_refresh_margin", self.url_refresh_margin)
        _require_seconds("checkpoint_interval", self.checkpoint_interval)
        _require_int("max_url_refreshes", self.max_url_refreshes, 0)
        _require_int("max_task_restarts", self.max_task_restarts, 0)
        _require_int("rapid_auto_max_parts", self.rapid_auto_max_parts, 1)

    def replace(self, **changes: object) -> UploadOptions:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def memory_ceiling(self, parts: int = 10_000) -> int:
        """Upper bound in bytes of one file's buffers (see the class doc)."""
        return 2 * self.concurrency * self.read_size + 3 * self.scan_read_size + 64 * parts

    @property
    def resolved_url_window(self) -> int:
        return self.url_window or min(MAX_URLS_PER_REQUEST, 2 * self.concurrency)

    @property
    def resolved_hash_window(self) -> int:
        return self.hash_window or 2 * self.concurrency + 2
