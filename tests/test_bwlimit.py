"""Bandwidth limit: one token bucket for every sender of a run, on virtual time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from koodrive_fast import TransferManager, UploadOptions, ValidationError
from koodrive_fast._client import Client
from koodrive_fast._clock import ManualClock
from koodrive_fast._ratelimit import TokenBucket
from koodrive_fast._upload import upload_file

from _upload_helpers import CONTAINER, assert_uploaded, make_file

PS = 1024


def test_bucket_paces_to_the_rate_on_virtual_time() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1000.0, clock, burst=100.0)
    for _ in range(50):
        assert bucket.take(100)
    # 5000 bytes at 1000 B/s with 100 B of initial burst: 4.9 s of waiting
    assert clock.slept == pytest.approx(4.9, rel=1e-6)


def test_bucket_serves_requests_larger_than_the_burst_and_stops() -> None:
    clock = ManualClock()
    bucket = TokenBucket(100.0, clock, burst=10.0)
    assert bucket.take(1000)
    assert clock.slept == pytest.approx(9.9, rel=1e-6)
    assert bucket.take(10)  # the debt was paid: the next chunk waits only for itself
    assert clock.slept == pytest.approx(10.0, rel=1e-6)
    stop = threading.Event()
    stop.set()
    assert not TokenBucket(1.0, clock, burst=1.0).take(10, stop)


def test_bucket_is_shared_across_threads() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10_000.0, clock, burst=1000.0)
    threads = [threading.Thread(target=lambda: [bucket.take(500) for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # 40 000 bytes in all at 10 000 B/s, 1 000 B burst: 3.9 s, whatever the interleaving
    assert clock.slept == pytest.approx(3.9, rel=1e-6)


@pytest.mark.parametrize("bad", [0, -5, 10, True, "1MB"])
def test_bwlimit_validated(bad: object) -> None:
    with pytest.raises(ValidationError, match="bwlimit"):
        UploadOptions(bwlimit=bad)  # type: ignore[arg-type]


def test_upload_under_a_limit_takes_size_over_rate_of_virtual_time(
    client: Client, tmp_path: Path
) -> None:
    size = 40 * PS
    rate = 4 * PS  # bytes per second
    path = make_file(tmp_path, size, seed=7)
    clock = ManualClock()
    opts = UploadOptions(part_size=PS, rapid=False, bwlimit=rate, read_size=PS,
                         checkpoint_dir=tmp_path / "cp", concurrency=4)
    result = upload_file(client, path, container_id=CONTAINER, options=opts, clock=clock)
    assert_uploaded(client, result, path)
    # every byte passed the bucket: (size - the quarter second's burst) / rate of waiting
    assert clock.slept == pytest.approx((size - rate / 4) / rate, rel=0.01)


def test_one_budget_for_all_files_of_a_manager(client: Client, tmp_path: Path) -> None:
    rate = 4 * PS
    files = [make_file(tmp_path, 10 * PS, name=f"f{i}.bin", seed=i) for i in range(3)]
    clock = ManualClock()
    opts = UploadOptions(part_size=PS, rapid=False, bwlimit=rate, read_size=PS,
                         checkpoint_dir=tmp_path / "cp")
    with TransferManager(client, opts, workers=6, max_files=3, clock=clock) as manager:
        futures = [manager.upload(p, container_id=CONTAINER) for p in files]
        for p, f in zip(files, futures):
            assert_uploaded(client, f.result(timeout=60), p)
    assert clock.slept == pytest.approx((30 * PS - rate / 4) / rate, rel=0.01)
