"""TransferManager: many files through one pool; futures; a fatal error stops that file only;
and a seeded random fault schedule where every upload verifies or fails typed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from koodrive_fast import (
    FileChangedError,
    KooDriveError,
    ProgressEvent,
    RetryPolicy,
    TransferManager,
    UploadCancelledError,
    UploadOptions,
    ValidationError,
)
from koodrive_fast._client import Client
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, assert_uploaded, download, make_file

PS = 1024
FAST_RETRY = RetryPolicy(backoff_base=0.01, backoff_max=0.05, max_elapsed=30)


def _opts(tmp_path: Path, **kw: Any) -> UploadOptions:
    kw.setdefault("part_size", PS)
    kw.setdefault("rapid", False)
    kw.setdefault("checkpoint_dir", tmp_path / "cp")
    kw.setdefault("checkpoint_interval", 0)
    kw.setdefault("retry", FAST_RETRY)
    return UploadOptions(**kw)


def test_many_files_share_one_pool_and_all_verify(client: Client, tmp_path: Path) -> None:
    files = [make_file(tmp_path, size, name=f"f{i}.bin", seed=i)
             for i, size in enumerate([0, 1, PS, 7 * PS + 3, 20 * PS, 3 * PS - 1])]
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def progress_for(name: str) -> Any:
        def progress(event: ProgressEvent) -> None:
            if event.phase == "uploading":
                with lock:
                    seen[name] = seen.get(name, 0) + event.delta
        return progress

    with TransferManager(client, _opts(tmp_path), workers=4, max_files=3) as manager:
        assert manager.workers == 4
        futures = [manager.upload(p, container_id=CONTAINER, progress=progress_for(p.name)) for p in files]
        results = [f.result(timeout=120) for f in futures]
    for path, future, result in zip(files, futures, results):
        assert future.done() and not future.cancelled()
        assert_uploaded(client, result, path)
        assert future.progress.uploaded == path.stat().st_size == seen.get(path.name, 0)
    # only 4 sender threads ever ran for the 6 files
    assert not [t for t in threading.enumerate() if t.name.startswith("koodrive-put")]


def test_a_fatal_error_stops_that_file_only(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    good = [make_file(tmp_path, 5 * PS, name=f"g{i}.bin", seed=10 + i) for i in range(3)]
    bad = make_file(tmp_path, 30 * PS, name="bad.bin", seed=20)
    edited = threading.Event()

    def break_bad(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0 and not edited.is_set():
            edited.set()
            with open(bad, "r+b") as fh:
                fh.write(b"changed")

    srv.faults.latency(0.01)
    with TransferManager(client, _opts(tmp_path), workers=3, max_files=4) as manager:
        bad_future = manager.upload(bad, container_id=CONTAINER, progress=break_bad)
        good_futures = [manager.upload(p, container_id=CONTAINER) for p in good]
        with pytest.raises(FileChangedError):
            bad_future.result(timeout=120)
        for path, future in zip(good, good_futures):
            assert_uploaded(client, future.result(timeout=120), path)


def test_cancel_a_running_upload_keeps_its_checkpoint(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 40 * PS, seed=30)
    started = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0:
            started.set()

    srv.faults.latency(0.05)
    with TransferManager(client, _opts(tmp_path, concurrency=2), workers=2) as manager:
        future = manager.upload(path, container_id=CONTAINER, progress=progress)
        assert started.wait(60)
        assert future.cancel()
        with pytest.raises(UploadCancelledError):
            future.result(timeout=60)
        assert future.cancelled() and not future.cancel()
    assert list((tmp_path / "cp").glob("*.json"))
    srv.faults.clear()
    with TransferManager(client, _opts(tmp_path)) as manager:
        result = manager.upload(path, container_id=CONTAINER).result(timeout=120)
    assert result.resumed and result.bytes_hashed < path.stat().st_size  # contexts reused
    assert_uploaded(client, result, path)


def test_bad_input_raises_at_submit_and_memory_ceiling(client: Client, tmp_path: Path) -> None:
    with TransferManager(client, _opts(tmp_path), workers=8, max_files=4) as manager:
        with pytest.raises(ValidationError):
            manager.upload(tmp_path / "missing", container_id=CONTAINER)
        with pytest.raises(ValidationError):
            manager.upload(make_file(tmp_path, 10), container_id=None)
        opts = manager.options
        assert manager.memory_ceiling(100) == (
            8 * 2 * opts.read_size + 4 * 3 * opts.scan_read_size + 64 * 100
        )
    with pytest.raises(ValidationError):
        TransferManager(client, workers=0)
    with pytest.raises(ValidationError):
        manager.upload(make_file(tmp_path, 10, name="late"), container_id=CONTAINER)  # closed


# ---------------------------------------------------------------------------------- faults

_CHILD = r"""
import sys
from koodrive_fast import Limits, RetryPolicy, UploadOptions
from koodrive_fast._auth import BearerToken
from koodrive_fast._client import Client
base_url, token, user_id, path, cp_dir = sys.argv[1:6]
with Client(base_url, BearerToken(token, user_id), limits=Limits(min_part_size=64)) as client:
    client.upload(path, container_id=%r, options=UploadOptions(
        part_size=%d, concurrency=1, rapid=False, checkpoint_dir=cp_dir, checkpoint_interval=0))
