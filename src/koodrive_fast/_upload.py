"""The upload engine: hash and upload a file in one pipeline, resumably.

``upload_file(client, path, ...)`` (also ``Client.upload`` and
``AsyncClient.upload``) puts one local file into KooDrive:

1. One GIL-free native scan (``kd_scan_fd``) reads the file once and records
   the SHA-256 chaining state at every part boundary.  The scheduler polls its
   published counters; part *n* is ready as soon as the state at its start
   exists.
2. Upload URLs are requested in batches (≤ 100 parts per request) for a
   window of ready parts ahead of the workers; ``files/create`` carries part 1.
3. ``concurrency`` worker threads PUT parts with an exact ``Content-Length``,
   the body streamed from the file in ``read_size`` reads, while the scan
   continues.  The scan is kept at most
   ``hash_window`` parts ahead of the uploads so a part is usually sent
   while its pages are still in the page cache.
4. When every part is stored and the scan is done, the whole-file SHA-256
   goes to ``files/complete``.

Wall time approaches max(hash time, transfer time).  Faults: transient
failures (5xx, 429 with ``Retry-After``, connection errors) are retried per
part with exponential backoff and jitter, bounded in count and time; a 403
"Request has expired" fetches a fresh URL for that part only (same context),
and URLs close to expiry are refreshed before use; authentication errors are
fatal; a file that changes (size or mtime) stops the upload with
:class:`FileChangedError` before ``complete``; 13000402 at complete raises
:class:`IntegrityError`; 13000401 (the server lost the task, during the
PUTs or at ``complete``) starts a new task reusing every computed context.

Resume: a checkpoint (see :mod:`koodrive_fast._checkpoint`) records the
contexts computed and the parts stored; ``resume=True`` continues a crashed
upload without re-hashing hashed parts or re-sending stored ones.

Flash upload: ``rapid=True`` hashes the whole file first and creates the
file with ``sha256`` + ``preHash`` + ``proofCode``; on a hit nothing is sent.
``rapid="auto"`` does so only when it costs little (the file has at most
``UploadConfig.rapid_auto_max_parts`` parts, or its digest is known from a
checkpoint); ``rapid=False`` never waits for the whole-file hash.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import random
import stat as stat_module
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Optional, Union

from ._checkpoint import Checkpoint, CheckpointKey, CheckpointStore
from ._config import MiB, default_part_size
from ._exceptions import (
    FileChangedError,
    KooDriveError,
    IntegrityError,
    PartUploadError,
    UploadTaskMissingError,
    UploadUrlExpiredError,
    ValidationError,
)
from ._native import ffi, lib
from ._progress import ProgressCallback, ProgressDispatcher
from ._transfer import (
    PartTransport,
    PutCancelled,
    PutFatal,
    PutRetryable,
    PutUrlRejected,
    ShortRead,
    url_expiry,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncClient, Client
    from ._models import MultiPartInfo

__all__ = ["UploadConfig", "UploadResult", "upload_file", "upload_file_async"]

logger = logging.getLogger("koodrive_fast")

_ALGORITHM = "sha256"
_WORDS = 8
_MAX_URLS_PER_REQUEST = 100
_POLL_SECONDS = 0.02

PathLike = Union[str, "os.PathLike[str]"]


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(f"UploadConfig.{name}", f"must be a positive int, got {value!r}")


def _non_negative_number(name: str, value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValidationError(f"UploadConfig.{name}", f"must be a number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class UploadConfig:
    """Knobs of the upload engine; validated at construction.

    Memory ceiling of one upload (client side, beyond the interpreter, httpx
    and the client's own pool, ~40 MiB together)::

        2 × concurrency × read_size        part bodies (the chunk being sent
                                           and the next one being read)
      + 3 × scan_read_size                 the native scan's read-ahead ring
      + 64 B × number of parts             contexts, plan, checkpoint JSON

    With the defaults at concurrency 8: 16 MiB + 12 MiB + ≤ 640 KiB,
    whatever the part size and the file size (see :meth:`memory_ceiling`).

    Fields:

    * ``read_size`` — bytes per read of a part body (default 1 MiB).
    * ``scan_read_size`` — bytes per read of the hash scan (default 4 MiB).
    * ``max_attempts`` — PUT attempts per part for transient failures.
    * ``max_retry_seconds`` — time budget per part for those retries.
    * ``backoff_base`` / ``backoff_max`` — exponential backoff (seconds),
      with jitter: ``min(max, base × 2^(attempt-1)) × U(0.5, 1)``;
      ``Retry-After`` is honoured up to ``backoff_max``.
    * ``max_url_refreshes`` — fresh URLs per part after a 403.
    * ``url_refresh_margin`` — refresh a URL before use when it expires in
      less than min(this, half its lifetime) seconds (0: only after a 403).
    * ``url_window`` — parts holding URLs queued ahead of the workers
      (default 2 × concurrency, at most 100).
    * ``hash_window`` — at most this many hashed parts wait for upload
      before the scan pauses (default 2 × concurrency + 2), so parts are
      sent while their pages are still in the page cache.
    * ``timeout`` — HTTP timeout for part PUTs (seconds, per read/write).
    * ``verify`` — TLS verification for part PUTs.
    * ``checkpoint_dir`` — where checkpoints live (default
      ``$XDG_CACHE_HOME/koodrive-fast`` or ``~/.cache/koodrive-fast``).
    * ``checkpoint_interval`` — at most one checkpoint write per this many
      seconds (0: write after every change).
    * ``rapid_auto_max_parts`` — ``rapid="auto"`` hashes first for files of
      at most this many parts.
    * ``max_task_restarts`` — new upload tasks after 13000401.
    """

    read_size: int = 1 * MiB
    scan_read_size: int = 4 * MiB
    max_attempts: int = 8
    max_retry_seconds: float = 600.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_url_refreshes: int = 5
    url_refresh_margin: float = 300.0
    url_window: Optional[int] = None
    hash_window: Optional[int] = None
    timeout: float = 120.0
    verify: bool = True
    checkpoint_dir: Optional[PathLike] = None
    checkpoint_interval: float = 1.0
    rapid_auto_max_parts: int = 2
    max_task_restarts: int = 2

    def __post_init__(self) -> None:
        for name in ("read_size", "scan_read_size", "max_attempts", "rapid_auto_max_parts"):
            _positive_int(name, getattr(self, name))
        for name in ("max_url_refreshes", "max_task_restarts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"UploadConfig.{name}", f"must be an int >= 0, got {value!r}")
        for name in ("url_window", "hash_window"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in (
            "max_retry_seconds",
            "backoff_base",
            "backoff_max",
            "url_refresh_margin",
            "checkpoint_interval",
        ):
            _non_negative_number(name, getattr(self, name))
        _non_negative_number("timeout", self.timeout)
        if self.timeout <= 0:
            raise ValidationError("UploadConfig.timeout", f"must be > 0, got {self.timeout!r}")
        if self.read_size > 64 * MiB or self.scan_read_size > 256 * MiB:
            raise ValidationError(
                "UploadConfig.read_size", "read_size ≤ 64 MiB and scan_read_size ≤ 256 MiB"
            )
        if not isinstance(self.verify, bool):
            raise ValidationError("UploadConfig.verify", "must be a bool")

    def memory_ceiling(self, concurrency: int, parts: int = 10_000) -> int:
        """Upper bound in bytes of the engine's own buffers (see the class doc)."""
        return 2 * concurrency * self.read_size + 3 * self.scan_read_size + 64 * parts

    def resolved_url_window(self, concurrency: int) -> int:
        return self.url_window or min(_MAX_URLS_PER_REQUEST, 2 * concurrency)

    def resolved_hash_window(self, concurrency: int) -> int:
        return self.hash_window or 2 * concurrency + 2


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What an upload did.

    ``bytes_sent`` counts body bytes handed to the network in this call,
    failed attempts included; ``bytes_hashed`` the bytes the scan hashed in
    this call (less than ``size`` when a checkpoint supplied contexts);
    ``parts_sent`` the parts stored by this call; ``resumed`` whether a
    checkpoint was used; ``retries`` PUT attempts repeated after a transient
    failure; ``url_refreshes`` fresh URLs fetched for single parts;
    ``task_restarts`` new upload tasks created after the server lost one.
    """

    file_id: str
    sha256: str
    size: int
    parts: int
    rapid_upload: bool
    bytes_sent: int
    seconds: float
    file_name: str = ""
    part_size: int = 0
    bytes_hashed: int = 0
    parts_sent: int = 0
    resumed: bool = False
    retries: int = 0
    url_refreshes: int = 0
    task_restarts: int = 0

    @property
    def throughput(self) -> float:
        """File bytes per second of wall time (0 for an instant upload)."""
        return self.size / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class _Part:
    number: int
    offset: int
    size: int
    ctx: Optional[tuple[int, ...]] = None  # None for part 1
    url: Optional[str] = None

    def info(self) -> MultiPartInfo:
        from ._models import MultiPartInfo

        return MultiPartInfo(
            part_number=self.number,
            part_size=self.size,
            part_offset=self.offset,
            hash_ctx=self.ctx,
        )


class _Scan:
    """One ``kd_scan_fd`` call in a worker thread, polled by the scheduler."""

    def __init__(
        self,
        fd: int,
        *,
        start: int,
        size: int,
        part_size: int,
        start_words: Optional[tuple[int, ...]],
        read_size: int,
        allowed_end: int = 0,
    ) -> None:
        self.start = start
        self.length = size - start
        boundaries = max(0, -(-size // part_size) - 1 - start // part_size) if size else 0
        self.scan = ffi.new("kd_scan *")
        ctx = ffi.addressof(self.scan.ctx)
        alg = lib.KD_ALG_SHA256
        if start_words is None:
            rc = lib.kd_hash_init(ctx, alg)
        else:
            words = ffi.new("uint32_t[]", list(start_words))
            rc = lib.kd_hash_set_state(ctx, alg, words, start)
        if rc != lib.KD_OK:
            raise RuntimeError(f"kd_hash_init/set_state failed ({rc})")
        self._states = ffi.new("uint32_t[]", max(1, boundaries) * _WORDS)
        self.scan.states = self._states
        self.scan.max_states = boundaries
        self.scan.stride = part_size
        self.scan.read_size = read_size
        self.scan.allowed_end = allowed_end  # 0: no limit
        self._fd = fd
        self.rc: Optional[int] = None
        self._thread = threading.Thread(target=self._run, name="koodrive-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.rc = lib.kd_scan_fd(self.scan, self._fd, self.start, self.length)

    def states_done(self) -> int:
        return int(lib.kd_scan_states_done(self.scan))

    def bytes_done(self) -> int:
        return int(lib.kd_scan_bytes_done(self.scan))

    def state(self, index: int) -> tuple[int, ...]:
        return tuple(self._states[index * _WORDS : (index + 1) * _WORDS])

    def allow(self, end: int) -> None:
        lib.kd_scan_allow(self.scan, end)

    def finished(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    def cancel(self) -> None:
        lib.kd_scan_cancel(self.scan)

    def digest(self) -> str:
        out = ffi.new("uint8_t[32]")
        lib.kd_hash_digest(ffi.addressof(self.scan.ctx), out)
        return bytes(ffi.buffer(out, 32)).hex()


class _Stop(KooDriveError):
    """The upload was stopped (``request_stop``, cancellation of the async task)."""


def _client_identity(client: Any) -> tuple[str, str]:
    """(endpoint, user id) of a client, for the checkpoint key."""
    endpoint = getattr(client, "endpoint", None) or getattr(client, "base_url", "")
    credentials = getattr(client, "credentials", None) or getattr(client, "auth", None)
    user_id = getattr(credentials, "user_id", None) or getattr(client, "user_id", "") or ""
    return str(endpoint), str(user_id)


class _Engine:
    def __init__(
        self,
        client: Client,
        path: PathLike,
        *,
        parent_folder: str,
        container_id: Optional[str],
        file_name: Optional[str],
        part_size: Optional[int],
        concurrency: int,
        progress: Optional[ProgressCallback],
        resume: bool,
        rapid: Union[bool, str],
        config: UploadConfig,
        hash_first: bool = False,
    ) -> None:
        self.hash_first = hash_first  # baseline mode: whole hash before create, no flash
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 256:
            raise ValidationError("concurrency", f"must be an int in 1..256, got {concurrency!r}")
        if rapid not in (True, False, "auto"):
            raise ValidationError("rapid", f'must be True, False or "auto", got {rapid!r}')
        if progress is not None and not callable(progress):
            raise ValidationError("progress", "must be a callable taking a ProgressEvent")
        if not isinstance(parent_folder, str) or not parent_folder:
            raise ValidationError("parent_folder", "must be a non-empty string")
        if not isinstance(container_id, str) or not container_id:
            raise ValidationError(
                "container_id", "required: the id of the target space (files/create needs it)"
            )
        if not isinstance(path, (str, os.PathLike)):
            raise ValidationError("path", f"must be a str or os.PathLike, got {type(path).__name__}")
        self.client = client
        self.path = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ValidationError("path", f"no such file: {self.path}") from None
        except OSError as exc:
            raise ValidationError("path", f"cannot stat {self.path}: {exc.strerror}") from None
        if not stat_module.S_ISREG(st.st_mode):
            raise ValidationError("path", f"not a regular file: {self.path}")
        self.limits = client.limits
        self.size = st.st_size
        if self.size > self.limits.max_file_size:
            raise ValidationError(
                "path", f"file is {self.size} bytes, above the {self.limits.max_file_size}-byte limit"
            )
        if part_size is None:
            part_size = default_part_size(self.size, self.limits)
        self.part_size = self._check_part_size(part_size)
        self.file_name = file_name if file_name is not None else os.path.basename(self.path)
        if not isinstance(self.file_name, str) or not self.file_name:
            raise ValidationError("file_name", "must be a non-empty string")
        self.parent_folder = parent_folder
        self.container_id: str = container_id
        self.concurrency = concurrency
        self.resume = resume
        self.rapid = rapid
        self.config = config
        self.n_parts = max(1, -(-self.size // self.part_size))
        self.parts = [
            _Part(n + 1, n * self.part_size, min(self.part_size, self.size - n * self.part_size))
            for n in range(self.n_parts)
        ]
        self.progress = ProgressDispatcher(progress, self.size)
        self.store = CheckpointStore(config.checkpoint_dir)
        endpoint, user_id = _client_identity(client)
        self._identity = (endpoint, user_id)
        self._stat = st
        from ._auth import new_trace_id

        self.trace_id = new_trace_id()  # one X-Traceid for every API call of this upload
        # run state
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_hashed = 0
        self.retries = 0
        self.url_refreshes = 0
        self.parts_sent = 0
        self.generation = 0
        self.task_restarts = 0
        self.file_id: Optional[str] = None
        self.upload_id: Optional[str] = None
        self.checkpoint: Optional[Checkpoint] = None
        self._checkpoint_dirty = False
        self._checkpoint_saved_at = 0.0
        self._pipeline_running = False
        self.done: set[int] = set()
        self.pending: Deque[int] = deque()
        self.scan: Optional[_Scan] = None

    def _check_part_size(self, part_size: object) -> int:
        limits = self.limits
        if not isinstance(part_size, int) or isinstance(part_size, bool):
            raise ValidationError("part_size", f"must be an int, got {type(part_size).__name__}")
        if part_size <= 0 or part_size % limits.part_alignment:
            raise ValidationError(
                "part_size", f"must be a positive multiple of {limits.part_alignment}, got {part_size}"
            )
        if part_size > limits.max_part_size:
            raise ValidationError("part_size", f"must be ≤ {limits.max_part_size}, got {part_size}")
        n_parts = max(1, -(-self.size // part_size))
        if n_parts > 1 and part_size < limits.min_part_size:
            raise ValidationError(
                "part_size", f"must be ≥ {limits.min_part_size} for a multipart file, got {part_size}"
            )
        if n_parts > limits.max_parts:
            raise ValidationError(
                "part_size",
                f"{part_size} gives {n_parts} parts for {self.size} bytes; at most "
                f"{limits.max_parts} allowed",
            )
        return part_size

    # ------------------------------------------------------------------ run

    def run(self) -> UploadResult:
        started = time.monotonic()
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise ValidationError("path", f"cannot open {self.path}: {exc.strerror}") from None
        scan: Optional[_Scan] = None
        transport: Optional[PartTransport] = None
        workers: list[threading.Thread] = []
        self.work: queue.Queue[Optional[tuple[int, int]]] = queue.Queue()
        self.results: queue.Queue[tuple[str, int, int, Optional[BaseException]]] = queue.Queue()
        try:
            st = os.fstat(self.fd)
            if (st.st_size, st.st_mtime_ns, st.st_ino) != (
                self._stat.st_size,
                self._stat.st_mtime_ns,
                self._stat.st_ino,
            ):
                raise FileChangedError(f"{self.path} changed while opening it", path=self.path)
            self.key = CheckpointKey(
                endpoint=self._identity[0],
                user_id=self._identity[1],
                path=self.path,
                size=self.size,
                mtime_ns=st.st_mtime_ns,
                part_size=self.part_size,
                algorithm=_ALGORITHM,
            )
            cp = self.store.load(self.key) if self.resume else None
            resumed = cp is not None
            if cp is None:
                cp = Checkpoint(key=self.key, file_name=self.file_name)
            elif cp.file_name != self.file_name:
                cp.file_id = cp.upload_id = None
                cp.done.clear()
                cp.file_name = self.file_name
            self.checkpoint = cp
            for number, words in cp.contexts.items():
                self.parts[number - 1].ctx = words
            known = 1 + len(cp.contexts)  # contexts of parts 1..known are known
            digest = cp.digest if known == self.n_parts else None

            rapid = self.rapid is True or (
                self.rapid == "auto"
                and (self.n_parts <= self.config.rapid_auto_max_parts or digest is not None)
            )
            hash_first = rapid or self.hash_first
            self.progress.emit("hashing")
            self._states_seen = 0
            self._hashed_seen = 0
            if digest is None:
                start_part = known
                self._scan_start_part = start_part
                start = self.parts[start_part - 1].offset
                window = 0 if hash_first else self._allowed_end(
                    self.config.resolved_hash_window(self.concurrency)
                )
                scan = _Scan(
                    self.fd,
                    start=start,
                    size=self.size,
                    part_size=self.part_size,
                    start_words=self.parts[start_part - 1].ctx,
                    read_size=self.config.scan_read_size,
                    allowed_end=window,
                )
                if start:
                    self.progress.emit("hashing", start)
            else:
                start_part = self.n_parts
                self._scan_start_part = start_part
                self.progress.emit("hashing", self.size)
            self.scan = scan

            if (rapid or self.hash_first) and scan is not None:
                digest = self._finish_scan(scan)
                scan = self.scan = None
            if digest is not None and cp.digest != digest:
                cp.digest = digest
                self._checkpoint_dirty = True

            # server side: reuse the task from the checkpoint or create one
            self.file_id, self.upload_id = cp.file_id, cp.upload_id
            done_before = {n for n in cp.done if 1 <= n <= self.n_parts}
            if self.file_id is not None and self._server_has_complete_file(digest):
                return self._result(started, digest or "", rapid_upload=False, resumed=True)
            if self.file_id is None:
                done_before = set()
                hit = self._create(rapid, digest)
                if hit is not None:
                    self.store.discard(self.key)
                    self.progress.emit("done", rapid_upload=True)
                    return self._result(started, hit, rapid_upload=True, resumed=resumed)
            self.done = set(done_before)
            cp.done = set(self.done)
            self._save_checkpoint(force=True)
            if self.done:
                self.progress.emit("uploading", sum(self.parts[n - 1].size for n in self.done))
            else:
                self.progress.emit("uploading")

            transport = PartTransport(
                concurrency=self.concurrency,
                read_size=self.config.read_size,
                timeout=self.config.timeout,
                verify=self.config.verify,
            )
            self.transport = transport
            for i in range(self.concurrency):
                thread = threading.Thread(
                    target=self._worker, name=f"koodrive-put-{i}", daemon=True
                )
                thread.start()
                workers.append(thread)

            while True:
                digest = self._pipeline(digest)
                self._check_unchanged()
                self.progress.emit("completing")
                self._save_checkpoint(force=True)
                try:
                    self._complete(digest)
                except UploadTaskMissingError:
                    # lost between the last PUT and complete: a new task, same contexts
                    self._restart_task()
                    continue
                break
            self.store.discard(self.key)
            self.progress.emit("done")
            return self._result(started, digest, rapid_upload=False, resumed=resumed)
        except BaseException:
            self.stop.set()
            if self.scan is not None:
                self.scan.cancel()
            if self.checkpoint is not None and self._checkpoint_dirty:
                try:
                    self._save_checkpoint(force=True)
                except OSError:
                    logger.warning("could not save the checkpoint", exc_info=True)
            raise
        finally:
            self.stop.set()
            for _ in workers:
                self.work.put(None)
            deadline = time.monotonic() + 10
            for thread in workers:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if self.scan is not None:
                self.scan.cancel()
                self.scan.join(timeout=30)
            if transport is not None:
                transport.close()
            if self.scan is None or self.scan.finished():
                os.close(self.fd)

    def request_stop(self) -> None:
        """Ask a running upload to stop (from another thread); it raises soon after."""
        self.stop.set()
        scan = self.scan
        if scan is not None:
            scan.cancel()

    def _result(
        self, started: float, digest: str, *, rapid_upload: bool, resumed: bool
    ) -> UploadResult:
        return UploadResult(
            file_id=self.file_id or "",
            sha256=digest,
            size=self.size,
            parts=self.n_parts,
            rapid_upload=rapid_upload,
            bytes_sent=self.bytes_sent,
            seconds=time.monotonic() - started,
            file_name=self.file_name,
            part_size=self.part_size,
            bytes_hashed=self.bytes_hashed,
            parts_sent=self.parts_sent,
            resumed=resumed,
            retries=self.retries,
            url_refreshes=self.url_refreshes,
            task_restarts=self.task_restarts,
        )

    # ------------------------------------------------------------- hashing

    def _poll_scan(self) -> None:
        """Publish new part contexts and hashing progress from the scan."""
        scan = self.scan
        if scan is None:
            return
        hashed = scan.bytes_done()
        if hashed > self._hashed_seen:
            self.progress.emit("hashing", hashed - self._hashed_seen)
            self.bytes_hashed += hashed - self._hashed_seen
            self._hashed_seen = hashed
        count = scan.states_done()
        while self._states_seen < count:
            number = self._scan_start_part + 1 + self._states_seen
            part = self.parts[number - 1]
            part.ctx = scan.state(self._states_seen)
            assert self.checkpoint is not None
            self.checkpoint.contexts[number] = part.ctx
            self._checkpoint_dirty = True
            self._states_seen += 1
            self._on_ready(number)

    def _scan_result(self, scan: _Scan) -> str:
        rc = scan.rc
        if rc == lib.KD_OK:
            self._poll_scan()
            return scan.digest()
        if rc == lib.KD_ESHORT:
            raise FileChangedError(f"{self.path} shrank while it was being hashed", path=self.path)
        if rc == lib.KD_ECANCELLED:
            raise _Stop("scan cancelled")
        if rc == lib.KD_EIO:
            err = int(scan.scan.error)
            raise OSError(err, f"reading {self.path} failed: {os.strerror(err)}")
        raise RuntimeError(f"kd_scan_fd failed with status {rc}")

    def _finish_scan(self, scan: _Scan) -> str:
        """Wait for the scan (hash-first mode), publishing progress."""
        while not scan.finished():
            scan.join(0.05)
            self._poll_scan()
        return self._scan_result(scan)

    # ---------------------------------------------------------- API calls

    def _create(self, rapid: bool, digest: Optional[str]) -> Optional[str]:
        """``files/create``; returns the digest on a flash-upload hit."""
        kwargs: dict[str, Any] = {}
        first: list[_Part] = [self.parts[0]]
        if rapid and digest is not None:
            from ._auth import pre_hash as _pre_hash

            kwargs["sha256"] = digest
            kwargs["pre_hash"] = _pre_hash(os.pread(self.fd, 1024, 0))
            origin = self._proof_origin()
            if self.size and origin is not None:
                from ._auth import proof_code

                kwargs["proof_code"] = proof_code(self.path, self.size, origin)
            first = self.parts[: self.config.resolved_url_window(self.concurrency)]
        result = self.client.create_file(
            file_name=self.file_name,
            length=self.size,
            parent_folder=self.parent_folder,
            container_id=self.container_id,
            multi_parts=[p.info() for p in first],
            trace_id=self.trace_id,
            **kwargs,
        )
        self.file_id, self.upload_id = result.file_id, result.upload_id
        assert self.checkpoint is not None
        self.checkpoint.file_id, self.checkpoint.upload_id = self.file_id, self.upload_id
        self._checkpoint_dirty = True
        if result.rapid_upload or result.exist:
            return digest or ""
        for info in result.multi_parts:
            if 1 <= info.part_number <= self.n_parts and info.upload_url:
                self.parts[info.part_number - 1].url = info.upload_url
        return None

    def _proof_origin(self) -> Optional[str]:
        """originValue for proofCode (§9.5), from the client's credentials."""
        from ._auth import proof_origin

        credentials = getattr(self.client, "credentials", None)
        if credentials is None:
            return None
        try:
            return proof_origin(credentials)
        except TypeError:
            return None

    def _server_has_complete_file(self, digest: Optional[str]) -> bool:
        """On resume: did a previous run already complete this file?"""
        assert self.file_id is not None
        try:
            detail = self.client.file_detail(self.file_id, trace_id=self.trace_id)
        except UploadTaskMissingError:
            self._forget_task()
            return False
        except Exception as exc:  # the server's view is advisory here
            from ._exceptions import ApiError, AuthenticationError

            if isinstance(exc, AuthenticationError):
                raise
            if isinstance(exc, ApiError):
                logger.info("resume: file %s unknown to the server; new task", self.file_id)
                self._forget_task()
            return False
        status = (getattr(detail, "status", None) or "").lower()
        if (
            status in ("complete", "completed")
            and detail.sha256
            and digest
            and detail.sha256.lower() == digest
            and detail.length == self.size
        ):
            self.store.discard(self.key)
            self.progress.emit("done")
            return True
        return False

    def _forget_task(self) -> None:
        assert self.checkpoint is not None
        self.file_id = self.upload_id = None
        self.checkpoint.file_id = self.checkpoint.upload_id = None
        self.checkpoint.done.clear()
        self._checkpoint_dirty = True

    def _fetch_urls(self, parts: list[_Part]) -> None:
        assert self.file_id is not None
        got = self.client.get_upload_urls(
            self.file_id,
            [p.info() for p in parts],
            file_size=self.size,
            trace_id=self.trace_id,
        )
        for part in parts:
            info = got.get(part.number)
            if info is None or not info.upload_url:
                from ._exceptions import MalformedResponseError

                raise MalformedResponseError(None, f"no upload URL returned for part {part.number}")
            part.url = info.upload_url

    def _complete(self, digest: str) -> None:
        assert self.file_id is not None
        try:
            self.client.complete_file(self.file_id, sha256=digest, trace_id=self.trace_id)
        except IntegrityError:
            self._check_unchanged()
            self.store.discard(self.key)
            raise

    def _check_unchanged(self) -> None:
        try:
            now = os.stat(self.path)
        except OSError as exc:
            raise FileChangedError(f"{self.path} disappeared: {exc.strerror}", path=self.path) from None
        before = (self._stat.st_size, self._stat.st_mtime_ns, self._stat.st_ino)
        if (now.st_size, now.st_mtime_ns, now.st_ino) != before:
            raise FileChangedError(
                f"{self.path} changed during the upload (size {self._stat.st_size} -> "
                f"{now.st_size}, mtime changed: {now.st_mtime_ns != self._stat.st_mtime_ns}); "
                "nothing was completed — run the upload again",
                path=self.path,
            )

    # ---------------------------------------------------------- checkpoint

    def _save_checkpoint(self, *, force: bool = False) -> None:
        cp = self.checkpoint
        if cp is None or not self._checkpoint_dirty:
            return
        now = time.monotonic()
        if not force and now - self._checkpoint_saved_at < self.config.checkpoint_interval:
            return
        self.store.save(cp)
        self._checkpoint_dirty = False
        self._checkpoint_saved_at = now

    # ------------------------------------------------------------ pipeline

    def _pipeline(self, digest: Optional[str]) -> str:
        """Run hashing and uploads to the end; returns the whole-file digest."""
        cp = self.checkpoint
        assert cp is not None
        self.pending.clear()  # ready, not done, not queued
        self.queued = 0  # work items queued or in flight
        self.in_queue: set[int] = set()
        self._pipeline_running = True
        for part in self.parts:
            if part.number in self.done:
                continue
            if part.number == 1 or part.ctx is not None:
                self._on_ready(part.number)
        url_window = self.config.resolved_url_window(self.concurrency)
        hash_window = self.config.resolved_hash_window(self.concurrency)
        last_allow = -1
        while True:
            if self.stop.is_set():
                raise _Stop("upload stopped")
            if self.scan is not None:
                self._poll_scan()
                if self.scan.finished():
                    digest = self._scan_result(self.scan)
                    self.scan.join()
                    self.scan = None
                    assert cp is not None
                    cp.digest = digest
                    self._checkpoint_dirty = True
                else:
                    allow = self._allowed_end(hash_window)
                    if allow != last_allow:
                        self.scan.allow(allow)
                        last_allow = allow
            # hand work to the workers: parts that already have a URL first
            try:
                self._dispatch(url_window)
            except UploadTaskMissingError:
                self._restart_task()
                continue
            if len(self.done) == self.n_parts and self.scan is None:
                assert digest is not None
                return digest
            if self.queued <= 0 and not self.pending and self.scan is None:
                # nothing in flight and nothing ready: requeue any part left behind
                missing = [p.number for p in self.parts if p.number not in self.done]
                if not missing:
                    raise RuntimeError("upload scheduler stalled (bug)")
                self.pending.extend(missing)
                continue
            try:
                timeout = _POLL_SECONDS if self.scan is not None else 0.5
                kind, number, generation, error = self.results.get(timeout=timeout)
            except queue.Empty:
                self._save_checkpoint()
                continue
            self.queued -= 1
            self.in_queue.discard(number)
            if generation != self.generation:
                # sent for a task the server lost: queue it again for the new one
                if number not in self.done and number not in self.pending:
                    self.pending.append(number)
                continue
            if kind == "done":
                self.done.add(number)
                cp.done.add(number)
                self._checkpoint_dirty = True
                self._save_checkpoint()
            else:
                assert error is not None
                if isinstance(error, UploadTaskMissingError):
                    self._restart_task()
                    continue
                raise error

    def _allowed_end(self, hash_window: int) -> int:
        """How far the scan may hash: at most ``hash_window`` parts whose
        context is known wait for upload (never 0, which means "no limit")."""
        known = self._scan_start_part + self._states_seen  # parts 1..known have contexts
        backlog = known - len(self.done)
        more = max(0, hash_window - backlog)
        return max(1, min(self.size, self.parts[known - 1].offset + more * self.part_size))

    def _on_ready(self, number: int) -> None:
        """Part ``number``'s context became known: queue it for a URL."""
        if self._pipeline_running and number not in self.done:
            self.pending.append(number)

    def _dispatch(self, url_window: int) -> None:
        """Request URLs for a window of ready parts and queue them for workers.

        At most ``concurrency + url_window`` parts are queued or in flight;
        new URLs are requested (in one batch) once fewer than half the
        window is waiting.
        """
        while self.pending:
            waiting = self.queued - min(self.queued, self.concurrency)
            head = self.parts[self.pending[0] - 1]
            if head.url is not None:
                if waiting >= url_window:
                    return
                self._enqueue(self.pending.popleft())
                continue
            if waiting >= max(1, url_window // 2):
                return
            room = min(_MAX_URLS_PER_REQUEST, url_window - waiting)
            batch: list[_Part] = []
            while self.pending and len(batch) < room:
                part = self.parts[self.pending[0] - 1]
                if part.url is not None:
                    break
                batch.append(part)
                self.pending.popleft()
            try:
                self._fetch_urls(batch)
            except BaseException:
                self.pending.extendleft(p.number for p in reversed(batch))
                raise
            for part in batch:
                self._enqueue(part.number)

    def _enqueue(self, number: int) -> None:
        if number in self.in_queue or number in self.done:
            return
        self.in_queue.add(number)
        self.queued += 1
        self.work.put((number, self.generation))

    def _restart_task(self) -> None:
        """13000401: start a new upload task, keeping every computed context."""
        if self.task_restarts >= self.config.max_task_restarts:
            raise UploadTaskMissingError(
                13000401, f"upload task lost {self.task_restarts + 1} times; giving up"
            )
        self.task_restarts += 1
        logger.warning("server lost upload task %s; starting a new one", self.file_id)
        # drop queued work of the old task
        while True:
            try:
                item = self.work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.queued -= 1
                self.in_queue.discard(item[0])
        self.generation += 1
        undone = sum(self.parts[n - 1].size for n in self.done)
        if undone:
            self.progress.emit("uploading", -undone)
        self.done.clear()
        self._forget_task()
        for part in self.parts:
            part.url = None
        self.pending.clear()
        self._create(False, None)
        assert self.checkpoint is not None
        self._checkpoint_dirty = True
        self._save_checkpoint(force=True)
        for part in self.parts:
            if part.number == 1 or part.ctx is not None:
                if part.number not in self.in_queue:
                    self.pending.append(part.number)

    # -------------------------------------------------------------- workers

    def _worker(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            number, generation = item
            if self.stop.is_set():
                self.results.put(("error", number, generation, _Stop("stopped")))
                continue
            try:
                self._send_part(self.parts[number - 1], generation)
            except BaseException as exc:  # reported to the scheduler
                self.results.put(("error", number, generation, exc))
            else:
                self.results.put(("done", number, generation, None))

    def _emit_sent(self, number: int, n: int) -> None:
        with self.lock:
            self.bytes_sent += n
        self.progress.emit("uploading", n, part_number=number)

    def _refresh_url(self, part: _Part) -> str:
        with self.lock:
            self.url_refreshes += 1
        self._fetch_urls([part])
        assert part.url is not None
        return part.url

    def _send_part(self, part: _Part, generation: int) -> None:
        cfg = self.config
        attempts = 0
        refreshes = 0
        started = time.monotonic()
        url = part.url
        while True:
            if self.stop.is_set() or generation != self.generation:
                raise _Stop("stopped")
            if url is None:
                url = self._refresh_url(part)
            expires = url_expiry(url) if cfg.url_refresh_margin > 0 else None
            if expires is not None:
                lifetime = _url_lifetime(url)
                margin = min(cfg.url_refresh_margin, lifetime / 2)
                if expires - time.time() < margin and refreshes <= cfg.max_url_refreshes:
                    refreshes += 1
                    url = self._refresh_url(part)
            sent = 0

            def on_sent(n: int) -> None:
                nonlocal sent
                sent += n
                self._emit_sent(part.number, n)

            attempts += 1
            try:
                self.transport.put(
                    url,
                    fd=self.fd,
                    offset=part.offset,
                    size=part.size,
                    on_sent=on_sent,
                    stop=self.stop,
                )
            except PutRetryable as exc:
                self._rewind(part, sent)
                elapsed = time.monotonic() - started
                if attempts >= cfg.max_attempts or elapsed >= cfg.max_retry_seconds:
                    raise PartUploadError(str(exc), part_number=part.number, attempts=attempts) from None
                delay = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempts - 1))
                delay *= random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, cfg.backoff_max))
                delay = min(delay, max(0.0, cfg.max_retry_seconds - elapsed))
                with self.lock:
                    self.retries += 1
                logger.info("part %d: %s; retry %d in %.2fs", part.number, exc, attempts, delay)
                if self.stop.wait(delay):
                    raise _Stop("stopped") from None
                continue
            except PutUrlRejected as exc:
                self._rewind(part, sent)
                refreshes += 1
                if refreshes > cfg.max_url_refreshes or (not exc.expired and refreshes > 2):
                    if exc.expired:
                        raise UploadUrlExpiredError(
                            f"part {part.number}: {exc} even after {refreshes - 1} fresh URL(s)",
                            part_number=part.number,
                        ) from None
                    raise PartUploadError(str(exc), part_number=part.number, attempts=attempts) from None
                logger.info("part %d: %s; fetching a fresh URL", part.number, exc)
                url = self._refresh_url(part)
                continue
            except PutFatal as exc:
                self._rewind(part, sent)
                if exc.code == "NoSuchUpload":  # storage lost the task: like 13000401
                    raise UploadTaskMissingError(
                        13000401, f"part {part.number}: {exc}", http_status=exc.status
                    ) from None
                raise PartUploadError(str(exc), part_number=part.number, attempts=attempts) from None
            except ShortRead as exc:
                self._rewind(part, sent)
                raise FileChangedError(f"{self.path} changed during the upload: {exc}", path=self.path) from None
            except PutCancelled:
                self._rewind(part, sent)
                raise _Stop("stopped") from None
            except BaseException:
                self._rewind(part, sent)
                raise
            with self.lock:
                self.parts_sent += 1
            return

    def _rewind(self, part: _Part, sent: int) -> None:
        if sent:
            self.progress.emit("uploading", -sent, part_number=part.number)


