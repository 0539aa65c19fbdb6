"""Downloads: a file with parallel ranged GETs, or a folder tree; resumable, SHA-256 checked.

``download(client, remote, local_path, container_id=...)`` (also
``Client.download`` / ``AsyncClient.download``):

* ``remote`` is a ``/path`` from the space root or an id.  A file goes to
  ``local_path`` (or into it, when ``local_path`` is an existing directory);
  a folder *becomes* ``local_path`` (created if missing, merged if it
  exists): the tree is listed first (:func:`koodrive_fast._remotetree.list_tree`),
  every subfolder is recreated, empty ones too, and every file is downloaded
  as below, one file after another, with download URLs asked for 100 files
  per ``files/download`` call.
* A file is fetched as ``chunk_size`` ranges by ``concurrency`` threads,
  each streaming its range in ``read_size`` blocks written with ``pwrite``
  into ``<dest>.part`` (memory: ``concurrency × read_size``, whatever the
  size).  Each range is retried on connection errors, 5xx and 429 (bounded
  in attempts and seconds); a 403 (expired URL) fetches a new URL.
* Resume: ``<dest>.part.json`` records the finished ranges (after an
  ``fdatasync`` of the data, at most every ``checkpoint_interval`` s and at
  the end); a re-run for the same remote file, size, digest and chunk size
  fetches only the missing ranges.
* At the end the ``.part`` file is hashed; a SHA-256 different from the
  server's digest deletes the ``.part`` and its record and raises
  :class:`IntegrityError` (nothing is left at the destination); otherwise it
  is renamed over the destination atomically.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import httpx

from ._exceptions import (
    ApiError,
    IntegrityError,
    KooDriveError,
    NotFoundError,
    TransportError,
    ValidationError,
)
from ._models import Entry, FileEntry, FolderEntry
from ._redact import redact_text
from ._remotetree import list_tree, safe_remote_name
from ._retry import RetryBudget, RetryPolicy, parse_retry_after
from ._validate import check_file_id

if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncClient, Client

__all__ = [
    "DownloadConfig", "DownloadResult", "DownloadedFile", "download", "download_async",
    "SIDECAR_SUFFIX", "PART_SUFFIX",
]

logger = logging.getLogger("koodrive_fast")

MiB = 1024 * 1024
PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".part.json"
_SIDECAR_VERSION = 1
_HASH_BLOCK = 4 * MiB
_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_URL_BATCH = 100

ProgressBytes = Callable[[int], object]
PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    """Knobs of a download; validated at construction.

    ``chunk_size`` bytes per ranged GET (files at most this big take one
    GET), ``concurrency`` GETs in flight per file, ``read_size`` bytes per
    read from a response, ``retry`` per range (attempts, backoff, time
    budget), ``max_url_refreshes`` new URLs per file after 403s, ``timeout``
    per HTTP read/write, ``resume`` reuse a matching ``.part`` file,
    ``checkpoint_interval`` seconds between records of finished ranges,
    ``max_entries`` bound on files + folders of a folder download.
    """

    chunk_size: int = 16 * MiB
    concurrency: int = 4
    read_size: int = 1 * MiB
    retry: RetryPolicy = RetryPolicy(max_attempts=5, backoff_base=0.25, backoff_max=5.0,
                                     max_elapsed=120.0)
    max_url_refreshes: int = 3
    timeout: float = 60.0
    resume: bool = True
    checkpoint_interval: float = 1.0
    max_entries: int = 10_000_000

    def __post_init__(self) -> None:
        for name in ("chunk_size", "concurrency", "read_size", "max_entries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValidationError(f"DownloadConfig.{name}", f"must be a positive int, got {value!r}")
        if not isinstance(self.max_url_refreshes, int) or self.max_url_refreshes < 0:
            raise ValidationError("DownloadConfig.max_url_refreshes", "must be an int >= 0")
        for name in ("timeout", "checkpoint_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValidationError(f"DownloadConfig.{name}", f"must be a number >= 0, got {value!r}")
        if not isinstance(self.retry, RetryPolicy):
            raise ValidationError("DownloadConfig.retry", "must be a RetryPolicy")

    @property
    def memory_ceiling(self) -> int:
        """Bytes of response bodies held at once (beyond httpx's own buffers)."""
        return self.concurrency * self.read_size


@dataclasses.dataclass(frozen=True)
class DownloadedFile:
    """One file written: ``bytes_received`` counts this run only (less on a resume)."""

    remote_path: str
    local_path: Path
    file_id: str
    size: int
    sha256: str
    bytes_received: int
    resumed: bool


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    """What a download wrote: files, and (folder downloads) every local folder made or reused."""

    files: tuple[DownloadedFile, ...]
    folders: tuple[Path, ...]
    seconds: float

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_received(self) -> int:
        return sum(f.bytes_received for f in self.files)


# --------------------------------------------------------------------------- entry points


def download(
    client: Client,
    remote: str,
    local_path: PathLike,
    *,
    container_id: str,
    config: Optional[DownloadConfig] = None,
    progress: Optional[ProgressBytes] = None,
) -> DownloadResult:
    """Download ``remote`` (a ``/path`` or an id) to ``local_path``; see the module docstring."""
    from ._client import _check_container_id

    config = config if config is not None else DownloadConfig()
    if not isinstance(config, DownloadConfig):
        raise ValidationError("config", "must be a DownloadConfig")
    if not isinstance(remote, str) or not remote:
        raise ValidationError("remote", "must be a /path or an id")
    if not remote.startswith("/"):
        check_file_id(remote, "remote")
    _check_container_id(container_id)
    dest = Path(os.fspath(local_path))
    started = time.monotonic()
    entry = _find_remote(client, remote, container_id)
    report = _Progress(progress)
    if isinstance(entry, FileEntry):
        if dest.is_dir():
            dest = dest / safe_remote_name(entry.name)
        got = _download_file(client, entry, dest, remote, container_id, config, report)
        return DownloadResult((got,), (), time.monotonic() - started)
    files, folders = _download_tree(client, entry, dest, container_id, config, report)
    return DownloadResult(tuple(files), tuple(folders), time.monotonic() - started)


async def download_async(
    client: AsyncClient, remote: str, local_path: PathLike, **kwargs: Any
) -> DownloadResult:
    """``AsyncClient.download``: :func:`download` on a sync twin in a worker thread."""
    import anyio

    twin = client.sync_twin()

    def run() -> DownloadResult:
        with twin:
            return download(twin, remote, local_path, **kwargs)

    return await anyio.to_thread.run_sync(run)


# --------------------------------------------------------------------------- remote side


def _find_remote(client: Client, remote: str, container_id: str) -> Entry:
    if remote.startswith("/"):
        return client.resolve_path(remote, container_id=container_id)
    try:
        detail = client.file_detail(remote)
    except NotFoundError:
        # not a file: a folder id works as a listing parent (else the listing raises)
        client.list_folder_page(remote, container_id=container_id, page_size=1)
        return FolderEntry(id=remote, name="", container_id=container_id)
    if detail.length is None:
        raise ApiError(None, f"file {remote} has no length in its detail")
    return FileEntry(id=detail.file_id, name=detail.file_name or detail.file_id,
                     size=detail.length, sha256=detail.sha256, container_id=container_id)


def _download_tree(
    client: Client, root: FolderEntry, dest: Path, container_id: str, config: DownloadConfig,
    report: _Progress,
) -> tuple[list[DownloadedFile], list[Path]]:
    tree = list_tree(client, root, container_id=container_id, max_entries=config.max_entries)
    folders = [dest] + [dest / rel for rel in tree.folders]
    for folder in folders:  # parents first: empty folders exist too
        folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(tree.files.items())
    files = []
    for start in range(0, len(ordered), _URL_BATCH):  # one files/download call per 100 files
        batch = ordered[start : start + _URL_BATCH]
        links = client.download_urls([e.id for _, e in batch], container_id=container_id)
        for (rel, entry), link in zip(batch, links):
            url = link.url if link.ok else None  # a refused link is asked again (and reported)
            files.append(_download_file(client, entry, dest / rel, "/" + rel, container_id,
                                        config, report, url))
    return files, folders


# --------------------------------------------------------------------------- one file


class _Progress:
    """Serialises byte deltas into the user's callback (which may then be simple)."""

    def __init__(self, callback: Optional[ProgressBytes]) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(self, delta: int) -> None:
        if self._callback is None or not delta:
            return
        with self._lock:
            try:
                self._callback(delta)
            except Exception:
                logger.warning("download progress callback raised; disabling it", exc_info=True)
                self._callback = None


def _sidecar_doc(entry: FileEntry, chunk_size: int, done: set[int]) -> dict[str, Any]:
    return {"version": _SIDECAR_VERSION, "fileId": entry.id, "size": entry.size,
            "sha256": entry.sha256, "chunkSize": chunk_size, "done": sorted(done)}


def _load_done(sidecar: Path, part: Path, entry: FileEntry, chunk_size: int) -> Optional[set[int]]:
    """Finished chunk numbers from a matching sidecar, or None (start afresh)."""
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
        if part.stat().st_size != entry.size:
            return None
    except (OSError, ValueError):
        return None
    expected = _sidecar_doc(entry, chunk_size, set())
    if not isinstance(doc, dict) or any(doc.get(k) != v for k, v in expected.items() if k != "done"):
        logger.info("ignoring a resume record for another file or chunk size: %s", sidecar.name)
        return None
    done = doc.get("done")
    if not isinstance(done, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in done):
        return None
    return set(done)


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _hash_file(path: Path) -> str:
    from ._hashing import sha256

    digest = sha256()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class _RangeFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, expired: bool = False,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.expired = expired
        self.retry_after = retry_after


class _FileFetch:
    """Ranged GETs of one file into an open ``.part`` file descriptor."""

    def __init__(self, client: Client, entry: FileEntry, container_id: str, fd: int,
                 config: DownloadConfig, report: _Progress, done: set[int],
                 sidecar: Path, url: Optional[str] = None) -> None:
        self.client = client
        self.entry = entry
        self.container_id = container_id
        self.fd = fd
        self.config = config
        self.report = report
        self.done = done
        self.sidecar = sidecar
        self.received = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._url: Optional[str] = url
        self._url_version = 0
        self._refreshes = 0
        self._last_record = client._monotonic()

    # URL handling (one URL per file, refreshed after a 403)
    def url(self) -> tuple[str, int]:
        with self._lock:
            if self._url is None:
                self._url = self._fetch_url()
            return self._url, self._url_version

    def refresh(self, version: int) -> None:
        with self._lock:
            if version != self._url_version:
                return  # another worker already refreshed it
            if self._refreshes >= self.config.max_url_refreshes:
                raise KooDriveError(f"download URL of {self.entry.id} kept expiring "
                                    f"({self._refreshes} refreshes)")
            self._refreshes += 1
            self._url = self._fetch_url()
            self._url_version += 1

    def _fetch_url(self) -> str:
        (link,) = self.client.download_urls([self.entry.id], container_id=self.container_id)
        if not link.ok or link.url is None:
            raise ApiError(link.code, f"no download URL for {self.entry.id}: {link.msg}")
        return link.url

    # ranges
    def fetch_chunk(self, number: int) -> None:
        if self.stop.is_set():
            return
        size = self.entry.size
        offset = number * self.config.chunk_size
        length = min(self.config.chunk_size, size - offset)
        budget = RetryBudget(self.config.retry, self.client._monotonic)
        while True:
            url, version = self.url()
            try:
                self._get_range(url, offset, length)
                break
            except _RangeFailed as exc:
                if exc.expired:
                    self.refresh(version)
                    continue
                delay = budget.next_delay(exc.retry_after) if exc.retryable else None
                if delay is None:
                    raise TransportError(
                        f"GET bytes {offset}-{offset + length - 1} of {self.entry.id} failed "
                        f"after {budget.attempts} attempt(s): {exc}", method="GET",
                        attempts=budget.attempts,
                    ) from None
                self.client._sleep(delay)
        with self._lock:
            self.done.add(number)
            self.received += length
            due = self.client._monotonic() - self._last_record >= self.config.checkpoint_interval
        if due:
            self.record()

    def _get_range(self, url: str, offset: int, length: int) -> int:
        """GET one range into the file; returns bytes written (reported as progress)."""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        http = self.client.http_client
        written = 0
        try:
            with http.stream("GET", url, headers=headers, timeout=self.config.timeout) as response:
                status = response.status_code
                if status == 403:
                    response.read()
                    expired = b"expired" in response.content.lower()
                    raise _RangeFailed("403 from storage", retryable=False, expired=expired)
                if status in _RETRYABLE:
                    raise _RangeFailed(f"HTTP {status} from storage", retryable=True,
                                       retry_after=parse_retry_after(response.headers.get("Retry-After")))
                whole = status == 200 and offset == 0 and length == self.entry.size
                if status != 206 and not whole:
                    raise _RangeFailed(f"HTTP {status} from storage for a range request",
                                       retryable=False)
                if status == 206 and not response.headers.get("content-range", "").startswith(
                        f"bytes {offset}-{offset + length - 1}/"):
                    raise _RangeFailed("storage answered another range", retryable=False)
                for block in response.iter_bytes(self.config.read_size):
                    if written + len(block) > length:
                        raise _RangeFailed("storage sent more bytes than asked", retryable=False)
                    view = memoryview(block)
                    while view:
                        n = os.pwrite(self.fd, view, offset + written)
                        view = view[n:]
                        written += n
                    self.report(len(block))
                    if self.stop.is_set():
                        raise _RangeFailed("stopped", retryable=False)
        except httpx.TransportError as exc:
            self.report(-written)
            raise _RangeFailed(f"{type(exc).__name__}: {redact_text(str(exc))}",
                               retryable=True) from None
        except _RangeFailed:
            self.report(-written)
            raise
        if written != length:
            self.report(-written)
            raise _RangeFailed(f"short body: {written} of {length} bytes", retryable=True)
        return written

    def record(self) -> None:
        """Persist the finished ranges (data synced first, so a record never outruns it)."""
        with self._lock:
            _datasync(self.fd)
            _write_json_atomic(self.sidecar, _sidecar_doc(self.entry, self.config.chunk_size,
                                                          set(self.done)))
            self._last_record = self.client._monotonic()


def _download_file(
    client: Client, entry: FileEntry, dest: Path, remote_path: str, container_id: str,
    config: DownloadConfig, report: _Progress, url: Optional[str] = None,
) -> DownloadedFile:
    if entry.sha256 is None:
        raise IntegrityError(None, f"the server reports no SHA-256 for {entry.id}: cannot verify")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    sidecar = dest.with_name(dest.name + SIDECAR_SUFFIX)
    done = _load_done(sidecar, part, entry, config.chunk_size) if config.resume else None
    resumed = bool(done)
    if done is None:
        done = set()
        with open(part, "wb") as fh:
            fh.truncate(entry.size)
        _write_json_atomic(sidecar, _sidecar_doc(entry, config.chunk_size, done))
    chunks = -(-entry.size // config.chunk_size)
    todo = [n for n in range(chunks) if n not in done]
    if resumed:
        report(entry.size - sum(min(config.chunk_size, entry.size - n * config.chunk_size)
                                for n in todo))
    fd = os.open(part, os.O_WRONLY)
    fetch = _FileFetch(client, entry, container_id, fd, config, report, done, sidecar, url)
    try:
        try:
            if todo:
                _run_chunks(fetch, todo, config.concurrency)
        finally:
            fetch.record()  # what finished is kept for the next run, even after a failure
    finally:
        os.close(fd)
    digest = _hash_file(part)
    if digest != entry.sha256.lower():
        part.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise IntegrityError(
            None, f"downloaded {remote_path or entry.id} has SHA-256 {digest}, the server says "
            f"{entry.sha256}; nothing was written to {dest}",
        )
    os.replace(part, dest)
    sidecar.unlink(missing_ok=True)
    return DownloadedFile(remote_path or entry.name, dest, entry.id, entry.size, digest,
                          fetch.received, resumed)


def _run_chunks(fetch: _FileFetch, todo: list[int], concurrency: int) -> None:
    """Fetch ``todo`` on up to ``concurrency`` threads; the first failure stops new ranges."""
    if len(todo) == 1 or concurrency == 1:
        for number in todo:
            fetch.fetch_chunk(number)
        return
    workers = min(concurrency, len(todo))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kd-get") as pool:
        futures = [pool.submit(fetch.fetch_chunk, n) for n in todo]
        first: Optional[BaseException] = None
        try:
            for future in concurrent.futures.as_completed(futures):
                error = future.exception()
                if error is not None and first is None:
                    first = error
                    fetch.stop.set()
        except BaseException:  # KeyboardInterrupt: in-flight ranges stop at their next block
            fetch.stop.set()
            for future in futures:
                future.cancel()
            raise
        if first is not None:
            raise first
