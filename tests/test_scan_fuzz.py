"""Seeded fuzz of the one-pass scan against OpenSSL's own SHA contexts.

Every case draws an algorithm, a resumed start state, a stride, a length, a
source (an exactly sized, misaligned buffer or a file at an offset), a read
size and sometimes a hashing window raised from another thread, then checks
every recorded chaining state, the end state and the digest.  The oracle is
libcrypto's ``SHA256_CTX`` / ``SHA_CTX`` through ctypes, whose chaining words
we read after feeding it up to each boundary: no code shared with the core
(the pure-Python ``_sha_oracle`` stands in where libcrypto cannot be loaded).

Bounded in count and time: at least ``MIN_CASES`` cases, then more until
``KOODRIVE_SCAN_FUZZ_SECONDS`` (default 3) have passed or ``MAX_CASES`` ran.
CI's sanitizer pass runs it for longer under AddressSanitizer.  A failure
names its seed and case; ``KOODRIVE_SCAN_FUZZ_SEED`` replays a seed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import random
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import _sha_oracle
import pytest

from koodrive_fast._native import ALGORITHMS, WORDS, ffi, lib

MIN_CASES = 40
MAX_CASES = 20_000
SECONDS = float(os.environ.get("KOODRIVE_SCAN_FUZZ_SECONDS", "3"))
SEED = int(os.environ.get("KOODRIVE_SCAN_FUZZ_SEED", "20261204"))


def _load_libcrypto() -> ctypes.CDLL | None:
    """libcrypto by name, else the one this Python's hashlib already loaded."""
    candidates = [ctypes.util.find_library("crypto")]
    try:
        import _hashlib  # noqa: F401  (maps libcrypto into the process)

        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            candidates += [ln.split()[-1] for ln in maps if "libcrypto" in ln]
    except (ImportError, OSError):
        pass
    for name in candidates:
        if not name:
            continue
        try:
            crypto = ctypes.CDLL(name)
            for fn in ("SHA256_Init", "SHA256_Update", "SHA1_Init", "SHA1_Update"):
                getattr(crypto, fn).restype = ctypes.c_int
            crypto.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            crypto.SHA1_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            return crypto
        except (OSError, AttributeError):
            continue
    return None


LIBCRYPTO = _load_libcrypto()
#: cases stay small when the oracle is pure Python (~0.2 MB/s)
MAX_LENGTH = 300_000 if LIBCRYPTO is not None else 6_000


def oracle_words(alg: str, data: bytes, points: list[int]) -> list[tuple[int, ...]]:
    """Chaining words after data[:p] for each 64-aligned p (ascending)."""
    words = WORDS[alg]
    out: list[tuple[int, ...]] = []
    if LIBCRYPTO is None:
        state, pos = _sha_oracle.IV[alg], 0
        for p in points:
            state = _sha_oracle.absorb(alg, state, data[pos:p])
            out.append(state)
            pos = p
        return out
    init, update = (
        (LIBCRYPTO.SHA256_Init, LIBCRYPTO.SHA256_Update)
        if alg == "sha256"
        else (LIBCRYPTO.SHA1_Init, LIBCRYPTO.SHA1_Update)
    )
    ctx = ctypes.create_string_buffer(512)  # > sizeof(SHA256_CTX), sizeof(SHA_CTX)
    assert init(ctx) == 1
    pos = 0
    for p in points:
        assert update(ctx, data[pos:p], p - pos) == 1
        out.append(struct.unpack_from(f"={words}I", ctx.raw))
        pos = p
    return out


@dataclass(frozen=True)
class Case:
    alg: str
    start: int  # absolute hash offset the scan resumes at (multiple of 64)
    stride: int
    length: int
    use_fd: bool
    skew: int  # buffer: misalignment; file: junk bytes before the data
    read_size: int
    window: tuple[int, ...]  # allowed_end steps raised by another thread, then 0


def draw_case(rng: random.Random) -> Case:
    stride = 64 * rng.choice((1, 2, 3, rng.randint(1, 80), rng.randint(64, 2048)))
    start = 64 * rng.choice((0, rng.randint(0, 4), rng.randint(0, 3000)))
    length = rng.choice(
        (
            rng.randint(0, 200),
            stride * rng.randint(0, 6) + rng.choice((-1, 0, 1, 63, 64, 65)),
            rng.randint(0, MAX_LENGTH),
        )
    )
    length = max(0, min(length, MAX_LENGTH))
    read_size = rng.choice((0, 4096, 4096 + 64, 8192 + 64 * rng.randint(0, 200)))
    window: tuple[int, ...] = ()
    if length and rng.random() < 0.25:
        steps = sorted(rng.randint(start, start + length) for _ in range(rng.randint(1, 4)))
        window = tuple(s if s > 0 else 1 for s in steps)
    return Case(
        alg=rng.choice(("sha256", "sha1")),
        start=start,
        stride=stride,
        length=length,
        use_fd=rng.random() < 0.5,
        skew=rng.randint(0, 15) if rng.random() < 0.7 else rng.randint(0, 5000),
        read_size=read_size,
        window=window,
    )


