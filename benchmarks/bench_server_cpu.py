"""CPU cost of the local storage node per GiB of verified part PUTs.

    python3 benchmarks/bench_server_cpu.py [--size 1GiB] [--part-size 8MiB] [--concurrency 8]
                                           [--keep-bodies] [--link-rate RATE] [--native-receivers N]
                                           [--repeat N] [--profile OUT.svg]

Starts ``koodrive-fast serve --no-fsync --discard-bodies --quiet`` in a child
process and a file of ``--size`` (written to a temporary directory and kept
in the page cache), then prints the server's CPU seconds (utime + stime from
``/proc/PID/stat``) per GiB for two runs:

* **part PUTs** -- the storage node alone: every part's URL is fetched first
  (``files/create`` + ``uploadUrl``, contexts from ``part_contexts``), then
  the server's CPU is read around the PUTs only (``--concurrency`` threads,
  one ``httpx`` connection each); ``files/complete`` afterwards checks the
  chain, so every byte counted was verified;
* **whole upload** -- :meth:`koodrive_fast.Client.upload` from start to end:
  the PUTs plus the API calls (create, uploadUrl batches, complete) that the
  same process serves.

The figure is CPU time, not wall time, so other load on the machine moves it
little; ``--repeat`` runs each several times and prints the median.
``--profile`` runs the server under ``py-spy record`` (must be installed).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import (  # noqa: E402
    CONTAINER, TOKEN, proc_cpu, start_server, stat_cpu, stop_server, storage_node_puts, write_file,
)

Run = tuple[float, float, dict[str, float]]


def _threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the event-loop (main) thread and of all other threads."""
    out = {"loop": 0.0, "workers": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        cpu = stat_cpu(task / "stat")
        if cpu == cpu:  # NaN: the thread ended meanwhile
            out["loop" if task.name == str(pid) else "workers"] += cpu
    return out


def measure(pid: int, action: Callable[[], None]) -> Run:
    """Server CPU seconds, wall seconds and per-thread CPU spent while ``action`` runs."""
    cpu0, wall0, threads0 = proc_cpu(pid), time.perf_counter(), _threads_cpu(pid)
    action()
    cpu, wall = proc_cpu(pid) - cpu0, time.perf_counter() - wall0
    return cpu, wall, {k: v - threads0.get(k, 0.0) for k, v in _threads_cpu(pid).items()}


def main() -> int:
    from koodrive_fast import UploadOptions
    from koodrive_fast._auth import BearerToken
    from koodrive_fast._client import Client
    from koodrive_fast._config import Limits
    from koodrive_fast._sizes import parse_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--part-size", default="8MiB")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep-bodies", action="store_true")
    parser.add_argument("--link-rate", default=None)
    parser.add_argument("--native-receivers", type=int, default=None,
                        help="the server's --native-receivers (0: every body through the event loop)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", metavar="OUT", default=None)
    args = parser.parse_args()
    size, part_size = parse_size(args.size), parse_size(args.part_size)
    gib = size / (1 << 30)
    results: dict[str, list[Run]] = {"part PUTs": [], "whole upload": []}
    extra = ["--link-rate", args.link_rate] if args.link_rate else []
    if args.native_receivers is not None:
        extra += ["--native-receivers", str(args.native_receivers)]
    wrapper = None
    if args.profile:
        fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
        wrapper = ["py-spy", "record", "--native", "--threads", "-r", "250", "-f", fmt, "-o", args.profile, "--"]
    with tempfile.TemporaryDirectory(prefix="kd-srvcpu-") as tmp:
        work = Path(tmp)
        source = work / "src.bin"
        write_file(source, size)
        server, endpoint, user_id = start_server(work / "server", keep_bodies=args.keep_bodies, extra=extra,
                                                 wrapper=wrapper)
        pid = server.pid
        try:
            if args.profile:  # the python child of py-spy
                pid = int(subprocess.check_output(["pgrep", "-P", str(server.pid)]).split()[0])
            options = UploadOptions(part_size=part_size, concurrency=args.concurrency, rapid=False,
                                    checkpoint_dir=work / "cp")
            for _ in range(args.repeat):
                put_all, complete = storage_node_puts(endpoint, user_id, source, part_size, args.concurrency)
                results["part PUTs"].append(measure(pid, put_all))
                complete()
                with Client(endpoint, BearerToken(TOKEN, user_id), limits=Limits()) as client:
                    results["whole upload"].append(measure(
                        pid, lambda: client.upload(source, container_id=CONTAINER, options=options)))
        finally:
            if args.profile:  # py-spy writes its output when its child stops
                os.kill(pid, signal.SIGTERM)
                server.wait(timeout=30)
            else:
                stop_server(server)
    print(f"{gib:.2f} GiB, part size {part_size}, concurrency {args.concurrency}, {args.repeat} run(s), "
          f"load {os.getloadavg()[0]:.1f}; server CPU-s per GiB (median; every run):")
    for name, runs in results.items():
        per_gib = [cpu / gib for cpu, _, _ in runs]
        middle = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"  {name:12s} {statistics.median(per_gib):.2f}  ({', '.join(f'{x:.2f}' for x in per_gib)}; "
              f"wall {middle[1]:.2f} s, event-loop thread {middle[2]['loop'] / gib:.2f}, "
              f"other threads {middle[2]['workers'] / gib:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
