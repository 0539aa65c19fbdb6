"""Helpers shared by the benchmarks: test files, the local server in a child process, CPU time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (seconds), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def start_server(data_dir: Path, *, keep_bodies: bool = False,
                 extra: Optional[list[str]] = None) -> tuple[subprocess.Popen[str], str, str]:
    """``koodrive-fast serve`` in a child process; returns (process, endpoint, user id)."""
    cmd = [sys.executable, "-m", "koodrive_fast", "serve", "--port", "0", "--token", TOKEN,
           "--no-fsync", "--quiet", "--data-dir", str(data_dir), *(extra or [])]
    if not keep_bodies:
        cmd.append("--discard-bodies")
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
