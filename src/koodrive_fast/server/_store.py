"""Metadata (SQLite, WAL) and part/content files under the data dir.

Layout::

    <data_dir>/meta.sqlite3          files, planned parts, stored parts, contents
    <data_dir>/uploads/<fileId>/     part bodies of unfinished uploads (<n>.part)
    <data_dir>/contents/<sha256>-<length>/   completed content (its part files)
    <data_dir>/tmp/                  bodies being received

Every path is built from server-generated ids checked against strict
patterns (:func:`valid_file_id`) and integers, so nothing a client sends can
name a path outside the data dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "Store", "FileRecord", "FolderRecord", "JobRecord", "PartRecord", "PlanRecord",
    "valid_file_id", "valid_upload_id",
]

_FILE_ID_RE = re.compile(r"F[A-Za-z0-9]{32}")
_UPLOAD_ID_RE = re.compile(r"[0-9A-F]{32}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY, upload_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
    container_id TEXT NOT NULL, parent_folder TEXT NOT NULL, file_name TEXT NOT NULL,
    file_type TEXT NOT NULL, length INTEGER NOT NULL, sha256 TEXT, pre_hash TEXT,
    mime_type TEXT, description TEXT, status TEXT NOT NULL, created_at REAL NOT NULL,
    completed_at REAL, content_key TEXT, rapid INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_by_name ON files (container_id, parent_folder, file_name);
CREATE TABLE IF NOT EXISTS plan (
    file_id TEXT NOT NULL, part_number INTEGER NOT NULL, part_size INTEGER NOT NULL,
    part_offset INTEGER NOT NULL, hash_type TEXT NOT NULL, words TEXT NOT NULL,
    PRIMARY KEY (file_id, part_number)
);
CREATE TABLE IF NOT EXISTS parts (
    file_id TEXT NOT NULL, part_number INTEGER NOT NULL, part_size INTEGER NOT NULL,
    part_offset INTEGER NOT NULL, hash_type TEXT NOT NULL, start_words TEXT NOT NULL,
    end_words TEXT NOT NULL, digest TEXT NOT NULL, stored_at REAL NOT NULL,
    PRIMARY KEY (file_id, part_number)
);
CREATE TABLE IF NOT EXISTS folders (
    folder_id TEXT PRIMARY KEY, container_id TEXT NOT NULL, parent_id TEXT NOT NULL,
    name TEXT NOT NULL, user_id TEXT NOT NULL, created_at REAL NOT NULL, edited_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS folders_by_parent ON folders (container_id, parent_id, name);
CREATE TABLE IF NOT EXISTS recycled (
    item_id TEXT PRIMARY KEY, container_id TEXT NOT NULL, recycled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, container_id TEXT NOT NULL,
    task_type INTEGER NOT NULL, action_type INTEGER NOT NULL, created_at REAL NOT NULL,
    finished_at REAL NOT NULL, result_code INTEGER NOT NULL, tasks TEXT NOT NULL,
    polls_left INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS contents (
    content_key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, length INTEGER NOT NULL,
    part_sizes TEXT NOT NULL, created_at REAL NOT NULL
);
"""


def valid_file_id(text: object) -> bool:
    return isinstance(text, str) and _FILE_ID_RE.fullmatch(text) is not None


def valid_upload_id(text: object) -> bool:
    return isinstance(text, str) and _UPLOAD_ID_RE.fullmatch(text) is not None


def content_key(sha256: str, length: int) -> str:
    if not _SHA256_RE.fullmatch(sha256) or length < 0:
        raise ValueError("content key needs a lowercase sha256 and a length >= 0")
    return f"{sha256}-{length}"


@dataclasses.dataclass(frozen=True)
class FileRecord:
    file_id: str
    upload_id: str
    user_id: str
    container_id: str
    parent_folder: list[str]
    file_name: str
    file_type: str
    length: int
    sha256: str | None
    pre_hash: str | None
    mime_type: str | None
    description: str | None
    status: str  # "uploading" | "complete"
    created_at: float
    completed_at: float | None
    content_key: str | None
    rapid: bool


@dataclasses.dataclass(frozen=True)
class FolderRecord:
    folder_id: str
    container_id: str
    parent_id: str  # "root" for the space root
    name: str
    user_id: str
    created_at: float
    edited_at: float


@dataclasses.dataclass(frozen=True)
class JobRecord:
    job_id: str
    user_id: str
    container_id: str
    task_type: int
    action_type: int
    created_at: float
    finished_at: float
    result_code: int
    tasks: list[dict[str, Any]]
    polls_left: int


