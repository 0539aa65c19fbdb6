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
  one pool of ``--concurrency`` senders); its peak RSS shows the memory ceiling holding;
* ``storage-node``     — the server alone: every URL fetched first, then only the part PUTs
  (``--concurrency`` connections), the server's CPU read around them (unshaped link only;
  issue 8's target: ≤ 0.8 CPU-s per GiB verified).

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
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import (  # noqa: E402
    CONTAINER, TOKEN, make_cold, proc_cpu, start_server, stop_server, storage_node_puts,
    warm as _warm, write_file as _write_file,
)

MODES = ("hash-only", "upload-only", "pipelined", "hash-then-upload")
MANY_MODES = ("files-sequential", "files-manager")
STORAGE_NODE = "storage-node"  # the server's part PUTs alone (unshaped link only)


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
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    print(json.dumps({
        "mode": args.child, "seconds": seconds, "size": size, "digest": digest,
        "rss_kib": usage.ru_maxrss, "rss_before_kib": rss_before, "cpu": cpu,
        "read_bytes": int(io.get("read_bytes", 0)), **extra,
    }))


def _cgroup(limit: int) -> Optional[Path]:
    """A cgroup-v1 memory group of ``limit`` bytes (page cache is charged to it), or None."""
    group = Path(f"/sys/fs/cgroup/memory/kd-bench-{os.getpid()}")
    try:
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(limit))
    except OSError as exc:
        print(f"no memory cgroup ({exc}); the cold run is not memory-bound", file=sys.stderr)
        return None
    return group


