"""sync against the local server: trees, skips without hashing, changes, delete, filters,
dry run, per-file failures, faults, kill -9 and resume; verified by downloading the tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from koodrive_fast import ProgressEvent, RetryPolicy, UploadOptions, ValidationError
from koodrive_fast._cli import main as cli_main
from koodrive_fast._client import Client
from koodrive_fast._localtree import PathFilter
from koodrive_fast._snapshot import Snapshot
from koodrive_fast._sync import SyncResult, sync
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, make_file

PS = 1024
OLD = 1_600_000_000  # a timestamp well outside the snapshot's racy window


@pytest.fixture()
def srv() -> Iterator[LocalServer]:  # a fresh space per test: remote trees start empty
    with LocalServer(min_part_size=64, fsync=False) as server:
        yield server


def _age(root: Path) -> None:
    """Give every file an old mtime so the snapshot trusts it at once."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (OLD, OLD))


def _tree(root: Path) -> Path:
    (root / "photos" / "2026" / "jan").mkdir(parents=True)
    (root / "empty" / "deeper").mkdir(parents=True)
    make_file(root, 0, name="zero.bin")
    make_file(root / "photos", 3000, name="a.jpg", seed=1)
    make_file(root / "photos" / "2026", 2 * PS + 17, name="two-parts.raw", seed=2)
    make_file(root / "photos" / "2026" / "jan", 5, name="ünïcødé ☃.txt", seed=3)
    make_file(root / "photos" / "2026" / "jan", 100, name="notes.md", seed=4)
    _age(root)
    return root


def _opts(tmp_path: Path, **kw: Any) -> UploadOptions:
    kw.setdefault("part_size", PS)
    kw.setdefault("checkpoint_dir", tmp_path / "state")
    kw.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_max=0.05))
    return UploadOptions(**kw)


def _sync(client: Client, local: Path, tmp_path: Path, remote: str = "/backups/2026", **kw: Any) -> SyncResult:
    kw.setdefault("options", _opts(tmp_path))
    # no racy window: these files were written (ctime) just before the first sync, on a
    # file system with nanosecond timestamps; the default 2 s window is for coarse ones
    with Snapshot(tmp_path / "snapshot.sqlite3", racy_window_ns=0) as snapshot:
        return sync(client, local, remote, container_id=CONTAINER, snapshot=snapshot, **kw)


def _download_tree(client: Client, remote: str, dest: Path) -> Path:
    client.download(remote, dest, container_id=CONTAINER)
    return dest


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _dirs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def test_tree_round_trip_then_unchanged_resync_reads_and_sends_nothing(
    srv: LocalServer, tmp_path: Path
) -> None:
    local = _tree(tmp_path / "local")
    with srv.client() as client:
        first = _sync(client, local, tmp_path)
        assert first.ok, first.failed
        assert first.counts == {"uploaded": 5}
        assert set(first.folders_created) >= {"photos", "photos/2026/jan", "empty/deeper"}
        back = _download_tree(client, "/backups/2026", tmp_path / "back")
        assert _files(back) == _files(local)
        assert _dirs(back) == _dirs(local)  # empty folders too

        puts, creates = srv.stats.total_puts_received, srv.stats.api_calls.get("create", 0)
        again = _sync(client, local, tmp_path)
        assert again.counts == {"skipped": 5}
        assert again.bytes_hashed == 0 and again.bytes_sent == 0
        assert srv.stats.total_puts_received == puts
        assert srv.stats.api_calls.get("create", 0) == creates


def test_a_changed_file_alone_is_uploaded_again(srv: LocalServer, tmp_path: Path) -> None:
    local = _tree(tmp_path / "local")
    with srv.client() as client:
        _sync(client, local, tmp_path)
        target = local / "photos" / "a.jpg"
        target.write_bytes(b"new content" * 100)
        os.utime(target, (OLD + 5, OLD + 5))
        result = _sync(client, local, tmp_path)
        assert result.counts == {"uploaded": 1, "skipped": 4}
        assert [i.path for i in result.items if i.action == "uploaded"] == ["photos/a.jpg"]
        back = _download_tree(client, "/backups/2026", tmp_path / "back")
        assert _files(back) == _files(local)  # replaced, not renamed beside the old one


