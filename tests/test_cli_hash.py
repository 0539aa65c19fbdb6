"""``koodrive-fast hash``: JSON document, human output, errors and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import koodrive_fast._contexts as contexts_module
from koodrive_fast import __version__, kernels
from koodrive_fast._cli import main
from koodrive_fast._config import default_part_size
from koodrive_fast._exceptions import FileChangedError

VECTORS = json.loads((Path(__file__).parent / "data" / "koodrive_protocol_9_4.json").read_text())


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "synthetic-12MiB.bin"
    pattern = bytes(i % 251 for i in range(251 * 4096))
    path.write_bytes((pattern * 13)[: VECTORS["size"]])
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
@pytest.mark.parametrize("part_size", ["5MiB", "5242880", "5 MiB"])
def test_json_matches_protocol_vectors(
    capsys: pytest.CaptureFixture[str], vector_file: Path, algorithm: str, part_size: str
) -> None:
    status, out, err = run_main(
        capsys,
        *("hash", str(vector_file), "--part-size", part_size),
        *("--algorithm", algorithm, "--json"),
    )
    assert (status, err) == (0, "")
    document = json.loads(out)  # exactly one JSON object
    expected = VECTORS[algorithm]
    assert document == {
        "size": VECTORS["size"],
        "algorithm": algorithm,
        "digest": expected["digest"],
        "preHash": VECTORS["pre_hash"],
        "partSize": 5242880,
        "multiParts": [
            {"partNumber": 1, "partSize": 5242880, "partOffset": 0},
            {
                "partNumber": 2,
                "partSize": 5242880,
                "partOffset": 5242880,
                "hashCtx": expected["contexts"][1],
            },
            {
                "partNumber": 3,
                "partSize": 2097152,
                "partOffset": 10485760,
                "hashCtx": expected["contexts"][2],
            },
        ],
    }
    assert list(document) == ["size", "algorithm", "digest", "preHash", "partSize", "multiParts"]


def test_default_part_size(capsys: pytest.CaptureFixture[str], vector_file: Path) -> None:
    status, out, _ = run_main(capsys, "hash", str(vector_file), "--json")
    document = json.loads(out)
    assert status == 0
    assert document["partSize"] == default_part_size(VECTORS["size"]) == 8 * 1024 * 1024
    assert document["algorithm"] == "sha256"
    assert [part["partSize"] for part in document["multiParts"]] == [8388608, 4194304]


def test_zero_byte_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    status, out, _ = run_main(capsys, "hash", str(path), "--json")
    assert status == 0
    assert json.loads(out)["multiParts"] == [{"partNumber": 1, "partSize": 0, "partOffset": 0}]


def test_human_output(capsys: pytest.CaptureFixture[str], vector_file: Path) -> None:
    status, out, err = run_main(capsys, "hash", str(vector_file), "--part-size", "5MiB")
    assert (status, err) == (0, "")
    fields = {line[:10].strip(): line[11:] for line in out.splitlines()}
    assert fields["size"].startswith("12582912 bytes")
    assert fields["algorithm"] == "sha256"
    assert fields["digest"] == VECTORS["sha256"]["digest"]
    assert fields["preHash"] == VECTORS["pre_hash"]
    assert fields["part size"].startswith("5242880 bytes")
    assert fields["parts"] == "3"
    assert fields["kernel"] == kernels()["sha256"]
    assert fields["time"].endswith("GB/s)")


def test_progress_on_a_terminal(
    capsys: pytest.CaptureFixture[str], vector_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run_main(capsys, "hash", str(vector_file), "--json")
    assert status == 0 and json.loads(out)["size"] == VECTORS["size"]
    assert "hashing" in err and "(100%" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hash", "{missing}"], "no such file"),
        (["hash", "{dir}"], "is a directory"),
        (["hash", "{file}", "--part-size", "100"], "positive multiple of 64"),
        (["hash", "{file}", "--part-size", "0"], "positive multiple of 64"),
        (["hash", "{file}", "--part-size", "-64"], "--part-size"),
        (["hash", "{file}", "--part-size", "5XB"], "not a size"),
        (["hash", "{file}", "--part-size", "1.5"], "--part-size"),
        (["hash", "{file}", "--algorithm", "md5"], "invalid choice"),
        (["hash"], "FILE"),
        (["hash", "{file}", "--bogus"], "unrecognized"),
        (["bogus"], "invalid choice"),
    ],
)
def test_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"data")
    values = {"missing": str(tmp_path / "missing"), "dir": str(tmp_path), "file": str(file)}
    status, out, err = run_main(capsys, *(arg.format(**values) for arg in argv))
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and message in err
    assert err.startswith("koodrive-fast")
    assert "Traceback" not in err


def test_fifo_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    status, _, err = run_main(capsys, "hash", str(fifo))
    assert status == 2 and "not a regular file" in err


def test_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys)
    assert status == 2 and "hash" in err and out == ""


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "--version")
    assert (status, out.strip()) == (0, f"koodrive-fast {__version__}")
    status, out, _ = run_main(capsys, "hash", "--help")
    assert status == 0 and "--part-size" in out and "--algorithm" in out


def test_interrupt_and_file_changed(
    capsys: pytest.CaptureFixture[str], vector_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    def changed(*args: Any, **kwargs: Any) -> None:
        raise FileChangedError("f changed while it was being hashed", path="f")

    monkeypatch.setattr(contexts_module, "part_contexts", interrupted)
    status, out, err = run_main(capsys, "hash", str(vector_file))
    assert (status, out) == (130, "") and err.strip().endswith("interrupted")
    monkeypatch.setattr(contexts_module, "part_contexts", changed)
    status, out, err = run_main(capsys, "hash", str(vector_file))
    assert (status, out) == (1, "") and "changed" in err and len(err.splitlines()) == 1


def run_process(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("module", ["koodrive_fast", "koodrive_fast._cli"])
def test_subprocess(vector_file: Path, tmp_path: Path, module: str) -> None:
    done = run_process(
        sys.executable, "-m", module, "hash", str(vector_file), "--part-size", "5MiB", "--json"
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["digest"] == VECTORS["sha256"]["digest"]
    assert document["multiParts"][1]["hashCtx"] == VECTORS["sha256"]["contexts"][1]

    missing = run_process(sys.executable, "-m", module, "hash", str(tmp_path / "missing"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def test_console_script(vector_file: Path) -> None:
    script = shutil.which("koodrive-fast")
    if script is None:
        pytest.skip("console script not on PATH")
    done = run_process(script, "hash", str(vector_file), "--algorithm", "sha1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["digest"] == VECTORS["sha1"]["digest"]


def test_start_up_does_not_import_httpx(vector_file: Path) -> None:
    code = (
        "import sys; from koodrive_fast._cli import main; "
        f"status = main(['hash', {str(vector_file)!r}, '--json']); "
        "heavy = ('httpx', 'tqdm', 'uvicorn', 'starlette'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy), "
        "file=sys.stderr); sys.exit(status)"
    )
    done = run_process(sys.executable, "-c", code)
    assert done.returncode == 0
    assert done.stderr.strip() == "[]"