def raise_window(scan: Any, steps: tuple[int, ...]) -> Callable[[], None]:
    """Start a thread that raises allowed_end step by step, then lifts it."""

    def run() -> None:
        for end in steps:
            time.sleep(0.001)
            lib.kd_scan_allow(scan, end)
        time.sleep(0.001)
        lib.kd_scan_allow(scan, 0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return lambda: thread.join(30)


def run_case(case: Case, data: bytes, path: Path) -> None:
    alg, start, end = case.alg, case.start, case.start + case.length
    nwords = WORDS[alg]
    points = list(range((start // case.stride + 1) * case.stride, end, case.stride))
    whole = end - end % 64
    expected = oracle_words(alg, data, [start, *points, whole])

    scan = ffi.new("kd_scan *")
    ctx = ffi.addressof(scan[0], "ctx")
    assert lib.kd_hash_set_state(ctx, ALGORITHMS[alg], list(expected[0]), start) == lib.KD_OK
    states = ffi.new("uint32_t[]", len(points) * nwords)  # exactly sized
    scan.stride = case.stride
    scan.states = states if points else ffi.NULL
    scan.max_states = len(points)
    scan.read_size = case.read_size
    if case.window:
        scan.allowed_end = case.window[0]
    join = raise_window(scan, case.window[1:]) if case.window else (lambda: None)
    try:
        if case.use_fd:
            path.write_bytes(b"\x5a" * case.skew + data[start:end])
            fd = os.open(path, os.O_RDONLY)
            try:
                rc = lib.kd_scan_fd(scan, fd, case.skew, case.length)
            finally:
                os.close(fd)
        else:
            # the scanned bytes end exactly where the allocation ends
            buf = ffi.new("uint8_t[]", case.skew + case.length)
            ffi.memmove(buf + case.skew, data[start:end], case.length)
            rc = lib.kd_scan_buffer(scan, buf + case.skew, case.length)
    finally:
        join()
    assert rc == lib.KD_OK
    assert lib.kd_scan_bytes_done(scan) == case.length
    assert lib.kd_scan_states_done(scan) == len(points)
    got = [tuple(states[i * nwords : (i + 1) * nwords]) for i in range(len(points))]
    assert got == expected[1:-1], "recorded states"
    assert ctx.length == end
    assert tuple(ctx.h[0:nwords]) == expected[-1], "end state"
    assert bytes(ffi.buffer(ctx.buf, ctx.buf_len)) == data[whole:end], "pending tail"
    out = ffi.new("uint8_t[32]")
    lib.kd_hash_digest(ctx, out)
    size = hashlib.new(alg).digest_size
    assert bytes(out)[:size] == hashlib.new(alg, data[:end]).digest(), "digest"


def test_scan_fuzz_against_openssl_contexts(tmp_path: Path) -> None:
    deadline = time.monotonic() + SECONDS
    done = 0
    for index in range(MAX_CASES):
        if index >= MIN_CASES and time.monotonic() > deadline:
            break
        rng = random.Random(f"{SEED}/{index}")
        case = draw_case(rng)
        data = rng.randbytes(case.start + case.length)
        try:
            run_case(case, data, tmp_path / "scan.bin")
        except AssertionError as exc:
            raise AssertionError(f"seed {SEED} case {index}: {case}: {exc}") from exc
        done += 1
    assert done >= MIN_CASES
    print(f"scan fuzz: {done} cases, seed {SEED}, oracle", "libcrypto" if LIBCRYPTO else "python")


@pytest.mark.skipif(LIBCRYPTO is None, reason="libcrypto not loadable: nothing to cross-check")
def test_openssl_oracle_agrees_with_the_python_oracle() -> None:
    """The oracle itself: libcrypto's words equal the FIPS 180-4 reference's."""
    data = random.Random(7).randbytes(64 * 9)
    for alg in ("sha256", "sha1"):
        points = [0, 64, 320, 576]
        ref = [_sha_oracle.absorb(alg, _sha_oracle.IV[alg], data[:p]) for p in points]
        assert oracle_words(alg, data, points) == ref
