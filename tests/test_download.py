"""``Client.download`` and ``koodrive-fast download`` / ``ls`` against the local server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _upload_helpers import make_file
from koodrive_fast._auth import BearerToken
from koodrive_fast._cli import main
from koodrive_fast._client import AsyncClient, Client
from koodrive_fast._download import PART_SUFFIX, SIDECAR_SUFFIX, DownloadConfig
from koodrive_fast._exceptions import (
    ApiError,
    IntegrityError,
    KooDriveError,
    NotFoundError,
    TransportError,
)
from koodrive_fast._options import UploadOptions
from koodrive_fast._retry import RetryPolicy
from koodrive_fast.server import LocalServer

SPACE = "dl-space"
PART = 64 * 1024
NO_RETRY = RetryPolicy.never()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64) as srv:
        yield srv


@pytest.fixture()
def srv(server: LocalServer) -> Iterator[LocalServer]:
    server.faults.clear()
    yield server
    server.faults.clear()


@pytest.fixture()
def client(srv: LocalServer) -> Iterator[Client]:
    with srv.client() as c:
        yield c


def upload(client: Client, tmp_path: Path, size: int, name: str, parent: str = "root",
           seed: int = 0) -> tuple[str, bytes]:
    path = make_file(tmp_path, size, name=f"src-{seed}-{size}.bin", seed=seed)
    result = client.upload(path, container_id=SPACE, parent_folder=parent, file_name=name,
                           options=UploadOptions(part_size=PART, rapid=False))
    return result.file_id, path.read_bytes()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()
                  if p.name.endswith((PART_SUFFIX, SIDECAR_SUFFIX, ".tmp")))


# ---------------------------------------------------------------- one file


def test_multi_part_file_in_parallel_ranges(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    file_id, data = upload(client, tmp_path, 5 * PART + 123, "big.bin", seed=1)
    gets = srv.stats.object_gets
    out = tmp_path / "out"
    out.mkdir()
    seen: list[int] = []
    result = client.download(file_id, out / "big.bin", container_id=SPACE,
                             config=DownloadConfig(chunk_size=50_000, concurrency=4),
                             progress=seen.append)
    (got,) = result.files
    assert (out / "big.bin").read_bytes() == data
    assert got.sha256 == hashlib.sha256(data).hexdigest() and got.size == len(data)
    assert got.bytes_received == len(data) and not got.resumed and sum(seen) == len(data)
    assert srv.stats.object_gets - gets == -(-len(data) // 50_000)  # one GET per range
    assert leftovers(out) == []
    # by path, into an existing directory: the remote name is kept
    again = client.download("/big.bin", out, container_id=SPACE)
    assert again.files[0].local_path == out / "big.bin"


def test_dropped_range_is_retried(client: Client, srv: LocalServer, tmp_path: Path) -> None:
    file_id, data = upload(client, tmp_path, 3 * PART, "drop.bin", seed=2)
    srv.faults.drop_gets(1, after_bytes=1000)
    gets = srv.stats.object_gets
    target = tmp_path / "drop.bin"
    config = DownloadConfig(chunk_size=PART, concurrency=1,
                            retry=RetryPolicy(max_attempts=3, backoff_base=0.0, max_elapsed=30))
    result = client.download(file_id, target, container_id=SPACE, config=config)
    assert target.read_bytes() == data and result.bytes_received == len(data)
    assert srv.stats.object_gets - gets == 4  # 3 ranges + the retried one


def test_expired_url_is_refreshed_a_bounded_number_of_times(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    file_id, data = upload(client, tmp_path, 2 * PART, "expiry.bin", seed=7)
    config = DownloadConfig(chunk_size=PART, concurrency=1, retry=NO_RETRY, max_url_refreshes=2)
    before = srv.stats.api_calls.get("download", 0)
    srv.faults.expire_gets(2)
    client.download(file_id, tmp_path / "expiry.bin", container_id=SPACE, config=config)
    assert (tmp_path / "expiry.bin").read_bytes() == data
    assert srv.stats.api_calls["download"] - before == 3  # the first URL and 2 fresh ones
    srv.faults.expire_gets(3)
    with pytest.raises(KooDriveError, match="kept expiring"):
        client.download(file_id, tmp_path / "expiry2.bin", container_id=SPACE, config=config)


def test_interrupted_download_resumes_where_it_stopped(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    file_id, data = upload(client, tmp_path, 6 * PART + 7, "resume.bin", seed=3)
    chunk = PART
    target = tmp_path / "resume.bin"
    config = DownloadConfig(chunk_size=chunk, concurrency=1, retry=NO_RETRY,
                            checkpoint_interval=0.0)
    received = [0]

    def arm_after_two_ranges(delta: int) -> None:  # ranges are fetched in order here
        received[0] += delta
        if received[0] == 2 * chunk:
            srv.faults.drop_gets(1, after_bytes=100)

    with pytest.raises(TransportError):
        client.download(file_id, target, container_id=SPACE, config=config,
                        progress=arm_after_two_ranges)
    assert not target.exists()
    sidecar = json.loads((tmp_path / ("resume.bin" + SIDECAR_SUFFIX)).read_text())
    assert sidecar["done"] == [0, 1] and sidecar["fileId"] == file_id
    gets = srv.stats.object_gets
    result = client.download(file_id, target, container_id=SPACE, config=config)
    (got,) = result.files
    assert got.resumed and got.bytes_received == len(data) - 2 * chunk
    assert srv.stats.object_gets - gets == 5  # ranges 2..6 only
    assert target.read_bytes() == data
    assert not [n for n in leftovers(tmp_path) if n.startswith("resume.bin")]
    # resume=False starts afresh
    again = client.download(file_id, target, container_id=SPACE,
                            config=DownloadConfig(chunk_size=chunk, resume=False))
    assert again.bytes_received == len(data)


def test_parallel_failure_keeps_finished_ranges_for_the_next_run(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    file_id, data = upload(client, tmp_path, 8 * PART, "par.bin", seed=6)
    target = tmp_path / "par.bin"
    config = DownloadConfig(chunk_size=PART, concurrency=4, retry=NO_RETRY)
    srv.faults.drop_gets(1, after_bytes=PART // 2)
    with pytest.raises(TransportError):
        client.download(file_id, target, container_id=SPACE, config=config)
    done = json.loads((tmp_path / ("par.bin" + SIDECAR_SUFFIX)).read_text())["done"]
    assert len(done) < 8
    result = client.download(file_id, target, container_id=SPACE, config=config)
    assert target.read_bytes() == data
    assert result.bytes_received == (8 - len(done)) * PART
    assert result.files[0].resumed == bool(done)


def test_a_record_for_another_file_is_ignored(client: Client, tmp_path: Path) -> None:
    file_id, data = upload(client, tmp_path, 2 * PART, "stale.bin", seed=4)
    target = tmp_path / "stale.bin"
    (tmp_path / ("stale.bin" + PART_SUFFIX)).write_bytes(b"\0" * len(data))
    (tmp_path / ("stale.bin" + SIDECAR_SUFFIX)).write_text(json.dumps(
        {"version": 1, "fileId": "F" + "9" * 32, "size": len(data), "sha256": "0" * 64,
         "chunkSize": PART, "done": [0, 1]}))
    result = client.download(file_id, target, container_id=SPACE,
                             config=DownloadConfig(chunk_size=PART))
    assert not result.files[0].resumed and result.bytes_received == len(data)
    assert target.read_bytes() == data


def test_digest_mismatch_raises_and_leaves_nothing(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    file_id, data = upload(client, tmp_path, 2 * PART + 5, "tampered.bin", seed=5)
    digest = hashlib.sha256(data).hexdigest()
    stored = srv.data_dir / "contents" / f"{digest}-{len(data)}" / "2.part"
    body = bytearray(stored.read_bytes())
    body[10] ^= 0xFF
    stored.write_bytes(bytes(body))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match="SHA-256"):
        client.download(file_id, out / "tampered.bin", container_id=SPACE,
                        config=DownloadConfig(chunk_size=PART))
    assert list(out.iterdir()) == []


def test_unknown_remote_is_not_found(client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        client.download("/no/such/file", tmp_path / "x", container_id=SPACE)
    with pytest.raises(ApiError):
        client.download("F" + "1" * 32, tmp_path / "x", container_id=SPACE)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- folder trees


def make_remote_tree(client: Client, tmp_path: Path, top: str) -> dict[str, bytes]:
    """A remote tree: nested and empty folders, a 0-byte file, unicode names, a 3-part file."""
    root = client.create_folder(top, container_id=SPACE)
    sub = client.create_folder("sous-dossier é", container_id=SPACE, parent_folder=root.id)
    deep = client.create_folder("深い", container_id=SPACE, parent_folder=sub.id)
    client.create_folder("empty", container_id=SPACE, parent_folder=root.id)
    client.create_folder("empty inside", container_id=SPACE, parent_folder=deep.id)
    files = {}
    for parent, rel, size, seed in [
        (root.id, "a.txt", 10, 10), (root.id, "zero", 0, 11), (sub.id, "sous-dossier é/b ☃.bin", 3 * PART, 12),
        (deep.id, "sous-dossier é/深い/c.dat", 999, 13),
    ]:
        _, files[rel] = upload(client, tmp_path, size, rel.rsplit("/", 1)[-1], parent, seed)
    return files


def local_tree(root: Path) -> tuple[dict[str, bytes], set[str]]:
    files, dirs = {}, set()
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            dirs.add(rel)
        else:
            files[rel] = path.read_bytes()
    return files, dirs


def test_folder_download_recreates_the_tree(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    expected = make_remote_tree(client, tmp_path, "tree")
    back = tmp_path / "back"
    urls_before = srv.stats.api_calls.get("download", 0)
    result = client.download("/tree", back, container_id=SPACE,
                             config=DownloadConfig(chunk_size=PART, concurrency=3))
    assert srv.stats.api_calls["download"] - urls_before == 1  # one URL batch for 4 files
    files, dirs = local_tree(back)
    assert files == expected
    assert dirs == {"empty", "sous-dossier é", "sous-dossier é/深い", "sous-dossier é/深い/empty inside"}
    assert len(result.files) == 4 and result.size == sum(len(v) for v in expected.values())
    # by id, into an existing folder: merged, and the same bytes again
    folder = client.resolve_path("/tree", container_id=SPACE)
    again = client.download(folder.id, back, container_id=SPACE)
    assert local_tree(back) == (expected, dirs) and len(again.files) == 4


def test_async_download_matches(srv: LocalServer, client: Client, tmp_path: Path) -> None:
    file_id, data = upload(client, tmp_path, 2 * PART + 1, "async.bin", seed=20)

    async def main_() -> Any:
        async with AsyncClient(srv.base_url, BearerToken(srv.token, srv.user_id),
                               limits=srv.limits) as aclient:
            return await aclient.download(file_id, tmp_path / "async-out.bin", container_id=SPACE,
                                          config=DownloadConfig(chunk_size=PART))

    result = asyncio.run(main_())
    assert (tmp_path / "async-out.bin").read_bytes() == data and result.files[0].size == len(data)


def test_hostile_names_from_a_server_cannot_escape_the_destination(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/detail"):
            return httpx.Response(400, json={"code": 13000309, "msg": "not a file"})
        return httpx.Response(200, json={"code": 0, "msg": "ok", "files": [
            {"id": "F1", "fileName": "../escape", "fileType": "45", "size": 1, "sha256": "0" * 64}]})

    with Client("http://kd.test", BearerToken("t", "u"), transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(ApiError, match="unusable name"):
            c.download("Fdir", tmp_path / "dest", container_id="C")
    assert not (tmp_path / "escape").exists()


# ---------------------------------------------------------------- command line


def cli_env(monkeypatch: pytest.MonkeyPatch, srv: LocalServer) -> None:
    monkeypatch.setenv("KOODRIVE_ENDPOINT", srv.base_url)
    monkeypatch.setenv("KOODRIVE_TOKEN", srv.token)
    monkeypatch.setenv("KOODRIVE_USER_ID", srv.user_id)
    monkeypatch.setenv("KOODRIVE_CONTAINER_ID", SPACE)


def test_cli_ls_and_download(
    client: Client, srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = make_remote_tree(client, tmp_path, "cli")
    cli_env(monkeypatch, srv)
    assert main(["ls", "/cli", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["type"]) for r in rows] == [
        ("empty", "folder"), ("sous-dossier é", "folder"), ("a.txt", "file"), ("zero", "file")]
    a_txt = rows[2]
    assert a_txt["size"] == 10 and a_txt["sha256"] == hashlib.sha256(expected["a.txt"]).hexdigest()
    assert a_txt["id"] == client.resolve_path("/cli/a.txt", container_id=SPACE).id
    assert main(["ls", "/cli/sous-dossier é"]) == 0
    text = capsys.readouterr().out
    assert "深い/" in text and "b ☃.bin" in text and str(3 * PART) in text

    back = tmp_path / "cli-back"
    assert main(["download", "/cli", str(back), "--json", "--chunk-size", "40000",
                 "--no-progress"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["summary"] is True and lines[-1]["files"] == 4
    assert local_tree(back)[0] == expected

    assert main(["ls", a_txt["id"], "--json"]) == 0  # an id: a file shows itself
    assert json.loads(capsys.readouterr().out)["name"] == "a.txt"
    folder_id = client.resolve_path("/cli/sous-dossier é", container_id=SPACE).id
    assert main(["ls", folder_id]) == 0 and "b ☃.bin" in capsys.readouterr().out
    assert main(["ls", "/cli/missing"]) == 1
    assert "ls failed" in capsys.readouterr().err
    assert main(["download", "/cli/missing", str(tmp_path / "m")]) == 1
    monkeypatch.delenv("KOODRIVE_TOKEN")
    assert main(["ls", "/cli"]) == 2
    assert "--token is required" in capsys.readouterr().err
    assert main(["download", "/cli", str(back), "--token", srv.token, "--chunk-size", "lots"]) == 2


def test_cli_download_flags_override_environment(
    client: Client, srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file_id, data = upload(client, tmp_path, 1000, "flags.bin", seed=30)
    cli_env(monkeypatch, srv)
    monkeypatch.setenv("KOODRIVE_CONTAINER_ID", "some-other-space")
    target = tmp_path / "flags-out.bin"
    assert main(["download", file_id, str(target), "--container-id", SPACE, "--no-progress"]) == 0
    assert target.read_bytes() == data and "sha256 verified" in capsys.readouterr().out
    assert os.environ["KOODRIVE_CONTAINER_ID"] == "some-other-space"


def test_list_tree_keys_match_the_local_scan(client: Client, tmp_path: Path) -> None:
    """The remote tree is keyed like the local scan, so sync can compare the two directly."""
    from koodrive_fast._localtree import scan_tree
    from koodrive_fast._remotetree import list_tree

    expected = make_remote_tree(client, tmp_path, "keys")
    root = client.resolve_path("/keys", container_id=SPACE)
    assert root.is_folder
    remote = list_tree(client, root, container_id=SPACE)  # type: ignore[arg-type]
    assert set(remote.files) == set(expected)
    assert remote.total_bytes == sum(len(v) for v in expected.values())
    assert all(remote.files[k].sha256 == hashlib.sha256(v).hexdigest() for k, v in expected.items())
    back = tmp_path / "keys-back"
    client.download("/keys", back, container_id=SPACE)
    local = scan_tree(back)
    assert {f.rel_path for f in local.files} == set(remote.files)
    assert set(local.folders) == set(remote.folders)


def test_bad_input_is_rejected_before_any_request_or_write(
    client: Client, srv: LocalServer, tmp_path: Path
) -> None:
    from koodrive_fast._exceptions import ValidationError

    before = dict(srv.stats.api_calls)
    for remote, container in [("", SPACE), ("a/b", SPACE), ("F1", ""), ("/a/b:c", SPACE)]:
        with pytest.raises(ValidationError):
            client.download(remote, tmp_path / "x", container_id=container)
    for bad in [dict(chunk_size=0), dict(concurrency=0), dict(read_size=-1),
                dict(timeout=-1.0), dict(max_url_refreshes=-1), dict(retry="often")]:
        with pytest.raises(ValidationError):
            DownloadConfig(**bad)  # type: ignore[arg-type]
    assert srv.stats.api_calls == before and list(tmp_path.iterdir()) == []
