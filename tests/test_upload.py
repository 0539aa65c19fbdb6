"""Upload engine against the local server on loopback: sizes, concurrency, flash
upload, progress, validation, changed files, integrity and task errors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from koodrive_fast import (
    AuthenticationError,
    FileChangedError,
    IntegrityError,
    ProgressEvent,
    UploadOptions,
    ValidationError,
)
from koodrive_fast._auth import BearerToken
from koodrive_fast._checkpoint import Checkpoint, CheckpointKey, CheckpointStore
from koodrive_fast._client import AsyncClient, Client
from _upload_helpers import options, upload as upload_file
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, assert_uploaded, make_file, puts_for

PS = 1024  # part size used throughout: 16 blocks of 64 bytes


@pytest.fixture()
def config(tmp_path: Path) -> UploadOptions:
    return options(
        checkpoint_dir=tmp_path / "checkpoints", backoff_base=0.01, backoff_max=0.5,
        checkpoint_interval=0,
    )


def _upload(client: Client, path: Path, config: UploadOptions, **kw: Any) -> Any:
    kw.setdefault("part_size", PS)
    kw.setdefault("rapid", False)
    return upload_file(client, path, container_id=CONTAINER, config=config, **kw)


@pytest.mark.parametrize(
    "size", [0, 1, 63, 64, 65, PS - 1, PS, PS + 1, 5 * PS + 100], ids=lambda s: f"size{s}"
)
def test_sizes_round_trip(client: Client, srv: LocalServer, config: UploadOptions,
                          tmp_path: Path, size: int) -> None:
    path = make_file(tmp_path, size, seed=size)
    result = _upload(client, path, config, concurrency=3)
    assert_uploaded(client, result, path)
    parts = max(1, -(-size // PS))
    assert result.parts == parts
    assert result.parts_sent == parts
    assert result.bytes_sent == size
    assert result.bytes_hashed == size
    assert not result.rapid_upload
    assert sorted(puts_for(srv, result.file_id)) == list(range(1, parts + 1))
    # a finished upload leaves no checkpoint behind
    assert list((tmp_path / "checkpoints").glob("*.json")) == []


@pytest.mark.parametrize("concurrency", [1, 8])
def test_concurrency_and_out_of_order_completion(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path, concurrency: int
) -> None:
    path = make_file(tmp_path, 12 * PS + 5, seed=concurrency)
    finished: list[int] = []
    sums: dict[int, int] = {}
    lock = threading.Lock()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.part_number is not None:
            with lock:
                sums[event.part_number] = sums.get(event.part_number, 0) + event.delta
                size = PS if event.part_number < 13 else 5
                if sums[event.part_number] == size:
                    finished.append(event.part_number)

    srv.faults.latency(0.05)
    result = _upload(client, path, config, concurrency=concurrency, progress=progress)
    assert_uploaded(client, result, path)
    assert sorted(finished) == list(range(1, 14))
    if concurrency == 1:
        assert finished == sorted(finished)


def test_upload_urls_are_fetched_in_batches(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    """With every context known up front (rapid=True hashes first), URLs come in
    batches of at least half the URL window, not one request per finished part."""
    parts, window = 41, 8
    path = make_file(tmp_path, parts * PS, seed=41)
    before = srv.stats.api_calls.get("uploadUrl", 0)
    result = _upload(client, path, config, rapid=True, concurrency=2, url_window=window)
    assert_uploaded(client, result, path)
    assert result.url_refreshes == 0
    calls = srv.stats.api_calls.get("uploadUrl", 0) - before
    # create brings URLs for the first `window` parts; the rest come >= window // 2 at a time
    assert 1 <= calls <= -(-(parts - window) // (window // 2))


def test_progress_deltas_sum_to_size_and_phases_in_order(
    client: Client, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 7 * PS + 3)
    events: list[ProgressEvent] = []
    result = _upload(client, path, config, progress=events.append)
    assert sum(e.delta for e in events if e.phase == "uploading") == path.stat().st_size
    assert sum(e.delta for e in events if e.phase == "hashing") == path.stat().st_size
    phases = [e.phase for e in events]
    assert phases[0] == "hashing"
    assert phases.index("uploading") < phases.index("completing") < phases.index("done")
    assert phases[-1] == "done" and phases.count("done") == 1
    assert all(e.total == result.size for e in events)


def test_progress_callback_that_raises_does_not_break_upload(
    client: Client, config: UploadOptions, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_file(tmp_path, 3 * PS)
    calls = []

    def broken(event: ProgressEvent) -> None:
        calls.append(event)
        raise RuntimeError("display broke")

    with caplog.at_level(logging.WARNING, logger="koodrive_fast"):
        result = _upload(client, path, config, progress=broken)
    assert_uploaded(client, result, path)
    assert len(calls) == 1
    assert "progress callback raised" in caplog.text


def test_flash_upload_hit_sends_no_part(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 4 * PS + 7, seed=99)
    first = _upload(client, path, config)
    assert_uploaded(client, first, path)
    puts_before = srv.stats.total_puts_received
    copy = tmp_path / "copy.bin"
    copy.write_bytes(path.read_bytes())
    events: list[ProgressEvent] = []
    hit = _upload(client, copy, config, rapid=True, progress=events.append)
    assert hit.rapid_upload
    assert hit.bytes_sent == 0 and hit.parts_sent == 0
    assert hit.sha256 == first.sha256
    assert srv.stats.total_puts_received == puts_before
    assert events[-1].phase == "done" and events[-1].rapid_upload
    assert_uploaded(client, hit, copy)


def test_flash_upload_miss_then_uploads(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 3 * PS, seed=1234)
    result = _upload(client, path, config, rapid=True)
    assert not result.rapid_upload
    assert_uploaded(client, result, path)
    assert result.parts_sent == 3


def test_rapid_auto_small_file_hits(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, PS + 10, seed=4321)
    _upload(client, path, config)
    again = _upload(client, path, config, rapid="auto", file_name="again.bin")
    assert again.rapid_upload and again.bytes_sent == 0


def test_rapid_false_never_waits_for_whole_hash(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    """With rapid=False the first part is PUT before hashing ends."""
    path = make_file(tmp_path, 6 * PS, seed=5)
    # a window of 1 part keeps the scan just ahead of the uploads
    cfg = options(checkpoint_dir=config.checkpoint_dir, hash_window=1, scan_read_size=4096)
    order: list[tuple[str, int]] = []
    hashed = 0

    def progress(event: ProgressEvent) -> None:
        nonlocal hashed
        if event.phase == "hashing":
            hashed += event.delta
        elif event.phase == "uploading" and event.delta > 0 and not order:
            order.append(("first-put", hashed))

    result = _upload(client, path, cfg, progress=progress, concurrency=1)
    assert_uploaded(client, result, path)
    assert order and order[0][1] <= PS  # hashing paused one part ahead of the uploads


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"part_size": 1000}, "part_size"),
        ({"part_size": 0}, "part_size"),
        ({"part_size": 1 << 20, "concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"rapid": "sometimes"}, "rapid"),
        ({"container_id": None}, "container_id"),
        ({"options": {"read_size": 1}}, "options"),
        ({"progress": 42}, "progress"),
    ],
)
def test_bad_arguments_rejected_before_any_request(
    client: Client, srv: LocalServer, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    path = make_file(tmp_path, 3 * PS)
    calls = dict(srv.stats.api_calls)
    args: dict[str, Any] = {"container_id": CONTAINER, "part_size": PS}
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        upload_file(client, path, **args)
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)
    assert srv.stats.api_calls == calls
    assert not (tmp_path / "checkpoints").exists()


def test_bad_path_rejected(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    calls = dict(srv.stats.api_calls)
    with pytest.raises(ValidationError, match="no such file"):
        upload_file(client, tmp_path / "missing.bin", container_id=CONTAINER)
    with pytest.raises(ValidationError, match="not a regular file"):
        upload_file(client, tmp_path, container_id=CONTAINER)
    assert srv.stats.api_calls == calls


def test_too_many_parts_rejected(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        fh.truncate(10_001 * 64)
    with pytest.raises(ValidationError, match="parts"):
        upload_file(client, path, container_id=CONTAINER, part_size=64)


@pytest.mark.parametrize(
    "field, value",
    [("read_size", 0), ("max_attempts", -1), ("backoff_base", -1.0), ("timeout", 0),
     ("url_window", 0), ("checkpoint_interval", "1"), ("rapid", "yes"), ("concurrency", 0),
     ("auto_rename", 1)],
)
def test_upload_config_validated_at_construction(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        options(**{field: value})


def test_upload_config_memory_ceiling_formula() -> None:
    cfg = options(read_size=1 << 20, scan_read_size=4 << 20, concurrency=8)
    assert cfg.memory_ceiling(parts=100) == 2 * 8 * (1 << 20) + 3 * (4 << 20) + 64 * 100
    with pytest.raises(dataclasses_FrozenError()):
        cfg.read_size = 5  # type: ignore[misc]


def dataclasses_FrozenError() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_wrong_token_is_fatal_authentication_error(
    srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 2 * PS)
    with Client(srv.base_url, BearerToken("not-the-token", srv.user_id), limits=srv.limits) as bad:
        with pytest.raises(AuthenticationError):
            _upload(bad, path, config)


def test_file_changed_mid_upload_is_caught_before_complete(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 10 * PS)
    touched = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0 and not touched.is_set():
            touched.set()
            with open(path, "r+b") as fh:  # same size, new content and mtime
                fh.write(b"changed!")
            os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))

    srv.faults.latency(0.02)
    completes = srv.stats.api_calls.get("complete", 0)
    with pytest.raises(FileChangedError, match="changed"):
        _upload(client, path, config, progress=progress, concurrency=2)
    assert srv.stats.api_calls.get("complete", 0) == completes


def test_file_shrunk_mid_upload_is_caught(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 10 * PS)
    done = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0 and not done.is_set():
            done.set()
            os.truncate(path, 3 * PS)

    srv.faults.latency(0.02)
    with pytest.raises(FileChangedError):
        _upload(client, path, config, progress=progress, concurrency=1)


def _checkpoint_key(client: Client, path: Path, part_size: int = PS) -> CheckpointKey:
    from koodrive_fast import FileIdentity

    return CheckpointKey.for_file(
        client.endpoint, client.credentials.user_id, str(path.resolve()),
        FileIdentity.of(path.stat()), part_size,
    )


def _contexts(path: Path, part_size: int = PS) -> tuple[dict[int, tuple[int, ...]], str]:
    from koodrive_fast import part_contexts

    fc = part_contexts(str(path), part_size)
    ctx = {p.part_number: tuple(p.hash_ctx) for p in fc.parts if p.hash_ctx is not None}
    return ctx, fc.digest


def test_integrity_error_at_complete(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    """A checkpoint with a wrong (well-formed) digest: complete answers 13000402."""
    path = make_file(tmp_path, 4 * PS, seed=77)
    contexts, digest = _contexts(path)
    store = CheckpointStore(config.checkpoint_dir)
    key = _checkpoint_key(client, path)
    store.save(Checkpoint(key=key, file_name=path.name, contexts=contexts, digest="0" * 64))
    with pytest.raises(IntegrityError):
        _upload(client, path, config)
    assert store.load(key) is None  # a checkpoint that led to 13000402 is dropped


def test_checkpoint_contexts_skip_hashing(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    """Upload-only: every context and the digest known -> nothing is hashed."""
    path = make_file(tmp_path, 6 * PS, seed=78)
    contexts, digest = _contexts(path)
    store = CheckpointStore(config.checkpoint_dir)
    store.save(Checkpoint(key=_checkpoint_key(client, path), file_name=path.name,
                          contexts=contexts, digest=digest))
    result = _upload(client, path, config)
    assert result.resumed and result.bytes_hashed == 0
    assert_uploaded(client, result, path)


def test_unknown_task_in_checkpoint_starts_new_task(
    client: Client, srv: LocalServer, config: UploadOptions, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 5 * PS, seed=79)
    contexts, _ = _contexts(path)
    partial = {n: w for n, w in contexts.items() if n <= 3}
    store = CheckpointStore(config.checkpoint_dir)
    store.save(Checkpoint(key=_checkpoint_key(client, path), file_id="F" + "x" * 32,
                          upload_id="0" * 32, file_name=path.name, contexts=partial,
                          done={1, 2}))
    result = _upload(client, path, config)
    assert result.file_id != "F" + "x" * 32
    assert result.bytes_hashed == 5 * PS - 2 * PS  # hashing resumed at part 3
    assert result.parts_sent == 5  # the server's view (no such task) wins
    assert_uploaded(client, result, path)


def test_corrupt_checkpoint_is_ignored_with_warning(
    client: Client, config: UploadOptions, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_file(tmp_path, 3 * PS, seed=80)
    store = CheckpointStore(config.checkpoint_dir)
    target = store.path_for(_checkpoint_key(client, path))
    target.parent.mkdir(parents=True)
    target.write_text('{"version": 1, "key": {tru')
    with caplog.at_level(logging.WARNING, logger="koodrive_fast"):
        result = _upload(client, path, config)
    assert "ignoring stale or corrupt checkpoint" in caplog.text
    assert not result.resumed
    assert_uploaded(client, result, path)


def test_async_client_upload(srv: LocalServer, config: UploadOptions, tmp_path: Path) -> None:
    import asyncio

    path = make_file(tmp_path, 4 * PS + 1, seed=81)

    async def main() -> Any:
        async with AsyncClient(srv.base_url, BearerToken(srv.token, srv.user_id),
                               limits=srv.limits) as aclient:
            return await aclient.upload(path, container_id=CONTAINER,
                                        options=config.replace(part_size=PS, rapid=False))

    result = asyncio.run(main())
    with srv.client() as c:
        assert_uploaded(c, result, path)


def test_async_validation_error_raised_in_caller(srv: LocalServer, tmp_path: Path) -> None:
    import asyncio

    async def main() -> Any:
        async with AsyncClient(srv.base_url, BearerToken(srv.token, srv.user_id),
                               limits=srv.limits) as aclient:
            return await aclient.upload(tmp_path / "nope", container_id=CONTAINER)

    with pytest.raises(ValidationError):
        asyncio.run(main())


def test_client_upload_method_delegates(client: Client, config: UploadOptions, tmp_path: Path) -> None:
    path = make_file(tmp_path, 2 * PS + 9, seed=82)
    result = client.upload(path, container_id=CONTAINER, options=config.replace(part_size=PS, rapid=False))
    assert_uploaded(client, result, path)
    assert json.dumps(result.sha256)  # plain str
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
