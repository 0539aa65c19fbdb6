"""Resumable-upload checkpoints: versioned JSON files written atomically.

One file per (endpoint, user, absolute path) in the checkpoint directory
(default ``$XDG_CACHE_HOME/koodrive-fast`` or ``~/.cache/koodrive-fast``).
It records the file's identity (size, mtime_ns, ctime_ns, inode, device), the part size and hash
algorithm, the server-side ids, every part-start context computed so far and
the parts already uploaded.  Writes go to a temporary file in the same
directory, are fsynced, then ``os.replace``d over the old one, so a crash
(even ``kill -9``) leaves either the old or the new checkpoint, never a torn
one.  A checkpoint that cannot be parsed, has another version, or describes
another state of the file is ignored with a logged warning (never an
exception, never the ``warnings`` module).  Checkpoints hold no credentials.

While an upload runs it holds an exclusive lock (``flock``) on the
checkpoint's ``.lock`` file, so a second upload of the same file, in this
process or another, fails with :class:`UploadInProgressError` instead of
sending every byte again beside the first.  :class:`CheckpointWriter` is the
upload's one owner of its checkpoint: it records contexts, stored parts and
the server task, and writes at most once per ``interval`` seconds.
"""

from __future__ import annotations

import dataclasses
import errno as errno_module
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ._exceptions import UploadInProgressError
from ._source import FileIdentity

try:  # POSIX; elsewhere uploads of one file are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointKey",
    "Checkpoint",
    "CheckpointStore",
    "CheckpointWriter",
    "StoredCheckpoint",
    "default_checkpoint_dir",
]

logger = logging.getLogger("koodrive_fast")

CHECKPOINT_VERSION = 2
_WORDS = {"sha256": 8, "sha1": 5}


def default_checkpoint_dir() -> Path:
    """``$XDG_CACHE_HOME/koodrive-fast``, else ``~/.cache/koodrive-fast``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "koodrive-fast"


@dataclasses.dataclass(frozen=True)
class CheckpointKey:
    """What a checkpoint is valid for.  All fields must match to resume."""

    endpoint: str
    user_id: str
    path: str  # absolute
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    part_size: int
    algorithm: str = "sha256"

    @classmethod
    def for_file(
        cls, endpoint: str, user_id: str, path: str, identity: FileIdentity, part_size: int,
        algorithm: str = "sha256",
    ) -> CheckpointKey:
        return cls(
            endpoint=endpoint, user_id=user_id, path=path, size=identity.size,
            mtime_ns=identity.mtime_ns, ctime_ns=identity.ctime_ns, inode=identity.inode,
            device=identity.device, part_size=part_size, algorithm=algorithm,
        )

    def file_stem(self) -> str:
        """File name stem: stable for a given (endpoint, user, path)."""
        ident = json.dumps([self.endpoint, self.user_id, self.path], separators=(",", ":"))
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    @property
    def part_count(self) -> int:
        return max(1, -(-self.size // self.part_size))


@dataclasses.dataclass
class Checkpoint:
    """Mutable resume state of one upload (see the module docstring).

    ``contexts`` maps part number (>= 2) to the chaining words at that part's
    start; they are always contiguous from part 2.  ``done`` holds the part
    numbers the server accepted.  ``digest`` is the whole-file hex digest once
    hashing finished.
    """

    key: CheckpointKey
    file_id: Optional[str] = None
    upload_id: Optional[str] = None
    file_name: Optional[str] = None
    contexts: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    done: set[int] = dataclasses.field(default_factory=set)
    digest: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "key": dataclasses.asdict(self.key),
            "fileId": self.file_id,
            "uploadId": self.upload_id,
            "fileName": self.file_name,
            "contexts": {str(n): list(w) for n, w in sorted(self.contexts.items())},
            "done": sorted(self.done),
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, data: Any, key: CheckpointKey) -> Checkpoint:
        """Parse and validate; raises ``ValueError`` describing the first problem."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {CHECKPOINT_VERSION}")
        if data.get("key") != dataclasses.asdict(key):
            raise ValueError("the file, part size or server differs from the checkpoint's")
        n_parts = key.part_count
        words = _WORDS[key.algorithm]
        contexts: dict[int, tuple[int, ...]] = {}
        raw_contexts = data.get("contexts")
        if not isinstance(raw_contexts, dict):
            raise ValueError("contexts is not an object")
        for name, value in raw_contexts.items():
            number = int(name)
            if not 2 <= number <= n_parts:
                raise ValueError(f"context for part {number} outside 2..{n_parts}")
            if (
                not isinstance(value, list)
                or len(value) != words
                or not all(type(w) is int and 0 <= w < 2**32 for w in value)
            ):
                raise ValueError(f"context for part {number} is not {words} 32-bit words")
            contexts[number] = tuple(value)
        if sorted(contexts) != list(range(2, 2 + len(contexts))):
            raise ValueError("contexts are not contiguous from part 2")
        done = data.get("done")
        if not isinstance(done, list) or not all(type(n) is int and 1 <= n <= n_parts for n in done):
            raise ValueError(f"done is not a list of part numbers in 1..{n_parts}")
        strings = {}
        for field in ("fileId", "uploadId", "fileName", "digest"):
            value = data.get(field)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{field} is not a string")
            strings[field] = value
        return cls(
            key=key,
            file_id=strings["fileId"],
            upload_id=strings["uploadId"],
            file_name=strings["fileName"],
            contexts=contexts,
            done=set(done),
            digest=strings["digest"],
        )


