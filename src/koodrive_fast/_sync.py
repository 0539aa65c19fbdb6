"""Folder sync: make a remote folder hold what a local directory holds.

:func:`sync` plans, then acts:

1. **Scan** the local tree (filters, symlinks, special files, forbidden
   names: :mod:`koodrive_fast._localtree`) and **list** the remote folder
   once (:mod:`koodrive_fast._remotetree`).
2. **Decide** per file, by the same relative slash path on both sides:
   * same size and the same SHA-256 → ``skipped`` (nothing read, nothing
     sent).  The local digest comes from the **snapshot** (SQLite beside the
     checkpoints: file identity → SHA-256), so an unchanged tree is
     re-synced without hashing a byte; a file whose identity changed (or is
     new) is hashed only when the remote has a file of the same size;
   * otherwise → upload.  A remote file that differs is first moved to the
     recycle bin (recoverable; KooDrive has no atomic replace), then the new
     content goes up under the same name.
3. **Act**: missing folders are created parents-first (empty ones too);
   uploads go through one :class:`~koodrive_fast.TransferManager` (``files``
   files in flight on one pool of ``concurrency`` senders), where a digest
   known from the snapshot lets a flash upload be tried before any hashing;
   with ``delete`` remote files absent locally go to the recycle bin, never
   permanently.  Excluded paths are neither uploaded nor deleted.

A failure is per file (a name KooDrive forbids, an unreadable file, a file
that changes mid-upload): it is reported and the rest goes on.  A killed sync
run again finishes the rest: finished files are skipped through the
snapshot and the listing, half-sent files resume from their checkpoints.
``dry_run`` reads and lists but changes nothing, remote or local.

The two halves are separate (:func:`plan_sync`, then the uploads), so the
acting half can also run on a Dask cluster (``dask_client``:
:mod:`koodrive_fast._dask`) after planning once here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Sequence, Union

from ._checkpoint import default_checkpoint_dir
from ._contexts import part_contexts
from ._exceptions import ApiError, KooDriveError, NotFoundError, ValidationError
from ._localtree import LocalFile, LocalTree, PathFilter, scan_tree
from ._manager import TransferManager, UploadFuture
from ._models import FileEntry, FolderEntry
from ._options import UploadOptions
from ._progress import ProgressCallback, ProgressEvent
from ._remotetree import RemoteTree, list_tree
from ._snapshot import SNAPSHOT_FILE, Snapshot
from ._source import FileIdentity
from ._validate import check_str

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client
    from ._dask import DaskOptions

__all__ = ["sync", "plan_sync", "SyncPlan", "SyncItem", "SyncResult", "SyncAction"]

logger = logging.getLogger("koodrive_fast")

SyncAction = Literal[
    "uploaded", "skipped", "failed", "deleted", "would-upload", "would-delete", "would-skip"
]
PathLike = Union[str, "os.PathLike[str]"]
_HASH_PART = 64 << 20  # stride for a digest-only hash (contexts unused)
_DELETE_BATCH = 1000


@dataclasses.dataclass(frozen=True)
class SyncItem:
    """What happened to one path (relative, slash-separated)."""

    path: str
    action: SyncAction
    bytes: int = 0
    sha256: Optional[str] = None
    file_id: Optional[str] = None
    error: Optional[str] = None
    note: Optional[str] = None  # why skipped ("unchanged", "symlink", "flash upload", ...)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path, "action": self.action, "bytes": self.bytes,
            "sha256": self.sha256, "fileId": self.file_id, "error": self.error,
            "note": self.note,
        }


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """Every per-path outcome, the folders created, and what was read and sent."""

    items: tuple[SyncItem, ...]
    folders_created: tuple[str, ...]
    bytes_hashed: int
    bytes_sent: int
    seconds: float
    dry_run: bool

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(item.action for item in self.items))

    @property
    def ok(self) -> bool:
        return all(item.action != "failed" for item in self.items)

    @property
    def failed(self) -> tuple[SyncItem, ...]:
        return tuple(item for item in self.items if item.action == "failed")

    def summary(self) -> dict[str, object]:
        by_action: Counter[str] = Counter()
        for item in self.items:
            by_action[item.action] += item.bytes
        return {
            "summary": True, "dryRun": self.dry_run, "counts": self.counts,
            "bytes": dict(by_action), "foldersCreated": len(self.folders_created),
            "bytesHashed": self.bytes_hashed, "bytesSent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
        }


class _Reporter:
    """Collects items (thread-safe) and passes each to the caller's ``on_item``."""

    def __init__(self, on_item: Optional[Callable[[SyncItem], object]]) -> None:
        self._on_item = on_item
        self._lock = threading.Lock()
        self.items: list[SyncItem] = []

    def __call__(self, item: SyncItem) -> None:
        with self._lock:
            self.items.append(item)
            if self._on_item is not None:
                self._on_item(item)


