"""Build one of csrc/tests/*_harness.c with the whole C core under ThreadSanitizer and run it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent.parent / "csrc"

needs_gcc = pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc (with its ThreadSanitizer runtime)")


def run_tsan_harness(harness: str, tmp_path: Path) -> str:
    """Compile ``csrc/tests/<harness>`` with -fsanitize=thread, run it, and return its
    stdout; fails the test on a build error, any ThreadSanitizer report or a non-zero exit."""
    exe = tmp_path / Path(harness).stem
    sources = sorted(str(p) for p in CSRC.glob("kd_*.c"))
    # no LD_PRELOAD: CI's sanitizer pass preloads AddressSanitizer, which cannot share a process
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "KOODRIVE_FAST_KERNEL")}
    env["TSAN_OPTIONS"] = "halt_on_error=1 exitcode=66"
    build = subprocess.run(
        ["gcc", "-fsanitize=thread", "-O1", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
         "-I", str(CSRC), str(CSRC / "tests" / harness), *sources, "-lpthread", "-o", str(exe)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert "ThreadSanitizer" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout
