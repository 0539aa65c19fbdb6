"""ProgressEvent dispatching and the CLI's tqdm bars."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from koodrive_fast import ProgressEvent
from koodrive_fast._progress import ProgressDispatcher, TqdmProgress


def test_dispatcher_sums_and_event_fields() -> None:
    events: list[ProgressEvent] = []
    dispatcher = ProgressDispatcher(events.append, total=100)
    dispatcher.emit("uploading", 60, part_number=1)
    dispatcher.emit("uploading", -20, part_number=1)
    dispatcher.emit("uploading", 60, part_number=1)
    dispatcher.emit("done", rapid_upload=False)
    assert dispatcher.total_for("uploading") == 100
    assert events[0] == ProgressEvent("uploading", 60, 100, 1, False)
    assert events[-1].phase == "done" and events[-1].delta == 0


def test_dispatcher_serialises_callbacks_across_threads() -> None:
    inside = 0
    overlap = False
    seen = 0
    guard = threading.Lock()

    def callback(event: ProgressEvent) -> None:
        nonlocal inside, overlap, seen
        with guard:
            inside += 1
            overlap = overlap or inside > 1
        seen += event.delta  # unguarded on purpose: the dispatcher must serialise
        with guard:
            inside -= 1

    dispatcher = ProgressDispatcher(callback, total=8 * 500)
    threads = [threading.Thread(target=lambda: [dispatcher.emit("uploading", 1) for _ in range(500)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not overlap
    assert seen == 4000 == dispatcher.total_for("uploading")


def test_raising_callback_is_logged_once_and_disabled(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(event: ProgressEvent) -> None:
        calls.append(event)
        raise ValueError("boom")

    dispatcher = ProgressDispatcher(broken, total=10)
    with caplog.at_level(logging.WARNING, logger="koodrive_fast"):
        for _ in range(3):
            dispatcher.emit("hashing", 1)
    assert len(calls) == 1
    assert caplog.text.count("progress callback raised") == 1
    assert dispatcher.total_for("hashing") == 3


def test_no_callback_still_counts() -> None:
    dispatcher = ProgressDispatcher(None, total=5)
    dispatcher.emit("hashing", 5)
    assert dispatcher.total_for("hashing") == 5


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tqdm_quiet_when_not_a_tty() -> None:
    stream = io.StringIO()
    with TqdmProgress(stream=stream) as bar:
        assert not bar.enabled
        bar(ProgressEvent("uploading", 10, 100))
    assert stream.getvalue() == ""


def test_tqdm_quiet_with_enabled_false() -> None:
    stream = _Tty()
    with TqdmProgress(enabled=False, stream=stream) as bar:
        bar(ProgressEvent("hashing", 10, 100))
    assert stream.getvalue() == ""


def test_tqdm_draws_hash_and_upload_bars_on_a_tty() -> None:
    stream = _Tty()
    with TqdmProgress(stream=stream) as bar:
        bar(ProgressEvent("hashing", 2048, 4096))
        bar(ProgressEvent("uploading", 1024, 4096, part_number=1))
        bar(ProgressEvent("uploading", -512, 4096, part_number=1))
        bar(ProgressEvent("done", 0, 4096, rapid_upload=True))
    out = stream.getvalue()
    assert "hash" in out and "upload" in out
    assert "flash upload" in out


def test_log_progress_writes_a_line_per_interval_and_per_phase() -> None:
    from koodrive_fast._progress import LogProgress

    now = [0.0]
    lines: list[str] = []
    log = LogProgress(interval=10, write=lines.append, monotonic=lambda: now[0])
    log(ProgressEvent("hashing", 100, 1000))  # same phase as the start, within the interval
    assert lines == []
    now[0] = 11
    log(ProgressEvent("hashing", 100, 1000))
    log(ProgressEvent("uploading", 500, 1000))  # a phase change: a line at once
    now[0] = 12
    log(ProgressEvent("uploading", 100, 1000))
    assert len(lines) == 2
    assert "uploaded 500 B of 1000 B" in lines[1] and "ETA" in lines[1]
    assert all("\r" not in line and "\x1b" not in line for line in lines)


def test_jsonl_progress_parses_and_holds_no_secret() -> None:
    import io
    import json

    from koodrive_fast._progress import JsonlProgress

    now = [0.0]
    out = io.StringIO()
    progress = JsonlProgress(out, interval=1, monotonic=lambda: now[0], extra={"path": "a.bin"})
    for i in range(10):
        now[0] = i * 0.3
        progress(ProgressEvent("uploading", 100, 1000))
    progress(ProgressEvent("done", 0, 1000))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["phase"] == "uploading" and records[-1]["phase"] == "done"
    assert records[-1]["uploaded"] == 1000 and records[-1]["path"] == "a.bin"
    assert 3 <= len(records) <= 6  # throttled to about one a second of (virtual) time
    assert all(set(r) >= {"event", "phase", "total", "hashed", "uploaded", "rate", "eta"} for r in records)


def test_resumed_share_is_not_a_rate() -> None:
    """Honest reports: what an earlier run stored starts the bar and the log line, but
    never counts as bytes moved now (the bar once showed 4.6 GB/s on a resume)."""
    import io

    from koodrive_fast._progress import LogProgress, TqdmProgress

    now = [0.0]
    lines: list[str] = []
    log = LogProgress(interval=1, write=lines.append, monotonic=lambda: now[0])
    log(ProgressEvent("uploading", 900, 1000, resumed=True))
    now[0] = 10
    log(ProgressEvent("uploading", 100, 1000))
    assert "(0.0 MB/s" in lines[-1]  # 100 B in 10 s, not 1000 B

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    with TqdmProgress(stream=Tty()) as bars:
        bars(ProgressEvent("uploading", 900, 1000, resumed=True))
        bar = bars._bars["uploading"]
        assert bar.n == 900 and bar.initial == 900
        bars(ProgressEvent("uploading", 100, 1000))
        assert bar.n == 1000
