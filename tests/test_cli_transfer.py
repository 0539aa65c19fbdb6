"""Transfer knobs and machine-readable output at the command line, against the local server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from koodrive_fast._cli import main as cli_main
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, download, make_file


def _args(srv: LocalServer, *extra: str) -> list[str]:
    return ["--endpoint", srv.base_url, "--token", srv.token, "--user-id", srv.user_id,
            "--container-id", CONTAINER, *extra]


def test_jsonl_progress_and_json_summary_hold_no_secret(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_file(tmp_path, 3000, seed=1)
    assert cli_main(["upload", str(path), *_args(srv, "--progress", "jsonl", "--json",
                                               "--checkpoint-dir", str(tmp_path / "cp"))]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    events, summary = records[:-1], records[-1]
    assert events and all(e["event"] == "progress" for e in events)
    assert events[-1]["phase"] == "done" and events[-1]["uploaded"] == 3000
    assert summary["size"] == 3000 and summary["bytesResumed"] == 0
    assert srv.token not in out + err


def test_progress_is_log_lines_when_not_a_terminal(srv: LocalServer, tmp_path: Path) -> None:
    path = make_file(tmp_path, 5000, seed=2)
    run = subprocess.run(
        [sys.executable, "-m", "koodrive_fast._cli", "--log-level", "info", "--log-file",
         str(tmp_path / "kd.log"), "upload", str(path), *_args(srv, "--checkpoint-dir", str(tmp_path / "cp"))],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "uploaded" in line and "of" in line]
    assert lines and all(line.startswith("koodrive-fast: ") for line in lines)
    assert "\r" not in run.stderr and "\x1b" not in run.stderr
    assert srv.token not in run.stderr + run.stdout + (tmp_path / "kd.log").read_text()


def test_transfer_flags_reach_the_engine(srv: LocalServer, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = make_file(tmp_path, 4000, seed=3)
    srv.faults.fail_puts(5, status=503)
    # --retries 1: one retry only, the upload fails (exit 1) instead of riding out 5 failures
    assert cli_main(["upload", str(path), *_args(srv, "--retries", "1", "--checkpoint-dir",
                                               str(tmp_path / "cp"), "--progress", "none")]) == 1
    srv.faults.clear()
    capsys.readouterr()
    assert cli_main(["upload", str(path), *_args(srv, "--bwlimit", "10MB", "--auto-rename", "2",
                                               "--timeout", "30", "--json", "--progress", "none")]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    with srv.client() as client:
        assert download(client, result["fileId"]) == path.read_bytes()


@pytest.mark.parametrize("flag, value", [("--bwlimit", "fast"), ("--retries", "-1"),
                                         ("--timeout", "0"), ("--auto-rename", "7")])
def test_bad_transfer_flags_are_one_line_usage_errors(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    path = make_file(tmp_path, 10)
    calls = dict(srv.stats.api_calls)
    assert cli_main(["upload", str(path), *_args(srv, flag, value)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("koodrive-fast: error:")
    assert srv.stats.api_calls == calls
