"""Checkpoint files: round trip, atomic replace, stale and corrupt detection."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from koodrive_fast._checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    CheckpointKey,
    CheckpointStore,
    default_checkpoint_dir,
)

KEY = CheckpointKey(endpoint="http://127.0.0.1:1", user_id="u1", path="/data/big.bin",
                    size=10 * 1024 + 5, mtime_ns=123456789, ctime_ns=123456790, inode=42,
                    device=7, part_size=1024)
WORDS = tuple(range(1, 9))


def _checkpoint() -> Checkpoint:
    return Checkpoint(key=KEY, file_id="F1", upload_id="U1", file_name="big.bin",
                      contexts={2: WORDS, 3: tuple(w + 1 for w in WORDS)}, done={1, 2},
                      digest=None)


def test_round_trip(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_checkpoint())
    loaded = store.load(KEY)
    assert loaded == _checkpoint()
    data = json.loads(store.path_for(KEY).read_text())
    assert data["version"] == CHECKPOINT_VERSION
    assert data["done"] == [1, 2] and data["contexts"]["2"] == list(WORDS)


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    cp = _checkpoint()
    for n in range(3, 8):
        cp.done.add(n)
        store.save(cp)
    assert [p.name for p in tmp_path.iterdir()] == [store.path_for(KEY).name]
    loaded = store.load(KEY)
    assert loaded is not None and loaded.done == set(range(1, 8))


def test_missing_checkpoint_is_none(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "nowhere").load(KEY) is None


def test_discard(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_checkpoint())
    store.discard(KEY)
    store.discard(KEY)  # twice is fine
    assert store.load(KEY) is None


def test_file_name_depends_on_endpoint_user_and_path_only(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    changed = CheckpointKey(**{**KEY.__dict__, "size": 1, "mtime_ns": 2})
    assert store.path_for(changed) == store.path_for(KEY)
    other_user = CheckpointKey(**{**KEY.__dict__, "user_id": "u2"})
    assert store.path_for(other_user) != store.path_for(KEY)


@pytest.mark.parametrize(
    "field, value",
    [("size", KEY.size + 1), ("mtime_ns", KEY.mtime_ns + 1), ("ctime_ns", KEY.ctime_ns + 1),
     ("inode", KEY.inode + 1), ("device", KEY.device + 1), ("part_size", 2048),
     ("algorithm", "sha1")],
)
def test_stale_checkpoint_ignored_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                               field: str, value: object) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_checkpoint())
    other = CheckpointKey(**{**KEY.__dict__, field: value})
    with caplog.at_level(logging.WARNING, logger="koodrive_fast"):
        assert store.load(other) is None
    assert "stale or corrupt" in caplog.text


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: "not json at all {",
        lambda d: [],
        lambda d: {**d, "version": 99},
        lambda d: {**d, "contexts": {"2": [1, 2, 3]}},
        lambda d: {**d, "contexts": {"2": [2**32] + [0] * 7}},
        lambda d: {**d, "contexts": {"3": list(WORDS)}},  # not contiguous from 2
        lambda d: {**d, "contexts": {"99": list(WORDS)}},  # beyond the last part
        lambda d: {**d, "done": [0]},
        lambda d: {**d, "done": "1,2"},
        lambda d: {**d, "fileId": 5},
    ],
)
def test_corrupt_checkpoint_ignored_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 mutate: object) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_checkpoint())
    target = store.path_for(KEY)
    data = json.loads(target.read_text())
    new = mutate(data)  # type: ignore[operator]
    target.write_text(new if isinstance(new, str) else json.dumps(new))
    with caplog.at_level(logging.WARNING, logger="koodrive_fast"):
        assert store.load(KEY) is None
    assert "checkpoint" in caplog.text


def test_truncated_checkpoint_ignored(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_checkpoint())
    target = store.path_for(KEY)
    target.write_bytes(target.read_bytes()[:40])
    assert store.load(KEY) is None


def test_default_dir_honours_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_checkpoint_dir() == tmp_path / "xdg" / "koodrive-fast"
    assert CheckpointStore().directory == tmp_path / "xdg" / "koodrive-fast"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_checkpoint_dir() == tmp_path / "home" / ".cache" / "koodrive-fast"


def test_checkpoint_holds_no_credentials(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_checkpoint())
    text = store.path_for(KEY).read_text().lower()
    assert "token" not in text and "authorization" not in text
    if os.name == "posix":
        assert store.path_for(KEY).stat().st_mode & 0o077 == 0
