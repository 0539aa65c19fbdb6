"""The one-pass scan (kd_scan_fd / kd_scan_buffer) of the native core."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _tsan_harness import needs_gcc, run_tsan_harness
from koodrive_fast._native import ALGORITHMS, WORDS, ffi, lib

ALG_NAMES = ("sha256", "sha1")


class Scan:
    """A kd_scan prepared to start at a 64-aligned offset of data."""

    def __init__(self, alg: str, data: bytes, start: int, stride: int, max_states: int) -> None:
        self.alg = alg
        self.words = WORDS[alg]
        self.raw: Any = ffi.new("kd_scan *")
        ctx = ffi.addressof(self.raw[0], "ctx")
        assert lib.kd_hash_init(ctx, ALGORITHMS[alg]) == lib.KD_OK
        if start:
            lib.kd_hash_update(ctx, data[:start], start)
            words = list(ctx.h)
            assert lib.kd_hash_set_state(ctx, ALGORITHMS[alg], words, start) == lib.KD_OK
        self.states = ffi.new("uint32_t[]", max(1, max_states) * self.words)
        self.raw.stride = stride
        self.raw.states = self.states
        self.raw.max_states = max_states

    def state(self, i: int) -> list[int]:
        return list(self.states[i * self.words : (i + 1) * self.words])

    def digest(self) -> bytes:
        out = ffi.new("uint8_t[32]")
        lib.kd_hash_digest(ffi.addressof(self.raw[0], "ctx"), out)
        return bytes(out)[: hashlib.new(self.alg).digest_size]

    def progress(self) -> tuple[int, int]:
        return int(lib.kd_scan_bytes_done(self.raw)), int(lib.kd_scan_states_done(self.raw))


def boundaries(start: int, end: int, stride: int) -> list[int]:
    first = (start // stride + 1) * stride
    return list(range(first, end, stride))


def digest_from_state(alg: str, words: list[int], length: int) -> bytes:
    """SHA of the first `length` bytes, from the state after them (finalize only)."""
    out = ffi.new("uint8_t[32]")
    assert lib.kd_finalize(ALGORITHMS[alg], words, length, ffi.NULL, 0, out) == lib.KD_OK
    return bytes(out)[: hashlib.new(alg).digest_size]


def check_scan(scan: Scan, data: bytes, start: int, end: int) -> None:
    """Every recorded state and the end state against hashlib."""
    points = boundaries(start, end, int(scan.raw.stride))
    assert scan.progress() == (end - start, len(points))
    for i, b in enumerate(points):
        assert digest_from_state(scan.alg, scan.state(i), b) == hashlib.new(
            scan.alg, data[:b]
        ).digest(), f"state {i} at offset {b}"
    assert scan.raw.ctx.length == end
    assert scan.digest() == hashlib.new(scan.alg, data[:end]).digest()


def write_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path


@st.composite
def scan_cases(draw: Callable[..., Any]) -> tuple[str, int, int, int, int]:
    alg = draw(st.sampled_from(ALG_NAMES))
    stride = 64 * draw(st.integers(1, 48))
    start = 64 * draw(st.integers(0, 40))
    special = [0, 1, 63, 64, 65, stride - 1, stride, stride + 1, 2 * stride, 3 * stride + 7]
    length = draw(st.one_of(st.sampled_from(special), st.integers(0, 12 * stride + 200)))
    read_size = draw(st.sampled_from([0, 4096, 4096 + 64, 8192]))
    return alg, stride, start, length, read_size


@given(case=scan_cases(), seed=st.binary(min_size=8, max_size=8))
def test_scan_buffer_states(case: tuple[str, int, int, int, int], seed: bytes) -> None:
    alg, stride, start, length, read_size = case
    data = (hashlib.sha512(seed).digest() * ((start + length) // 64 + 1))[: start + length]
    scan = Scan(alg, data, start, stride, len(boundaries(start, start + length, stride)))
    scan.raw.read_size = read_size
    view = ffi.from_buffer(data)
    assert lib.kd_scan_buffer(scan.raw, view + start, length) == lib.KD_OK
    check_scan(scan, data, start, start + length)


@given(case=scan_cases(), file_offset=st.integers(0, 300), seed=st.binary(min_size=8, max_size=8))
def test_scan_fd_states(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[str, int, int, int, int],
    file_offset: int,
    seed: bytes,
) -> None:
    """The file holds junk, then data; the hash position starts at `start`."""
    alg, stride, start, length, read_size = case
    data = (hashlib.sha512(seed).digest() * ((start + length) // 64 + 1))[: start + length]
    path = tmp_path_factory.mktemp("scan") / "f.bin"
    path.write_bytes(b"\xa5" * file_offset + data[start:])
    scan = Scan(alg, data, start, stride, len(boundaries(start, start + length, stride)))
    scan.raw.read_size = read_size
    fd = os.open(path, os.O_RDONLY)
    try:
        assert lib.kd_scan_fd(scan.raw, fd, file_offset, length) == lib.KD_OK
    finally:
        os.close(fd)
    check_scan(scan, data, start, start + length)


@pytest.mark.parametrize("alg", ALG_NAMES)
def test_scan_fd_many_chunks(tmp_path: Path, alg: str) -> None:
    """Several reads through the reader thread, a stride that is not a multiple of them."""
    data = os.urandom(3 * 1024 * 1024 + 4321)
    path = write_file(tmp_path, data)
    stride = 64 * 5003
    scan = Scan(alg, data, 0, stride, len(boundaries(0, len(data), stride)))
    scan.raw.read_size = 256 * 1024
    with open(path, "rb") as f:
        assert lib.kd_scan_fd(scan.raw, f.fileno(), 0, len(data)) == lib.KD_OK
    check_scan(scan, data, 0, len(data))


@pytest.mark.parametrize("read_size", [0, 4096])
def test_short_file(tmp_path: Path, read_size: int) -> None:
    data = os.urandom(20000)
    path = write_file(tmp_path, data)
    scan = Scan("sha256", data, 0, 64, 1000)
    scan.raw.read_size = read_size
    with open(path, "rb") as f:
        assert lib.kd_scan_fd(scan.raw, f.fileno(), 100, len(data)) == lib.KD_ESHORT
        assert lib.kd_scan_fd(scan.raw, f.fileno(), len(data) + 5, 1) == lib.KD_ESHORT


@pytest.mark.parametrize("length", [1000, 100000])
def test_bad_fd_reports_errno(length: int) -> None:
    scan = Scan("sha256", b"", 0, 1 << 20, 0)
    scan.raw.read_size = 4096
    assert lib.kd_scan_fd(scan.raw, -1, 0, length) == lib.KD_EIO
    assert scan.raw.error == errno.EBADF


def test_directory_fd_reports_eisdir(tmp_path: Path) -> None:
    scan = Scan("sha1", b"", 0, 64, 0)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert lib.kd_scan_fd(scan.raw, fd, 0, 10) == lib.KD_EIO
    finally:
        os.close(fd)
    assert scan.raw.error == errno.EISDIR


def test_invalid_arguments() -> None:
    data = bytes(1000)
    for stride in (0, 1, 63, 100):
        scan = Scan("sha256", data, 0, stride, 100)
        assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_EINVAL
        assert lib.kd_scan_fd(scan.raw, -1, 0, len(data)) == lib.KD_EINVAL
    scan = Scan("sha256", data, 0, 64, 14)  # 1000 bytes have 15 boundaries at 64
    assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_EINVAL
    scan = Scan("sha256", data, 0, 64, 15)
    assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_OK
    scan = Scan("sha256", data, 0, 64, 15)
    scan.raw.states = ffi.NULL
    assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_EINVAL
    scan = Scan("sha256", data, 0, 64, 15)
    scan.raw.ctx.length = 32  # start not on a block boundary
    assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_EINVAL
    scan = Scan("sha256", data, 0, 64, 15)
    scan.raw.ctx.buf_len = 3
    assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_EINVAL
    scan = Scan("sha256", data, 0, 64, 15)
    scan.raw.ctx.algorithm = 7
    assert lib.kd_scan_buffer(scan.raw, data, len(data)) == lib.KD_EINVAL


# ------------------------------------------------------ threads and window


def run_in_thread(fn: Callable[[], int]) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    data = os.urandom(8 * 1024 * 1024)
    yield write_file(tmp_path, data), data


def test_cancel_from_another_thread(big_file: tuple[Path, bytes]) -> None:
    path, data = big_file
    scan = Scan("sha256", data, 0, 1 << 20, 8)
    scan.raw.read_size = 64 * 1024
    scan.raw.allowed_end = 3 << 20  # holds the scan so the cancel lands mid-way
    with open(path, "rb") as f:
        thread, result = run_in_thread(lambda: lib.kd_scan_fd(scan.raw, f.fileno(), 0, len(data)))
        wait_for(lambda: scan.progress()[0] == 3 << 20)
        lib.kd_scan_cancel(scan.raw)
        thread.join(20)
    assert not thread.is_alive()
    assert result == [lib.KD_ECANCELLED]
    assert scan.progress() == (3 << 20, 3)  # boundaries at 1, 2 and 3 MiB


def test_cancel_while_hashing() -> None:
    data = os.urandom(4 * 1024 * 1024)
    big = data * 16  # 64 MiB: long enough that the cancel lands while hashing
    scan = Scan("sha256", big, 0, 1 << 20, 64)
    scan.raw.read_size = 64 * 1024
    thread, result = run_in_thread(lambda: lib.kd_scan_buffer(scan.raw, big, len(big)))
    wait_for(lambda: scan.progress()[0] > 0)
    lib.kd_scan_cancel(scan.raw)
    thread.join(20)
    assert result in ([lib.KD_ECANCELLED], [lib.KD_OK])
    if result == [lib.KD_ECANCELLED]:
        assert scan.progress()[0] < len(big)


@pytest.mark.parametrize("use_fd", [False, True])
def test_allowed_end_window(big_file: tuple[Path, bytes], use_fd: bool) -> None:
    path, data = big_file
    stride = 1 << 20
    scan = Scan("sha1", data, 0, stride, 7)
    scan.raw.read_size = 256 * 1024
    scan.raw.allowed_end = (1 << 20) + 1000  # not block aligned: stops at the block below
    samples: list[tuple[int, int]] = []
    with open(path, "rb") as f:
        if use_fd:
            thread, result = run_in_thread(
                lambda: lib.kd_scan_fd(scan.raw, f.fileno(), 0, len(data))
            )
        else:
            thread, result = run_in_thread(lambda: lib.kd_scan_buffer(scan.raw, data, len(data)))
        first_stop = (1 << 20) + 1000 - 1000 % 64
        wait_for(lambda: scan.progress()[0] == first_stop)
        time.sleep(0.05)
        assert scan.progress() == (first_stop, 1)
        assert thread.is_alive()
        for limit in (3 << 20, (5 << 20) + 64):
            lib.kd_scan_allow(scan.raw, limit)
            deadline = time.monotonic() + 20
            while scan.progress()[0] < limit and time.monotonic() < deadline:
                samples.append(scan.progress())
            time.sleep(0.02)
            assert scan.progress() == (limit, limit // stride)
        lib.kd_scan_allow(scan.raw, len(data))  # = the end: lifts the limit
        thread.join(20)
    assert result == [lib.KD_OK]
    assert samples == sorted(samples)  # counters never go back
    check_scan(scan, data, 0, len(data))


def test_allowed_end_partial_tail() -> None:
    """The final partial block waits until the window covers the scan's end."""
    data = os.urandom(1000)
    scan = Scan("sha256", data, 0, 128, 7)
    scan.raw.allowed_end = 990
    thread, result = run_in_thread(lambda: lib.kd_scan_buffer(scan.raw, data, len(data)))
    wait_for(lambda: scan.progress()[0] == 960)
    time.sleep(0.02)
    assert scan.progress() == (960, 7)
    lib.kd_scan_allow(scan.raw, 0)  # 0 = no limit
    thread.join(20)
    assert result == [lib.KD_OK]
    check_scan(scan, data, 0, len(data))