""" % (CONTAINER, PS)


def _kill_mid_upload(srv: LocalServer, path: Path, cp_dir: Path) -> None:
    """Run an upload in a child process and SIGKILL it once a part is stored."""
    srv.faults.latency(0.2)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, srv.base_url, srv.token, srv.user_id, str(path), str(cp_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if any(cp_dir.glob("*.json")) and srv.stats.total_puts_accepted > 0:
                break
            time.sleep(0.02)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(30)
        srv.faults.latency(0.0)


@pytest.mark.slow
def test_seeded_random_fault_schedule_never_stores_a_wrong_file(tmp_path: Path) -> None:
    """24 uploads, each under a fault drawn from a seeded schedule: every one either
    verifies byte for byte by download or fails with a typed error; none hangs."""
    rng = random.Random(20261204)
    kinds = ["5xx", "429", "drop", "expire", "lost", "restart", "edit", "kill", "none"]
    schedule = [kinds[i % len(kinds)] for i in range(24)]
    rng.shuffle(schedule)
    outcomes: dict[str, int] = {"verified": 0, "typed-error": 0}
    with LocalServer(min_part_size=64, fsync=False) as srv:
        with srv.client() as client:
            for index, kind in enumerate(schedule):
                if kind in ("lost", "restart", "edit", "kill"):  # need parts still to send
                    size = rng.choice([3 * PS + 5, 9 * PS + 64, 20 * PS])
                else:
                    size = rng.choice([0, 1, PS - 1, PS, 3 * PS + 5, 9 * PS + 64])
                path = make_file(tmp_path, size, name=f"u{index}.bin", seed=index)
                # backoff kept short, but attempts never the limit: a server restart
                # must be ridden out by time (max_elapsed), as the default policy does
                opts = _opts(tmp_path, concurrency=rng.choice([1, 3, 8]), retry=RetryPolicy(
                    backoff_base=0.01, backoff_max=0.25, max_attempts=2000, max_elapsed=120))
                progress: Optional[Any] = None
                srv.faults.clear()
                if kind == "5xx":
                    srv.faults.fail_puts(rng.randint(1, 3), status=rng.choice([500, 502, 503]))
                elif kind == "429":
                    srv.faults.rate_limit(2, retry_after=0.01)
                elif kind == "drop":
                    srv.faults.drop_puts(2, after_bytes=10)
                elif kind == "expire":
                    srv.faults.expire_puts(2)
                elif kind == "lost":
                    expired = threading.Event()

                    def lose(event: ProgressEvent, done: threading.Event = expired) -> None:
                        if event.phase == "uploading" and event.delta > 0 and not done.is_set():
                            done.set()
                            srv.expire_uploads()

                    progress = lose
                elif kind == "restart":
                    restarted = threading.Event()

                    def restart(event: ProgressEvent, done: threading.Event = restarted) -> None:
                        if event.phase == "uploading" and event.delta > 0 and not done.is_set():
                            done.set()
                            srv.restart()

                    progress = restart
                elif kind == "edit":
                    edited = threading.Event()

                    def edit(event: ProgressEvent, done: threading.Event = edited, p: Path = path) -> None:
                        if event.phase == "uploading" and event.delta > 0 and not done.is_set() and p.stat().st_size:
                            done.set()
                            st = p.stat()
                            with open(p, "r+b") as fh:
                                fh.write(b"\xff")
                            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))

                    progress = edit
                elif kind == "kill":
                    _kill_mid_upload(srv, path, opts.checkpoint_dir)  # type: ignore[arg-type]
                expected = path.read_bytes()
                try:
                    result = client.upload(path, container_id=CONTAINER, options=opts, progress=progress)
                except KooDriveError as exc:
                    assert kind == "edit", f"{kind}: unexpected {type(exc).__name__}: {exc}"
                    outcomes["typed-error"] += 1
                    continue
                current = path.read_bytes()
                assert kind != "edit", "an in-place edit (mtime kept) went unnoticed"
                assert current == expected
                assert download(client, result.file_id) == current, f"upload {index} ({kind}) stored wrong bytes"
                outcomes["verified"] += 1
            srv.faults.clear()
    print("fault schedule outcomes:", outcomes, "server puts received:", srv.stats.total_puts_received)
    assert sum(outcomes.values()) == 24
    assert outcomes["typed-error"] == schedule.count("edit")
    assert outcomes["verified"] == 24 - schedule.count("edit")
