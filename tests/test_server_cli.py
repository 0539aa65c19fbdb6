"""``koodrive-fast serve`` in a subprocess: prints URL/user/token, serves, stops on SIGINT."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_serve_command_round_trip(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "koodrive_fast._cli", "serve", "--port", "0", "--token", "tok-1",
         "--min-part-size", "64", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("KooDrive-compatible server on http://127.0.0.1:"), first
        base_url = first.split()[-1]
        lines = [proc.stdout.readline() for _ in range(4)]
        assert any("1505084218764547200" in line for line in lines)
        assert any("tok-1" in line for line in lines)
        headers = {"Authorization": "Bearer tok-1", "X-User-Id": "1505084218764547200",
                   "X-Date": dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")}
        r = httpx.post(f"{base_url}/koodrive/ose/v1/files/complete?secret=abc", json={"fileId": "x"}, headers=headers, timeout=10)
        assert r.json()["code"] == 13000401
        assert (tmp_path / "data" / "meta.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "/files/complete 400" in err
    assert "tok-1" not in err and "secret=abc" not in err


def test_serve_rejects_bad_min_part_size() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "koodrive_fast._cli", "serve", "--min-part-size", "100"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("koodrive-fast: error: --min-part-size")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
