"""Page-cache courtesy: how much of a big upload stays in the page cache.

    python3 benchmarks/bench_pagecache.py [--size 4GiB] [--part-size 8MiB]

The file is written, flushed and dropped from the cache (cold).  It is then
uploaded to the local server (a child process discarding bodies after
verifying them) twice: with ``UploadOptions(drop_page_cache=True)`` (the
default: each stored part's pages are released with ``POSIX_FADV_DONTNEED``)
and with ``drop_page_cache=False``.  A sampler polls ``fincore`` for the
file's resident pages; the table gives the peak and the final figure, and
the bytes the client read from disk (``/proc/self/io`` ``read_bytes``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import CONTAINER, TOKEN, make_cold, start_server, stop_server, write_file  # noqa: E402


def resident_bytes(path: Path) -> int:
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) if out else 0


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    from koodrive_fast import BearerToken, Client, UploadOptions, parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4GiB")
    parser.add_argument("--part-size", default="8MiB")
    args = parser.parse_args()
    size, part_size = parse_size(args.size), parse_size(args.part_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kd-pagecache-") as tmp:
        source = Path(tmp) / "big.bin"
        write_file(source, size)
        server, endpoint, user_id = start_server(Path(tmp) / "server")
        try:
            with Client(endpoint, BearerToken(TOKEN, user_id)) as client:
                for drop in (True, False):
                    make_cold(source)
                    peak = [0]
                    done = threading.Event()

                    def sample() -> None:
                        while not done.wait(0.25):
                            peak[0] = max(peak[0], resident_bytes(source))

                    sampler = threading.Thread(target=sample, daemon=True)
                    read0, started = read_bytes(), time.perf_counter()
                    sampler.start()
                    result = client.upload(source, container_id=CONTAINER, options=UploadOptions(
                        part_size=part_size, rapid=False, resume=False, drop_page_cache=drop))
                    done.set()
                    sampler.join()
                    rows.append((drop, time.perf_counter() - started, peak[0],
                                 resident_bytes(source), read_bytes() - read0, result.size))
        finally:
            stop_server(server)
    gib = 2**30
    print(f"\nfile {size / gib:.2f} GiB, part size {part_size >> 20} MiB, cold at start")
    print("| drop_page_cache | wall s | file pages cached, peak GiB | at the end GiB | read from disk GiB |")
    print("|---|---:|---:|---:|---:|")
    for drop, seconds, peak_res, end_res, disk, _ in rows:
        print(f"| {drop} | {seconds:.1f} | {peak_res / gib:.2f} | {end_res / gib:.2f} | {disk / gib:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
