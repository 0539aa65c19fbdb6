"""Helpers shared by the benchmarks: test files, the local server in a child process, CPU time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # the checkout's package (built in place by pip -e)
    sys.path.insert(0, str(ROOT / "src"))

TOKEN = "bench-token"
CONTAINER = "bench"


def write_file(path: Path, size: int) -> None:
    """Pseudo-random content, fast: one random MiB, varied per MiB."""
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as fh:
        written, index = 0, 0
        while written < size:
            block[:8] = index.to_bytes(8, "little")
            n = min(len(block), size - written)
            fh.write(memoryview(block)[:n])
            written += n
            index += 1


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(8 << 20)
        while fh.readinto(buf):
            pass


def make_cold(path: Path) -> None:
    """Drop the file's pages from the page cache (written back first)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def stat_cpu(stat: Path) -> float:
    """utime + stime (seconds) from a /proc ``stat`` file (a process's or a thread's); NaN if gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (seconds), from /proc."""
    return stat_cpu(Path(f"/proc/{pid}/stat"))


def start_server(data_dir: Path, *, keep_bodies: bool = False, extra: Optional[list[str]] = None,
                 wrapper: Optional[list[str]] = None) -> tuple[subprocess.Popen[str], str, str]:
    """``koodrive-fast serve`` in a child process (under ``wrapper``, e.g. a profiler);
    returns (process, endpoint, user id)."""
    cmd = [sys.executable, "-m", "koodrive_fast", "serve", "--port", "0", "--token", TOKEN,
           "--no-fsync", "--quiet", "--data-dir", str(data_dir), *(extra or [])]
    if not keep_bodies:
        cmd.append("--discard-bodies")
    cmd = [*(wrapper or []), *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=ROOT, env=env)
    assert server.stdout is not None
    endpoint = user_id = None
    for line in server.stdout:
        m = re.search(r"on (http://\S+)", line)
        if m:
            endpoint = m.group(1)
        m = re.search(r"user id:\s+(\S+)", line)
        if m:
            user_id = m.group(1)
        if endpoint and user_id:
            break
    if not (endpoint and user_id):
        server.kill()
        raise RuntimeError("the server did not start")
    return server, endpoint, user_id


def stop_server(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def storage_node_puts(endpoint: str, user_id: str, source: Path, part_size: int,
                      concurrency: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """The storage node alone: every part's URL fetched up front (create + uploadUrl,
    contexts from ``plan_with_contexts``).  Returns ``put_all`` (the part PUTs only,
    ``concurrency`` threads with one connection each) and ``complete`` (checks the
    chain and the digest, so every byte counted was verified)."""
    import httpx

    from koodrive_fast._auth import BearerToken
    from koodrive_fast._client import Client
    from koodrive_fast._config import Limits
    from koodrive_fast._planner import plan_with_contexts

    size = source.stat().st_size
    client = Client(endpoint, BearerToken(TOKEN, user_id), limits=Limits())
    plan, contexts = plan_with_contexts(source, part_size)
    created = client.create_file(file_name=f"puts-{time.monotonic_ns()}.bin", length=size,
                                 container_id=CONTAINER, multi_parts=plan.parts[:1])
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

    def put_all() -> None:
        threads = [threading.Thread(target=sender) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(errors[0])

    def complete() -> None:
        try:
            client.complete_file(created.file_id, sha256=contexts.digest)
        finally:
            client.close()

    return put_all, complete
