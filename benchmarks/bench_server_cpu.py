"""CPU cost of the local storage node per GiB of verified part PUTs.

    python3 benchmarks/bench_server_cpu.py [--size 1GiB] [--part-size 8MiB] [--concurrency 8]
                                           [--keep-bodies] [--link-rate RATE] [--profile OUT.svg]

Starts ``koodrive-fast serve --no-fsync --discard-bodies --quiet`` in a child
process, uploads a file of ``--size`` (written to a temporary directory and
kept in the page cache) through :meth:`koodrive_fast.Client.upload`, and
prints the server's CPU seconds (utime + stime from ``/proc/PID/stat``)
spent during the upload, per GiB.  One run at a time: the figure is CPU time,
not wall time, so other load on the machine moves it little.
``--profile`` runs the server under ``py-spy record`` (must be installed).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("--profile", metavar="OUT", default=None)
    args = parser.parse_args()
    size, part_size = parse_size(args.size), parse_size(args.part_size)
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
            with Client(endpoint, BearerToken(TOKEN, user_id), limits=Limits()) as client:
                cpu0, wall0, threads0 = _proc_cpu(pid), time.perf_counter(), _threads_cpu(pid)
                client.upload(source, container_id="bench", options=options)
                cpu, wall = _proc_cpu(pid) - cpu0, time.perf_counter() - wall0
                threads = {k: v - threads0.get(k, 0.0) for k, v in _threads_cpu(pid).items()}
        finally:
            if args.profile:  # py-spy writes its output when its child stops
                os.kill(pid, signal.SIGTERM)
            server.terminate() if not args.profile else None
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    gib = size / (1 << 30)
    print(f"server CPU {cpu:.2f} s for {gib:.2f} GiB = {cpu / gib:.2f} CPU-s/GiB "
          f"(wall {wall:.2f} s, part size {part_size}, concurrency {args.concurrency}; event-loop thread "
          f"{threads['loop']:.2f} s, worker threads {threads['workers']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