def _remote_root_path(remote_folder: str) -> str:
    text = check_str(remote_folder, "remote_folder")
    if not text.startswith("/"):
        raise ValidationError("remote_folder", f"must be a slash path from the space root, got {text!r}")
    return text


def _local_digest(
    item: LocalFile, snapshot: Optional[Snapshot], record: bool
) -> tuple[str, int]:
    """(sha256, bytes hashed): from the snapshot when the identity still matches."""
    if snapshot is not None:
        known = snapshot.lookup(item.path, item.identity)
        if known is not None:
            return known, 0
    started_ns = time.time_ns()
    digest = part_contexts(str(item.path), _HASH_PART).digest
    if FileIdentity.of(os.stat(item.path)) != item.identity:
        raise KooDriveError(f"{item.rel_path} changed while it was being hashed")
    if snapshot is not None and record:
        snapshot.record(item.path, item.identity, digest, started_ns=started_ns)
    return digest, item.identity.size


def _parent_of(rel: str) -> str:
    return rel.rpartition("/")[0]


@dataclasses.dataclass
class SyncPlan:
    """What the planning half of a sync decided, for the acting half (uploads).

    ``uploads`` holds (file, digest known from the snapshot, remote file to
    replace); ``folder_ids`` maps each relative folder path to its remote id.
    """

    local: LocalTree
    remote: Optional[RemoteTree]
    folder_ids: dict[str, str]
    uploads: list[tuple[LocalFile, Optional[str], Optional[FileEntry]]]
    created: list[str]
    hashed: int

    def folder_of(self, item: LocalFile) -> str:
        return self.folder_ids[_parent_of(item.rel_path)]


def sync(
    client: Client,
    local_dir: PathLike,
    remote_folder: str,
    *,
    container_id: str,
    options: Optional[UploadOptions] = None,
    filters: Optional[PathFilter] = None,
    delete: bool = False,
    dry_run: bool = False,
    follow_symlinks: bool = False,
    files: int = 4,
    snapshot: Optional[Snapshot] = None,
    on_item: Optional[Callable[[SyncItem], object]] = None,
    progress: Optional[ProgressCallback] = None,
    manager: Optional[TransferManager] = None,
    dask_client: Optional[Any] = None,
    dask_options: Optional[DaskOptions] = None,
) -> SyncResult:
    """Sync ``local_dir`` into the remote folder ``remote_folder`` (``/a/b``); see the module doc.

    ``snapshot`` defaults to ``snapshot.sqlite3`` in the checkpoint directory.
    ``options`` apply to every upload (``concurrency`` is the number of part
    senders shared by the ``files`` files in flight).  ``on_item`` receives
    each :class:`SyncItem` as it is decided (from several threads, one at a
    time); ``progress`` receives every file's upload events.  Bad arguments
    raise :class:`ValidationError` before any request.

    ``dask_client`` (a ``distributed.Client``): plan here, upload on the
    cluster's workers (:mod:`koodrive_fast._dask`, tuned by ``dask_options``);
    ``progress`` then receives ``uploading`` events aggregated per worker.
    """
    started = time.monotonic()
    opts = options if options is not None else UploadOptions()
    if not isinstance(opts, UploadOptions):
        raise ValidationError("options", f"must be an UploadOptions, got {type(opts).__name__}")
    root_path = _remote_root_path(remote_folder)
    container = check_str(container_id, "container_id")
    if not isinstance(files, int) or isinstance(files, bool) or not 1 <= files <= 64:
        raise ValidationError("files", f"must be an int in 1..64, got {files!r}")
    if dask_client is not None and manager is not None:
        raise ValidationError("manager", "cannot be combined with dask_client (each worker has its own)")
    if dask_client is not None:
        from ._dask import check_cluster_options, check_dask_client

        check_dask_client(dask_client)
        check_cluster_options(opts)
    local = scan_tree(local_dir, filters=filters, follow_symlinks=follow_symlinks)
    own_snapshot = snapshot is None
    if snapshot is None:
        snapshot = _open_snapshot(opts)
    report = _Reporter(on_item)
    sent = [0]
    try:
        plan = plan_sync(client, local, root_path, container, snapshot, dry_run, report)
        if dry_run:
            for item, _digest, _old in plan.uploads:
                report(SyncItem(item.rel_path, "would-upload", item.identity.size))
        elif dask_client is not None:
            from ._dask import upload_plan_on_dask

            _recycle_replaced(client, plan.uploads, container)
            sent[0] = upload_plan_on_dask(
                dask_client, client, plan, container=container, options=opts, files=files,
                snapshot=snapshot, report=report, progress=progress, dask_options=dask_options,
            )
        else:
            _upload_all(client, plan.uploads, plan.folder_ids, container, opts, files, snapshot,
                        report, sent, progress, manager)
        if delete and plan.remote is not None:
            _delete_absent(client, local, plan.remote, container, filters, dry_run, report)
    finally:
        if own_snapshot and snapshot is not None:
            snapshot.close()
    return SyncResult(tuple(report.items), tuple(plan.created), plan.hashed, sent[0],
                      time.monotonic() - started, dry_run)


