"""Shared helpers for the upload-engine tests (not a test module)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from koodrive_fast import RetryPolicy, UploadOptions
from koodrive_fast._upload import upload_file

CONTAINER = "space-1"


def make_file(directory: Path, size: int, name: str = "data.bin", seed: int = 0) -> Path:
    """A file of ``size`` pseudo-random bytes (deterministic per seed)."""
    path = directory / name
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    path.write_bytes(bytes(out[:size]))
    return path


def download(client: Any, file_id: str) -> bytes:
    """The file's bytes via ``Client.download`` (which checks them against the server's SHA-256)."""
    with tempfile.TemporaryDirectory(prefix="kd-verify-") as tmp:
        target = Path(tmp) / "download.bin"
        client.download(file_id, target, container_id=CONTAINER)
        return target.read_bytes()


def assert_uploaded(client: Any, result: Any, path: Path) -> None:
    """The server holds exactly the file's bytes, and the digests agree."""
    data = path.read_bytes()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert download(client, result.file_id) == data


def puts_for(srv: Any, file_id: str) -> dict[int, int]:
    """part number -> PUTs received by the server for ``file_id``."""
    return {n: c for (f, n), c in srv.stats.puts_received.items() if f == file_id}


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


_OPTION_FIELDS = {f.name for f in dataclasses.fields(UploadOptions)}
_RETRY_KEYS = {
    "max_attempts": "max_attempts",
    "max_retry_seconds": "max_elapsed",
    "backoff_base": "backoff_base",
    "backoff_max": "backoff_max",
}


def options(**kw: Any) -> UploadOptions:
    """UploadOptions, with the retry knobs given flat (as a RetryPolicy for the PUTs)."""
    retry = {_RETRY_KEYS[k]: kw.pop(k) for k in list(kw) if k in _RETRY_KEYS}
    if retry:
        retry.setdefault("max_elapsed", 600.0)
        kw["retry"] = RetryPolicy(**retry)
    return UploadOptions(**kw)


def upload(client: Any, path: Any, *, config: Any = None, **kw: Any) -> Any:
    """``upload_file`` with option fields given as keywords on top of ``config``."""
    changes = {k: kw.pop(k) for k in list(kw) if k in _OPTION_FIELDS}
    if "options" in kw:  # passed through as given (tests of its validation)
        return upload_file(client, path, **kw)
    opts = (config if config is not None else UploadOptions()).replace(**changes)
    return upload_file(client, path, options=opts, **kw)


__all__ = ["options", "upload", "CONTAINER", "make_file", "download", "assert_uploaded", "puts_for", "sparse_file", "os"]
