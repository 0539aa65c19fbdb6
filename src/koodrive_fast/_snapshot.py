"""Local snapshot: which SHA-256 a local file had, so an unchanged file is never re-read.

A SQLite database (``snapshot.sqlite3``, beside the upload checkpoints in
:func:`koodrive_fast._checkpoint.default_checkpoint_dir`) maps an absolute
path to the :class:`~koodrive_fast._localtree.FileIdentity` (size, mtime_ns,
ctime_ns, inode, device) it had when hashed, and that hash.  A lookup
answers only when all five are equal *and* the file was not "racily" new:
a file whose mtime or ctime is later than ``racy_window_ns`` (default 2 s,
the coarsest common timestamp granularity: FAT/exFAT, SMB) before the
moment its read began could have been changed again within the same
timestamp tick without a visible change, so it is hashed again next time
(once; the new record is then old enough).  Consequence: a tree written
less than 2 s before its first sync is partly re-hashed by the second one
(tests and benchmarks pass ``now_ns``/``racy_window_ns`` or let the tree age).  The snapshot is a cache: an unreadable, corrupt or
other-version database is set aside and started afresh (logged, never
raised).  Safe from several threads (one connection, a lock) and
processes (SQLite locking, WAL, a busy timeout); commits survive ``kill -9``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Union

from ._exceptions import ValidationError
from ._source import FileIdentity
from ._validate import check_hex64

__all__ = ["Snapshot", "SNAPSHOT_FILE", "SNAPSHOT_VERSION"]

logger = logging.getLogger("koodrive_fast")

SNAPSHOT_FILE = "snapshot.sqlite3"
SNAPSHOT_VERSION = 1
_RACY_NS = 2_000_000_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, device INTEGER NOT NULL,
    sha256 TEXT NOT NULL, recorded_ns INTEGER NOT NULL
);
"""

PathLike = Union[str, "os.PathLike[str]"]


def _key(path: PathLike) -> bytes:
    return os.fsencode(os.path.abspath(os.fspath(path)))


class Snapshot:
    """path → (identity, sha256); see the module docstring.  Use as a context manager."""

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        racy_window_ns: int = _RACY_NS,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if path is None:
            from ._checkpoint import default_checkpoint_dir

            path = default_checkpoint_dir() / SNAPSHOT_FILE
        self.path = Path(os.fspath(path))
        if not isinstance(racy_window_ns, int) or racy_window_ns < 0:
            raise ValidationError("racy_window_ns", "must be an int >= 0")
        self._racy = racy_window_ns
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(self.path.name + f".broken-{time.time_ns()}")
            logger.warning("snapshot %s unusable (%s); moved to %s, starting afresh",
                           self.path, exc, aside.name)
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                             timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SNAPSHOT_VERSION):
                logger.info("snapshot %s has version %s; starting afresh", self.path, version)
                db.execute("DROP TABLE IF EXISTS files")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SNAPSHOT_VERSION}")
            db.execute("SELECT count(*) FROM files").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def lookup(self, path: PathLike, identity: FileIdentity) -> Optional[str]:
        """The recorded SHA-256 if ``path`` still has ``identity`` (and was not racy)."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, inode, device, sha256, recorded_ns FROM files"
                " WHERE path=?", (_key(path),),
            ).fetchone()
        if row is None:
            return None
        if FileIdentity(*row[:5]) != identity:
            return None
        if max(identity.mtime_ns, identity.ctime_ns) >= row[6] - self._racy:
            return None  # changed too close to when it was hashed: cannot be sure
        return str(row[5])

    def record(
        self, path: PathLike, identity: FileIdentity, sha256: str, *,
        started_ns: Optional[int] = None,
    ) -> None:
        """Remember that ``path`` with ``identity`` hashes to ``sha256``.

        ``identity`` must be the stat taken *before* reading, ``started_ns``
        (``time.time_ns()`` scale; default: now) the moment the read began:
        the racy check compares the file's timestamps with it.
        """
        sha256 = check_hex64(sha256, "sha256")
        moment = self._now_ns() if started_ns is None else started_ns
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
                (_key(path), identity.size, identity.mtime_ns, identity.ctime_ns, identity.inode,
                 identity.device, sha256.lower(), moment),
            )

    def forget(self, path: PathLike) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE path=?", (_key(path),))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM files").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