def _storage_node_child(args: argparse.Namespace) -> None:
    """The storage-node mode, in the child: the server's CPU around the part PUTs alone
    (URLs fetched before, complete after, which checks every byte counted)."""
    path = Path(args.file)
    put_all, complete = storage_node_puts(args.endpoint, args.user_id, path, args.part_size, args.concurrency)
    cpu0, server0, started = time.process_time(), proc_cpu(args.server_pid), time.perf_counter()
    put_all()
    seconds, server = time.perf_counter() - started, proc_cpu(args.server_pid) - server0
    cpu = time.process_time() - cpu0
    complete()
    print(json.dumps({"mode": STORAGE_NODE, "seconds": seconds, "size": path.stat().st_size,
                      "server_cpu_puts": server, "cpu": cpu,
                      "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def _run_mode(args: argparse.Namespace, mode: str, source: Path, workdir: Path, endpoint: str,
              user_id: str, server_pid: int, cold: bool, group: Optional[Path]) -> dict[str, Any]:
    if cold:
        make_cold(source)
    else:
        _warm(source)
        for extra_file in sorted(workdir.glob("many-*.bin")):
            _warm(extra_file)
    server_cpu0 = proc_cpu(server_pid)

    def enter_group() -> None:
        if group is not None:
            (group / "tasks").write_text(str(os.getpid()))

    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--file", str(source),
         "--workdir", str(workdir), "--endpoint", endpoint, "--user-id", user_id,
         "--part-size", str(args.part_size), "--concurrency", str(args.concurrency),
         "--server-pid", str(server_pid)],
        check=True, capture_output=True, text=True, preexec_fn=enter_group if group else None,
    )
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    measured_puts = row.pop("server_cpu_puts", None)  # storage-node: the child measured the PUTs alone
    row["server_cpu"] = proc_cpu(server_pid) - server_cpu0 if measured_puts is None else measured_puts
    shutil.rmtree(workdir / "server" / "parts", ignore_errors=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2GiB")
    parser.add_argument("--part-size", default="8MiB")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES + MANY_MODES + (STORAGE_NODE,)))
    parser.add_argument("--files", type=int, default=8, help="files for the files-* modes")
    parser.add_argument("--file-size", default="256MiB", help="size of each of those files")
    parser.add_argument("--link-rates", default="unshaped",
                        help="comma list: unshaped and/or server link rates, e.g. unshaped,1Gbit,2.5Gbit,5Gbit")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per mode at each rate (the table shows medians)")
    parser.add_argument("--cold", action="store_true",
                        help="also a cold-cache run (file dropped from the page cache before each mode)")
    parser.add_argument("--cgroup-mem", default="512MiB",
                        help="memory cgroup limit for the client in the cold run (page cache counts)")
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
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from koodrive_fast import parse_size

    args.part_size = parse_size(args.part_size)
    if args.child == STORAGE_NODE:
        _storage_node_child(args)
        return 0
    if args.child:
        _child(args)
        return 0

    size = parse_size(args.size)
    workdir = Path(tempfile.mkdtemp(prefix="kd-bench-"))
    modes = args.modes.split(",")
    group: Optional[Path] = None
    try:
        source = workdir / "bench.bin"
        print(f"writing {size} bytes to {source} ...", file=sys.stderr)
        _write_file(source, size)
        if any(m in MANY_MODES for m in modes):
            for i in range(args.files):
                _write_file(workdir / f"many-{i}.bin", parse_size(args.file_size))
        from koodrive_fast import backend

        print(f"kernel {backend}; size {size}; part size {args.part_size}; concurrency "
              f"{args.concurrency}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        for rate in args.link_rates.split(","):
            extra = [] if rate == "unshaped" else ["--link-rate", rate]
            server, endpoint, user_id = start_server(
                workdir / f"server-{rate}", keep_bodies=args.keep_bodies, extra=extra)
            try:
                rows = []
                for mode in modes:
                    if mode == STORAGE_NODE and rate != "unshaped":
                        continue  # link emulation reads bodies on the event loop: not the node's fast path
                    runs = [_run_mode(args, mode, source, workdir, endpoint, user_id, server.pid,
                                      False, None) for _ in range(args.repeat)]
                    runs.sort(key=lambda r: r["seconds"])
                    row = dict(runs[len(runs) // 2])
                    row["all_seconds"] = [round(r["seconds"], 2) for r in runs]
                    rows.append(row)
                    print(f"  [{rate}] {mode}: {row['all_seconds']} s", file=sys.stderr)
                _report(rows, size, args, rate)
                if args.cold and rate == args.link_rates.split(",")[0]:
                    group = _cgroup(parse_size(args.cgroup_mem))
                    cold_rows = [_run_mode(args, mode, source, workdir, endpoint, user_id, server.pid,
                                           True, group)
                                 for mode in ("pipelined", "hash-then-upload") if mode in modes]
                    _report_cold(cold_rows, size, args)
            finally:
                stop_server(server)
    finally:
        if group is not None:
            try:
                group.rmdir()
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _report_cold(rows: list[dict[str, Any]], size: int, args: argparse.Namespace) -> None:
    print(f"\ncold cache, client in a {args.cgroup_mem} memory cgroup, file {size / 2**30:.2f} GiB")
    print("| mode | wall s | read from disk GiB | × file size |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['seconds']:.2f} | {r['read_bytes'] / 2**30:.2f} | "
              f"{r['read_bytes'] / size:.2f} |")


def _report(rows: list[dict[str, Any]], size: int, args: argparse.Namespace, rate: str) -> None:
    by_mode = {r["mode"]: r for r in rows}
    digests = {r["digest"] for r in rows if r["mode"] in MODES}
    agree = f", digests agree: {len(digests) == 1}" if digests else ""
    print(f"\nlink {rate}: size {size / 2**30:.2f} GiB, part size {args.part_size / 2**20:.0f} MiB, "
          f"concurrency {args.concurrency}{agree}")
    print("| mode | wall s (median) | runs | MB/s | client peak RSS MiB | client CPU s/GiB | server CPU s/GiB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        gib = r["size"] / 2**30
        print(f"| {r['mode']} | {r['seconds']:.2f} | {r['all_seconds']} | {r['size'] / r['seconds'] / 1e6:.0f} | "
              f"{r['rss_kib'] / 1024:.0f} | {r['cpu'] / gib:.2f} | {r['server_cpu'] / gib:.2f} |")
    if all(m in by_mode for m in MODES):
        pipe = by_mode["pipelined"]["seconds"]
        bound = max(by_mode["hash-only"]["seconds"], by_mode["upload-only"]["seconds"])
        base = by_mode["hash-then-upload"]["seconds"]
        rss = by_mode["pipelined"]["rss_kib"] / 1024
        print(f"\npipelined / max(hash-only, upload-only) = {pipe / bound:.2f} "
              "(targets: ≤ 1.05 at 2.5 Gbit/s)")
        print(f"pipelined / hash-then-upload = {pipe / base:.2f} "
              "(targets: ≤ 1.0 unshaped, ≤ 0.88 at 2.5 Gbit/s, ≤ 0.8 at 5 Gbit/s)")
        print(f"pipelined client peak RSS = {rss:.0f} MiB (target ≤ 150)")
    if STORAGE_NODE in by_mode:
        node = by_mode[STORAGE_NODE]
        print(f"storage node: {node['server_cpu'] / (node['size'] / 2**30):.2f} CPU-s per GiB verified "
              f"(part PUTs alone, median of {len(node['all_seconds'])}; target ≤ 0.8)")
    if all(m in by_mode for m in MANY_MODES):
        seq, man = by_mode["files-sequential"], by_mode["files-manager"]
        print(f"files-manager / files-sequential wall = {man['seconds'] / seq['seconds']:.2f}")
        print(f"files-manager client peak RSS = {man['rss_kib'] / 1024:.0f} MiB "
              f"(engine buffers ceiling {man['ceiling_mib']:.0f} MiB + interpreter and httpx)")


if __name__ == "__main__":
    sys.exit(main())
