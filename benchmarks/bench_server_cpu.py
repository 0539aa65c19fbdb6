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
import statistics
import threading
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

TOKEN = "bench-token"


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the event-loop (main) thread and of all other threads."""
    out = {"loop": 0.0, "workers": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out["loop" if task.name == str(pid) else "workers"] += cpu
    return out


def _put_parts(endpoint: str, user_id: str, source: Path, size: int, part_size: int,
               concurrency: int) -> tuple[Any, Any]:
    """Fetch every URL first, then PUT the parts; returns (client, callable doing the PUTs, completing)."""
    import httpx

    from koodrive_fast._auth import BearerToken
    from koodrive_fast._client import Client
    from koodrive_fast._config import Limits
    from koodrive_fast._planner import plan_with_contexts

    client = Client(endpoint, BearerToken(TOKEN, user_id), limits=Limits())
    plan, contexts = plan_with_contexts(source, part_size)
    created = client.create_file(file_name=f"puts-{time.monotonic_ns()}.bin", length=size, container_id="bench",
                                 multi_parts=plan.parts[:1])
    urls = {p.part_number: p.upload_url for p in created.multi_parts}
    rest = client.get_upload_urls(created.file_id, plan.parts[1:], file_size=size)
    urls.update({n: p.upload_url for n, p in rest.items()})
    todo = list(plan.parts)
    lock = threading.Lock()
    errors: list[str] = []

    def sender() -> None:
        with httpx.Client(timeout=120) as http, open(source, "rb") as fh:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    part = todo.pop()
                body = os.pread(fh.fileno(), part.part_size, part.part_offset or 0)
                answer = http.put(urls[part.part_number], content=body)
                if answer.status_code != 200:
                    with lock:
                        errors.append(f"part {part.part_number}: HTTP {answer.status_code} {answer.text[:200]}")

    def run() -> None:
        threads = [threading.Thread(target=sender) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(errors[0])

    def finish() -> None:
        client.complete_file(created.file_id, sha256=contexts.digest)  # verifies the chain
        client.close()

    return run, finish


def _measure(pid: int, action: Any) -> tuple[float, float, dict[str, float]]:
    cpu0, wall0, threads0 = _proc_cpu(pid), time.perf_counter(), _threads_cpu(pid)
    action()
    cpu, wall = _proc_cpu(pid) - cpu0, time.perf_counter() - wall0
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
    results: dict[str, list[tuple[float, float, dict[str, float]]]] = {"part PUTs": [], "whole upload": []}
    with tempfile.TemporaryDirectory(prefix="kd-srvcpu-") as tmp:
        work = Path(tmp)
        source = work / "src.bin"
        block = os.urandom(1 << 20)
        with open(source, "wb") as fh:
            for i in range(-(-size // len(block))):
                fh.write((i.to_bytes(8, "little") + block[8:])[: min(len(block), size - i * len(block))])
        cmd = [sys.executable, "-m", "koodrive_fast", "serve", "--port", "0", "--token", TOKEN,
               "--no-fsync", "--quiet", "--data-dir", str(work / "server")]
        if not args.keep_bodies:
            cmd.append("--discard-bodies")
        if args.link_rate:
            cmd += ["--link-rate", args.link_rate]
        if args.native_receivers is not None:
            cmd += ["--native-receivers", str(args.native_receivers)]
        if args.profile:
            fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
            cmd = ["py-spy", "record", "--native", "--threads", "-r", "250", "-f", fmt, "-o", args.profile, "--"] + cmd
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        try:
            assert server.stdout is not None
            endpoint = user_id = None
            deadline = time.monotonic() + 30
            for line in server.stdout:
                if m := re.search(r"on (http://\S+)", line):
                    endpoint = m.group(1)
                if m := re.search(r"user id:\s+(\S+)", line):
                    user_id = m.group(1)
                if (endpoint and user_id) or time.monotonic() > deadline:
                    break
            if not (endpoint and user_id):
                raise RuntimeError("the server did not start")
            pid = server.pid
            if args.profile:  # the python child of py-spy
                pid = int(subprocess.check_output(["pgrep", "-P", str(server.pid)]).split()[0])
            options = UploadOptions(part_size=part_size, concurrency=args.concurrency, rapid=False,
                                    checkpoint_dir=work / "cp")
            for _ in range(args.repeat):
                run, finish = _put_parts(endpoint, user_id, source, size, part_size, args.concurrency)
                results["part PUTs"].append(_measure(pid, run))
                finish()
                with Client(endpoint, BearerToken(TOKEN, user_id), limits=Limits()) as client:
                    results["whole upload"].append(_measure(
                        pid, lambda: client.upload(source, container_id="bench", options=options)))
        finally:
            if args.profile:  # py-spy writes its output when its child stops
                os.kill(pid, signal.SIGTERM)
            server.terminate() if not args.profile else None
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"{gib:.2f} GiB, part size {part_size}, concurrency {args.concurrency}, {args.repeat} run(s); "
          f"server CPU-s per GiB (median; every run):")
    for name, runs in results.items():
        per_gib = [cpu / gib for cpu, _, _ in runs]
        middle = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"  {name:12s} {statistics.median(per_gib):.2f}  ({', '.join(f'{x:.2f}' for x in per_gib)}; "
              f"wall {middle[1]:.2f} s, event-loop thread {middle[2]['loop'] / gib:.2f}, "
              f"other threads {middle[2]['workers'] / gib:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
