"""The sdist holds every tracked file (and LICENSE); the metadata is SPDX and complete."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: tracked files an sdist does not need
NOT_SHIPPED = {".gitignore"}
#: files the sdist build adds
GENERATED_PREFIXES = ("PKG-INFO", "setup.cfg", "src/koodrive_fast.egg-info/")


def _tracked() -> set[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # tracked files, plus new ones not yet committed (but not ignored ones)
    done = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                           "--exclude-standard"], capture_output=True, text=True, timeout=60,
                          check=True)
    return {name for name in done.stdout.split("\n") if name and (ROOT / name).is_file()}


def test_sdist_matches_git_ls_files(tmp_path: Path) -> None:
    pytest.importorskip("build")
    tracked = _tracked()
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        shipped = {m.name.split("/", 1)[1] for m in members}
        pkg_info = tar.extractfile(next(m for m in members if m.name.endswith("/PKG-INFO")))
        assert pkg_info is not None
        metadata = pkg_info.read().decode()
    generated = {name for name in shipped if name.startswith(GENERATED_PREFIXES)}
    assert sorted(tracked - NOT_SHIPPED - shipped) == []  # nothing tracked is left out
    assert sorted(shipped - generated - tracked) == []  # nothing untracked slips in
    assert {"LICENSE", "benchmarks/RESULTS.md"} <= shipped
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata
    for minor in range(9, 14):
        assert f"Classifier: Programming Language :: Python :: 3.{minor}" in metadata
    assert "Requires-Dist: tomli>=1.1; python_version < \"3.11\"" in metadata


def test_license_file_is_mit() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "koodrive-fast developers" in text
