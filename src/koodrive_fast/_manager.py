"""Many files at once: :class:`TransferManager` and :class:`UploadFuture`.

A manager owns one :class:`~koodrive_fast._pool.SenderPool` of part-sender
threads shared by every file, and runs at most ``max_files`` file
coordinators at once (each hashes its file and schedules its parts).  A
fatal error stops that file only; its future holds the error.

Memory ceiling of a manager (beyond the interpreter and httpx)::

    workers × 2 × read_size            part bodies in flight (one chunk sent, one read)
  + max_files × 3 × scan_read_size     the hash scans' read-ahead rings
  + 64 B × parts of the files in flight

With the defaults (8 workers, 4 files, 1 MiB reads, 4 MiB scan reads):
16 MiB + 48 MiB, whatever the sizes of the files (:meth:`TransferManager.memory_ceiling`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Callable, Optional, Union

from ._clock import Clock, SystemClock
from ._engine import FileUpload, UploadResult
from ._exceptions import KooDriveError, UploadCancelledError, ValidationError
from ._options import UploadOptions
from ._pool import SenderPool
from ._progress import ProgressCallback, ProgressEvent
from ._ratelimit import TokenBucket

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client

__all__ = ["TransferManager", "UploadFuture", "TransferProgress"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class TransferProgress:
    """A snapshot of one file's progress (bytes)."""

    total: int
    hashed: int
    uploaded: int
    phase: str


