"""Sync benchmark: many small files, a few big ones, and an unchanged re-sync.

    python3 benchmarks/bench_sync.py [--small 2000] [--big 8] [--big-size 256MiB]

Against the local server in a child process (bodies verified, then dropped):

* ``small``: ``--small`` files of 4 KiB–1 MiB: ``sync`` (files in flight on one
  TransferManager) vs a loop of ``Client.upload`` calls — files per second;
* ``big``: ``--big`` files of ``--big-size``: ``sync`` vs one ``Client.upload``
  after another — wall time;
* ``resync``: the unchanged small tree synced again — wall time against the
  first sync, bytes hashed (target 0), and API calls per unchanged file.

Targets (issue 10): small ≥ 5× files/s; big ≤ 0.6× wall; re-sync ≥ 20× faster
with 0 bytes hashed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import CONTAINER, TOKEN, start_server, stop_server, warm, write_file  # noqa: E402


def _small_tree(root: Path, count: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        folder = root / f"d{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(4 << 10, 1 << 20)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(size))
        total += size
    old = time.time() - 3600  # outside the snapshot's racy window (ctime is now, see below)
    for path in root.rglob("*.bin"):
        os.utime(path, (old, old))
    return total


def main() -> int:
    import httpx

    from koodrive_fast import BearerToken, Client, UploadOptions, parse_size, sync
    from koodrive_fast._snapshot import Snapshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--big", type=int, default=8)
    parser.add_argument("--big-size", default="256MiB")
    parser.add_argument("--files", type=int, default=16, help="files in flight for sync")
    args = parser.parse_args()
    big_size = parse_size(args.big_size)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kd-bench-sync-") as tmp:
        work = Path(tmp)
        small_bytes = _small_tree(work / "small", args.small)
        for i in range(args.big):
            (work / "big").mkdir(exist_ok=True)
            write_file(work / "big" / f"b{i}.bin", big_size)
        server, endpoint, user_id = start_server(work / "server")

        class Counting(httpx.BaseTransport):
            """Counts API requests (not part PUTs) through the client's transport."""

            def __init__(self) -> None:
                self.inner = httpx.HTTPTransport()
                self.api = 0

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                if "/koodrive/ose/" in request.url.path:
                    self.api += 1
                return self.inner.handle_request(request)

            def close(self) -> None:
                self.inner.close()

        try:
            counting = Counting()
            opts = UploadOptions(checkpoint_dir=work / "state", resume=True)
            with Client(endpoint, BearerToken(TOKEN, user_id), transport=counting) as client:
                # -- small files: a loop of Client.upload vs sync
                files = sorted((work / "small").rglob("*.bin"))
                started = time.perf_counter()
                for path in files:
                    client.upload(path, container_id=CONTAINER, options=opts.replace(resume=False))
                loop_s = time.perf_counter() - started
                with Snapshot(work / "snap.sqlite3", racy_window_ns=0) as snap:
                    started = time.perf_counter()
                    first = sync(client, work / "small", "/small", container_id=CONTAINER,
                                 options=opts, files=args.files, snapshot=snap)
                    sync_s = time.perf_counter() - started
                    assert first.ok, first.failed[:3]
                    before = counting.api
                    started = time.perf_counter()
                    again = sync(client, work / "small", "/small", container_id=CONTAINER,
                                 options=opts, files=args.files, snapshot=snap)
                    resync_s = time.perf_counter() - started
                    resync_calls = counting.api - before
                assert again.counts == {"skipped": args.small}, again.counts
                rows.append(("small: loop of Client.upload", f"{args.small / loop_s:.0f} files/s ({loop_s:.1f} s)"))
                rows.append(("small: sync", f"{args.small / sync_s:.0f} files/s ({sync_s:.1f} s)"))
                rows.append(("small: sync / loop files-per-second", f"{loop_s / sync_s:.2f}× (target ≥ 5)"))
                rows.append(("re-sync unchanged", f"{resync_s:.2f} s, {sync_s / resync_s:.0f}× faster than the first sync "
                             f"(target ≥ 20), {again.bytes_hashed} bytes hashed, "
                             f"{resync_calls / args.small:.3f} API calls per file"))
                # -- big files
                if args.big:
                    bigs = sorted((work / "big").glob("*.bin"))
                    for path in bigs:
                        warm(path)
                    started = time.perf_counter()
                    for path in bigs:
                        client.upload(path, container_id=CONTAINER, options=opts.replace(resume=False, rapid=False))
                    seq_s = time.perf_counter() - started
                    for path in bigs:
                        warm(path)
                    with Snapshot(work / "snap-big.sqlite3", racy_window_ns=0) as snap:
                        started = time.perf_counter()
                        result = sync(client, work / "big", "/big", container_id=CONTAINER,
                                      options=opts.replace(rapid=False), files=args.big, snapshot=snap)
                        big_s = time.perf_counter() - started
                    assert result.ok
                    rows.append((f"big: {args.big} × {args.big_size} one after another", f"{seq_s:.1f} s"))
                    rows.append((f"big: sync ({args.big} in flight)", f"{big_s:.1f} s = {big_s / seq_s:.2f}× (target ≤ 0.6)"))
        finally:
            stop_server(server)
    print(f"\nsmall tree: {args.small} files, {small_bytes / 2**20:.0f} MiB; {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| what | figure |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
