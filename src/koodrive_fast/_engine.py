"""One file's upload: :class:`FileUpload`, the coordinator, and :class:`UploadResult`.

The pieces and what each one owns:

* :class:`~koodrive_fast._source.SourceFile` — the open descriptor and the
  file's identity (closed only when the last sender lets go);
* :class:`~koodrive_fast._scanfeed.NativeScan` — the GIL-free hash scan and
  the part contexts it publishes;
* :class:`~koodrive_fast._broker.TaskBroker` — the server task, its URLs
  (tagged by task epoch), restarts and ``complete``;
* :class:`~koodrive_fast._sender.PartSender` — one part's PUT and the one
  retry loop, run on the shared :class:`~koodrive_fast._pool.SenderPool`;
* :class:`~koodrive_fast._checkpoint.CheckpointWriter` — the checkpoint;
* :class:`FileUpload` (here) — the schedule: which parts are ready, in
  flight and done, the hash window, and the first error, which wins.

The coordinator runs on one thread and is the only one to touch the
schedule; senders report back through a queue.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, Optional, Union

from ._auth import new_trace_id, pre_hash, proof_code, proof_origin
from ._broker import PartLease, TaskBroker, TaskSuperseded
from ._checkpoint import Checkpoint, CheckpointKey, CheckpointStore, CheckpointWriter, default_checkpoint_dir
from ._clock import Clock
from ._config import default_part_size
from ._exceptions import (
    FileChangedError,
    IntegrityError,
    KooDriveError,
    LocalFileError,
    UploadCancelledError,
    UploadTaskMissingError,
    ValidationError,
)
from ._models import MultiPartInfo
from ._options import UploadOptions
from ._planner import validate_part_size
from ._pool import SenderPool
from ._progress import ProgressCallback, ProgressDispatcher
from ._ratelimit import TokenBucket
from ._scanfeed import NativeScan, ScanCancelled
from ._sender import PartSender
from ._source import SourceFile, check_path, stat_identity
from ._transfer import PartTransport
from ._validate import check_file_id, check_file_name, check_hex64, check_str

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client

__all__ = ["FileUpload", "UploadResult"]

logger = logging.getLogger("koodrive_fast")

_ALGORITHM = "sha256"
_POLL_SECONDS = 0.02
_IDLE_POLL_SECONDS = 0.5
PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What an upload did.

    ``file_name`` is the name the server gave the file (it may differ from the
    requested one after an automatic rename).  ``bytes_sent`` counts body bytes
    handed to the network in this run, failed attempts included;
    ``bytes_resumed`` the bytes of parts an earlier run had stored;
    ``bytes_hashed`` the bytes hashed in this run; ``parts_sent`` the parts
    stored by this run; ``resumed`` whether a checkpoint was used;
    ``retries`` PUT attempts repeated after a transient failure;
    ``url_refreshes`` fresh URLs fetched for single parts; ``task_restarts``
    new server tasks after the server lost one.
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
    bytes_resumed: int = 0
    parts_sent: int = 0
    resumed: bool = False
    retries: int = 0
    url_refreshes: int = 0
    task_restarts: int = 0

    @property
    def throughput(self) -> float:
        """Bytes this run moved (the file less what an earlier run stored) per second."""
        moved = self.size - self.bytes_resumed
        return moved / self.seconds if self.seconds > 0 else 0.0


def _client_identity(client: Any) -> tuple[str, str]:
    """(endpoint, user id) of a client, for the checkpoint key."""
    endpoint = getattr(client, "endpoint", "")
    credentials = getattr(client, "credentials", None)
    return str(endpoint), str(getattr(credentials, "user_id", "") or "")


_PREPARED: set[str] = set()  # checkpoint directories already proved writable
_PREPARED_LOCK = threading.Lock()


def _prepared(store: CheckpointStore) -> None:
    """``store.prepare()`` once per directory and process (it costs a mkdir and a probe file)."""
    key = os.fspath(store.directory)
    with _PREPARED_LOCK:
        if key in _PREPARED:
            return
    store.prepare()
    with _PREPARED_LOCK:
        _PREPARED.add(key)


def _resolve_store(options: UploadOptions) -> Optional[CheckpointStore]:
    """The checkpoint store, checked before any request.

    A directory the caller named that cannot be written is a
    :class:`ValidationError`; the default one falls back to no checkpoint
    (no resume) with one warning.
    """
    if options.checkpoint_dir is not None:
        store = CheckpointStore(options.checkpoint_dir)
        try:
            _prepared(store)
        except OSError as exc:
            raise ValidationError(
                "checkpoint_dir", f"cannot write checkpoints in {store.directory}: {exc.strerror or exc}"
            ) from None
        return store
    store = CheckpointStore(default_checkpoint_dir())
    try:
        _prepared(store)
    except OSError as exc:
        logger.warning(
            "cannot write checkpoints in %s (%s); uploading without resume",
            store.directory, exc.strerror or exc,
        )
        return None
    return store


class FileUpload:
    """Uploads one file; construct (validates everything), then :meth:`run` once."""

    def __init__(
        self,
        client: Client,
        path: PathLike,
        *,
        container_id: Optional[str],
        parent_folder: str = "root",
        file_name: Optional[str] = None,
        options: UploadOptions,
        progress: Optional[ProgressCallback] = None,
        pool: SenderPool,
        clock: Clock,
        bucket: Optional[TokenBucket] = None,
        hash_first: bool = False,
        known_sha256: Optional[str] = None,
    ) -> None:
        if not isinstance(options, UploadOptions):
            raise ValidationError("options", f"must be an UploadOptions, got {type(options).__name__}")
        if progress is not None and not callable(progress):
            raise ValidationError("progress", "must be a callable taking a ProgressEvent")
        if container_id is None:
            raise ValidationError("container_id", "required: the id of the target space (files/create needs it)")
        self.container_id = check_str(container_id, "container_id")
        self.parent_folder = check_file_id(parent_folder, "parent_folder")
        self.path = check_path(path)
        st, self.identity = stat_identity(self.path)
        self.client = client
        self.limits = client.limits
        self.size = self.identity.size
        if self.size > self.limits.max_file_size:
            raise ValidationError(
                "path", f"the file is {self.size} bytes, above the {self.limits.max_file_size}-byte limit"
            )
        part_size = options.part_size
        if part_size is None:
            part_size = default_part_size(self.size, self.limits)
        self.part_size = validate_part_size(part_size, self.size, self.limits)
        self.file_name = check_file_name(file_name if file_name is not None else os.path.basename(self.path))
        self.options = options
        self.policy = options.retry or client.retry_policy
        self.pool = pool
        self.clock = clock
        if bucket is None and options.bwlimit is not None:
            bucket = TokenBucket(options.bwlimit, clock)
        self.bucket = bucket
        self.hash_first = hash_first
        # a digest recorded earlier for this very identity (the sync snapshot): lets a
        # flash upload be tried before hashing; the scan still verifies it
        self.known_sha256 = check_hex64(known_sha256, "known_sha256") if known_sha256 else None
        self.n_parts = max(1, -(-self.size // self.part_size))
        self.parts = [
            MultiPartInfo(
                part_number=n + 1,
                part_size=min(self.part_size, self.size - n * self.part_size),
                part_offset=n * self.part_size,
            )
            for n in range(self.n_parts)
        ]
        self.store = _resolve_store(options)
        endpoint, user_id = _client_identity(client)
        self.key = CheckpointKey.for_file(endpoint, user_id, self.path, self.identity, self.part_size)
        self.progress = ProgressDispatcher(progress, self.size)
        self.broker = TaskBroker(
            client,
            file_name=self.file_name,
            size=self.size,
            parent_folder=self.parent_folder,
            container_id=self.container_id,
            auto_rename=options.auto_rename,
            trace_id=new_trace_id(),
            clock=clock,
        )
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_hashed = 0
        self.retries = 0
        self.parts_sent = 0
        # schedule (coordinator thread only)
        self._ready: Deque[int] = collections.deque()
        self._in_flight: set[int] = set()
        self._done: set[int] = set()
        self._results: queue.Queue[tuple[int, int, Optional[BaseException]]] = queue.Queue()
        self._scan: Optional[NativeScan] = None
        self._scan_start_part = 1
        self._states_seen = 0
        self._hashed_seen = 0
        self._windowed = False
        self._outstanding = 0  # jobs submitted to the pool and not yet reported (all epochs)
        self.writer: Optional[CheckpointWriter] = None

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Ask the upload to stop (any thread); :meth:`run` raises UploadCancelledError."""
        self._stop.set()
        scan = self._scan
        if scan is not None:
            scan.allow(0)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> UploadResult:
        """Upload; every failure is a :class:`KooDriveError` (the cause chained)."""
        try:
            return self._locked_run()
        except KooDriveError:
            raise
        except OSError as exc:
            raise LocalFileError(
                f"{self.path}: {exc.strerror or exc}", path=self.path, errno=exc.errno
            ) from exc
        except (RuntimeError, ValueError, TypeError, AssertionError) as exc:
            raise KooDriveError(f"upload of {self.path} failed: {type(exc).__name__}: {exc}") from exc

    def _locked_run(self) -> UploadResult:
        started = self.clock.monotonic()
        store = self.store
        lock_fd = store.lock(self.key) if store is not None else None
        try:
            source = SourceFile(self.path, self.identity)
            try:
                return self._run(source, started)
            except ScanCancelled:
                raise UploadCancelledError("upload cancelled") from None
            finally:
                self._stop.set()
                self._shutdown()
                source.release()
        finally:
            if store is not None and lock_fd is not None:
                store.unlock(self.key, lock_fd)

    # ------------------------------------------------------------------ phases

    def _run(self, source: SourceFile, started: float) -> UploadResult:
        opts = self.options
        # a one-part file has nothing to resume: no checkpoint is read or written for it
        keep = self.store if (opts.resume and self.n_parts > 1) else None
        loaded = keep.load(self.key) if keep is not None else None
        resumed = loaded is not None
        if loaded is not None and loaded.file_name != self.file_name:
            loaded = None  # another target name: start over
            resumed = False
        checkpoint = loaded or Checkpoint(key=self.key, file_name=self.file_name)
        writer = CheckpointWriter(
            keep, checkpoint,
            interval=opts.checkpoint_interval, monotonic=self.clock.monotonic,
        )
        self.writer = writer
        for number, words in checkpoint.contexts.items():
            self.parts[number - 1] = dataclasses.replace(self.parts[number - 1], hash_ctx=words)
        known = 1 + len(checkpoint.contexts)  # parts 1..known have contexts
        digest = checkpoint.digest if known == self.n_parts else None
        rapid = opts.rapid is True or (
            opts.rapid == "auto" and (self.n_parts <= opts.rapid_auto_max_parts or digest is not None)
        )
        hash_whole_first = rapid or self.hash_first
        self.progress.emit("hashing")
        if digest is None:
            self._start_scan(source, known, windowed=not hash_whole_first)
        else:
            self._scan_start_part = self.n_parts
            self.progress.emit("hashing", self.size, resumed=True)
        if hash_whole_first and self._scan is not None:
            digest = self._wait_for_scan()
        if digest is not None:
            writer.record_digest(digest)

        # the server task: the checkpoint's, or a new one
        done_before: set[int] = set()
        if checkpoint.file_id is not None:
            self.broker.adopt(checkpoint.file_id, checkpoint.upload_id)
            if self.broker.completed_on_server(digest):
                writer.discard()
                self.progress.emit("done")
                assert digest is not None
                return self._result(started, digest, rapid_upload=False, resumed=True, resumed_bytes=self.size)
            if self.broker.file_id is not None:
                done_before = {n for n in checkpoint.done if 1 <= n <= self.n_parts}
        if self.broker.file_id is None:
            hint = digest or (self.known_sha256 if opts.rapid is not False and not self.hash_first else None)
            hit = self._create(source, (rapid or hint is not None) and not self.hash_first, hint)
            writer.record_task(self.broker.file_id, self.broker.upload_id)
            if hit:
                writer.discard()
                self.progress.emit("done", rapid_upload=True)
                assert hint is not None
                return self._result(started, hint, rapid_upload=True, resumed=resumed, resumed_bytes=0)
        writer.flush(force=True)
        self._done = set(done_before)
        resumed_bytes = sum(self.parts[n - 1].part_size for n in self._done)
        self.progress.emit("uploading", resumed_bytes, resumed=bool(resumed_bytes))
        self._ready = collections.deque(
            p.part_number for p in self.parts
            if (p.part_number == 1 or p.hash_ctx is not None) and p.part_number not in self._done
        )
        sender = PartSender(
            transport=PartTransport(
                self.client.http_client, read_size=opts.read_size, timeout=opts.timeout,
                bucket=self.bucket,
            ),
            broker=self.broker,
            policy=self.policy,
            clock=self.clock,
            path=self.path,
            url_refresh_margin=opts.url_refresh_margin,
            max_url_refreshes=opts.max_url_refreshes,
            stop=self._stop,
            on_sent=self._on_sent,
            on_retry=self._on_retry,
        )
        while True:
            digest = self._pipeline(source, sender, digest)
            source.check_unchanged()
            if self.known_sha256 is not None and digest != self.known_sha256:
                raise FileChangedError(
                    f"{self.path} no longer has the digest recorded for it; nothing was completed",
                    path=self.path,
                )
            self.progress.emit("completing")
            writer.flush(force=True)
            try:
                self.broker.complete(digest)
            except UploadTaskMissingError:  # lost between the last PUT and complete
                self._restart_task()
                continue
            except IntegrityError:
                source.check_unchanged()
                writer.discard()
                raise
            break
        writer.discard()
        self.progress.emit("done")
        return self._result(started, digest, rapid_upload=False, resumed=resumed, resumed_bytes=resumed_bytes)

    def _create(self, source: SourceFile, rapid: bool, digest: Optional[str]) -> bool:
        """``files/create``; True on a flash-upload hit."""
        if not (rapid and digest is not None):
            self.broker.create([self.parts[0]])
            return False
        origin = None
        try:
            origin = proof_origin(self.client.credentials)
        except TypeError:
            pass
        first = [p for p in self.parts[: self.options.resolved_url_window]
                 if p.part_number == 1 or p.hash_ctx is not None]
        result = self.broker.create(
            first,
            sha256=digest,
            pre_hash=pre_hash(os.pread(source.fd, 1024, 0)),
            proof_code=proof_code(self.path, self.size, origin) if (self.size and origin) else None,
        )
        return bool(result.rapid_upload or result.exist)

    def _result(
        self, started: float, digest: str, *, rapid_upload: bool, resumed: bool, resumed_bytes: int
    ) -> UploadResult:
        return UploadResult(
            file_id=self.broker.file_id or "",
            sha256=digest,
            size=self.size,
            parts=self.n_parts,
            rapid_upload=rapid_upload,
            bytes_sent=self.bytes_sent,
            seconds=self.clock.monotonic() - started,
            file_name=self.broker.server_file_name,
            part_size=self.part_size,
            bytes_hashed=self.bytes_hashed,
            bytes_resumed=resumed_bytes,
            parts_sent=self.parts_sent,
            resumed=resumed,
            retries=self.retries,
            url_refreshes=self.broker.url_refreshes,
            task_restarts=self.broker.restarts,
        )

    # ------------------------------------------------------------------ hashing

    def _start_scan(self, source: SourceFile, start_part: int, *, windowed: bool) -> None:
        self._scan_start_part = start_part
        start = self.parts[start_part - 1].part_offset or 0
        self._windowed = windowed
        scan = NativeScan(
            _ALGORITHM,
            stride=self.part_size,
            length=self.size - start,
            start_words=self.parts[start_part - 1].hash_ctx,
            start_length=start,
            read_size=self.options.scan_read_size,
            allowed_end=self._allowed_end() if windowed else 0,
        )
        self._scan = scan
        if start:
            self.progress.emit("hashing", start, resumed=True)
        scan.start_fd(source.fd, start)

    def _allowed_end(self) -> int:
        """How far the scan may go: at most ``hash_window`` hashed parts wait for upload."""
        known = self._scan_start_part + self._states_seen
        backlog = known - len(self._done)
        more = max(0, self.options.resolved_hash_window - backlog)
        end = (self.parts[known - 1].part_offset or 0) + more * self.part_size
        return max(1, min(self.size, end))  # never 0, which means "no limit"

    def _poll_scan(self) -> None:
        scan = self._scan
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
            words = scan.state(self._states_seen)
            self.parts[number - 1] = dataclasses.replace(self.parts[number - 1], hash_ctx=words)
            assert self.writer is not None
            self.writer.record_context(number, words)
            self._states_seen += 1
            if number not in self._done:
                self._ready.append(number)
        if self._windowed and not self._stop.is_set():
            scan.allow(self._allowed_end())

    def _scan_digest(self) -> Optional[str]:
        """The digest once the scan has ended (raising its error), else None."""
        scan = self._scan
        if scan is None or not scan.finished():
            return None
        self._poll_scan()
        if not scan.ok:
            raise scan.error(self.path)
        digest = scan.digest()
        assert self.writer is not None
        self.writer.record_digest(digest)
        self._scan = None
        return digest

    def _wait_for_scan(self) -> str:
        scan = self._scan
        assert scan is not None
        while not scan.wait(0.05):
            if self._stop.is_set():
                raise UploadCancelledError("upload cancelled")
            self._poll_scan()
        digest = self._scan_digest()
        assert digest is not None
        return digest

    # ------------------------------------------------------------------ sending

    def _pipeline(self, source: SourceFile, sender: PartSender, digest: Optional[str]) -> str:
        """Hash and send until every part is stored; returns the whole-file digest."""
        limit = self.options.concurrency + self.options.resolved_url_window
        while True:
            if self._stop.is_set():
                raise UploadCancelledError("upload cancelled")
            self._poll_scan()
            if digest is None:
                digest = self._scan_digest()
            try:
                self._dispatch(source, sender, limit)
            except (UploadTaskMissingError, TaskSuperseded):
                self._restart_task()
                continue
            if digest is not None and len(self._done) == self.n_parts:
                return digest
            try:
                number, epoch, error = self._results.get(
                    timeout=_POLL_SECONDS if self._scan is not None else _IDLE_POLL_SECONDS
                )
            except queue.Empty:
                assert self.writer is not None
                self.writer.flush()
                continue
            self._outstanding -= 1
            self._in_flight.discard(number)
            if epoch != self.broker.epoch or isinstance(error, TaskSuperseded):
                # sent for a task that was replaced: send it again for the new one
                if number not in self._done and number not in self._ready:
                    self._ready.append(number)
                continue
            if error is None:
                self._part_stored(source, number)
            elif isinstance(error, UploadTaskMissingError):
                self._restart_task()
            else:
                raise error  # the first error wins; the rest are drained in _shutdown

    def _dispatch(self, source: SourceFile, sender: PartSender, limit: int) -> None:
        """Give ready parts URLs and senders, in ``uploadUrl`` batches.

        While every sender has work, URLs are fetched only for a batch of at
        least half the URL window, so a steady upload asks for URLs in a few
        large requests instead of one per finished part; a sender that would
        otherwise idle gets whatever is ready at once.
        """
        batch_min = max(1, self.options.resolved_url_window // 2)
        while self._ready and len(self._in_flight) < limit:
            room = limit - len(self._in_flight)
            if len(self._in_flight) >= self.options.concurrency and min(len(self._ready), room) < batch_min:
                return
            batch: list[MultiPartInfo] = []
            while self._ready and len(batch) < limit - len(self._in_flight):
                number = self._ready.popleft()
                if number not in self._done and number not in self._in_flight and all(
                    p.part_number != number for p in batch
                ):
                    batch.append(self.parts[number - 1])
            if not batch:
                return
            try:
                leases = self.broker.take_leases(batch, margin=self.options.url_refresh_margin)
            except BaseException:
                self._ready.extendleft(p.part_number for p in reversed(batch))
                raise
            for part, lease in zip(batch, leases):
                self._in_flight.add(part.part_number)
                self._outstanding += 1
                self.pool.submit(self, self._job(source, sender, part, lease))

    def _job(self, source: SourceFile, sender: PartSender, part: MultiPartInfo, lease: PartLease) -> Any:
        results = self._results

        def run() -> None:
            try:
                if self._stop.is_set():
                    raise UploadCancelledError("upload stopped")
                fd = source.borrow()
                try:
                    sender.send(fd, part, lease)
                finally:
                    source.release()
            except BaseException as exc:  # reported to the coordinator
                results.put((part.part_number, lease.epoch, exc))
            else:
                results.put((part.part_number, lease.epoch, None))

        return run

    def _part_stored(self, source: SourceFile, number: int) -> None:
        self._done.add(number)
        with self._stats_lock:
            self.parts_sent += 1
        assert self.writer is not None
        self.writer.record_done(number)
        self.writer.flush()
        if self.options.drop_page_cache and hasattr(os, "posix_fadvise"):
            part = self.parts[number - 1]
            try:
                os.posix_fadvise(source.fd, part.part_offset or 0, part.part_size, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass  # advice only

    def _restart_task(self) -> None:
        """The server lost the task: a new one, keeping every computed context."""
        if self.broker.restarts >= self.options.max_task_restarts:
            raise UploadTaskMissingError(
                13000401, f"upload task lost {self.broker.restarts + 1} times; giving up"
            )
        self._outstanding -= len(self.pool.withdraw(self))  # queued jobs of the old task never run
        undone = sum(self.parts[n - 1].part_size for n in self._done)
        if undone:
            self.progress.emit("uploading", -undone)
        self._done.clear()
        self.broker.restart(self.parts[0])
        assert self.writer is not None
        self.writer.record_task(self.broker.file_id, self.broker.upload_id)
        self.writer.flush(force=True)
        # in-flight jobs of the old epoch come back stale and are queued again then
        self._in_flight.clear()
        self._ready = collections.deque(
            p.part_number for p in self.parts if p.part_number == 1 or p.hash_ctx is not None
        )

    def _shutdown(self) -> None:
        """Stop the scan and every sender of this file before the descriptor is released.

        Senders stop at their next chunk (each bounded by the PUT timeout); if
        one is still stuck after that, the descriptor stays open for it
        (reference-counted) and the upload returns anyway.
        """
        self._outstanding -= len(self.pool.withdraw(self))
        scan = self._scan
        if scan is not None:
            scan.cancel_and_join()
        deadline = time.monotonic() + self.options.timeout + 5
        while self._outstanding > 0 and time.monotonic() < deadline:
            try:
                self._results.get(timeout=0.2)
            except queue.Empty:
                continue
            self._outstanding -= 1
        if self.writer is not None:
            try:
                self.writer.flush(force=True)
            except OSError:
                logger.warning("could not save the checkpoint", exc_info=True)

    # ------------------------------------------------------------------ stats

    def _on_sent(self, number: int, n: int) -> None:
        if n > 0:
            with self._stats_lock:
                self.bytes_sent += n
        self.progress.emit("uploading", n, part_number=number)

    def _on_retry(self) -> None:
        with self._stats_lock:
            self.retries += 1