def test_delete_moves_remote_extras_to_the_recycle_bin(srv: LocalServer, tmp_path: Path) -> None:
    local = _tree(tmp_path / "local")
    with srv.client() as client:
        _sync(client, local, tmp_path)
        (local / "photos" / "2026" / "jan" / "notes.md").unlink()
        kept = _sync(client, local, tmp_path)  # without --delete nothing goes
        assert "deleted" not in kept.counts
        result = _sync(client, local, tmp_path, delete=True)
        assert [(i.path, i.action) for i in result.items if i.action == "deleted"] == [
            ("photos/2026/jan/notes.md", "deleted")
        ]
        back = _download_tree(client, "/backups/2026", tmp_path / "back")
        assert "photos/2026/jan/notes.md" not in _files(back)
        recycled = list(client.list_folder("root", container_id=CONTAINER, recycled=True))
        assert any(entry.name == "notes.md" for entry in recycled)


def test_include_exclude_and_dry_run(srv: LocalServer, tmp_path: Path) -> None:
    local = _tree(tmp_path / "local")
    rules = PathFilter([(False, "*.md"), (False, "empty/")])
    with srv.client() as client:
        dry = _sync(client, local, tmp_path, filters=rules, dry_run=True)
        assert dry.counts == {"would-upload": 4}
        assert srv.stats.total_puts_received == 0
        assert srv.stats.api_calls.get("create", 0) == 0
        with pytest.raises(Exception):
            client.resolve_path("/backups/2026", container_id=CONTAINER)  # nothing created
        result = _sync(client, local, tmp_path, filters=rules)
        assert result.counts == {"uploaded": 4}
        back = _download_tree(client, "/backups/2026", tmp_path / "back")
        assert "photos/2026/jan/notes.md" not in _files(back)
        assert not any(d.startswith("empty") for d in _dirs(back))
        # excluded paths are not deleted either
        result = _sync(client, local, tmp_path, filters=PathFilter([(False, "*.jpg")]), delete=True)
        assert "deleted" not in result.counts


def test_forbidden_names_and_symlinks_fail_or_skip_alone(srv: LocalServer, tmp_path: Path) -> None:
    local = _tree(tmp_path / "local")
    make_file(local, 10, name="bad:name.txt", seed=9)
    os.symlink(local / "zero.bin", local / "link.bin")
    _age(local)
    with srv.client() as client:
        result = _sync(client, local, tmp_path)
    assert not result.ok
    by_path = {i.path: i for i in result.items}
    assert by_path["bad:name.txt"].action == "failed" and by_path["bad:name.txt"].error
    assert by_path["link.bin"].action == "skipped" and "symlink" in (by_path["link.bin"].note or "")
    assert result.counts["uploaded"] == 5


def test_faults_during_a_sync(srv: LocalServer, tmp_path: Path) -> None:
    local = _tree(tmp_path / "local")
    for i in range(6):
        make_file(local / "photos", 3 * PS + i, name=f"extra{i}.bin", seed=20 + i)
    _age(local)
    srv.faults.fail_puts(3, status=503)
    srv.faults.drop_puts(2, after_bytes=100)
    lost = threading.Event()

    def lose_tasks(event: ProgressEvent) -> None:  # the server forgets unfinished uploads once
        if event.phase == "uploading" and event.delta > 0 and not lost.is_set():
            lost.set()
            srv.expire_uploads()

    with srv.client() as client:
        result = _sync(client, local, tmp_path, progress=lose_tasks)
        assert result.ok, result.failed
        assert lost.is_set()
        back = _download_tree(client, "/backups/2026", tmp_path / "back")
    assert _files(back) == _files(local)


