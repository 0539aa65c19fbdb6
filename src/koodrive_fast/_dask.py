"""Sync and single-file uploads on a Dask cluster (``pip install koodrive-fast[dask]``).

**Sync** (``sync(..., dask_client=...)``, ``koodrive-fast sync --dask-scheduler``):
the driver plans once (walk, snapshot, remote listing, folders created:
:func:`koodrive_fast._sync.plan_sync`), shards the files to upload across the
workers balanced by bytes (greedy, largest first: :func:`shard_by_bytes`) and
submits one task per shard (``pure=False``).  Each worker uploads its shard
with its own :class:`~koodrive_fast.TransferManager`; every per-file outcome
and the bytes sent stream back through a ``distributed.Queue``, so the
driver's ``on_item`` (JSON lines) and bar see them as they happen.  Only the
driver writes the snapshot.

**Shared storage.**  The tree, ``UploadOptions.checkpoint_dir`` and the
snapshot (kept in that directory) must be on storage every worker sees, at
the same absolute path.  A worker that dies mid-file leaves its checkpoint
there and the kernel releases its ``flock``; Dask runs the shard again on
another worker, which resumes the half-sent file from the checkpoint.  On
such a rerun (marked by a ``distributed.Event`` per shard) the worker first
lists the target folders: a file the dead worker already completed (same
name, size and SHA-256) is not sent again.  A resumed task is checked on the
server before ``complete`` (``completed_on_server``) and the driver keeps the
first outcome per path, so ``complete`` runs once per file and each file is
reported once.  (Resume across hosts needs the same ``st_dev`` and inode on
every host, part of a checkpoint's key; where a mount differs the file is
sent again from its first part, still completed once.)

**Budget.**  A worker process runs one shard at a time, with
``UploadOptions.concurrency`` part senders (its manager's ``workers``) shared
by ``files`` files; so parts in flight per worker ≤ ``concurrency`` and in
the cluster ≤ ``concurrency`` × shards, where shards = the number of workers,
or fewer when :attr:`DaskOptions.max_parts_in_flight` says so
(shards = ``max_parts_in_flight // concurrency``).  ``UploadOptions.bwlimit``
is one token bucket per worker process.

**Tokens.**  Workers never refresh a token on their own.  Static credentials
(:class:`BearerToken`, :class:`AppCredentials`) are shipped as they are.  A
refreshable one (:class:`TokenProvider`, :class:`RefreshingBearerToken`) stays
on the driver: a relay thread there refreshes it when due and publishes the
current token in a ``distributed.Variable``; each worker reads it from there
(renewing a little earlier than the driver's margin), and after a 401 asks
the driver, through a ``distributed.Queue``, to refresh the rejected token;
the driver refreshes once however many of the N workers ask (one refresh at
a time, and a request naming a token already replaced is a no-op), and every
worker picks the new token up.  Tokens travel over the Dask comms: use TLS
for them (``dask scheduler --tls-...``) off a trusted network.

**One huge file from many hosts** (:func:`upload_on_dask`): the driver hashes
the file once for every part context, creates the task, the parts are PUT by
N workers reading the file from shared storage (the engine's
:class:`~koodrive_fast._sender.PartSender` and its retry loop), and the
driver completes it once.  Worth it only when one host's link is the limit.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import heapq
import logging
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from ._auth import (
    AppCredentials,
    BearerToken,
    IssuedToken,
    RefreshableToken,
    SendRefresh,
    _authorization_for,
    new_trace_id,
    pre_hash,
    proof_code,
    proof_origin,
)
from ._broker import TaskBroker
from ._clock import SystemClock
from ._config import default_part_size
from ._contexts import part_contexts
from ._engine import UploadResult
from ._exceptions import AuthenticationError, FileChangedError, KooDriveError, ValidationError
from ._models import FileEntry, MultiPartInfo
from ._options import UploadOptions
from ._planner import validate_part_size
from ._progress import ProgressCallback, ProgressEvent
from ._ratelimit import TokenBucket
from ._sender import PartSender
from ._source import FileIdentity, SourceFile, check_path, stat_identity
from ._transfer import PartTransport
from ._validate import check_file_id, check_file_name, check_str

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client
    from ._manager import UploadFuture
    from ._snapshot import Snapshot
    from ._sync import SyncItem, SyncPlan

__all__ = ["DaskOptions", "upload_on_dask", "shard_by_bytes", "RelayedToken"]

logger = logging.getLogger("koodrive_fast")

PathLike = Union[str, "os.PathLike[str]"]
_POLL_SECONDS = 0.25
_BYTES_FLUSH = 4 << 20  # progress bytes a worker sends in one message
_TOKEN_WAIT_SECONDS = 60.0  # a worker waits this long for the driver's new token
_HASH_STRIDE = 64 << 20
# one shard (or part batch) at a time per worker process: the per-worker part budget
_WORKER_SLOT = threading.Lock()


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ValidationError(
            "dask_client", "needs Dask: pip install 'koodrive-fast[dask]'"
        ) from None
    return distributed


def check_dask_client(dask_client: object) -> None:
    """:class:`ValidationError` unless ``dask_client`` is a ``distributed.Client``."""
    if not isinstance(dask_client, _distributed().Client):
        raise ValidationError("dask_client", f"must be a distributed.Client, got {type(dask_client).__name__}")


def check_cluster_options(options: UploadOptions) -> None:
    """A cluster sync needs checkpoints on shared storage: ``checkpoint_dir`` named, ``resume`` on.

    Without them a file whose worker died after sending ``complete`` could be
    sent again as a second copy by the worker that takes over.
    """
    if options.checkpoint_dir is None:
        raise ValidationError("UploadOptions.checkpoint_dir",
                              "required with a Dask cluster: a directory every worker sees at the same path")
    if not options.resume:
        raise ValidationError("UploadOptions.resume", "must be True with a Dask cluster (takeover resumes)")


@dataclasses.dataclass(frozen=True)
class DaskOptions:
    """How a sync spreads over the cluster.

    * ``max_parts_in_flight`` — cap on part PUTs in flight in the whole
      cluster; shards = min(workers, this // ``UploadOptions.concurrency``).
      ``None``: one shard per worker.
    * ``poll_seconds`` — how often the driver's token relay looks for work.
    """

    max_parts_in_flight: Optional[int] = None
    poll_seconds: float = 1.0

    def __post_init__(self) -> None:
        cap = self.max_parts_in_flight
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise ValidationError("DaskOptions.max_parts_in_flight", f"must be an int >= 1 or None, got {cap!r}")
        poll = self.poll_seconds
        if not isinstance(poll, (int, float)) or isinstance(poll, bool) or not 0 < poll <= 60:
            raise ValidationError("DaskOptions.poll_seconds", f"must be seconds in (0, 60], got {poll!r}")

    def shards(self, workers: int, concurrency: int) -> int:
        if self.max_parts_in_flight is None:
            return workers
        return max(1, min(workers, self.max_parts_in_flight // concurrency))


def shard_by_bytes(sizes: Sequence[int], shards: int) -> list[list[int]]:
    """Indexes of ``sizes`` in ``shards`` groups of near-equal total (greedy, largest first)."""
    if shards < 1:
        raise ValidationError("shards", f"must be >= 1, got {shards}")
    heap = [(0, n) for n in range(shards)]
    groups: list[list[int]] = [[] for _ in range(shards)]
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        total, n = heapq.heappop(heap)
        groups[n].append(index)
        heapq.heappush(heap, (total + sizes[index], n))
    return groups


# ---------------------------------------------------------------------------- credentials


class RelayedToken(RefreshableToken):
    """A worker's view of the driver's refreshable token (see the module doc).

    Reads the token the driver publishes; after a 401 (or near expiry, when
    the driver has not renewed yet) it asks the driver to renew it and waits
    up to a minute for the new one.  It never calls a refresh endpoint.
    """

    def __init__(self, user_id: str, relay_name: str, *, margin: float) -> None:
        super().__init__(user_id, margin=margin, clock=time.time)
        self._relay_name = relay_name

    def _obtain(self, send: SendRefresh) -> IssuedToken:
        try:
            return self._from_driver()
        except KooDriveError:
            raise
        except Exception as exc:  # the scheduler unreachable, a timeout: no token
            raise AuthenticationError(
                None, f"no token from the driver: {type(exc).__name__}: {exc}"
            ) from exc

    def _from_driver(self) -> IssuedToken:
        distributed = _distributed()
        dask = distributed.get_client()
        published = distributed.Variable(f"{self._relay_name}-token", client=dask)
        with self._cond:
            installed = None if self._token is None else _authorization_for(self._token)
        header, expires_at = published.get(timeout=_TOKEN_WAIT_SECONDS)
        if installed is None or header != installed:
            return IssuedToken(header, expires_at)
        distributed.Queue(f"{self._relay_name}-requests", client=dask).put(header)
        deadline = time.monotonic() + _TOKEN_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.2)
            header, expires_at = published.get(timeout=_TOKEN_WAIT_SECONDS)
            if header != installed:
                return IssuedToken(header, expires_at)
        raise AuthenticationError(None, "the driver did not publish a new token in time")


class _TokenRelay:
    """Driver side: keeps the client's refreshable token fresh and published to the workers."""

    def __init__(self, client: Client, dask_client: Any, name: str, poll: float) -> None:
        distributed = _distributed()
        credentials = client.credentials
        assert isinstance(credentials, RefreshableToken)
        self.name = name
        self._client = client
        self._credentials = credentials
        self._published = distributed.Variable(f"{name}-token", client=dask_client)
        self._requests = distributed.Queue(f"{name}-requests", client=dask_client)
        self._poll = poll
        self._stop = threading.Event()
        self._last: Optional[str] = None
        self._refresh(None)
        self._thread = threading.Thread(target=self._run, name="koodrive-token-relay", daemon=True)
        self._thread.start()

    def _refresh(self, rejected: Optional[str]) -> None:
        self._client._refresh_token(new_trace_id(), rejected)
        header = self._credentials.authorization()
        if header != self._last:
            self._published.set((header, self._credentials.expires_at))
            self._last = header

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                # every worker that got a 401 names the token it sent; one refresh serves all
                rejected = set(self._requests.get(batch=True))
                for header in rejected or {None}:
                    self._refresh(header)
            except Exception as exc:  # logged; workers keep the current token meanwhile
                if self._stop.is_set():
                    return
                logger.warning("token relay: %s: %s", type(exc).__name__, exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._poll + 30)
        _forget_quietly(self._published.delete, self._requests.close)


@dataclasses.dataclass(frozen=True)
class _Connection:
    """What a worker needs to build its own client (never a live object)."""

    endpoint: str
    user_id: str
    credentials: Optional[Union[BearerToken, AppCredentials]]
    relay_name: Optional[str]
    relay_margin: float
    limits: Any
    retry: Any

    @classmethod
    def of(cls, client: Client, relay: Optional[_TokenRelay]) -> _Connection:
        credentials = client.credentials
        static = credentials if isinstance(credentials, (BearerToken, AppCredentials)) else None
        margin = getattr(credentials, "_margin", 60.0)
        return cls(client.endpoint, credentials.user_id, static, relay.name if relay else None,
                   margin / 2, client.limits, client.retry_policy)

    def client(self) -> Client:
        from ._client import Client

        if self.credentials is not None:
            return Client(self.endpoint, self.credentials, limits=self.limits, retry=self.retry)
        assert self.relay_name is not None
        token = RelayedToken(self.user_id, self.relay_name, margin=self.relay_margin)
        return Client(self.endpoint, token, limits=self.limits, retry=self.retry)


def _relay_for(client: Client, dask_client: Any, run: str, poll: float) -> Optional[_TokenRelay]:
    if isinstance(client.credentials, RefreshableToken):
        return _TokenRelay(client, dask_client, run, poll)
    return None


def _workers(dask_client: Any) -> list[str]:
    addresses = sorted(dask_client.scheduler_info().get("workers", {}))
    if not addresses:
        raise ValidationError("dask_client", "the cluster has no workers")
    return addresses


# ---------------------------------------------------------------------------- sync


@dataclasses.dataclass(frozen=True)
class _ShardFile:
    path: str
    rel_path: str
    size: int
    parent_id: str
    file_name: str
    known_sha256: Optional[str]


@dataclasses.dataclass(frozen=True)
class _ShardJob:
    run: str
    index: int
    connection: _Connection
    container: str
    options: UploadOptions
    files: int


def _uploaded_earlier(client: Client, shard: Sequence[_ShardFile], container: str) -> dict[str, tuple[str, str]]:
    """rel path → (file id, sha256) of shard files a dead attempt already completed."""
    found: dict[str, tuple[str, str]] = {}
    wanted: dict[str, list[_ShardFile]] = {}
    for item in shard:
        wanted.setdefault(item.parent_id, []).append(item)
    for parent, items in wanted.items():
        names = {item.file_name: item for item in items}
        for entry in client.list_folder(parent, container_id=container):
            if not isinstance(entry, FileEntry):
                continue
            match = names.get(entry.name)
            if match is None or not entry.sha256 or entry.size != match.size:
                continue
            digest = match.known_sha256 or part_contexts(match.path, _HASH_STRIDE).digest
            if digest == entry.sha256.lower():
                found[match.rel_path] = (entry.id, digest)
    return found


def _run_shard(job: _ShardJob, shard: list[_ShardFile]) -> int:
    """On a worker: upload one shard; outcomes and bytes go to the run's queue.  Returns bytes sent."""
    from ._manager import TransferManager

    distributed = _distributed()
    dask = distributed.get_client()
    events = distributed.Queue(f"{job.run}-events", client=dask)
    started = distributed.Event(f"{job.run}-shard-{job.index}", client=dask)
    rerun = started.is_set()
    started.set()
    lock = threading.Lock()
    pending = [0]
    total = [0]

    def flush_bytes() -> None:
        with lock:
            n, pending[0] = pending[0], 0
        if n:
            events.put(("bytes", n))

    def count(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta:
            with lock:
                pending[0] += event.delta
                total[0] += event.delta
                due = abs(pending[0]) >= _BYTES_FLUSH
            if due:
                flush_bytes()

    def outcome(item: _ShardFile, action: str, **fields: Any) -> None:
        flush_bytes()
        events.put(("item", dict(path=item.rel_path, action=action, bytes=item.size, **fields)))

    def finished(item: _ShardFile, future: UploadFuture) -> None:
        error = future.exception()
        if error is not None:
            outcome(item, "failed", error=str(error))
            return
        result = future.result()
        outcome(item, "uploaded", sha256=result.sha256, file_id=result.file_id,
                note="flash upload" if result.rapid_upload else None)

    with _WORKER_SLOT:
        with job.connection.client() as client:
            earlier = _uploaded_earlier(client, shard, job.container) if rerun else {}
            with TransferManager(client, job.options, workers=job.options.concurrency,
                                 max_files=job.files) as manager:
                for item in shard:
                    if item.rel_path in earlier:
                        file_id, digest = earlier[item.rel_path]
                        outcome(item, "uploaded", sha256=digest, file_id=file_id,
                                note="completed by an earlier attempt")
                        continue
                    try:
                        future = manager.upload(
                            item.path, container_id=job.container, parent_folder=item.parent_id,
                            file_name=item.file_name, progress=count, known_sha256=item.known_sha256,
                        )
                    except KooDriveError as exc:
                        outcome(item, "failed", error=str(exc))
                        continue
                    future.add_done_callback(lambda f, item=item: finished(item, f))  # type: ignore[misc]
    flush_bytes()
    return total[0]


def upload_plan_on_dask(
    dask_client: Any,
    client: Client,
    plan: SyncPlan,
    *,
    container: str,
    options: UploadOptions,
    files: int,
    snapshot: Optional[Snapshot],
    report: Callable[[SyncItem], None],
    progress: Optional[ProgressCallback],
    dask_options: Optional[DaskOptions],
) -> int:
    """The acting half of a sync on the cluster; returns the bytes sent.  See the module doc."""
    from ._sync import SyncItem

    if not plan.uploads:
        return 0
    distributed = _distributed()
    settings = dask_options if dask_options is not None else DaskOptions()
    if not isinstance(settings, DaskOptions):
        raise ValidationError("dask_options", f"must be a DaskOptions, got {type(settings).__name__}")
    addresses = _workers(dask_client)
    count = settings.shards(len(addresses), options.concurrency)
    local = {item.rel_path: item for item, _, _ in plan.uploads}
    entries = [
        _ShardFile(str(item.path), item.rel_path, item.identity.size, plan.folder_of(item),
                   item.rel_path.rpartition("/")[2], known)
        for item, known, _ in plan.uploads
    ]
    groups = [g for g in shard_by_bytes([e.size for e in entries], count) if g]
    run = f"koodrive-sync-{uuid.uuid4().hex}"
    scan_started_ns = time.time_ns()
    relay = _relay_for(client, dask_client, run, settings.poll_seconds)
    events = distributed.Queue(f"{run}-events", client=dask_client)
    connection = _Connection.of(client, relay)
    seen: set[str] = set()
    sent = [0]

    def handle(message: tuple[str, Any]) -> None:
        kind, value = message
        if kind == "bytes":
            sent[0] += value
            if progress is not None:
                progress(ProgressEvent("uploading", value, 0))
            return
        rel = value["path"]
        if rel in seen:  # a rerun's second word on a file: the first one stands
            return
        seen.add(rel)
        sha = value.get("sha256")
        if value["action"] == "uploaded" and snapshot is not None and sha:
            item = local[rel]
            snapshot.record(item.path, item.identity, sha, started_ns=scan_started_ns)
        report(SyncItem(rel, value["action"], value["bytes"], sha, value.get("file_id"),
                        error=value.get("error"), note=value.get("note")))

    futures: list[Any] = []
    try:
        for index, group in enumerate(groups):
            job = _ShardJob(run, index, connection, container, options, files)
            futures.append(dask_client.submit(
                _run_shard, job, [entries[i] for i in group], pure=False,
                workers=[addresses[index % len(addresses)]], allow_other_workers=True,
                key=f"{run}-shard-{index}",
            ))
        while True:  # ends when every shard has ended; each round waits at most _POLL_SECONDS
            try:
                distributed.wait(futures, timeout=_POLL_SECONDS)
            except TimeoutError:
                pass
            finished = all(f.done() for f in futures)
            for message in events.get(batch=True):  # a shard puts before it returns
                handle(message)
            if finished:
                break
        for future, group in zip(futures, groups):
            if future.status == "finished":
                continue
            error = future.exception()
            for i in group:
                if entries[i].rel_path not in seen:
                    handle(("item", dict(path=entries[i].rel_path, action="failed", bytes=entries[i].size,
                                         error=f"the worker's shard failed: {type(error).__name__}: {error}")))
    except BaseException:  # the driver gives up (Ctrl-C, a lost scheduler): so do the shards
        _cancel_quietly(dask_client, futures)
        raise
    finally:
        if relay is not None:
            relay.close()
        _forget_quietly(events.close, *(
            distributed.Event(f"{run}-shard-{index}", client=dask_client).clear
            for index in range(len(groups))
        ))
    return sent[0]


def _cancel_quietly(dask_client: Any, futures: Sequence[Any]) -> None:
    _forget_quietly(lambda: dask_client.cancel(list(futures)))


def _forget_quietly(*cleanups: Callable[[], object]) -> None:
    """Run each cleanup of the scheduler's state; the scheduler may already be gone."""
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception as exc:
            logger.debug("dask cleanup failed: %s", exc)


# ---------------------------------------------------------------------------- one file, many hosts


@dataclasses.dataclass(frozen=True)
class _PartsJob:
    connection: _Connection
    path: str
    size: int
    mtime_ns: int
    file_id: str
    upload_id: Optional[str]
    file_name: str
    parent_folder: str
    container: str
    options: UploadOptions


def _put_parts(job: _PartsJob, parts: list[MultiPartInfo]) -> int:
    """On a worker: PUT ``parts`` of the driver's task; returns the body bytes sent."""
    opts = job.options
    clock = SystemClock()
    with _WORKER_SLOT:
        st, identity = stat_identity(job.path)
        if (identity.size, identity.mtime_ns) != (job.size, job.mtime_ns):
            raise FileChangedError(f"{job.path} differs from the file the driver hashed", path=job.path)
        source = SourceFile(job.path, identity)
        stop = threading.Event()
        sent = [0]
        lock = threading.Lock()

        def on_sent(number: int, n: int) -> None:
            with lock:
                sent[0] += n

        try:
            with job.connection.client() as client:
                broker = TaskBroker(client, file_name=job.file_name, size=job.size,
                                    parent_folder=job.parent_folder, container_id=job.container,
                                    auto_rename=opts.auto_rename, trace_id=new_trace_id(), clock=clock)
                broker.adopt(job.file_id, job.upload_id)
                bucket = TokenBucket(opts.bwlimit, clock) if opts.bwlimit else None
                sender = PartSender(
                    transport=PartTransport(client.http_client, read_size=opts.read_size,
                                            timeout=opts.timeout, bucket=bucket),
                    broker=broker, policy=opts.retry or client.retry_policy, clock=clock, path=job.path,
                    url_refresh_margin=opts.url_refresh_margin, max_url_refreshes=opts.max_url_refreshes,
                    stop=stop, on_sent=on_sent, on_retry=lambda: None,
                )
                window = opts.resolved_url_window
                with concurrent.futures.ThreadPoolExecutor(opts.concurrency) as pool:
                    running: set[concurrent.futures.Future[None]] = set()
                    try:
                        for start in range(0, len(parts), window):
                            batch = parts[start : start + window]
                            leases = broker.take_leases(batch, margin=opts.url_refresh_margin)
                            for part, lease in zip(batch, leases):
                                running.add(pool.submit(sender.send, source.fd, part, lease))
                            while len(running) > opts.concurrency:
                                done, running = concurrent.futures.wait(
                                    running, return_when=concurrent.futures.FIRST_COMPLETED)
                                for future in done:
                                    future.result()
                        for future in concurrent.futures.as_completed(running):
                            future.result()
                    except BaseException:
                        stop.set()
                        raise
        finally:
            source.release()
    return sent[0]


def upload_on_dask(
    dask_client: Any,
    client: Client,
    path: PathLike,
    *,
    container_id: str,
    parent_folder: str = "root",
    file_name: Optional[str] = None,
    options: Optional[UploadOptions] = None,
    hosts: Optional[int] = None,
) -> UploadResult:
    """Upload one file with its parts PUT by ``hosts`` workers (default: all); see the module doc.

    The file must be at the same path on every worker.  The driver hashes it
    once (every part context), creates the task, the workers send contiguous
    runs of parts (one task each, rerun elsewhere if a worker dies: a PUT is
    idempotent), and the driver completes it once.
    """
    check_dask_client(dask_client)
    opts = options if options is not None else UploadOptions()
    if not isinstance(opts, UploadOptions):
        raise ValidationError("options", f"must be an UploadOptions, got {type(opts).__name__}")
    container = check_str(container_id, "container_id")
    parent = check_file_id(parent_folder, "parent_folder")
    source_path = check_path(path)
    _, identity = stat_identity(source_path)
    name = check_file_name(file_name if file_name is not None else os.path.basename(source_path))
    size = identity.size
    if size > client.limits.max_file_size:
        raise ValidationError("path", f"the file is {size} bytes, above the {client.limits.max_file_size}-byte limit")
    part_size = validate_part_size(opts.part_size or default_part_size(size, client.limits), size, client.limits)
    addresses = _workers(dask_client)
    if hosts is not None and (not isinstance(hosts, int) or isinstance(hosts, bool) or hosts < 1):
        raise ValidationError("hosts", f"must be an int >= 1 or None, got {hosts!r}")
    count = min(len(addresses), hosts or len(addresses))
    started = time.monotonic()
    contexts = part_contexts(source_path, part_size)
    current = FileIdentity.of(os.stat(source_path))
    if current != identity:
        raise FileChangedError(f"{source_path} changed while it was being hashed", path=source_path)
    parts = [MultiPartInfo(part_number=p.part_number, part_size=p.part_size, part_offset=p.part_offset,
                           hash_ctx=p.hash_ctx) for p in contexts.parts]
    clock = SystemClock()
    broker = TaskBroker(client, file_name=name, size=size, parent_folder=parent, container_id=container,
                        auto_rename=opts.auto_rename, trace_id=new_trace_id(), clock=clock)
    rapid = opts.rapid is not False
    origin = None
    if rapid:
        try:
            origin = proof_origin(client.credentials)
        except TypeError:
            pass
    created = broker.create(
        parts[:1], sha256=contexts.digest if rapid else None,
        pre_hash=contexts.pre_hash if rapid else None,
        proof_code=proof_code(source_path, size, origin) if (rapid and size and origin) else None,
    )

    def result(sent: int, rapid_upload: bool) -> UploadResult:
        return UploadResult(
            file_id=broker.file_id or "", sha256=contexts.digest, size=size, parts=len(parts),
            rapid_upload=rapid_upload, bytes_sent=sent, seconds=time.monotonic() - started,
            file_name=broker.server_file_name, part_size=part_size, bytes_hashed=size,
            parts_sent=0 if rapid_upload else len(parts),
        )

    if rapid and (created.rapid_upload or created.exist):
        return result(0, True)
    assert broker.file_id is not None
    run = f"koodrive-file-{uuid.uuid4().hex}"
    relay = _relay_for(client, dask_client, run, 1.0)
    futures: list[Any] = []
    try:
        job = _PartsJob(_Connection.of(client, relay), source_path, size, identity.mtime_ns,
                        broker.file_id, broker.upload_id, name, parent, container, opts)
        per = -(-len(parts) // count)
        futures += [
            dask_client.submit(_put_parts, job, parts[start : start + per], pure=False,
                               workers=[addresses[n]], allow_other_workers=True,
                               key=f"{run}-parts-{n}")
            for n, start in enumerate(range(0, len(parts), per))
        ]
        sent = sum(dask_client.gather(futures))
    except BaseException:
        _cancel_quietly(dask_client, futures)
        raise
    finally:
        if relay is not None:
            relay.close()
    broker.complete(contexts.digest)
    return result(sent, False)
