"""Dask benchmark: 2 workers vs 1 with a per-worker bandwidth cap.

    python3 benchmarks/bench_dask.py [--files 16] [--file-size 128MiB] [--huge 2GiB] [--cap 50MB]

Against the local server in a child process (bodies verified, then dropped),
each worker process limited to ``--cap`` bytes/s (``UploadOptions.bwlimit``,
one token bucket per worker process: the stand-in for one host's link):

* ``tree``: ``sync`` of ``--files`` × ``--file-size`` on a ``LocalCluster`` of
  1 then 2 worker processes — wall time and the speed-up (target ≥ 1.8×);
* ``huge``: :func:`upload_on_dask` of one ``--huge`` file, parts PUT by 1 then
  2 workers (the driver hashes once, completes once) — target ≥ 1.7×.

Cluster start-up is not timed; each run uploads to a fresh folder with fresh
checkpoints and flash upload off, so every byte is sent.  Full size (the
defaults) needs ~4.5 GiB of temporary disk; a quick run:
``--files 16 --file-size 16MiB --huge 256MiB --cap 50MB``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import CONTAINER, TOKEN, start_server, stop_server, write_file  # noqa: E402


def main() -> int:
    import distributed

    from koodrive_fast import BearerToken, Client, UploadOptions, parse_size, sync
    from koodrive_fast._dask import upload_on_dask
    from koodrive_fast._snapshot import Snapshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--file-size", default="128MiB")
    parser.add_argument("--huge", default="2GiB")
    parser.add_argument("--cap", default="50MB", help="bytes/s per worker process")
    parser.add_argument("--concurrency", type=int, default=4, help="part senders per worker")
    args = parser.parse_args()
    file_size, huge, cap = parse_size(args.file_size), parse_size(args.huge), parse_size(args.cap)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kd-bench-dask-") as tmp:
        work = Path(tmp)
        (work / "tree").mkdir()
        for i in range(args.files):
            write_file(work / "tree" / f"f{i:03d}.bin", file_size)
        old = time.time() - 3600
        for path in (work / "tree").iterdir():
            os.utime(path, (old, old))
        write_file(work / "huge.bin", huge)
        server, endpoint, user_id = start_server(work / "server")
        timings: dict[tuple[str, int], float] = {}
        try:
            with Client(endpoint, BearerToken(TOKEN, user_id)) as client:
                for workers in (1, 2):
                    with distributed.LocalCluster(
                        n_workers=workers, threads_per_worker=2, processes=True,
                        dashboard_address=None, silence_logs=40,
                    ) as cluster, distributed.Client(cluster) as dask_client:
                        dask_client.wait_for_workers(workers, timeout=120)
                        opts = UploadOptions(bwlimit=cap, rapid=False, concurrency=args.concurrency,
                                             checkpoint_dir=work / f"state-{workers}")
                        with Snapshot(work / f"snap-{workers}.sqlite3", racy_window_ns=0) as snap:
                            started = time.perf_counter()
                            result = sync(client, work / "tree", f"/tree-{workers}", container_id=CONTAINER,
                                          options=opts, files=4, snapshot=snap, dask_client=dask_client)
                            timings["tree", workers] = time.perf_counter() - started
                        assert result.ok and result.counts == {"uploaded": args.files}, result.counts
                        folder = client.ensure_folder(f"/huge-{workers}", container_id=CONTAINER)
                        started = time.perf_counter()
                        one = upload_on_dask(dask_client, client, work / "huge.bin", container_id=CONTAINER,
                                             parent_folder=folder.id, options=opts, hosts=workers)
                        timings["huge", workers] = time.perf_counter() - started
                        assert one.bytes_sent >= huge and not one.rapid_upload
        finally:
            stop_server(server)
    tree_mib = args.files * file_size / 2**20
    for name, label, target in (("tree", f"{args.files} × {args.file_size}", 1.8),
                                ("huge", f"one {args.huge} file", 1.7)):
        one, two = timings[name, 1], timings[name, 2]
        size_mib = tree_mib if name == "tree" else huge / 2**20
        rows.append((f"{name}: {label}, 1 worker", f"{one:.2f} s ({size_mib / one:.0f} MiB/s)"))
        rows.append((f"{name}: {label}, 2 workers", f"{two:.2f} s ({size_mib / two:.0f} MiB/s)"))
        rows.append((f"{name}: speed-up", f"{one / two:.2f}× (target ≥ {target})"))
    print(f"\ncap {args.cap}/s per worker process, {args.concurrency} part senders per worker; "
          f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    print("| what | figure |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
