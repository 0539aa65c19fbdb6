"""Every former traceback case is one line, one prefix, the flag as typed, the right exit code."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from pathlib import Path

import pytest

from koodrive_fast._cli import main
from koodrive_fast._progress import ProgressEvent, TqdmProgress

PREFIX = "koodrive-fast: error: "


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(err: str) -> str:
    assert err.startswith(PREFIX), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err[len(PREFIX):].rstrip("\n")


@pytest.fixture()
def file_12mib(tmp_path: Path) -> Path:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x01" * (12 << 20))
    return path


def test_hash_huge_part_size_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                              file_12mib: Path) -> None:
    status, out, err = run_main(capsys, "hash", str(file_12mib), "--part-size", "20000000TiB")
    assert (status, out) == (2, "")
    assert one_line_error(err) == "--part-size: must be at most 5 GiB, got 20000000 TiB"


@pytest.mark.parametrize("part_size", ["64", "4MiB"])
def test_hash_refuses_part_sizes_upload_refuses(capsys: pytest.CaptureFixture[str],
                                                file_12mib: Path, part_size: str) -> None:
    status, out, err = run_main(capsys, "hash", str(file_12mib), "--part-size", part_size)
    assert (status, out) == (2, "")
    assert one_line_error(err).startswith("--part-size: must be at least 5 MiB")


def test_hash_one_part_below_the_minimum_is_a_valid_plan(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    status, out, _ = run_main(capsys, "hash", str(small), "--part-size", "4MiB", "--json")
    assert status == 0 and len(json.loads(out)["multiParts"]) == 1


def test_demo_bad_part_size_fails_before_writing_or_serving(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    status, out, err = run_main(capsys, "demo", "--part-size", "4MiB", "--no-progress")
    assert (status, out) == (2, "")  # nothing written, no server started
    assert one_line_error(err).startswith("--part-size: must be at least 5 MiB")
    assert list(scratch.iterdir()) == []


def test_demo_size_above_the_maximum(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the old code started writing
    status, out, err = run_main(capsys, "demo", "--size", "300GiB")
    assert (status, out) == (2, "")
    assert one_line_error(err) == "--size: must be at most 200 GiB (the multipart maximum), got 300 GiB"


def test_argparse_errors_have_the_same_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(capsys, "hash")
    assert status == 2
    assert "FILE" in one_line_error(err) and "koodrive-fast hash --help" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("command", ["hash", "upload"])
def test_unreadable_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    for name in ("ENDPOINT", "TOKEN", "USER_ID", "CONTAINER_ID"):
        monkeypatch.setenv(f"KOODRIVE_{name}", "http://127.0.0.1:9" if name == "ENDPOINT" else "x")
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x" * 100)
    path.chmod(0)
    status, _, err = run_main(capsys, command, str(path))
    assert status == 1
    assert one_line_error(err).startswith(f"cannot read {path}")


def test_library_warnings_go_through_logging_with_the_prefix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import koodrive_fast._cmd_checkpoints as checkpoints

    def warn_and_list(args: object) -> int:
        logging.getLogger("koodrive_fast").warning("checkpoint\nunreadable")
        logging.getLogger("koodrive_fast").info("not shown")
        return 0

    monkeypatch.setattr(checkpoints, "run_list", warn_and_list)
    status, _, err = run_main(capsys, "checkpoints", "list", "--checkpoint-dir", str(tmp_path))
    assert status == 0
    assert err == "koodrive-fast: warning: checkpoint unreadable\n"
    status, _, err = run_main(capsys, "checkpoints", "list", "--checkpoint-dir", str(tmp_path))
    assert err.count("warning") == 1  # the handler does not pile up across runs


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_decimal_like_the_summary() -> None:
    stream = _Terminal()
    bar = TqdmProgress(stream=stream)
    bar(ProgressEvent("uploading", 5_000_000, 10_000_000))
    bar.close()
    text = stream.getvalue()
    assert "5.00M/10.0M" in text, text  # 1024-based bars showed 4.77M/9.54M
