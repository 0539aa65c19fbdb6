"""Crash and resume: an upload killed with SIGKILL resumes without re-hashing
hashed parts and without re-sending stored parts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from _upload_helpers import options, upload as upload_file
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, assert_uploaded, make_file, puts_for

PS = 1024
PARTS = 24

_CHILD = r"""
import sys
from koodrive_fast import Limits, UploadOptions
from koodrive_fast._auth import BearerToken
from koodrive_fast._client import Client
base_url, token, user_id, path, cp_dir = sys.argv[1:6]
with Client(base_url, BearerToken(token, user_id), limits=Limits(min_part_size=64)) as client:
    client.upload(path, container_id=%r, options=UploadOptions(
        part_size=%d, concurrency=2, rapid=False, checkpoint_dir=cp_dir,
        checkpoint_interval=0, hash_window=4))
print("finished")
""" % (CONTAINER, PS)


@pytest.fixture()
def srv() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, fsync=False) as server:
        yield server


def _read_checkpoint(cp_dir: Path) -> dict | None:  # type: ignore[type-arg]
    files = list(cp_dir.glob("*.json"))
    if not files:
        return None
    try:
        return json.loads(files[0].read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def test_sigkill_mid_upload_then_resume(srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, PARTS * PS - 17, seed=2024)
    cp_dir = tmp_path / "cp"
    # 0.25 s per request: after 4 parts the child still needs >= 2.5 s, so a parent
    # descheduled on a throttled VM still catches it mid-upload
    srv.faults.latency(0.25)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, srv.base_url, srv.token, srv.user_id, str(path), str(cp_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            data = _read_checkpoint(cp_dir)
            if data is not None and len(data["done"]) >= 4:
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        else:
            pytest.fail("the child never stored 4 parts")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    srv.faults.clear()

    saved = _read_checkpoint(cp_dir)
    assert saved is not None
    done_before = set(saved["done"])
    contexts_before = len(saved["contexts"])  # parts 2..contexts_before+1 have contexts
    assert 4 <= len(done_before) < PARTS
    assert contexts_before < PARTS - 1, "the hash window kept hashing near the uploads"
    before = puts_for(srv, saved["fileId"])

    result = upload_file(
        srv.client(), path, container_id=CONTAINER, part_size=PS, concurrency=4, rapid=False,
        config=options(checkpoint_dir=cp_dir, checkpoint_interval=0),
    )
    assert result.resumed
    assert result.file_id == saved["fileId"]
    after = puts_for(srv, result.file_id)
    resent = {n for n in range(1, PARTS + 1) if after.get(n, 0) > before.get(n, 0)}
    assert resent == set(range(1, PARTS + 1)) - done_before
    assert result.parts_sent == PARTS - len(done_before)
    # hashing resumed at the start of the last part whose context was saved
    assert result.bytes_hashed == path.stat().st_size - contexts_before * PS
    assert result.bytes_hashed < path.stat().st_size
    with srv.client() as client:
        assert_uploaded(client, result, path)
    assert _read_checkpoint(cp_dir) is None


def test_resume_false_ignores_checkpoint(srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 6 * PS, seed=2025)
    cp_dir = tmp_path / "cp"
    cfg = options(checkpoint_dir=cp_dir, checkpoint_interval=0, max_attempts=1)
    srv.faults.fail_puts(1000)
    with srv.client() as client:
        with pytest.raises(Exception):
            upload_file(client, path, container_id=CONTAINER, part_size=PS, rapid=False,
                        config=cfg, concurrency=1)
        srv.faults.clear()
        assert _read_checkpoint(cp_dir) is not None
        result = upload_file(client, path, container_id=CONTAINER, part_size=PS, rapid=False,
                             config=cfg, resume=False)
        assert not result.resumed and result.bytes_hashed == 6 * PS
        assert_uploaded(client, result, path)


def test_file_modified_between_runs_makes_checkpoint_stale(
    srv: LocalServer, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 6 * PS, seed=2026)
    cp_dir = tmp_path / "cp"
    cfg = options(checkpoint_dir=cp_dir, checkpoint_interval=0, max_attempts=1)
    srv.faults.fail_puts(1000)
    with srv.client() as client:
        with pytest.raises(Exception):
            upload_file(client, path, container_id=CONTAINER, part_size=PS, rapid=False,
                        config=cfg, concurrency=1)
        srv.faults.clear()
        path.write_bytes(path.read_bytes()[::-1])  # new content, new mtime
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        result = upload_file(client, path, container_id=CONTAINER, part_size=PS, rapid=False,
                             config=cfg)
        assert not result.resumed
        assert_uploaded(client, result, path)