def test_scan_runs_without_the_gil(big_file: tuple[Path, bytes]) -> None:
    """A pure-Python thread keeps running while the scan is blocked in C."""
    path, data = big_file
    scan = Scan("sha256", data, 0, 1 << 20, 7)
    scan.raw.allowed_end = 1 << 20
    ticks = 0
    with open(path, "rb") as f:
        thread, result = run_in_thread(lambda: lib.kd_scan_fd(scan.raw, f.fileno(), 0, len(data)))
        wait_for(lambda: scan.progress()[0] == 1 << 20)
        # a fixed amount of Python work (not a time slice: a throttled VM may not
        # schedule this thread for 50 ms) while the scan thread sits inside C
        deadline = time.monotonic() + 20
        while ticks < 100_000 and time.monotonic() < deadline:
            ticks += 1
        assert thread.is_alive() and scan.progress()[0] == 1 << 20
        lib.kd_scan_allow(scan.raw, 0)
        thread.join(20)
    assert ticks == 100_000
    assert result == [lib.KD_OK]
    check_scan(scan, data, 0, len(data))


# --------------------------------------------- counters under ThreadSanitizer

@needs_gcc
def test_progress_counter_reset_is_race_free_under_tsan(tmp_path: Path) -> None:
    """Build the core with -fsanitize=thread and run csrc/tests/scan_race_harness.c.

    Another thread polls the counters (atomic loads) while a scan starts on the
    same kd_scan; the scan's reset of them must be atomic too.  With the old
    plain stores ThreadSanitizer reports a data race in kd_scan_buffer and
    kd_scan_fd, and the harness exits 66."""
    out = run_tsan_harness("scan_race_harness.c", tmp_path)
    assert out.count(" ok\n") == 3, out