@dataclasses.dataclass(frozen=True)
class PlanRecord:
    part_number: int
    part_size: int
    part_offset: int
    hash_type: str
    words: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PartRecord:
    part_number: int
    part_size: int
    part_offset: int
    hash_type: str
    start_words: tuple[int, ...]
    end_words: tuple[int, ...]
    digest: str


class Store:
    """Thread-safe access to the metadata database and the part files.

    ``clock`` gives the wall time recorded in rows.  ``fault_hook`` (tests)
    is called with the name of every write step (``"complete.move"``,
    ``"complete.commit"``, ``"purge.delete"``...) before it runs and may raise,
    e.g. ``OSError(ENOSPC)``, to stand for a full disk at that step.
    """

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.fault_hook: Callable[[str], None] | None = None
        self.root = data_dir.resolve()
        for sub in ("uploads", "contents", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.root / "meta.sqlite3"), check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        for leftover in (self.root / "tmp").iterdir():  # bodies cut off by a stop
            leftover.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _step(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    # -- settings -------------------------------------------------------
    def setting(self, key: str, default: str) -> str:
        """Stored value of ``key``; stores ``default`` first if absent."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, default))
            row = self._db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
            return str(row[0])

    # -- paths ----------------------------------------------------------
    def upload_dir(self, file_id: str) -> Path:
        if not valid_file_id(file_id):
            raise ValueError("invalid file id")
        return self.root / "uploads" / file_id

    def part_path(self, file_id: str, part_number: int) -> Path:
        return self.upload_dir(file_id) / f"{int(part_number)}.part"

    def content_dir(self, key: str) -> Path:
        sha, _, length = key.partition("-")
        return self.root / "contents" / content_key(sha, int(length))

    def temp_path(self) -> Path:
        return self.root / "tmp" / f"{secrets.token_hex(16)}.tmp"

    # -- files ----------------------------------------------------------
    def new_ids(self) -> tuple[str, str]:
        file_id = "F" + "".join(secrets.choice(_ALNUM) for _ in range(32))
        return file_id, secrets.token_hex(16).upper()

    def insert_file(self, rec: FileRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.file_id, rec.upload_id, rec.user_id, rec.container_id,
                    json.dumps(rec.parent_folder), rec.file_name, rec.file_type, rec.length,
                    rec.sha256, rec.pre_hash, rec.mime_type, rec.description, rec.status,
                    rec.created_at, rec.completed_at, rec.content_key, int(rec.rapid),
                ),
            )

    @staticmethod
    def _file(row: Any) -> FileRecord:
        return FileRecord(
            row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7],
            row[8], row[9], row[10], row[11], row[12], row[13], row[14], row[15], bool(row[16]),
        )

    def get_file(self, file_id: str) -> FileRecord | None:
        if not valid_file_id(file_id):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()
        return None if row is None else self._file(row)

    def find_by_name(self, container_id: str, parent: list[str], name: str) -> list[FileRecord]:
        """Files (finished or not) called ``name`` in a folder, recycled ones excepted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE container_id=? AND parent_folder=? AND file_name=?"
                " AND file_id NOT IN (SELECT item_id FROM recycled)",
                (container_id, json.dumps(parent), name),
            ).fetchall()
        return [self._file(r) for r in rows]

    def name_taken(self, container_id: str, parent_id: str, name: str) -> bool:
        """Whether a file or a folder (not recycled) already has ``name`` in the folder."""
        return bool(self.find_by_name(container_id, [parent_id], name)) or bool(
            self.folders_named(container_id, parent_id, name)
        )

    # -- folders ----------------------------------------------------------
    @staticmethod
    def _folder(row: Any) -> FolderRecord:
        return FolderRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6])

    def insert_folder(self, rec: FolderRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO folders VALUES (?,?,?,?,?,?,?)",
                (rec.folder_id, rec.container_id, rec.parent_id, rec.name, rec.user_id,
                 rec.created_at, rec.edited_at),
            )

    def get_folder(self, folder_id: str) -> FolderRecord | None:
        if not valid_file_id(folder_id):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM folders WHERE folder_id=?", (folder_id,)).fetchone()
        return None if row is None else self._folder(row)

    def folders_named(self, container_id: str, parent_id: str, name: str) -> list[FolderRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM folders WHERE container_id=? AND parent_id=? AND name=?"
                " AND folder_id NOT IN (SELECT item_id FROM recycled)",
                (container_id, parent_id, name),
            ).fetchall()
        return [self._folder(r) for r in rows]

    def children(self, container_id: str, parent_id: str) -> tuple[list[FolderRecord], list[FileRecord]]:
        """Direct children of a folder: folders and finished files, recycled ones excepted."""
        with self._lock:
            folders = self._db.execute(
                "SELECT * FROM folders WHERE container_id=? AND parent_id=?"
                " AND folder_id NOT IN (SELECT item_id FROM recycled)",
                (container_id, parent_id),
            ).fetchall()
            files = self._db.execute(
                "SELECT * FROM files WHERE container_id=? AND parent_folder=? AND status='complete'"
                " AND file_id NOT IN (SELECT item_id FROM recycled)",
                (container_id, json.dumps([parent_id])),
            ).fetchall()
        return [self._folder(r) for r in folders], [self._file(r) for r in files]

    def all_items(self, container_id: str | None) -> tuple[list[FolderRecord], list[FileRecord]]:
        """Every folder and finished file of a space (of all spaces with ``None``)."""
        where, args = ("WHERE container_id=?", (container_id,)) if container_id is not None else ("", ())
        with self._lock:
            folders = self._db.execute(f"SELECT * FROM folders {where}", args).fetchall()
            files = self._db.execute(
                f"SELECT * FROM files {where} {'AND' if where else 'WHERE'} status='complete'", args
            ).fetchall()
        return [self._folder(r) for r in folders], [self._file(r) for r in files]

    # -- recycle bin ----------------------------------------------------------
    def recycled_at(self, item_id: str) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT recycled_at FROM recycled WHERE item_id=?", (item_id,)).fetchone()
        return None if row is None else float(row[0])

    def recycle(self, item_id: str, container_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO recycled VALUES (?,?,?)", (item_id, container_id, self.clock())
            )

    def recycled_ids(self, container_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id FROM recycled WHERE container_id=?", (container_id,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    # -- jobs -------------------------------------------------------------
    def insert_job(self, rec: JobRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (rec.job_id, rec.user_id, rec.container_id, rec.task_type, rec.action_type,
                 rec.created_at, rec.finished_at, rec.result_code, json.dumps(rec.tasks),
                 rec.polls_left),
            )

    def poll_job(self, job_id: str) -> JobRecord | None:
        """The job as it was before this poll; counts the poll down."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is not None and row[9] > 0:
                self._db.execute("UPDATE jobs SET polls_left=polls_left-1 WHERE job_id=?", (job_id,))
        if row is None:
            return None
        return JobRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                         json.loads(row[8]), row[9])

    def find_content(self, sha256: str, length: int) -> tuple[str, list[int]] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT content_key, part_sizes FROM contents WHERE sha256=? AND length=?",
                (sha256, length),
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def content_parts(self, key: str) -> list[int]:
        with self._lock:
            row = self._db.execute(
                "SELECT part_sizes FROM contents WHERE content_key=?", (key,)
            ).fetchone()
        if row is None:
            raise KeyError(key)
        return list(json.loads(row[0]))

    # -- plan and parts --------------------------------------------------
    def put_plan(self, file_id: str, plans: list[PlanRecord]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO plan VALUES (?,?,?,?,?,?)",
                    [
                        (file_id, p.part_number, p.part_size, p.part_offset, p.hash_type,
                         json.dumps(list(p.words)))
                        for p in plans
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_plan(self, file_id: str, part_number: int) -> PlanRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT part_number, part_size, part_offset, hash_type, words FROM plan "
                "WHERE file_id=? AND part_number=?",
                (file_id, part_number),
            ).fetchone()
        if row is None:
            return None
        return PlanRecord(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])))

    def record_part(self, file_id: str, part: PartRecord, body: Path | None) -> None:
        """Move ``body`` into place as the part and record it (a re-PUT replaces).

        ``body=None`` records the part's hashes only (bodies not kept).
        """
        target = self.part_path(file_id, part.part_number)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._step("part.record")
            if body is not None:
                os.replace(body, target)
            self._db.execute(
                "INSERT OR REPLACE INTO parts VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    file_id, part.part_number, part.part_size, part.part_offset, part.hash_type,
                    json.dumps(list(part.start_words)), json.dumps(list(part.end_words)),
                    part.digest, self.clock(),
                ),
            )

    def parts(self, file_id: str) -> list[PartRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT part_number, part_size, part_offset, hash_type, start_words, end_words,"
                " digest FROM parts WHERE file_id=? ORDER BY part_number",
                (file_id,),
            ).fetchall()
        return [
            PartRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), tuple(json.loads(r[5])), r[6])
            for r in rows
        ]

    # -- completion -------------------------------------------------------
    def complete(self, file_id: str, sha256: str, part_sizes: list[int], *, rapid_key: str | None = None,
                 keep: bool = True) -> None:
        """Mark the file complete and move its parts into the content store.

        One transaction: the content row, the file's status and the removal of
        its part rows commit together, and the part directory is moved into
        the content store inside it (moved back if the commit fails), so a
        failure at any step (a full disk) leaves the upload as it was and a
        retry finds its parts.  ``keep=False`` (bodies not stored) records no
        content.
        """
        rec = self.get_file(file_id)
        if rec is None:
            raise KeyError(file_id)
        key: str | None = rapid_key
        upload_dir = self.upload_dir(file_id)
        moved: Path | None = None
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if rapid_key is None and keep:
                    key = content_key(sha256, rec.length)
                    exists = self._db.execute("SELECT 1 FROM contents WHERE content_key=?", (key,)).fetchone()
                    if not exists:
                        self._step("complete.insert")
                        self._db.execute(
                            "INSERT INTO contents VALUES (?,?,?,?,?)",
                            (key, sha256, rec.length, json.dumps(part_sizes), self.clock()),
                        )
                        target = self.content_dir(key)
                        self._step("complete.move")
                        if upload_dir.exists():
                            if target.exists():  # a stale copy; the upload dir is the truth
                                shutil.rmtree(target)
                            os.replace(upload_dir, target)
                            moved = target
                        elif not target.exists():  # a file of no parts
                            target.mkdir(parents=True)
                        # else: moved by an attempt stopped before its commit; keep it
                elif rapid_key is None:
                    key = None
                self._step("complete.update")
                self._db.execute(
                    "UPDATE files SET status='complete', sha256=?, completed_at=?, content_key=?,"
                    " rapid=? WHERE file_id=?",
                    (sha256, self.clock(), key, int(rapid_key is not None), file_id),
                )
                self._db.execute("DELETE FROM parts WHERE file_id=?", (file_id,))
                self._db.execute("DELETE FROM plan WHERE file_id=?", (file_id,))
                self._step("complete.commit")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                if moved is not None:
                    os.replace(moved, upload_dir)
                raise
        # the parts are now content (or not kept): a leftover upload dir is garbage
        shutil.rmtree(upload_dir, ignore_errors=True)

    def content_files(self, key: str) -> list[tuple[Path, int]]:
        """The part files of stored content, in order, with their sizes."""
        directory = self.content_dir(key)  # raises ValueError unless key is well-formed
        return [(directory / f"{i}.part", size) for i, size in enumerate(self.content_parts(key), 1)]

    def read_range(self, files: list[tuple[Path, int]], start: int, end: int) -> bytes:
        """Bytes [start, end) of content split over ``files`` (small ranges only)."""
        out = bytearray()
        base = 0
        for path, size in files:
            lo, hi = max(start, base), min(end, base + size)
            if lo < hi:
                with open(path, "rb") as fh:
                    fh.seek(lo - base)
                    out += fh.read(hi - lo)
            base += size
        return bytes(out)

    def iter_content(self, files: list[tuple[Path, int]], start: int = 0, end: int | None = None,
                     chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes [start, end) of content split over ``files``, in blocks of ``chunk``."""
        total = sum(size for _, size in files)
        end = total if end is None else min(end, total)
        base = 0
        for path, size in files:
            lo, hi = max(start, base), min(end, base + size)
            if lo < hi:
                with open(path, "rb") as fh:
                    fh.seek(lo - base)
                    left = hi - lo
                    while left > 0:
                        block = fh.read(min(chunk, left))
                        if not block:
                            raise OSError(f"stored content is short: {path.name}")
                        left -= len(block)
                        yield block
            base += size

    # -- expiry -----------------------------------------------------------
    def purge_expired(self, older_than: float) -> int:
        """Forget unfinished uploads created before ``older_than`` (epoch s).

        The rows go in one transaction (all or none); part files are removed
        only after it commits, so a failure orphans nothing.
        """
        with self._lock:
            self._db.execute("BEGIN")
            try:
                ids = [
                    r[0]
                    for r in self._db.execute(
                        "SELECT file_id FROM files WHERE status='uploading' AND created_at < ?",
                        (older_than,),
                    ).fetchall()
                ]
                for file_id in ids:
                    self._step("purge.delete")
                    self._db.execute("DELETE FROM files WHERE file_id=?", (file_id,))
                    self._db.execute("DELETE FROM parts WHERE file_id=?", (file_id,))
                    self._db.execute("DELETE FROM plan WHERE file_id=?", (file_id,))
                self._step("purge.commit")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for file_id in ids:
                if valid_file_id(file_id):
                    shutil.rmtree(self.upload_dir(file_id), ignore_errors=True)
        return len(ids)