def _url_lifetime(url: str) -> float:
    from urllib.parse import parse_qs, urlsplit

    try:
        return float(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    except (KeyError, IndexError, ValueError):
        return 3600.0


def _make_engine(
    client: Client,
    path: PathLike,
    *,
    parent_folder: str = "root",
    container_id: Optional[str] = None,
    file_name: Optional[str] = None,
    part_size: Optional[int] = None,
    concurrency: int = 8,
    progress: Optional[ProgressCallback] = None,
    resume: bool = True,
    rapid: Union[bool, str] = "auto",
    config: Optional[UploadConfig] = None,
    hash_first: bool = False,
) -> _Engine:
    if config is None:
        config = UploadConfig()
    elif not isinstance(config, UploadConfig):
        raise ValidationError("config", f"must be an UploadConfig, got {type(config).__name__}")
    return _Engine(
        client,
        path,
        parent_folder=parent_folder,
        container_id=container_id,
        file_name=file_name,
        part_size=part_size,
        concurrency=concurrency,
        progress=progress,
        resume=resume,
        rapid=rapid,
        config=config,
        hash_first=hash_first,
    )


def upload_file(
    client: Client,
    path: PathLike,
    *,
    parent_folder: str = "root",
    container_id: Optional[str] = None,
    file_name: Optional[str] = None,
    part_size: Optional[int] = None,
    concurrency: int = 8,
    progress: Optional[ProgressCallback] = None,
    resume: bool = True,
    rapid: Union[bool, str] = "auto",
    config: Optional[UploadConfig] = None,
) -> UploadResult:
    """Upload the file at ``path`` with ``client``; see the module docstring.

    ``container_id`` (the target space) is required by KooDrive.
    ``part_size`` defaults to the planner's rule (≥ 8 MiB, a multiple of 64,
    ≤ 10000 parts); ``concurrency`` is the number of parts in flight;
    ``progress`` receives :class:`~koodrive_fast.ProgressEvent` objects;
    ``resume`` uses (and keeps) a checkpoint; ``rapid`` is True, False or
    ``"auto"``.  Bad arguments raise :class:`ValidationError` (a
    ``ValueError``) before any request or write.  Returns an
    :class:`UploadResult`.
    """
    engine = _make_engine(
        client,
        path,
        parent_folder=parent_folder,
        container_id=container_id,
        file_name=file_name,
        part_size=part_size,
        concurrency=concurrency,
        progress=progress,
        resume=resume,
        rapid=rapid,
        config=config,
    )
    return engine.run()


def _upload_hash_then_send(client: Client, path: PathLike, **kwargs: Any) -> UploadResult:
    """Baseline for benchmarks and the demo: hash the whole file, then upload.

    The pattern of Alibaba PDS's SDK (no flash upload, no overlap).
    """
    kwargs.setdefault("rapid", False)
    return _make_engine(client, path, hash_first=True, **kwargs).run()


async def upload_file_async(client: AsyncClient, path: PathLike, **kwargs: Any) -> UploadResult:
    """``AsyncClient.upload``: the same engine, run in a worker thread.

    The engine is thread-based (a native scan plus PUT worker threads), so the
    event loop only awaits its end: a synchronous :class:`Client` with the
    async client's endpoint, credentials, limits and retry policy is made for
    it, the upload runs via ``anyio.to_thread.run_sync``, and cancelling the
    awaiting task stops the upload (the checkpoint is kept for a resume).
    Arguments and result are those of :func:`upload_file`; validation errors
    are raised before the thread starts.
    """
    import anyio

    from ._client import Client as SyncClient

    twin = getattr(client, "sync_twin", None)
    sync_client: SyncClient = (
        twin()
        if callable(twin)
        else SyncClient(
            client.endpoint, client.credentials, limits=client.limits, retry=client.retry_policy
        )
    )
    try:
        engine = _make_engine(sync_client, path, **kwargs)
    except BaseException:
        sync_client.close()
        raise

    def run() -> UploadResult:
        try:
            return engine.run()
        finally:
            sync_client.close()

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except BaseException:
        engine.request_stop()
        raise
