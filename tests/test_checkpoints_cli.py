"""``koodrive-fast checkpoints list|clean`` over a real checkpoint store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from koodrive_fast._checkpoint import Checkpoint, CheckpointKey, CheckpointStore
from koodrive_fast._cli import main
from koodrive_fast._source import FileIdentity

DAY = 86400.0


def saved(store: CheckpointStore, tmp_path: Path, name: str, age: float,
          done: set[int]) -> CheckpointKey:
    source = tmp_path / name
    source.write_bytes(b"x" * 30_000)
    key = CheckpointKey.for_file("http://127.0.0.1:1", "u", str(source),
                                 FileIdentity.of(os.stat(source)), 10_048)
    store.save(Checkpoint(key=key, file_id="F1", upload_id="U1", file_name=name, done=done))
    then = time.time() - age
    os.utime(store.path_for(key), (then, then))
    return key


@pytest.fixture()
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def test_list_json(store: CheckpointStore, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    old = saved(store, tmp_path, "old.bin", 3 * DAY, {1})
    new = saved(store, tmp_path, "new.bin", 0, {1, 2})
    (store.directory / ("f" * 40 + ".json")).write_text("{not json")
    assert main(["checkpoints", "list", "--json", "--checkpoint-dir", str(store.directory)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_file = {row["file"]: row for row in rows}
    assert by_file[old.path]["partsDone"] == 1 and by_file[old.path]["parts"] == 3
    assert by_file[new.path]["partsDone"] == 2 and by_file[new.path]["inUse"] is False
    assert rows[0]["file"] == old.path  # oldest first
    (broken,) = [row for row in rows if row["file"] is None]
    assert broken["problem"]


def test_list_human_and_empty(store: CheckpointStore, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checkpoints", "list", "--checkpoint-dir", str(store.directory)]) == 0
    assert "no checkpoints" in capsys.readouterr().out
    key = saved(store, tmp_path, "a.bin", 2 * DAY, {1})
    assert main(["checkpoints", "list", "--checkpoint-dir", str(store.directory)]) == 0
    out = capsys.readouterr().out
    assert key.path in out and "1/3 parts sent" in out and out.startswith("   2d")


def test_clean_older_than_keeps_recent_and_in_use(store: CheckpointStore, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    old = saved(store, tmp_path, "old.bin", 3 * DAY, {1})
    busy = saved(store, tmp_path, "busy.bin", 3 * DAY, {1})
    new = saved(store, tmp_path, "new.bin", 0, set())
    fd = store.lock(busy)
    try:
        argv = ["checkpoints", "clean", "--older-than", "1d", "--checkpoint-dir",
                str(store.directory)]
        assert main([*argv, "--dry-run"]) == 0
        assert "would remove 2 checkpoint(s)" in capsys.readouterr().out
        assert store.path_for(old).exists()
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "removed 1 checkpoint(s), 1 in use" in out
    finally:
        store.unlock(busy, fd)
    assert not store.path_for(old).exists()
    assert not (store.directory / f"{old.file_stem()}.lock").exists()
    assert store.path_for(busy).exists() and store.path_for(new).exists()
    # the store still works for the ones kept: the upload can resume
    assert store.load(busy) is not None


def test_clean_all_and_directory_from_a_profile(store: CheckpointStore, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    saved(store, tmp_path, "a.bin", 0, set())
    config = tmp_path / "config.toml"
    config.write_text(f'[profile.p]\ncheckpoint_dir = "{store.directory}"\n')
    monkeypatch.setenv("KOODRIVE_CONFIG", str(config))
    assert main(["checkpoints", "clean", "--profile", "p"]) == 0
    assert "removed 1 checkpoint(s)" in capsys.readouterr().out
    assert list(store.directory.glob("*.json")) == []


def test_bad_age_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checkpoints", "clean", "--older-than", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("koodrive-fast: error: argument --older-than: not an age")
    assert err.count("\n") == 1