class UploadFuture:
    """The pending result of one file's upload (``result``, ``cancel``, ``done``, ``progress``)."""

    def __init__(self, upload: FileUpload, callback: Optional[ProgressCallback]) -> None:
        self._upload = upload
        self._callback = callback
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._result: Optional[UploadResult] = None
        self._error: Optional[BaseException] = None
        self._cancel_requested = False
        self._hashed = 0
        self._uploaded = 0
        self._phase = "queued"
        self._done_callbacks: list[Callable[[UploadFuture], object]] = []

    @property
    def path(self) -> str:
        return self._upload.path

    # -- progress (called by the upload's dispatcher, one event at a time)

    def _on_event(self, event: ProgressEvent) -> None:
        with self._lock:
            self._phase = event.phase
            if event.phase == "hashing":
                self._hashed += event.delta
            elif event.phase == "uploading":
                self._uploaded += event.delta
        if self._callback is not None:
            self._callback(event)

    @property
    def progress(self) -> TransferProgress:
        with self._lock:
            return TransferProgress(self._upload.size, self._hashed, self._uploaded, self._phase)

    # -- running

    def _run(self) -> None:
        try:
            if self._cancel_requested:
                raise UploadCancelledError(f"upload of {self.path} cancelled before it started")
            result = self._upload.run()
        except BaseException as exc:  # stored for result()
            if not isinstance(exc, KooDriveError) and not isinstance(exc, Exception):
                self._error = UploadCancelledError(f"upload of {self.path} interrupted")
            else:
                self._error = exc
        else:
            self._result = result
        self._finished.set()
        with self._lock:
            callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback(self)

    # -- the future's interface

    def done(self) -> bool:
        return self._finished.is_set()

    def cancelled(self) -> bool:
        return self.done() and isinstance(self._error, UploadCancelledError)

    def cancel(self) -> bool:
        """Stop the upload (its checkpoint stays for a resume); False if it already ended."""
        if self.done():
            return False
        self._cancel_requested = True
        self._upload.request_stop()
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._finished.wait(timeout)

    def result(self, timeout: Optional[float] = None) -> UploadResult:
        """The :class:`UploadResult`; raises the upload's error, or ``TimeoutError``."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"upload of {self.path} still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if not self._finished.wait(timeout):
            raise TimeoutError(f"upload of {self.path} still running after {timeout} s")
        return self._error

    def add_done_callback(self, callback: Callable[[UploadFuture], object]) -> None:
        with self._lock:
            if not self._finished.is_set():
                self._done_callbacks.append(callback)
                return
        callback(self)


class TransferManager:
    """Uploads many files through one client, one pool of part senders and one memory ceiling.

    ``workers`` part PUTs run at once across all files (default: the options'
    concurrency); at most ``max_files`` files are hashed and scheduled at
    once, the rest wait their turn.  Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        client: Client,
        options: Optional[UploadOptions] = None,
        *,
        workers: Optional[int] = None,
        max_files: int = 4,
        clock: Optional[Clock] = None,
    ) -> None:
        if options is None:
            options = UploadOptions()
        elif not isinstance(options, UploadOptions):
            raise ValidationError("options", f"must be an UploadOptions, got {type(options).__name__}")
        if workers is None:
            workers = options.concurrency
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 256:
            raise ValidationError("workers", f"must be an int in 1..256, got {workers!r}")
        if not isinstance(max_files, int) or isinstance(max_files, bool) or not 1 <= max_files <= 64:
            raise ValidationError("max_files", f"must be an int in 1..64, got {max_files!r}")
        if not hasattr(client, "http_client") or not hasattr(client, "create_file"):
            raise ValidationError("client", f"must be a koodrive_fast.Client, got {type(client).__name__}")
        self.client = client
        self.options = options
        self.max_files = max_files
        self.clock: Clock = clock or SystemClock()
        self._pool = SenderPool(workers)
        # one bandwidth budget for every file of this manager
        self._bucket = TokenBucket(options.bwlimit, self.clock) if options.bwlimit else None
        self._files = concurrent.futures.ThreadPoolExecutor(max_files, thread_name_prefix="koodrive-file")
        self._futures: list[UploadFuture] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def workers(self) -> int:
        return self._pool.workers

    def memory_ceiling(self, parts_in_flight: int = 10_000) -> int:
        """Upper bound in bytes of the manager's buffers (see the module doc)."""
        opts = self.options
        return (
            self.workers * 2 * opts.read_size
            + self.max_files * 3 * opts.scan_read_size
            + 64 * parts_in_flight
        )

    def upload(
        self,
        path: PathLike,
        *,
        container_id: Optional[str],
        parent_folder: str = "root",
        file_name: Optional[str] = None,
        options: Optional[UploadOptions] = None,
        progress: Optional[ProgressCallback] = None,
        known_sha256: Optional[str] = None,
        _hash_first: bool = False,
    ) -> UploadFuture:
        """Queue one file; bad input raises :class:`ValidationError` here, before any request.

        ``known_sha256``: the file's digest recorded earlier for its current identity
        (a sync snapshot); a flash upload is then tried before hashing, and the
        hashing that follows on a miss must arrive at the same digest.
        """
        if self._closed:
            raise ValidationError("manager", "is closed")
        if progress is not None and not callable(progress):
            raise ValidationError("progress", "must be a callable taking a ProgressEvent")
        opts = self.options if options is None else options
        holder: list[UploadFuture] = []

        def relay(event: ProgressEvent) -> None:
            holder[0]._on_event(event)

        upload = FileUpload(
            self.client,
            path,
            container_id=container_id,
            parent_folder=parent_folder,
            file_name=file_name,
            options=opts,
            progress=relay,
            pool=self._pool,
            clock=self.clock,
            bucket=self._bucket,
            hash_first=_hash_first,
            known_sha256=known_sha256,
        )
        future = UploadFuture(upload, progress)
        holder.append(future)
        with self._lock:
            self._futures.append(future)
        self._files.submit(future._run)
        return future

    def close(self, *, cancel: bool = False) -> None:
        """Wait for every queued upload (or cancel them first), then stop the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            futures = list(self._futures)
        if cancel:
            for future in futures:
                future.cancel()
        self._files.shutdown(wait=True)
        self._pool.close()

    def __enter__(self) -> TransferManager:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(cancel=exc_type is not None)
