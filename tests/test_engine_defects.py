"""Regression tests for the defects the engine rebuild fixed (issue: "Upload engine, rebuilt").

Each test names the defect it guards; each fails on the engine before the rebuild.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from koodrive_fast import (
    FileChangedError,
    FileIdentity,
    KooDriveError,
    LocalFileError,
    ProgressEvent,
    RetryPolicy,
    UploadInProgressError,
    UploadOptions,
    ValidationError,
)
from koodrive_fast._auth import BearerToken
from koodrive_fast._broker import TaskBroker, TaskSuperseded
from koodrive_fast._checkpoint import CheckpointKey, CheckpointStore
from koodrive_fast._client import AsyncClient, Client
from koodrive_fast._clock import ManualClock, SystemClock
from koodrive_fast._models import MultiPartInfo
from koodrive_fast._progress import ProgressDispatcher
from koodrive_fast._source import SourceFile
from koodrive_fast._upload import upload_file
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, assert_uploaded, download, make_file

PS = 1024


def _opts(tmp_path: Path, **kw: Any) -> UploadOptions:
    kw.setdefault("part_size", PS)
    kw.setdefault("rapid", False)
    kw.setdefault("checkpoint_dir", tmp_path / "cp")
    kw.setdefault("checkpoint_interval", 0)
    return UploadOptions(**kw)


def _key(client: Client, path: Path) -> CheckpointKey:
    return CheckpointKey.for_file(
        client.endpoint, client.credentials.user_id, str(path.resolve()),
        FileIdentity.of(path.stat()), PS,
    )


def _edit_in_place_keeping_mtime(path: Path, offset: int, data: bytes) -> None:
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


# 1. torn or stale file stored as complete --------------------------------------------------


def test_1_in_place_edit_with_preserved_mtime_is_caught_before_complete(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 6 * PS, seed=101)
    completes = srv.stats.api_calls.get("complete", 0)
    edited = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0 and not edited.is_set():
            edited.set()
            _edit_in_place_keeping_mtime(path, 4 * PS + 3, b"NEW BYTES")

    srv.faults.latency(0.02)
    with pytest.raises(FileChangedError, match="ctime"):
        upload_file(client, path, container_id=CONTAINER, options=_opts(tmp_path, concurrency=1),
                    progress=progress)
    assert srv.stats.api_calls.get("complete", 0) == completes  # nothing was completed


def test_1_resume_after_in_place_edit_never_splices_old_parts(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 6 * PS, seed=102)
    opts = _opts(tmp_path, concurrency=1, retry=RetryPolicy(max_attempts=1))
    srv.faults.fail_puts(1, status=500)  # the first run stops with a checkpoint behind
    srv.faults.latency(0.0)
    first_store = CheckpointStore(opts.checkpoint_dir)
    with pytest.raises(KooDriveError):
        upload_file(client, path, container_id=CONTAINER, options=opts)
    assert first_store.load(_key(client, path)) is not None
    srv.faults.clear()
    _edit_in_place_keeping_mtime(path, 10, b"edited")  # inside part 1, mtime and size kept
    result = upload_file(client, path, container_id=CONTAINER, options=opts)
    assert not result.resumed
    assert_uploaded(client, result, path)


# 2. stale URL after a task restart ---------------------------------------------------------


def test_2_a_url_refreshed_for_a_replaced_task_is_never_used(
    client: Client, srv: LocalServer
) -> None:
    broker = TaskBroker(
        client, file_name="stale.bin", size=3 * PS, parent_folder="root", container_id=CONTAINER,
        auto_rename=None, trace_id="T" * 58, clock=SystemClock(),
    )
    part1 = MultiPartInfo(part_number=1, part_size=PS, part_offset=0)
    broker.create([part1])
    old_epoch = broker.epoch
    old_id = broker.file_id
    broker.restart(part1)
    assert broker.epoch > old_epoch and broker.file_id != old_id
    with pytest.raises(TaskSuperseded):
        broker.refresh(part1, old_epoch)
    lease = broker.refresh(part1, broker.epoch)
    assert lease.epoch == broker.epoch and broker.file_id in lease.url


# 3. fd closed under live workers -----------------------------------------------------------


def test_3_descriptor_outlives_the_owner_while_a_sender_holds_it(tmp_path: Path) -> None:
    path = make_file(tmp_path, 100)
    source = SourceFile(str(path), FileIdentity.of(path.stat()))
    fd = source.borrow()  # a sender
    source.release()  # the owner is done (error path)
    assert os.pread(fd, 5, 0) == path.read_bytes()[:5]  # still this file, not a reused fd
    source.release()  # the sender is done
    with pytest.raises(OSError):
        os.fstat(fd)


# 4. client settings reach the bulk traffic -------------------------------------------------


def test_4_part_puts_go_through_the_clients_transport(srv: LocalServer, tmp_path: Path) -> None:
    seen: list[str] = []
    inner = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.method)
            return inner.handle_request(request)

    path = make_file(tmp_path, 3 * PS + 1, seed=104)
    with Client(srv.base_url, BearerToken(srv.token, srv.user_id), limits=srv.limits,
                transport=Counting()) as client:
        result = client.upload(path, container_id=CONTAINER, options=_opts(tmp_path))
        assert_uploaded(client, result, path)
    assert seen.count("PUT") == 4


# 5. one retry policy that rides out a minute's outage --------------------------------------


class _Outage(httpx.BaseTransport):
    """Every request answers 503 until the (virtual) clock passes ``until``."""

    def __init__(self, clock: ManualClock, until: float) -> None:
        self.clock, self.until = clock, until
        self.inner = httpx.HTTPTransport()
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.clock.time() < self.until:
            self.refused += 1
            return httpx.Response(503, json={"code": 13000201, "msg": "restarting"})
        return self.inner.handle_request(request)


@pytest.mark.parametrize("outage, survives", [(60.0, True), (400.0, False)])
def test_5_default_policy_rides_out_a_60s_outage(
    srv: LocalServer, tmp_path: Path, outage: float, survives: bool
) -> None:
    random.seed(5)
    clock = ManualClock(start=time.time())
    transport = _Outage(clock, clock.time() + outage)
    path = make_file(tmp_path, 3 * PS, seed=105)
    with Client(srv.base_url, BearerToken(srv.token, srv.user_id), limits=srv.limits,
                transport=transport, sleep=clock.sleep, monotonic=clock.monotonic) as client:
        if survives:
            result = upload_file(client, path, container_id=CONTAINER, options=_opts(tmp_path),
                                 clock=clock)
            assert_uploaded(client, result, path)
            assert clock.slept >= outage
        else:
            with pytest.raises(KooDriveError):
                upload_file(client, path, container_id=CONTAINER, options=_opts(tmp_path), clock=clock)
            assert clock.slept <= 2 * RetryPolicy().max_elapsed + 60  # bounded, not forever
    assert transport.refused > 3


# 6. every error inside the tree ------------------------------------------------------------


def test_6_bad_inputs_raise_koodrive_errors(client: Client, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        upload_file(client, str(tmp_path / "a\0b"), container_id=CONTAINER)
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValidationError):
        Client("http://127.0.0.1:1", "not credentials")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Client("http://127.0.0.1:1", BearerToken("t", "u"), verify=str(tmp_path / "no-ca.pem"))


def test_6_malformed_upload_url_from_the_server_is_a_typed_error(
    srv: LocalServer, tmp_path: Path
) -> None:
    inner = httpx.HTTPTransport()

    class Mangling(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = inner.handle_request(request)
            if request.url.path.endswith("/files/create"):
                response.read()
                body = response.content.replace(b'"uploadUrl":"http://', b'"uploadUrl":"http://[::1')
                return httpx.Response(response.status_code, content=body, headers=response.headers)
            return response

    path = make_file(tmp_path, 2 * PS, seed=106)
    with Client(srv.base_url, BearerToken(srv.token, srv.user_id), limits=srv.limits,
                transport=Mangling()) as client:
        started = time.monotonic()
        with pytest.raises(KooDriveError):
            upload_file(client, path, container_id=CONTAINER, options=_opts(tmp_path))
        assert time.monotonic() - started < 60  # not retried for minutes


# 7. a FIFO swapped in between stat and open ------------------------------------------------


def test_7_fifo_swapped_in_never_hangs(tmp_path: Path) -> None:
    path = make_file(tmp_path, 100)
    identity = FileIdentity.of(path.stat())
    path.unlink()
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            SourceFile(str(path), identity)
        except BaseException as exc:  # noqa: BLE001 - recorded
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "open() of a FIFO blocked"
    assert outcome and isinstance(outcome[0], KooDriveError)


# 8. a file that lies about its size --------------------------------------------------------


def test_8_file_with_data_past_its_size_is_refused_before_any_request(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    proc_file = "/proc/self/status"
    if not os.path.exists(proc_file) or os.stat(proc_file).st_size != 0:
        pytest.skip("needs a /proc file reporting size 0")
    calls = dict(srv.stats.api_calls)
    with pytest.raises(LocalFileError, match="past its reported size"):
        upload_file(client, proc_file, container_id=CONTAINER, options=_opts(tmp_path))
    assert srv.stats.api_calls == calls


# 9. checkpoint directory checked first ----------------------------------------------------


def test_9_unwritable_explicit_checkpoint_dir_is_a_validation_error_before_any_request(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = make_file(tmp_path, 2 * PS)
    calls = dict(srv.stats.api_calls)
    with pytest.raises(ValidationError, match="checkpoint_dir"):
        upload_file(client, path, container_id=CONTAINER,
                    options=_opts(tmp_path, checkpoint_dir=blocker / "sub"))
    assert srv.stats.api_calls == calls


@pytest.mark.parametrize("resume", [True, False])
def test_9_unwritable_default_checkpoint_dir_falls_back_with_one_warning(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, resume: bool
) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = make_file(tmp_path, 2 * PS, seed=109)
    with caplog.at_level("WARNING", logger="koodrive_fast"):
        result = upload_file(client, path, container_id=CONTAINER,
                             options=UploadOptions(part_size=PS, rapid=False, resume=resume))
    assert_uploaded(client, result, path)
    warnings = [r for r in caplog.records if "without resume" in r.getMessage()]
    assert len(warnings) == 1


# 10. async cancel stops the engine and waits for it ---------------------------------------


def test_10_async_cancel_stops_and_awaits_the_engine(srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 40 * PS, seed=110)
    opts = _opts(tmp_path, concurrency=2)
    srv.faults.latency(0.05)
    threads_on_loop: set[int] = set()

    async def main() -> None:
        loop_thread = threading.get_ident()
        started = asyncio.Event()

        def progress(event: ProgressEvent) -> None:
            threads_on_loop.add(threading.get_ident() == loop_thread)
            if event.phase == "uploading" and event.delta > 0:
                started.set()

        async with AsyncClient(srv.base_url, BearerToken(srv.token, srv.user_id),
                               limits=srv.limits) as aclient:
            task = asyncio.create_task(
                aclient.upload(path, container_id=CONTAINER, options=opts, progress=progress)
            )
            await asyncio.wait_for(started.wait(), 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    # the engine had stopped when the await returned: no sender thread is left,
    # and the checkpoint for the resume is on disk
    assert not [t for t in threading.enumerate() if t.name.startswith("koodrive-put")]
    assert list((tmp_path / "cp").glob("*.json"))
    assert threads_on_loop == {True}  # progress arrived on the event loop's thread
    srv.faults.clear()
    with srv.client() as client:
        result = client.upload(path, container_id=CONTAINER, options=opts)
        assert result.resumed
        assert_uploaded(client, result, path)


# 11. the same file twice at once -----------------------------------------------------------


def test_11_second_upload_of_the_same_file_fails_clearly(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 2 * PS, seed=111)
    opts = _opts(tmp_path)
    store = CheckpointStore(opts.checkpoint_dir)
    store.prepare()
    held = store.lock(_key(client, path))  # as a concurrent upload would
    calls = dict(srv.stats.api_calls)
    try:
        with pytest.raises(UploadInProgressError):
            upload_file(client, path, container_id=CONTAINER, options=opts)
        assert srv.stats.api_calls == calls
    finally:
        store.unlock(_key(client, path), held)
    result = upload_file(client, path, container_id=CONTAINER, options=opts)
    assert_uploaded(client, result, path)


# 12. progress delivered outside locks ------------------------------------------------------


def test_12_progress_callback_runs_outside_the_dispatchers_lock() -> None:
    events: list[ProgressEvent] = []
    dispatcher: ProgressDispatcher
    emitted_meanwhile = threading.Event()

    def callback(event: ProgressEvent) -> None:
        events.append(event)
        if len(events) == 1:
            # another engine thread reports while user code runs: it must not block
            other = threading.Thread(target=lambda: (dispatcher.emit("uploading", 7), emitted_meanwhile.set()))
            other.start()
            other.join(10)
            assert emitted_meanwhile.is_set(), "emit blocked while the callback ran"

    dispatcher = ProgressDispatcher(callback, 100)
    dispatcher.emit("uploading", 5)
    assert [e.delta for e in events] == [5, 7]  # the meanwhile-event is delivered too, in order
    assert dispatcher.total_for("uploading") == 12


def test_12_queued_deltas_of_one_phase_are_merged() -> None:
    events: list[ProgressEvent] = []
    gate = threading.Event()
    release = threading.Event()

    def callback(event: ProgressEvent) -> None:
        events.append(event)
        if len(events) == 1:
            gate.set()
            release.wait(10)

    dispatcher = ProgressDispatcher(callback, 100)
    first = threading.Thread(target=dispatcher.emit, args=("uploading", 1))
    first.start()
    assert gate.wait(10)
    for _ in range(10):
        dispatcher.emit("uploading", 2)  # queued while the callback is busy: returns at once
    release.set()
    first.join(10)
    assert [e.delta for e in events] == [1, 20]


def test_download_helper_is_exact(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    """Sanity of the verification path the tests above rely on."""
    path = make_file(tmp_path, PS + 7, seed=112)
    result = upload_file(client, path, container_id=CONTAINER, options=_opts(tmp_path))
    assert download(client, result.file_id) == path.read_bytes()


def test_result_reports_the_servers_file_name_after_a_rename(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    """Honest reports: a clash renamed by the server shows the server's name, not ours."""
    path = make_file(tmp_path, PS + 1, seed=113, name="same-name.bin")
    opts = _opts(tmp_path)
    first = upload_file(client, path, container_id=CONTAINER, options=opts,
                        file_name="renamed-clash.bin")
    second = upload_file(client, path, container_id=CONTAINER, options=opts,
                         file_name="renamed-clash.bin")
    assert first.file_name == "renamed-clash.bin"
    assert second.file_name != "renamed-clash.bin" and second.file_name.startswith("renamed-clash")
    assert client.file_detail(second.file_id).file_name == second.file_name


def test_lock_files_do_not_pile_up_and_one_part_files_write_no_checkpoint(
    client: Client, tmp_path: Path
) -> None:
    opts = _opts(tmp_path)
    for i in range(3):
        upload_file(client, make_file(tmp_path, PS - i, name=f"small{i}.bin", seed=i),
                    container_id=CONTAINER, options=opts)
    upload_file(client, make_file(tmp_path, 3 * PS, name="multi.bin", seed=9),
                container_id=CONTAINER, options=opts)
    leftovers = sorted(p.name for p in (tmp_path / "cp").iterdir())
    assert leftovers == []  # no .lock and no .json left after finished uploads
