"""Upload benchmark: pipelined vs hash-then-upload vs upload-only vs hash-only.

    python3 benchmarks/bench_upload.py [--size 2GiB] [--part-size 8MiB] [--concurrency 8]

One run: writes a test file (kept in the page cache), starts the local server
in its own process so it does not share the client's GIL, then runs each mode
in a fresh child process and reports wall time, MB/s, client peak RSS
(``ru_maxrss`` of the child) and CPU time of client and server.  Modes:

* ``hash-only``       — ``part_contexts`` (one native scan), no network;
* ``upload-only``     — every context known from a checkpoint: no hashing;
* ``pipelined``       — ``upload_file(rapid=False)``: hashing and PUTs overlap;
* ``hash-then-upload``— whole-file hash first, then upload (the PDS SDK pattern);
* ``files-sequential`` — ``--files`` files of ``--file-size`` each, one ``Client.upload`` after another;
* ``files-manager``    — the same files through one ``TransferManager`` (all in flight at once,
  one pool of ``--concurrency`` senders); its peak RSS shows the memory ceiling holding.

The server runs ``koodrive-fast serve --no-fsync --discard-bodies``: it
verifies every part's hash chain and the whole-file SHA-256 but writes no
bodies (``--keep-bodies`` writes them), so the client, not the local disk, is
what is measured.

Targets (issue 4): pipelined ≤ 1.2 × max(hash-only, upload-only) and
≤ 0.7 × hash-then-upload; client peak RSS ≤ 150 MiB at concurrency 8.
Issue 7: files-manager / files-sequential wall ratio; files-manager RSS within
``TransferManager.memory_ceiling()`` plus the interpreter's own ~40 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import (  # noqa: E402
    CONTAINER, TOKEN, proc_cpu, start_server, stop_server, warm as _warm, write_file as _write_file,
)

MODES = ("hash-only", "upload-only", "pipelined", "hash-then-upload")
MANY_MODES = ("files-sequential", "files-manager")


def _child(args: argparse.Namespace) -> None:
    """Run one mode in this process and print one JSON line."""
    from koodrive_fast import FileIdentity, Limits, TransferManager, UploadOptions, part_contexts
    from koodrive_fast._auth import BearerToken
    from koodrive_fast._checkpoint import Checkpoint, CheckpointKey, CheckpointStore
    from koodrive_fast._client import Client
    from koodrive_fast._upload import _upload_hash_then_send, upload_file

    path = Path(args.file)
    size = path.stat().st_size
    cp_dir = Path(args.workdir) / f"cp-{args.child}"
    options = UploadOptions(
        checkpoint_dir=cp_dir, part_size=args.part_size, concurrency=args.concurrency,
        rapid=False, resume=args.child == "upload-only",
    )
    limits = Limits()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra: dict[str, Any] = {}
    with Client(args.endpoint, BearerToken(TOKEN, args.user_id), limits=limits) as client:
        common: dict[str, Any] = dict(
            container_id=CONTAINER, options=options, file_name=f"{args.child}.bin",
        )
        many = sorted(Path(args.workdir).glob("many-*.bin"))
        if args.child == "upload-only":
            fc = part_contexts(str(path), args.part_size)
            key = CheckpointKey.for_file(client.endpoint, args.user_id, str(path.resolve()),
                                         FileIdentity.of(path.stat()), args.part_size)
            contexts = {p.part_number: tuple(p.hash_ctx) for p in fc.parts if p.hash_ctx}
            CheckpointStore(cp_dir).save(Checkpoint(key=key, file_name=f"{args.child}.bin",
                                                    contexts=contexts, digest=fc.digest))
        cpu0 = time.process_time()
        started = time.perf_counter()
        if args.child == "hash-only":
            fc = part_contexts(str(path), args.part_size)
            digest = fc.digest
        elif args.child == "hash-then-upload":
            digest = _upload_hash_then_send(client, path, **common).sha256
        elif args.child == "files-sequential":
            digest = ",".join(upload_file(client, f, container_id=CONTAINER, options=options).sha256
                              for f in many)
            size = sum(f.stat().st_size for f in many)
        elif args.child == "files-manager":
            with TransferManager(client, options, workers=args.concurrency,
                                 max_files=len(many)) as manager:
                futures = [manager.upload(f, container_id=CONTAINER) for f in many]
                digest = ",".join(f.result().sha256 for f in futures)
                extra = {"ceiling_mib": manager.memory_ceiling(sum(
                    -(-f.stat().st_size // args.part_size) for f in many)) / 2**20}
            size = sum(f.stat().st_size for f in many)
        else:
            result = upload_file(client, path, **common)
            digest = result.sha256
            extra = {"bytes_hashed": result.bytes_hashed, "retries": result.retries}
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "mode": args.child, "seconds": seconds, "size": size, "digest": digest,
        "rss_kib": usage.ru_maxrss, "rss_before_kib": rss_before, "cpu": cpu, **extra,
    }))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2GiB")
    parser.add_argument("--part-size", default="8MiB")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES + MANY_MODES))
    parser.add_argument("--files", type=int, default=8, help="files for the files-* modes")
    parser.add_argument("--file-size", default="256MiB", help="size of each of those files")
    parser.add_argument(
        "--keep-bodies", action="store_true",
        help="the server writes part bodies to disk (default: it hashes and verifies them, "
             "then drops them, so its CPU goes to what a storage node must do)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--user-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from koodrive_fast import parse_size

    args.part_size = parse_size(args.part_size)
    if args.child:
        _child(args)
        return 0

    size = parse_size(args.size)
    workdir = Path(tempfile.mkdtemp(prefix="kd-bench-"))
    server = None
    try:
        source = workdir / "bench.bin"
        print(f"writing {size} bytes to {source} ...", file=sys.stderr)
        _write_file(source, size)
        _warm(source)
        if any(m in MANY_MODES for m in args.modes.split(",")):
            for i in range(args.files):
                _write_file(workdir / f"many-{i}.bin", parse_size(args.file_size))
        server, endpoint, user_id = start_server(workdir / "server", keep_bodies=args.keep_bodies)
        from koodrive_fast import backend

        print(f"server {endpoint} (pid {server.pid}); kernel {backend}; size {size}; part size "
              f"{args.part_size}; concurrency {args.concurrency}; {os.cpu_count()} CPUs",
              file=sys.stderr)
        rows = []
        for mode in args.modes.split(","):
            _warm(source)
            for extra_file in sorted(workdir.glob("many-*.bin")):
                _warm(extra_file)
            server_cpu0 = proc_cpu(server.pid)
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--file", str(source),
                 "--workdir", str(workdir), "--endpoint", endpoint, "--user-id", user_id,
                 "--part-size", str(args.part_size), "--concurrency", str(args.concurrency)],
                check=True, capture_output=True, text=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["server_cpu"] = proc_cpu(server.pid) - server_cpu0
            rows.append(row)
            print(f"  {mode}: {row['seconds']:.2f} s", file=sys.stderr)
            shutil.rmtree(workdir / "server" / "parts", ignore_errors=True)
        _report(rows, size, args)
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _report(rows: list[dict[str, Any]], size: int, args: argparse.Namespace) -> None:
    by_mode = {r["mode"]: r for r in rows}
    digests = {r["digest"] for r in rows if r["mode"] in MODES}
    print(f"\nsize {size / 2**30:.2f} GiB, part size {args.part_size / 2**20:.0f} MiB, "
          f"concurrency {args.concurrency}, digests agree: {len(digests) == 1}")
    print("| mode | wall s | MB/s | client peak RSS MiB | client CPU s | server CPU s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['seconds']:.2f} | {r['size'] / r['seconds'] / 1e6:.0f} | "
              f"{r['rss_kib'] / 1024:.0f} | {r['cpu']:.2f} | {r['server_cpu']:.2f} |")
    if all(m in by_mode for m in MODES):
        pipe = by_mode["pipelined"]["seconds"]
        bound = max(by_mode["hash-only"]["seconds"], by_mode["upload-only"]["seconds"])
        base = by_mode["hash-then-upload"]["seconds"]
        rss = by_mode["pipelined"]["rss_kib"] / 1024
        print(f"\npipelined / max(hash-only, upload-only) = {pipe / bound:.2f} (target ≤ 1.2)")
        print(f"pipelined / hash-then-upload = {pipe / base:.2f} (target ≤ 0.7)")
        print(f"pipelined client peak RSS = {rss:.0f} MiB (target ≤ 150)")
    if all(m in by_mode for m in MANY_MODES):
        seq, man = by_mode["files-sequential"], by_mode["files-manager"]
        print(f"files-manager / files-sequential wall = {man['seconds'] / seq['seconds']:.2f}")
        print(f"files-manager client peak RSS = {man['rss_kib'] / 1024:.0f} MiB "
              f"(engine buffers ceiling {man['ceiling_mib']:.0f} MiB + interpreter and httpx)")


if __name__ == "__main__":
    sys.exit(main())