def test_flash_upload_when_the_content_is_already_there(srv: LocalServer, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    make_file(local, 3 * PS + 5, name="one.bin", seed=50)
    _age(local)
    with srv.client() as client:
        _sync(client, local, tmp_path, remote="/first")
        # same content, another folder: the snapshot knows the digest, the server the content
        puts = srv.stats.total_puts_received
        result = _sync(client, local, tmp_path, remote="/second")
        assert result.counts == {"uploaded": 1}
        assert result.items[0].note == "flash upload"
        assert srv.stats.total_puts_received == puts
        back = _download_tree(client, "/second", tmp_path / "back")
    assert _files(back) == _files(local)


def test_bad_arguments_are_rejected_before_any_request(srv: LocalServer, tmp_path: Path) -> None:
    with srv.client() as client:
        calls = dict(srv.stats.api_calls)
        with pytest.raises(ValidationError):
            sync(client, tmp_path / "missing", "/x", container_id=CONTAINER)
        with pytest.raises(ValidationError):
            sync(client, tmp_path, "relative/path", container_id=CONTAINER)
        with pytest.raises(ValidationError):
            sync(client, tmp_path, "/x", container_id=CONTAINER, files=0)
        assert srv.stats.api_calls == calls


def _cli(srv: LocalServer, *args: str) -> list[str]:
    return ["sync", *args, "--endpoint", srv.base_url, "--token", srv.token,
            "--user-id", srv.user_id, "--container-id", CONTAINER, "--no-progress"]


def test_cli_json_lines_and_exit_codes(srv: LocalServer, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    local = _tree(tmp_path / "local")
    state = str(tmp_path / "state")
    assert cli_main(_cli(srv, str(local), "/cli", "--json",
                         "--checkpoint-dir", state)) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["summary"] is True and lines[-1]["counts"] == {"uploaded": 5}
    for line in lines[:-1]:
        assert {"path", "action", "bytes", "sha256", "fileId", "error"} <= set(line)
    make_file(local, 10, name="bad|name", seed=1)
    assert cli_main(_cli(srv, str(local), "/cli", "--json", "--checkpoint-dir", state)) == 1
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[-1]["counts"] == {"skipped": 5, "failed": 1}
    assert cli_main(_cli(srv, str(local), "no-slash")) == 2
    assert cli_main(["sync", str(local)]) == 2
    assert srv.token not in capsys.readouterr().err


_CHILD = r"""
import sys
from koodrive_fast import Limits, UploadOptions, sync
from koodrive_fast._auth import BearerToken
from koodrive_fast._client import Client
base_url, token, user_id, local, state = sys.argv[1:6]
with Client(base_url, BearerToken(token, user_id), limits=Limits(min_part_size=64)) as client:
    sync(client, local, "/killed", container_id=%r, files=1,
         options=UploadOptions(part_size=%d, concurrency=1, checkpoint_dir=state,
                               checkpoint_interval=0))
""" % (CONTAINER, PS)


def test_kill_9_mid_sync_then_resume_finishes_the_rest(srv: LocalServer, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    for i in range(6):
        make_file(local, 6 * PS + i, name=f"f{i}.bin", seed=60 + i)
    _age(local)
    state = tmp_path / "state"
    srv.faults.latency(0.1)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, srv.base_url, srv.token, srv.user_id,
                              str(local), str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if srv.stats.api_calls.get("complete", 0) >= 2 and list(state.glob("*.json")):
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(30)
    srv.faults.clear()
    completes = srv.stats.api_calls.get("complete", 0)
    with srv.client() as client:
        result = _sync(client, local, tmp_path, remote="/killed",
                       options=_opts(tmp_path, checkpoint_interval=0))
        assert result.ok, result.failed
        assert result.counts.get("skipped", 0) >= 1  # finished before the kill: not sent again
        assert srv.stats.api_calls.get("complete", 0) - completes == result.counts["uploaded"]
        # the half-sent file resumed from its checkpoint: beyond the 42 parts of the tree,
        # at most the parts in flight at the kill went twice
        assert srv.stats.total_puts_accepted <= 42 + 1
        back = _download_tree(client, "/killed", tmp_path / "back")
    assert _files(back) == _files(local)


def test_cli_bad_part_size_is_a_usage_error_before_any_request(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = _tree(tmp_path / "local")
    calls = dict(srv.stats.api_calls)
    assert cli_main(_cli(srv, str(local), "/x", "--part-size", "1000")) == 2
    err = capsys.readouterr().err
    assert err.startswith("koodrive-fast: error: --part-size") and len(err.strip().splitlines()) == 1
    assert srv.stats.api_calls == calls