def plan_sync(
    client: Client, local: LocalTree, root_path: str, container: str,
    snapshot: Optional[Snapshot], dry_run: bool, report: Callable[[SyncItem], None],
) -> SyncPlan:
    """The planning half: remote listing, folders created (unless ``dry_run``), skips reported."""
    for entry in local.skipped:
        failed = entry.kind in ("forbidden", "error")
        report(SyncItem(entry.rel_path, "failed" if failed else "skipped",
                        error=entry.reason if failed else None,
                        note=None if failed else f"{entry.kind}: {entry.reason}"))
    root, remote = _remote_side(client, root_path, container, create=not dry_run)
    created: list[str] = []
    folder_ids = _ensure_folders(client, local, remote, root, container, dry_run, created)
    hashed = [0]
    uploads = _decide(local, remote, snapshot, dry_run, report, hashed)
    return SyncPlan(local, remote, folder_ids, uploads, created, hashed[0])


def _open_snapshot(opts: UploadOptions) -> Optional[Snapshot]:
    base = Path(os.fspath(opts.checkpoint_dir)) if opts.checkpoint_dir else default_checkpoint_dir()
    path = base / SNAPSHOT_FILE
    try:
        return Snapshot(path)
    except OSError as exc:
        logger.warning("cannot keep a sync snapshot at %s (%s); unchanged files will be hashed", path, exc)
        return None


def _remote_side(
    client: Client, root_path: str, container: str, *, create: bool
) -> tuple[Optional[FolderEntry], Optional[RemoteTree]]:
    if create:
        root = client.ensure_folder(root_path, container_id=container)
    else:
        try:
            found = client.resolve_path(root_path, container_id=container)
        except NotFoundError:
            return None, None
        if not isinstance(found, FolderEntry):
            raise ValidationError("remote_folder", f"{root_path} is a file, not a folder")
        root = found
    return root, list_tree(client, root, container_id=container)


def _ensure_folders(
    client: Client, local: LocalTree, remote: Optional[RemoteTree], root: Optional[FolderEntry],
    container: str, dry_run: bool, created: list[str],
) -> dict[str, str]:
    """rel folder path → folder id, creating what is missing (parents first)."""
    ids: dict[str, str] = {"": root.id} if root is not None else {}
    if remote is not None:
        ids.update({rel: entry.id for rel, entry in remote.folders.items()})
    for rel in local.folders:
        if rel in ids:
            continue
        if remote is not None and rel in remote.files:
            raise ApiError(None, f"cannot create folder {rel!r}: a remote file has that name")
        created.append(rel)
        if dry_run:
            continue
        parent = ids[_parent_of(rel)]
        entry = client.create_folder(rel.rpartition("/")[2], container_id=container,
                                     parent_folder=parent)
        ids[rel] = entry.id
    return ids


