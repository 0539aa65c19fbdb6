"""Bandwidth limit: the rate an upload achieves under ``--bwlimit`` (real time).

    python3 benchmarks/bench_bwlimit.py [--rate 50MB] [--seconds 20]

Uploads a file of rate × seconds bytes to the local server (a child process,
bodies verified then dropped) with ``UploadOptions(bwlimit=rate)`` and reports
the achieved rate against the set one (target: within ±10 %).  A quarter
second's burst is part of the design, so the achieved rate is slightly above
the set rate for short runs: size / (size − rate/4) × rate at most.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import CONTAINER, TOKEN, start_server, stop_server, warm, write_file  # noqa: E402


def main() -> int:
    from koodrive_fast import BearerToken, Client, UploadOptions, parse_size
    from koodrive_fast._sizes import parse_rate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="50MB")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rate = parse_rate(args.rate)
    size = int(rate * args.seconds)
    with tempfile.TemporaryDirectory(prefix="kd-bwlimit-") as tmp:
        path = Path(tmp) / "f.bin"
        write_file(path, size)
        warm(path)
        server, endpoint, user_id = start_server(Path(tmp) / "server")
        try:
            with Client(endpoint, BearerToken(TOKEN, user_id)) as client:
                started = time.perf_counter()
                result = client.upload(path, container_id=CONTAINER, options=UploadOptions(
                    bwlimit=rate, rapid=False, resume=False, concurrency=args.concurrency))
                seconds = time.perf_counter() - started
        finally:
            stop_server(server)
    achieved = result.size / seconds
    print(f"set {rate / 1e6:.1f} MB/s, {size / 1e6:.0f} MB in {seconds:.2f} s: achieved "
          f"{achieved / 1e6:.2f} MB/s = {achieved / rate:.3f} × the limit (target 0.90–1.10; "
          f"load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