@dataclasses.dataclass(frozen=True)
class StoredCheckpoint:
    """One checkpoint file as :meth:`CheckpointStore.entries` finds it.

    ``key`` and the counts are ``None`` when the file cannot be parsed (``problem``
    says why); ``modified`` is the file's mtime (epoch seconds); ``in_use`` is True
    while an upload holds its lock.
    """

    path: Path
    modified: float
    bytes_on_disk: int
    in_use: bool
    key: Optional[CheckpointKey] = None
    parts_done: Optional[int] = None
    file_name: Optional[str] = None
    problem: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        key = self.key
        return {
            "checkpoint": str(self.path), "modified": self.modified, "inUse": self.in_use,
            "file": key.path if key else None, "size": key.size if key else None,
            "partSize": key.part_size if key else None,
            "parts": key.part_count if key else None, "partsDone": self.parts_done,
            "fileName": self.file_name, "endpoint": key.endpoint if key else None,
            "userId": key.user_id if key else None, "problem": self.problem,
        }


class CheckpointStore:
    """Loads, saves, discards, lists and removes checkpoints in one directory."""

    def __init__(self, directory: Union[str, os.PathLike[str], None] = None) -> None:
        self.directory = Path(directory) if directory is not None else default_checkpoint_dir()

    def path_for(self, key: CheckpointKey) -> Path:
        return self.directory / f"{key.file_stem()}.json"

    def prepare(self) -> None:
        """Create the directory (0700) and prove it writable; raises ``OSError``."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=self.directory)
        os.close(fd)
        os.unlink(probe)

    def lock(self, key: CheckpointKey) -> int:
        """Take the exclusive lock for ``key``'s file; returns the fd to pass to :meth:`unlock`.

        Raises :class:`UploadInProgressError` when another upload holds it.
        """
        path = self.directory / f"{key.file_stem()}.lock"
        for _ in range(10):  # bounded: each retry means another upload just finished
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            if fcntl is None:  # pragma: no cover
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno_module.EAGAIN, errno_module.EACCES, errno_module.EWOULDBLOCK):
                    raise UploadInProgressError(
                        f"{key.path} is already being uploaded (by this or another process); "
                        "wait for that upload to finish",
                        path=key.path,
                    ) from None
                raise
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its last holder removed meanwhile
                return fd
            os.close(fd)
        raise UploadInProgressError(f"{key.path}: could not take its upload lock", path=key.path)

    def unlock(self, key: CheckpointKey, fd: int) -> None:
        """Release the lock and remove its file (while still holding it, so no upload
        that saw this file can take a lock on it afterwards: it gets in-progress)."""
        try:
            os.unlink(self.directory / f"{key.file_stem()}.lock")
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the flock

    def load(self, key: CheckpointKey) -> Checkpoint | None:
        """The checkpoint for ``key``, or None (missing, corrupt or stale: logged)."""
        path = self.path_for(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None
        try:
            return Checkpoint.from_json(json.loads(text), key)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("ignoring stale or corrupt checkpoint %s: %s", path, exc)
            return None

    def save(self, checkpoint: Checkpoint) -> None:
        """Write atomically: temporary file, fsync, ``os.replace``, fsync dir."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path_for(checkpoint.key)
        payload = json.dumps(checkpoint.to_json(), separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def discard(self, key: CheckpointKey) -> None:
        """Remove the checkpoint for ``key`` if there is one."""
        try:
            self.path_for(key).unlink()
        except FileNotFoundError:
            pass

    def _held(self, stem: str) -> bool:
        """True when an upload holds ``stem``'s lock right now."""
        lock = self.directory / f"{stem}.lock"
        if fcntl is None or not lock.exists():  # pragma: no cover - non-POSIX
            return False
        try:
            fd = os.open(lock, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # also releases the probe's own lock
        return False

    def entries(self) -> list[StoredCheckpoint]:
        """Every checkpoint file in the directory, oldest first (none if it does not exist)."""
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return []
        found = []
        for path in paths:
            try:
                info = path.stat()
                raw = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue  # removed meanwhile (an upload finished)
            except (OSError, ValueError) as exc:
                found.append(StoredCheckpoint(path, _mtime(path), _bytes(path),
                                              self._held(path.stem), problem=str(exc)))
                continue
            entry = StoredCheckpoint(path, info.st_mtime, info.st_size, self._held(path.stem))
            try:
                key = CheckpointKey(**raw["key"])
                checkpoint = Checkpoint.from_json(raw, key)
                entry = dataclasses.replace(entry, key=key, parts_done=len(checkpoint.done),
                                            file_name=checkpoint.file_name)
            except (ValueError, TypeError, KeyError) as exc:
                entry = dataclasses.replace(entry, problem=f"unreadable checkpoint: {exc}")
            found.append(entry)
        found.sort(key=lambda e: e.modified)
        return found

    def remove(self, entry: StoredCheckpoint) -> bool:
        """Delete ``entry``'s checkpoint and lock file, holding the lock meanwhile; an upload
        that holds it now keeps its checkpoint (returns False)."""
        stem = entry.path.stem
        lock_path = self.directory / f"{stem}.lock"
        fd: Optional[int] = None
        if fcntl is not None and lock_path.exists():
            try:
                fd = os.open(lock_path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if fd is not None:
                    os.close(fd)
                    return False  # held by a running upload
        try:
            for path in (entry.path, lock_path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        finally:
            if fd is not None:
                os.close(fd)
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class CheckpointWriter:
    """One upload's checkpoint: the only code that changes or writes it.

    ``store`` is ``None`` when the upload runs without resume; every method
    then only keeps the in-memory state.  Writes are throttled to one per
    ``interval`` seconds of ``monotonic`` unless forced.
    """

    def __init__(
        self,
        store: Optional[CheckpointStore],
        checkpoint: Checkpoint,
        *,
        interval: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.store = store
        self.checkpoint = checkpoint
        self._interval = interval
        self._monotonic = monotonic
        self._dirty = False
        self._saved_at: Optional[float] = None

    def record_context(self, part_number: int, words: tuple[int, ...]) -> None:
        self.checkpoint.contexts[part_number] = words
        self._dirty = True

    def record_digest(self, digest: str) -> None:
        if self.checkpoint.digest != digest:
            self.checkpoint.digest = digest
            self._dirty = True

    def record_done(self, part_number: int) -> None:
        self.checkpoint.done.add(part_number)
        self._dirty = True

    def record_task(self, file_id: Optional[str], upload_id: Optional[str]) -> None:
        """A new server task (or none): parts stored for the old one no longer count."""
        cp = self.checkpoint
        if (cp.file_id, cp.upload_id) != (file_id, upload_id):
            cp.file_id, cp.upload_id = file_id, upload_id
            cp.done.clear()
            self._dirty = True

    def flush(self, *, force: bool = False) -> None:
        if self.store is None or not self._dirty:
            return
        now = self._monotonic()
        if not force and self._saved_at is not None and now - self._saved_at < self._interval:
            return
        self.store.save(self.checkpoint)
        self._dirty = False
        self._saved_at = now

    def discard(self) -> None:
        self._dirty = False
        if self.store is not None:
            self.store.discard(self.checkpoint.key)
