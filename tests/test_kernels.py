"""Compression kernels, dispatch and finalisation of the native core (csrc/)."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast._native import ALGORITHMS, WORDS, ffi, kernel_names, lib

ALG_NAMES = ("sha256", "sha1")


def available(alg: str) -> list[str]:
    return [k for k in kernel_names if lib.kd_kernel_available(ALGORITHMS[alg], k.encode())]


def accelerated() -> list[tuple[str, str]]:
    return [(alg, k) for alg in ALG_NAMES for k in available(alg) if k != "portable"]


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def run_blocks(alg: str, kernel: str, words: list[int], data: bytes, offset: int = 0) -> list[int]:
    """Compress data[offset:] (whole blocks) with a named kernel."""
    state = ffi.new("uint32_t[8]", words)
    buf = ffi.new("uint8_t[]", len(data) + 1)
    ffi.memmove(buf, data, len(data))
    nblocks = (len(data) - offset) // 64
    rc = lib.kd_blocks_with(ALGORITHMS[alg], kernel.encode(), state, buf + offset, nblocks)
    assert rc == lib.KD_OK
    return list(state)[: WORDS[alg]]


def native_digest(alg: str, data: bytes) -> bytes:
    ctx = ffi.new("kd_hash_ctx *")
    assert lib.kd_hash_init(ctx, ALGORITHMS[alg]) == lib.KD_OK
    lib.kd_hash_update(ctx, data, len(data))
    out = ffi.new("uint8_t[32]")
    lib.kd_hash_digest(ctx, out)
    return bytes(out)[: hashlib.new(alg).digest_size]


@pytest.fixture
def restore_active() -> Iterator[None]:
    """Put the dispatch choice back after a test that switches kernels."""
    saved = {alg: ffi.string(lib.kd_kernel_name(ALGORITHMS[alg])) for alg in ALG_NAMES}
    yield
    for alg, name in saved.items():
        assert lib.kd_set_kernel(ALGORITHMS[alg], name) == lib.KD_OK


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("alg", ALG_NAMES)
def test_portable_known_answers(alg: str) -> None:
    for data in (b"", b"abc", b"a" * 55, b"a" * 56, b"a" * 64, b"a" * 1000):
        padded_len = (len(data) // 64) * 64
        words = run_blocks(alg, "portable", list(iv(alg)), data[:padded_len])
        out = ffi.new("uint8_t[32]")
        tail = data[padded_len:]
        rc = lib.kd_finalize(ALGORITHMS[alg], words, len(data), tail, len(tail), out)
        assert rc == lib.KD_OK
        assert bytes(out)[: hashlib.new(alg).digest_size] == hashlib.new(alg, data).digest()


def iv(alg: str) -> tuple[int, ...]:
    ctx = ffi.new("kd_hash_ctx *")
    lib.kd_hash_init(ctx, ALGORITHMS[alg])
    return tuple(ctx.h)[:8]


@pytest.mark.skipif(not accelerated(), reason="no accelerated kernel on this CPU")
@pytest.mark.parametrize(("alg", "kernel"), accelerated())
@given(
    words=st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8),
    nblocks=st.integers(0, 40),
    offset=st.integers(0, 15),
    seed=st.binary(min_size=16, max_size=16),
)
def test_kernel_matches_portable(
    alg: str, kernel: str, words: list[int], nblocks: int, offset: int, seed: bytes
) -> None:
    data = (hashlib.sha512(seed).digest() * (nblocks + 1))[: offset + 64 * nblocks]
    expected = run_blocks(alg, "portable", words, data, offset)
    assert run_blocks(alg, kernel, words, data, offset) == expected


@pytest.mark.parametrize(("alg", "kernel"), [(a, k) for a in ALG_NAMES for k in available(a)])
def test_every_kernel_hashes_like_hashlib(alg: str, kernel: str, restore_active: None) -> None:
    assert lib.kd_set_kernel(ALGORITHMS[alg], kernel.encode()) == lib.KD_OK
    assert ffi.string(lib.kd_kernel_name(ALGORITHMS[alg])).decode() == kernel
    data = os.urandom(64 * 257 + 33)
    for cut in (0, 1, 63, 64, 65, 4096, len(data)):
        assert native_digest(alg, data[:cut]) == hashlib.new(alg, data[:cut]).digest()


@pytest.mark.parametrize(("alg", "kernel"), accelerated())
def test_kernel_block_counts_offsets_and_states(alg: str, kernel: str) -> None:
    """Every block count 0..9 and runs past the kernels' pairing and unrolling
    (odd and even), unaligned input, the IV and random start states."""
    rng = random.Random(f"{alg}/{kernel}")
    for nblocks in (*range(10), 15, 16, 17, 31, 32, 33, 63, 64, 65, 128, 129, 1001):
        for offset in (0, 1, 3, 4, 8, 13):
            data = rng.randbytes(offset + 64 * nblocks)
            for words in (list(iv(alg)), [rng.getrandbits(32) for _ in range(8)]):
                expected = run_blocks(alg, "portable", words, data, offset)
                assert run_blocks(alg, kernel, words, data, offset) == expected, (nblocks, offset)


@pytest.mark.parametrize(("alg", "kernel"), [(a, k) for a in ALG_NAMES for k in available(a)])
def test_every_kernel_random_lengths_unaligned(alg: str, kernel: str, restore_active: None) -> None:
    """Random lengths at random misalignments, fed in random pieces, vs hashlib."""
    assert lib.kd_set_kernel(ALGORITHMS[alg], kernel.encode()) == lib.KD_OK
    rng = random.Random(f"lengths/{alg}/{kernel}")
    size = hashlib.new(alg).digest_size
    for _ in range(60):
        offset = rng.randrange(16)
        n = rng.choice((rng.randrange(200), rng.randrange(64 * 40), rng.randrange(64 * 300)))
        raw = rng.randbytes(offset + n)
        buf = ffi.from_buffer(raw)
        ctx = ffi.new("kd_hash_ctx *")
        assert lib.kd_hash_init(ctx, ALGORITHMS[alg]) == lib.KD_OK
        pos = offset
        while pos < offset + n:
            step = min(rng.choice((1, 63, 64, 65, 127, 128, 1000, 4096)), offset + n - pos)
            lib.kd_hash_update(ctx, buf + pos, step)
            pos += step
        out = ffi.new("uint8_t[32]")
        lib.kd_hash_digest(ctx, out)
        assert bytes(out)[:size] == hashlib.new(alg, raw[offset:]).digest(), (offset, n)


@pytest.mark.parametrize("alg", ALG_NAMES)
def test_kernel_availability_and_unknown_names(alg: str) -> None:
    a = ALGORITHMS[alg]
    assert lib.kd_kernel_available(a, b"portable") == 1
    assert lib.kd_kernel_available(a, b"no-such-kernel") == 0
    assert lib.kd_kernel_available(a, b"") == 0
    state = ffi.new("uint32_t[8]")
    assert lib.kd_blocks_with(a, b"no-such-kernel", state, ffi.NULL, 0) == lib.KD_ENOKERNEL
    assert lib.kd_set_kernel(a, b"no-such-kernel") == lib.KD_ENOKERNEL
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        assert lib.kd_kernel_available(a, b"armv8") == 0
    if machine in ("aarch64", "arm64"):
        assert lib.kd_kernel_available(a, b"sha-ni") == 0
        assert lib.kd_kernel_available(a, b"avx2") == 0


def test_availability_follows_cpu_flags() -> None:
    flags = cpu_flags()
    if platform.machine().lower() not in ("x86_64", "amd64") or not flags:
        pytest.skip("x86-64 Linux only")
    has_shani = "sha_ni" in flags
    assert lib.kd_kernel_available(lib.KD_ALG_SHA256, b"sha-ni") == int(has_shani)
    assert lib.kd_kernel_available(lib.KD_ALG_SHA1, b"sha-ni") == int(has_shani)
    has_avx2 = {"avx2", "bmi1", "bmi2"} <= flags
    assert lib.kd_kernel_available(lib.KD_ALG_SHA256, b"avx2") == int(has_avx2)
    assert lib.kd_kernel_available(lib.KD_ALG_SHA1, b"avx2") == int(has_avx2)


def test_default_choice_is_the_best_available() -> None:
    if os.environ.get("KOODRIVE_FAST_KERNEL", "auto") not in ("", "auto"):
        pytest.skip("a kernel is forced for this run")
    for alg in ALG_NAMES:
        name = ffi.string(lib.kd_kernel_name(ALGORITHMS[alg])).decode()
        assert name == available(alg)[0]


# ------------------------------------------------------- forced through env

PROBE = (
    "import hashlib\n"
    "from koodrive_fast._native import ffi, lib\n"
    "c = ffi.new('kd_hash_ctx *'); o = ffi.new('uint8_t[32]')\n"
    "for a, n in ((lib.KD_ALG_SHA256, 'sha256'), (lib.KD_ALG_SHA1, 'sha1')):\n"
    "    lib.kd_hash_init(c, a); d = bytes(range(256)) * 40\n"
    "    lib.kd_hash_update(c, d, len(d)); lib.kd_hash_digest(c, o)\n"
    "    ok = bytes(o)[:hashlib.new(n).digest_size] == hashlib.new(n, d).digest()\n"
    "    print(n, ffi.string(lib.kd_kernel_name(a)).decode(), ok)\n"
)


def run_forced(kernel: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KOODRIVE_FAST_KERNEL=kernel)
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("kernel", sorted({k for a in ALG_NAMES for k in available(a)}))
def test_env_var_forces_kernel(kernel: str) -> None:
    proc = run_forced(kernel)
    assert proc.returncode == 0, proc.stderr
    lines = dict((ln.split()[0], ln.split()[1:]) for ln in proc.stdout.splitlines())
    for alg in ALG_NAMES:
        expected = kernel if kernel in available(alg) else "portable"
        assert lines[alg] == [expected, "True"]


def test_env_var_unknown_kernel_fails_to_initialise() -> None:
    proc = run_forced("no-such-kernel")
    assert proc.returncode != 0
    assert "no-such-kernel" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("koodrive_fast._exceptions.KernelUnavailableError:")
    usable = sorted({k for a in ALG_NAMES for k in available(a)})
    assert all(name in last for name in usable), last


def test_cli_with_unknown_kernel_is_one_line_naming_usable_kernels(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"x" * 100)
    env = dict(os.environ, KOODRIVE_FAST_KERNEL="bogus")
    proc = subprocess.run([sys.executable, "-m", "koodrive_fast", "hash", str(file)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("koodrive-fast: error: KOODRIVE_FAST_KERNEL='bogus'")
    usable = sorted({k for a in ALG_NAMES for k in available(a)})
    assert all(name in proc.stderr for name in usable)


def test_env_var_auto_is_the_default() -> None:
    proc = run_forced("auto")
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        alg, name, ok = line.split()
        assert name == available(alg)[0] and ok == "True"


@pytest.mark.parametrize("alg", ALG_NAMES)
def test_update_with_no_bytes_and_null_data(alg: str) -> None:
    """kd_hash_update(ctx, NULL, 0) is a no-op, also with a partial block pending.

    The old code passed NULL to memcpy (size 0) with bytes pending: undefined
    behaviour that the digest never showed; CI's sanitizer pass (UBSan,
    nonnull-attribute) aborts on it."""
    data = bytes(range(200))
    for pending in (0, 1, 5, 63, 64, 65, 127):
        ctx = ffi.new("kd_hash_ctx *")
        assert lib.kd_hash_init(ctx, ALGORITHMS[alg]) == lib.KD_OK
        lib.kd_hash_update(ctx, data[:pending], pending)
        assert ctx.buf_len == pending % 64
        lib.kd_hash_update(ctx, ffi.NULL, 0)
        assert ctx.buf_len == pending % 64 and ctx.length == pending
        lib.kd_hash_update(ctx, data[pending:], len(data) - pending)
        out = ffi.new("uint8_t[32]")
        lib.kd_hash_digest(ctx, out)
        assert bytes(out)[: hashlib.new(alg).digest_size] == hashlib.new(alg, data).digest()


# -------------------------------------------------------------- finalize


@pytest.mark.parametrize("alg", ALG_NAMES)
@given(data=st.binary(max_size=700))
def test_finalize_matches_hashlib(alg: str, data: bytes) -> None:
    head = len(data) - len(data) % 64
    ctx = ffi.new("kd_hash_ctx *")
    lib.kd_hash_init(ctx, ALGORITHMS[alg])
    lib.kd_hash_update(ctx, data[:head], head)
    assert ctx.buf_len == 0
    out = ffi.new("uint8_t[32]")
    tail = data[head:]
    assert lib.kd_finalize(ALGORITHMS[alg], ctx.h, len(data), tail, len(tail), out) == 0
    assert bytes(out)[: hashlib.new(alg).digest_size] == hashlib.new(alg, data).digest()


def test_finalize_rejects_bad_arguments() -> None:
    words = ffi.new("uint32_t[8]")
    out = ffi.new("uint8_t[32]")
    tail = b"x" * 64
    sha = lib.KD_ALG_SHA256
    assert lib.kd_finalize(99, words, 0, tail, 0, out) == lib.KD_EINVAL
    assert lib.kd_finalize(sha, words, 128, tail, 64, out) == lib.KD_EINVAL  # tail >= 64
    assert lib.kd_finalize(sha, words, 100, tail, 5, out) == lib.KD_EINVAL  # 95 not aligned
    assert lib.kd_finalize(sha, words, 3, tail, 5, out) == lib.KD_EINVAL  # tail > total
    assert lib.kd_finalize(sha, words, 69, tail, 5, out) == lib.KD_OK


@pytest.mark.parametrize("alg", ALG_NAMES)
def test_length_past_2_pow_32_bits(alg: str) -> None:
    """A resumed state at 2^29 bytes: the bit length needs the high word."""
    length = (1 << 29) + 64 * 3
    words = [0x01234567 * (i + 1) & 0xFFFFFFFF for i in range(8)]
    ctx = ffi.new("kd_hash_ctx *")
    assert lib.kd_hash_set_state(ctx, ALGORITHMS[alg], words, length) == lib.KD_OK
    lib.kd_hash_update(ctx, b"tail", 4)
    out = ffi.new("uint8_t[32]")
    lib.kd_hash_digest(ctx, out)
    # Same computation by hand: pad with the 64-bit big-endian bit length.
    bits = (length + 4) * 8
    block = b"tail" + b"\x80" + b"\x00" * (64 - 5 - 8) + bits.to_bytes(8, "big")
    expected = run_blocks(alg, "portable", words, block)
    size = hashlib.new(alg).digest_size
    assert bytes(out)[:size] == b"".join(w.to_bytes(4, "big") for w in expected)[:size]
    assert (bits >> 32) >= 1


# ------------------------------------------------- AArch64 under qemu-user

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")


def test_armv8_kernels_under_qemu(tmp_path: Path) -> None:
    """Cross-build the core for AArch64 and run csrc/tests/armv8_harness.c.

    Skipped without the tools, unless KOODRIVE_REQUIRE_ARMV8=1 (CI) makes that a failure."""
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if not shutil.which(t)]
    if missing:
        message = "needs " + " and ".join(missing)
        if os.environ.get("KOODRIVE_REQUIRE_ARMV8") == "1":
            pytest.fail(message + " (KOODRIVE_REQUIRE_ARMV8=1)")
        pytest.skip(message)
    exe = tmp_path / "harness"
    env = {k: v for k, v in os.environ.items() if k not in ("KOODRIVE_FAST_KERNEL", "LD_PRELOAD")}
    sources = sorted(
        os.path.join(CSRC, n) for n in os.listdir(CSRC) if n.startswith("kd_") and n.endswith(".c")
    )
    build = subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-I", CSRC,
         os.path.join(CSRC, "tests", "armv8_harness.c"), *sources, "-lpthread", "-o", str(exe)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-cpu", "max", str(exe)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sha256=armv8 sha1=armv8" in run.stdout
    assert run.stdout.count(", 0 mismatches") == 2
