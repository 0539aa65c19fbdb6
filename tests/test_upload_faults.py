"""Fault injection: every kind still ends with the right bytes on the server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from koodrive_fast import PartUploadError, ProgressEvent, UploadOptions
from koodrive_fast._checkpoint import CheckpointStore
from koodrive_fast._client import Client
from _upload_helpers import options, upload as upload_file
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, assert_uploaded, make_file, puts_for

PS = 1024


def _config(tmp_path: Path, **kw: Any) -> UploadOptions:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.5)
    kw.setdefault("checkpoint_interval", 0)
    return options(checkpoint_dir=tmp_path / "cp", **kw)


def _upload(client: Client, path: Path, config: UploadOptions, **kw: Any) -> Any:
    kw.setdefault("part_size", PS)
    kw.setdefault("rapid", False)
    kw.setdefault("concurrency", 4)
    return upload_file(client, path, container_id=CONTAINER, config=config, **kw)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(client: Client, srv: LocalServer, tmp_path: Path,
                                   status: int) -> None:
    path = make_file(tmp_path, 6 * PS + 11, seed=status)
    srv.faults.fail_puts(3, status=status)
    result = _upload(client, path, _config(tmp_path))
    assert_uploaded(client, result, path)
    assert result.retries == 3
    assert sum(puts_for(srv, result.file_id).values()) == 7 + 3


def test_429_retry_after_is_honoured(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 3 * PS, seed=429)
    srv.faults.rate_limit(1, retry_after=0.4, target="puts")
    started = time.monotonic()
    result = _upload(client, path, _config(tmp_path, backoff_base=0.001), concurrency=1)
    assert time.monotonic() - started >= 0.4
    assert result.retries == 1
    assert_uploaded(client, result, path)


def test_dropped_connections_mid_body(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 5 * PS, seed=3)
    srv.faults.drop_puts(2, after_bytes=300)
    events: list[ProgressEvent] = []
    lock = threading.Lock()

    def progress(event: ProgressEvent) -> None:
        with lock:
            events.append(event)

    cfg = _config(tmp_path, read_size=256)  # several chunks per part, so bytes were sent
    result = _upload(client, path, cfg, progress=progress)
    assert_uploaded(client, result, path)
    assert result.retries >= 2
    uploading = [e.delta for e in events if e.phase == "uploading"]
    assert any(d < 0 for d in uploading), "a retried part must rewind its progress"
    assert sum(uploading) == path.stat().st_size
    assert result.bytes_sent > path.stat().st_size


def test_api_errors_are_retried_by_the_client(client: Client, srv: LocalServer,
                                              tmp_path: Path) -> None:
    """uploadUrl/complete are idempotent: the client retries their 5xx answers
    (create is not, and is not retried)."""
    path = make_file(tmp_path, 4 * PS, seed=4)
    armed = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and not armed.is_set():  # right after create
            armed.set()
            srv.faults.fail_api(2)

    calls = dict(srv.stats.api_calls)
    result = _upload(client, path, _config(tmp_path), progress=progress, concurrency=1)
    assert_uploaded(client, result, path)
    after = srv.stats.api_calls
    made = sum(after.values()) - sum(calls.values())
    assert made >= 2 + 3  # create + uploadUrl + complete + 2 failed (+ download)


def test_each_expired_403_fetches_a_fresh_url(client: Client, srv: LocalServer,
                                              tmp_path: Path) -> None:
    """A PUT refused as expired is retried on a fresh URL for that part, same context."""
    path = make_file(tmp_path, 5 * PS, seed=5)
    srv.faults.expire_puts(3)
    cfg = _config(tmp_path, url_refresh_margin=0)
    result = _upload(client, path, cfg, concurrency=2)
    assert_uploaded(client, result, path)
    assert result.url_refreshes == 3
    assert result.retries == 0  # a refresh is not a backoff retry
    assert sum(puts_for(srv, result.file_id).values()) == 5 + 3


def test_urls_that_really_expire_in_the_queue_are_refreshed(client: Client, srv: LocalServer,
                                                            tmp_path: Path) -> None:
    """URLs queued behind a stalled worker really expire (TTL 3 s, a 4.5 s stall);
    the server refuses them and each part is sent again on a fresh URL."""
    path = make_file(tmp_path, 5 * PS, seed=55)
    srv.set_url_ttl(3)
    stalled = threading.Event()

    def progress(event: ProgressEvent) -> None:
        # runs on the worker thread: stalling here holds the only worker
        if event.phase == "uploading" and event.delta > 0 and not stalled.is_set():
            stalled.set()
            time.sleep(4.5)

    # URLs for parts 1-4 come with create; after the stall they are all past expiry,
    # and a refreshed URL has >= 2 s left (X-Amz-Date is whole seconds)
    cfg = _config(tmp_path, url_refresh_margin=0, url_window=4, hash_window=5)
    result = _upload(client, path, cfg, concurrency=1, progress=progress)
    assert stalled.is_set()
    srv.set_url_ttl(3600)  # the download URLs that verify the file must outlive a slow VM
    assert_uploaded(client, result, path)
    assert result.url_refreshes >= 1
    assert sum(puts_for(srv, result.file_id).values()) == 5 + result.url_refreshes


def test_urls_near_expiry_are_refreshed_before_use(client: Client, srv: LocalServer,
                                                   tmp_path: Path) -> None:
    """URLs that aged in the queue are refreshed *before* use, so no PUT is refused.

    TTL 6 s gives a margin of min(300, 6 / 2) = 3 s.  The worker stalls 3.5 s on
    part 1, so parts 2-4's URLs (issued with create) have < 2.5 s left and must be
    refreshed; a refreshed URL has >= 5 s left, far more than one PUT needs."""
    path = make_file(tmp_path, 5 * PS, seed=6)
    srv.set_url_ttl(6)
    stalled = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0 and not stalled.is_set():
            stalled.set()
            time.sleep(3.5)

    cfg = _config(tmp_path, url_window=4, hash_window=5)
    result = _upload(client, path, cfg, concurrency=1, progress=progress)
    assert stalled.is_set()
    srv.set_url_ttl(3600)  # the download URLs that verify the file must outlive a slow VM
    assert_uploaded(client, result, path)
    assert result.url_refreshes >= 3  # parts 2, 3 and 4
    assert sum(puts_for(srv, result.file_id).values()) == 5  # no PUT was refused


def test_server_restart_mid_upload(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 12 * PS, seed=7)
    srv.faults.latency(0.05)
    restarted = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if (event.phase == "uploading" and event.part_number == 3 and event.delta > 0
                and not restarted.is_set()):
            restarted.set()
            threading.Thread(target=srv.restart, daemon=True).start()

    result = _upload(client, path, _config(tmp_path), progress=progress, concurrency=2)
    assert restarted.is_set()
    assert_uploaded(client, result, path)


def test_part_failure_keeps_checkpoint_and_resume_skips_done_parts(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 8 * PS, seed=8)
    cfg = _config(tmp_path, max_attempts=2)
    armed = threading.Event()

    def failing_progress(event: ProgressEvent) -> None:
        # once part 3 is being sent, every further PUT fails with 500
        if (event.phase == "uploading" and event.part_number == 3
                and event.delta > 0 and not armed.is_set()):
            armed.set()
            srv.faults.fail_puts(1000, status=500)

    srv.faults.latency(0.02)
    with pytest.raises(PartUploadError) as info:
        _upload(client, path, cfg, progress=failing_progress, concurrency=1)
    assert info.value.attempts == 2
    srv.faults.clear()
    store = CheckpointStore(cfg.checkpoint_dir)
    saved = list(Path(cfg.checkpoint_dir).glob("*.json"))  # type: ignore[arg-type]
    assert len(saved) == 1
    import json

    data = json.loads(saved[0].read_text())
    done_before = set(data["done"])
    assert {1, 2} <= done_before and 8 not in done_before
    before = puts_for(srv, data["fileId"])
    result = _upload(client, path, cfg, concurrency=1)
    assert result.resumed and result.file_id == data["fileId"]
    after = puts_for(srv, result.file_id)
    resent = {n for n in range(1, 9) if after.get(n, 0) > before.get(n, 0)}
    assert resent == set(range(1, 9)) - done_before
    assert_uploaded(client, result, path)
    assert store.load is not None


def test_task_lost_mid_upload_starts_a_new_task(client: Client, srv: LocalServer,
                                                tmp_path: Path) -> None:
    """The server forgets the task mid-upload: a new task is created, every
    context is reused (nothing re-hashed) and the upload completes."""
    path = make_file(tmp_path, 5 * PS, seed=9)
    forgotten = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if (event.phase == "uploading" and event.part_number == 3 and event.delta > 0
                and not forgotten.is_set()):
            forgotten.set()
            assert srv.expire_uploads() == 1

    creates = srv.stats.api_calls.get("create", 0)
    result = _upload(client, path, _config(tmp_path), concurrency=1, progress=progress)
    assert forgotten.is_set()
    assert_uploaded(client, result, path)
    assert srv.stats.api_calls["create"] - creates == 2
    assert result.task_restarts == 1
    assert result.bytes_hashed == 5 * PS


def test_task_lost_before_complete_starts_a_new_task(client: Client, srv: LocalServer,
                                                     tmp_path: Path) -> None:
    """The task is lost between the last PUT and complete (13000401 at complete):
    a new task is created, every part is sent again with its kept context, and
    the upload completes without re-hashing."""
    path = make_file(tmp_path, 4 * PS + 9, seed=10)
    forgotten = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "completing" and not forgotten.is_set():
            forgotten.set()
            assert srv.expire_uploads() == 1

    calls = srv.stats.api_calls
    accepted = srv.stats.total_puts_accepted
    result = _upload(client, path, _config(tmp_path), concurrency=2, progress=progress)
    assert forgotten.is_set()
    assert_uploaded(client, result, path)
    after = srv.stats.api_calls
    assert after["create"] - calls.get("create", 0) == 2
    assert after["complete"] - calls.get("complete", 0) == 2
    assert result.task_restarts == 1
    assert result.bytes_hashed == path.stat().st_size
    assert srv.stats.total_puts_accepted - accepted == 2 * 5


def test_task_lost_at_every_complete_gives_up(client: Client, srv: LocalServer,
                                              tmp_path: Path) -> None:
    """Bounded: after max_task_restarts new tasks the loss is raised, typed."""
    from koodrive_fast import UploadTaskMissingError

    path = make_file(tmp_path, 2 * PS, seed=11)

    def progress(event: ProgressEvent) -> None:
        if event.phase == "completing":
            srv.expire_uploads()

    calls = srv.stats.api_calls
    with pytest.raises(UploadTaskMissingError):
        _upload(client, path, _config(tmp_path, max_task_restarts=1), progress=progress)
    after = srv.stats.api_calls
    assert after["create"] - calls.get("create", 0) == 2  # one new task, then it gives up
    assert after["complete"] - calls.get("complete", 0) == 2
