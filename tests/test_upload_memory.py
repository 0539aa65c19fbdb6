"""Client memory stays bounded whatever the part size: peak RSS of a 1 GiB
upload with 64 MiB parts at concurrency 8, measured in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, sparse_file

MiB = 1 << 20

_CHILD = r"""
import json, sys

def high_water_kib():
    # VmHWM belongs to this process's address space, which exec made new;
    # ru_maxrss would carry the forking parent's peak over exec on Linux.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")

from koodrive_fast import Limits, UploadOptions
from koodrive_fast._auth import BearerToken
from koodrive_fast._client import Client
base_url, token, user_id, path, cp_dir = sys.argv[1:6]
with Client(base_url, BearerToken(token, user_id), limits=Limits()) as client:
    before = high_water_kib()
    result = client.upload(path, container_id=%r, options=UploadOptions(
        part_size=64 << 20, concurrency=8, rapid=False, checkpoint_dir=cp_dir))
peak = high_water_kib()
print(json.dumps({"before_kib": before, "peak_kib": peak, "parts": result.parts,
                  "sha256": result.sha256}))
""" % (CONTAINER,)


@pytest.fixture()
def srv() -> Iterator[LocalServer]:
    with LocalServer(fsync=False) as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(660)  # above the child's own 600 s bound, which then reports
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_bounded_for_large_parts(srv: LocalServer, tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "sparse.bin", 1 << 30)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, srv.base_url, srv.token, srv.user_id, str(path),
         str(tmp_path / "cp")],
        capture_output=True, text=True, timeout=600, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["parts"] == 16
    # sha256 of 1 GiB of zeros
    assert report["sha256"] == "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
    print(f"memory: {report}")
    peak_mib = report["peak_kib"] / 1024
    growth_mib = (report["peak_kib"] - report["before_kib"]) / 1024
    assert peak_mib <= 150, report
    # the engine's own buffers: UploadOptions.memory_ceiling(8) ≈ 28 MiB; allow slack
    # for thread stacks, httpx and the allocator
    assert growth_mib <= 80, report
