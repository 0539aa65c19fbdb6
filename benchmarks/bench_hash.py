#!/usr/bin/env python3
"""Hash-core benchmark: prints one table from one run on this machine.

Rows (median of --repeats, GB/s = 1e9 bytes/s, ratio against the named peer):

* our sha256/sha1 ``update`` with 8 MiB buffers vs hashlib;
* every kernel available here, through ``kd_blocks_with`` (8 MiB per call),
  and sha-ni's pair form (two messages per call: bytes of both per second);
* OpenSSL without SHA-NI, i.e. hashlib in a subprocess with ``OPENSSL_ia32cap``
  masks (OpenSSL 3.0 reads "<CPUID.1 EDX:ECX>:<CPUID.7 EBX:ECX>", and
  ``~X`` clears the bits of X):

  - ``:~0x20000000`` clears CPUID.7:EBX bit 29 (SHA) -> the AVX2+BMI2 path;
  - ``~0x1000020000000000:~0x20000020`` also clears AVX2 (7:EBX bit 5), AVX
    (1:ECX bit 28 = bit 60) and SSSE3 (1:ECX bit 9 = bit 41) -> the integer
    path.  (An empty ``OPENSSL_ia32cap`` would clear everything too.)

* the one-pass scan of a page-cached file (``kd_scan_fd`` through cffi, and
  ``koodrive_fast.part_contexts`` when importable) vs hashlib over an mmap of
  the same file and vs ``openssl dgst``; the same with a busy pure-Python
  thread alongside; the cost of exporting a state at every 8 MiB boundary;
  ``koodrive-fast hash --json FILE`` vs ``openssl dgst -sha256`` (whole
  processes), when that CLI exists.

Usage: ``python3 benchmarks/bench_hash.py [--size 2GiB] [--repeats 5] [--quick]``.
The temporary file goes to /tmp (or --dir) and is deleted at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Optional

from koodrive_fast._native import ALGORITHMS, ffi, kernel_names, lib

MiB = 1 << 20
BUF = 8 * MiB
MASK_NO_SHA = ":~0x20000000"
MASK_INTEGER = "~0x1000020000000000:~0x20000020"



class Rate(NamedTuple):
    """GB/s over the repeats: the median (the figure) and the best one."""

    median: float
    best: float

    def __truediv__(self, other: object) -> Ratio:
        if not isinstance(other, Rate):
            return NotImplemented
        return Ratio(self.median / other.median, self.best / other.best)


class Ratio(NamedTuple):
    median: float
    best: float

    def __format__(self, spec: str) -> str:
        return f"{format(self.median, spec)} (best {format(self.best, spec)})"


Row = tuple[str, Optional[Rate], str]


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def median_rate(fn: Callable[[], object], nbytes: int, repeats: int, warmup: int = 1) -> Rate:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Rate(gbps(nbytes, statistics.median(times)), gbps(nbytes, min(times)))


# ------------------------------------------------------------ in-memory rows

HASHLIB_CHILD = r"""
import hashlib, os, statistics, sys, time
buf = os.urandom(int(sys.argv[2])); h = hashlib.new(sys.argv[1]); reps = int(sys.argv[3])
loops = int(sys.argv[4])
h.update(buf)
ts = []
for _ in range(reps):
    t0 = time.perf_counter()
    for _ in range(loops):
        h.update(buf)
    ts.append(time.perf_counter() - t0)
