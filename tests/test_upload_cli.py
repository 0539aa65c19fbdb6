"""`koodrive-fast upload`: options, environment fallbacks, output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from koodrive_fast._cli import main
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, download, make_file


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with LocalServer(fsync=False) as server:
        yield server


@pytest.fixture()
def env(srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOODRIVE_ENDPOINT", srv.base_url)
    monkeypatch.setenv("KOODRIVE_TOKEN", srv.token)
    monkeypatch.setenv("KOODRIVE_USER_ID", srv.user_id)
    monkeypatch.setenv("KOODRIVE_CONTAINER_ID", CONTAINER)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_upload_json_from_environment(env: None, srv: LocalServer, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = make_file(tmp_path, 100_000, seed=11)
    assert main(["upload", str(path), "--json", "--no-rapid", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["size"] == 100_000 and result["rapidUpload"] is False
    assert err == ""  # not a TTY: no bars
    with srv.client() as client:
        assert download(client, result["fileId"]) == path.read_bytes()


def test_upload_options_override_environment(env: None, srv: LocalServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KOODRIVE_TOKEN", "wrong")
    path = make_file(tmp_path, 5000, seed=12)
    status = main(["upload", str(path), "--token", srv.token, "--name", "renamed.bin",
                   "--concurrency", "2", "--no-resume"])
    out, _ = capsys.readouterr()
    assert status == 0
    assert "uploaded" in out and "sha256" in out


def test_second_upload_is_flash_with_rapid(env: None, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = make_file(tmp_path, 70_000, seed=13)
    assert main(["upload", str(path), "--json"]) == 0
    capsys.readouterr()
    assert main(["upload", str(path), "--json", "--rapid", "--name", "copy.bin"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rapidUpload"] is True and result["bytesSent"] == 0


@pytest.mark.parametrize(
    "argv_tail, unset, message",
    [
        ([], "KOODRIVE_ENDPOINT", "--endpoint is required"),
        ([], "KOODRIVE_TOKEN", "--token is required"),
        ([], "KOODRIVE_USER_ID", "--user-id is required"),
        ([], "KOODRIVE_CONTAINER_ID", "--container-id is required"),
        (["--part-size", "1000"], None, "--part-size: must be a positive multiple of 64 bytes"),
        (["--part-size", "20000000TiB"], None, "--part-size: must be at most 5 GiB"),
        (["--concurrency", "0"], None, "must be > 0"),
        (["--endpoint", "notaurl"], None, "--endpoint: must be an http(s) URL"),
        (["--part-size", "lots"], None, "not a size"),
    ],
)
def test_usage_errors_exit_2_with_one_line(env: None, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           argv_tail: list[str], unset: str | None,
                                           message: str) -> None:
    if unset:
        monkeypatch.delenv(unset)
    path = make_file(tmp_path, 10_000, seed=14)
    assert main(["upload", str(path), *argv_tail]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("koodrive-fast: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_exits_2(env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upload", str(tmp_path / "nope.bin")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_failed_upload_exits_1_without_leaking_token(env: None, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KOODRIVE_TOKEN", "s3cr3t-wrong-token")
    path = make_file(tmp_path, 1000, seed=15)
    assert main(["upload", str(path)]) == 1
    err = capsys.readouterr().err
    assert "upload failed" in err and "s3cr3t-wrong-token" not in err
    assert err.count("\n") == 1