def _decide(
    local: LocalTree, remote: Optional[RemoteTree], snapshot: Optional[Snapshot], dry_run: bool,
    report: Callable[[SyncItem], None], hashed: list[int],
) -> list[tuple[LocalFile, Optional[str], Optional[FileEntry]]]:
    """Report skips; return (file, known digest, remote file to replace) for each upload."""
    uploads: list[tuple[LocalFile, Optional[str], Optional[FileEntry]]] = []
    for item in local.files:
        there = remote.files.get(item.rel_path) if remote is not None else None
        if remote is not None and item.rel_path in remote.folders:
            report(SyncItem(item.rel_path, "failed", item.identity.size,
                            error="a remote folder has this name"))
            continue
        known = snapshot.lookup(item.path, item.identity) if snapshot is not None else None
        if there is not None and there.size == item.identity.size and there.sha256:
            try:
                digest, read = _local_digest(item, snapshot, record=not dry_run)
            except (KooDriveError, OSError) as exc:
                report(SyncItem(item.rel_path, "failed", item.identity.size, error=str(exc)))
                continue
            hashed[0] += read
            if digest == there.sha256.lower():
                report(SyncItem(item.rel_path, "skipped", item.identity.size, digest, there.id,
                                note="unchanged"))
                continue
            known = digest
        uploads.append((item, known, there))
    return uploads


def _recycle_replaced(
    client: Client, uploads: Sequence[tuple[LocalFile, Optional[str], Optional[FileEntry]]], container: str,
) -> None:
    """Replaced files go to the recycle bin first (recoverable), in batches."""
    stale = [there.id for _, _, there in uploads if there is not None]
    for start in range(0, len(stale), _DELETE_BATCH):
        client.delete(stale[start : start + _DELETE_BATCH], container_id=container)


def _upload_all(
    client: Client,
    uploads: Sequence[tuple[LocalFile, Optional[str], Optional[FileEntry]]],
    folder_ids: dict[str, str],
    container: str,
    opts: UploadOptions,
    files: int,
    snapshot: Optional[Snapshot],
    report: _Reporter,
    sent: list[int],
    progress: Optional[ProgressCallback],
    manager: Optional[TransferManager],
) -> None:
    if not uploads:
        return
    _recycle_replaced(client, uploads, container)
    own = manager is None
    mgr = manager or TransferManager(client, opts, workers=opts.concurrency, max_files=files)
    lock = threading.Lock()
    scan_started_ns = time.time_ns()

    def count(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta:
            with lock:
                sent[0] += event.delta
        if progress is not None:
            progress(event)

    def finished(item: LocalFile, future: UploadFuture) -> None:
        error = future.exception()
        if error is not None:
            report(SyncItem(item.rel_path, "failed", item.identity.size, error=str(error)))
            return
        result = future.result()
        if snapshot is not None:
            snapshot.record(item.path, item.identity, result.sha256, started_ns=scan_started_ns)
        report(SyncItem(item.rel_path, "uploaded", item.identity.size, result.sha256,
                        result.file_id, note="flash upload" if result.rapid_upload else None))

    try:
        for item, known, _there in uploads:
            try:
                future = mgr.upload(
                    item.path, container_id=container, parent_folder=folder_ids[_parent_of(item.rel_path)],
                    file_name=item.rel_path.rpartition("/")[2], options=opts, progress=count,
                    known_sha256=known,
                )
            except KooDriveError as exc:
                report(SyncItem(item.rel_path, "failed", item.identity.size, error=str(exc)))
                continue
            future.add_done_callback(lambda f, item=item: finished(item, f))  # type: ignore[misc]
    finally:
        if own:
            mgr.close()


def _delete_absent(
    client: Client, local: LocalTree, remote: RemoteTree, container: str,
    filters: Optional[PathFilter], dry_run: bool, report: _Reporter,
) -> None:
    present = {f.rel_path for f in local.files} | {s.rel_path for s in local.skipped}
    rules = filters if filters is not None else PathFilter()
    gone = [(rel, entry) for rel, entry in sorted(remote.files.items())
            if rel not in present and rules.file_included(rel)]
    if dry_run:
        for rel, entry in gone:
            report(SyncItem(rel, "would-delete", entry.size, entry.sha256, entry.id))
        return
    for start in range(0, len(gone), _DELETE_BATCH):
        batch = gone[start : start + _DELETE_BATCH]
        try:
            job = client.delete([entry.id for _, entry in batch], container_id=container)
            failed = set(getattr(job, "failed_file_ids", ()) or ())
        except KooDriveError as exc:
            for rel, entry in batch:
                report(SyncItem(rel, "failed", entry.size, entry.sha256, entry.id, error=str(exc)))
            continue
        for rel, entry in batch:
            if entry.id in failed:
                report(SyncItem(rel, "failed", entry.size, entry.sha256, entry.id,
                                error="the recycle-bin job failed for this file"))
            else:
                report(SyncItem(rel, "deleted", entry.size, entry.sha256, entry.id,
                                note="moved to the recycle bin"))