print(len(buf) * loops / statistics.median(ts) / 1e9, len(buf) * loops / min(ts) / 1e9)
"""


def hashlib_in_child(alg: str, mask: Optional[str], repeats: int, loops: int) -> Rate:
    env = dict(os.environ)
    env.pop("OPENSSL_ia32cap", None)
    if mask is not None:
        env["OPENSSL_ia32cap"] = mask
    out = subprocess.run(
        [sys.executable, "-c", HASHLIB_CHILD, alg, str(BUF), str(repeats), str(loops)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    median, best = out.stdout.split()
    return Rate(float(median), float(best))


def our_update_factory(alg: str) -> Callable[[bytes], Any]:
    """koodrive_fast.sha256/sha1 if the Python layer exists, else the C API."""
    try:
        import koodrive_fast

        obj = getattr(koodrive_fast, alg)()
        return obj.update  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        ctx = ffi.new("kd_hash_ctx *")
        lib.kd_hash_init(ctx, ALGORITHMS[alg])
        return lambda data: lib.kd_hash_update(ctx, data, len(data))


def memory_rows(repeats: int, loops: int) -> list[Row]:
    rows: list[Row] = []
    buf = os.urandom(BUF)
    cbuf = ffi.from_buffer(buf)
    nbytes = BUF * loops

    def looped(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(loops):
                fn()

        return run

    for alg in ("sha256", "sha1"):
        h = hashlib.new(alg)
        base = median_rate(looped(lambda: h.update(buf)), nbytes, repeats)
        rows.append((f"{alg}: hashlib.update, 8 MiB buffers", base, "1.000 (reference)"))
        upd = our_update_factory(alg)
        ours = median_rate(looped(lambda: upd(buf)), nbytes, repeats)
        rows.append((f"{alg}: koodrive_fast update, 8 MiB", ours, f"{ours / base:.3f} x hashlib"))
        state = ffi.new("uint32_t[8]")
        rates: dict[str, Rate] = {}
        for k in kernel_names:
            if not lib.kd_kernel_available(ALGORITHMS[alg], k.encode()):
                continue
            name = k.encode()
            rate = median_rate(
                looped(lambda: lib.kd_blocks_with(ALGORITHMS[alg], name, state, cbuf, BUF // 64)),
                nbytes,
                repeats,
            )
            rates[k] = rate
            rows.append((f"{alg}: kernel {k} (kd_blocks_with)", rate, f"{rate / base:.3f} x hashlib"))
        no_sha = hashlib_in_child(alg, MASK_NO_SHA, repeats, loops)
        integer = hashlib_in_child(alg, MASK_INTEGER, repeats, loops)
        rows.append((f"{alg}: OpenSSL, SHA masked ({MASK_NO_SHA})", no_sha, ""))
        rows.append((f"{alg}: OpenSSL, SHA+SIMD masked ({MASK_INTEGER})", integer, ""))
        if alg == "sha256" and "sha-ni" in rates:  # the pair form: two messages, 8 MiB each
            other = ffi.new("uint32_t[8]")
            second = ffi.from_buffer(os.urandom(BUF))
            pairs = median_rate(
                looped(lambda: lib.kd_sha256_pairs_with(b"sha-ni", state, cbuf, other, second, BUF // 64)),
                2 * nbytes,
                repeats,
            )
            rows.append((f"{alg}: kernel sha-ni pairs, two messages", pairs,
                         f"{pairs / rates['sha-ni']:.3f} x one message"))
        simd = [k for k in ("avx2", "ssse3") if k in rates]
        for k in simd:
            rows.append(
                (f"{alg}: kernel {k} vs OpenSSL SHA masked", None, f"{rates[k] / no_sha:.3f}")
            )
        rows.append(
            (
                f"{alg}: portable vs OpenSSL SHA+SIMD masked",
                None,
                f"{rates['portable'] / integer:.3f}",
            )
        )
    return rows


# -------------------------------------------------------------- file rows


@contextmanager
def temp_file(size: int, directory: str) -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="kd-bench-", suffix=".bin", dir=directory)
    try:
        chunk = os.urandom(64 * MiB)
        with os.fdopen(fd, "wb") as f:
            left = size
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
        yield path
    finally:
        os.unlink(path)


def warm_cache(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(64 * MiB):
            pass


def scan_fd(path: str, stride: int, alg: str = "sha256") -> bytes:
    size = os.path.getsize(path)
    scan = ffi.new("kd_scan *")
    lib.kd_hash_init(ffi.addressof(scan[0], "ctx"), ALGORITHMS[alg])
    nstates = max(1, (size - 1) // stride) if size else 1
    states = ffi.new("uint32_t[]", nstates * 8)
    scan.stride = stride
    scan.states = states
    scan.max_states = nstates
    with open(path, "rb") as f:
        rc = lib.kd_scan_fd(scan, f.fileno(), 0, size)
    if rc != lib.KD_OK:
        raise RuntimeError(f"kd_scan_fd failed: {rc}")
    out = ffi.new("uint8_t[32]")
    lib.kd_hash_digest(ffi.addressof(scan[0], "ctx"), out)
    return bytes(out)


def hashlib_mmap(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        for off in range(0, len(m), BUF):
            h.update(view[off : off + BUF])
        view.release()
    return h.digest()


def openssl_dgst(path: str) -> None:
    subprocess.run(["openssl", "dgst", "-sha256", path], check=True, capture_output=True)


def cli_available() -> bool:
    exe = shutil.which("koodrive-fast")
    if not exe:
        return False
    proc = subprocess.run([exe, "hash", "--help"], capture_output=True, timeout=60)
    return proc.returncode == 0


def cli_hash(path: str) -> None:
    subprocess.run(["koodrive-fast", "hash", "--json", path], check=True, capture_output=True)


@contextmanager
def busy_python_thread() -> Iterator[None]:
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def part_contexts_fn() -> Optional[Callable[[str], object]]:
    try:
        import koodrive_fast

        part_contexts = getattr(koodrive_fast, "part_contexts")
    except (ImportError, AttributeError):
        return None
    return lambda path: part_contexts(path, 8 * MiB)


def file_rows(size: int, repeats: int, directory: str) -> list[Row]:
    rows: list[Row] = []
    label = f"{size / 2**30:.3g} GiB" if size >= 2**30 else f"{size // MiB} MiB"
    with temp_file(size, directory) as path:
        warm_cache(path)
        expected = hashlib_mmap(path)
        if scan_fd(path, 8 * MiB) != expected:
            raise RuntimeError("kd_scan_fd digest differs from hashlib")
        base = median_rate(lambda: hashlib_mmap(path), size, repeats)
        rows.append((f"file {label}: hashlib over mmap, 8 MiB slices", base, "1.000 (reference)"))
        scan = median_rate(lambda: scan_fd(path, 8 * MiB), size, repeats)
        rows.append((f"file {label}: kd_scan_fd, state every 8 MiB", scan, f"{scan / base:.3f} x mmap"))
        pc = part_contexts_fn()
        pc_rate: Optional[Rate] = None
        if pc is not None:
            pc_rate = median_rate(lambda: pc(path), size, repeats)
            rows.append(
                (f"file {label}: part_contexts(8 MiB parts)", pc_rate, f"{pc_rate / base:.3f} x mmap")
            )
        huge = median_rate(lambda: scan_fd(path, 1 << 60), size, repeats)
        rows.append((f"file {label}: kd_scan_fd, no boundary", huge, ""))
        cost = huge / scan
        rows.append(
            (
                "  cost of a state every 8 MiB (time, median / best)",
                None,
                f"{(cost.median - 1) * 100:+.2f} % / {(cost.best - 1) * 100:+.2f} %",
            )
        )
        have_openssl = shutil.which("openssl") is not None
        if have_openssl:
            ossl = median_rate(lambda: openssl_dgst(path), size, repeats)
            rows.append((f"file {label}: openssl dgst -sha256 (process)", ossl, ""))
            rows.append(("  kd_scan_fd vs openssl dgst", None, f"{scan / ossl:.3f}"))
        with busy_python_thread():
            base_busy = median_rate(lambda: hashlib_mmap(path), size, repeats)
            scan_busy = median_rate(lambda: scan_fd(path, 8 * MiB), size, repeats)
            pc_busy = median_rate(lambda: pc(path), size, repeats) if pc is not None else None
        rows.append(
            (
                f"file {label}: hashlib mmap + busy Python thread",
                base_busy,
                f"{base_busy / base:.3f} x undisturbed",
            )
        )
        rows.append(
            (
                f"file {label}: kd_scan_fd + busy Python thread",
                scan_busy,
                f"{scan_busy / scan:.3f} x undisturbed",
            )
        )
        if pc_busy is not None and pc_rate is not None:
            rows.append(
                (
                    f"file {label}: part_contexts + busy Python thread",
                    pc_busy,
                    f"{pc_busy / pc_rate:.3f} x undisturbed",
                )
            )
        if have_openssl and cli_available():
            cli = median_rate(lambda: cli_hash(path), size, repeats)
            rows.append(
                (f"file {label}: koodrive-fast hash --json (process)", cli, f"{cli / ossl:.3f} x openssl dgst")
            )
        else:
            rows.append(("koodrive-fast hash --json", None, "skipped (CLI or openssl missing)"))
    if os.getloadavg()[0] > 1.5:
        rows.append(("load average at the end", None, f"{os.getloadavg()[0]:.2f} (shared machine)"))
    return rows


def print_table(rows: list[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'GB/s':>7}  {'best':>7}  ratio (of medians; of bests)")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 7}  {'-' * 36}")
    for what, rate, ratio in rows:
        shown = f"{rate.median:7.3f}  {rate.best:7.3f}" if rate is not None else " " * 16
        print(f"{what:<{width}}  {shown}  {ratio}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--size", default="2GiB", help="scan file size (default 2GiB)")
    p.add_argument("--repeats", type=int, default=5, help="repeats per row (median)")
    p.add_argument("--quick", action="store_true", help="256 MiB file, 3 repeats")
    p.add_argument("--dir", default="/tmp", help="directory for the temporary file")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    from koodrive_fast._sizes import parse_size

    size = 256 * MiB if args.quick else parse_size(args.size)
    repeats = 3 if args.quick else max(1, args.repeats)
    loops = 2 if args.quick else 8  # 8 MiB calls per timed sample
    import platform

    print(
        f"# bench_hash: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, {hashlib.sha256().name} from "
        f"{__import__('ssl').OPENSSL_VERSION}; active kernels: sha256="
        f"{ffi.string(lib.kd_kernel_name(lib.KD_ALG_SHA256)).decode()}, sha1="
        f"{ffi.string(lib.kd_kernel_name(lib.KD_ALG_SHA1)).decode()}; repeats={repeats}"
    )
    rows = memory_rows(repeats, loops)
    rows += file_rows(size, repeats, args.dir)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
