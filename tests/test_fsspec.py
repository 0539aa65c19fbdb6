"""``koodrive://`` (:class:`KooDriveFileSystem`) against the local server on loopback.

Every write is checked by reading the bytes back (through the filesystem or the
client's SHA-256-checked download); deletes are checked in the recycle bin.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")

from _server_helpers import data_of  # noqa: E402
from koodrive_fast._auth import BearerToken, RefreshingBearerToken, TokenProvider  # noqa: E402
from koodrive_fast._client import Client  # noqa: E402
from koodrive_fast._exceptions import ValidationError  # noqa: E402
from koodrive_fast._fsspec import KooDriveFileSystem  # noqa: E402
from koodrive_fast._options import UploadOptions  # noqa: E402
from koodrive_fast._retry import RetryPolicy  # noqa: E402
from koodrive_fast.server import LocalServer  # noqa: E402

CONTAINER = "c1"
ENV = ("KOODRIVE_ENDPOINT", "KOODRIVE_TOKEN", "KOODRIVE_USER_ID", "KOODRIVE_CONTAINER_ID")


def make_fs(srv: LocalServer, checkpoints: Path, **kwargs: Any) -> KooDriveFileSystem:
    kwargs.setdefault("upload_options", UploadOptions(checkpoint_dir=checkpoints, part_size=64 * 1024))
    return KooDriveFileSystem(
        endpoint=srv.base_url, token=srv.token, user_id=srv.user_id, container_id=CONTAINER,
        client_kwargs={"limits": srv.limits}, skip_instance_cache=True, **kwargs,
    )


@pytest.fixture()
def fs(srv: LocalServer, tmp_path: Path) -> Iterator[KooDriveFileSystem]:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    filesystem = make_fs(srv, checkpoints)
    yield filesystem
    filesystem.close()


@pytest.fixture()
def base() -> str:
    """A fresh folder path per test (the module shares one server)."""
    return f"/t-{uuid.uuid4().hex[:12]}"


def recycled_names(client: Client) -> set[str]:
    return {e.name for e in client.list_folder("root", container_id=CONTAINER, recycled=True)}


def test_protocol_is_registered_and_paths_are_stripped() -> None:
    assert fsspec.get_filesystem_class("koodrive") is KooDriveFileSystem
    strip = KooDriveFileSystem._strip_protocol
    assert strip("koodrive:///backups/a.bin") == "/backups/a.bin"
    assert strip("koodrive://backups/a.bin/") == "/backups/a.bin"
    assert strip("/backups/a.bin") == "/backups/a.bin"
    assert strip("koodrive://") == "/"
    assert strip("backups") == "/backups"
    assert KooDriveFileSystem._parent("koodrive:///a/b") == "/a"


def test_ls_info_exists_isdir_isfile(fs: KooDriveFileSystem, base: str) -> None:
    data = data_of(5000)
    fs.pipe_file(f"{base}/dir/x.bin", data)
    fs.mkdir(f"{base}/empty")
    assert fs.ls(base, detail=False) == [f"{base}/dir", f"{base}/empty"]
    info = fs.info(f"koodrive://{base}/dir/x.bin")
    assert info["type"] == "file" and info["size"] == 5000 and info["name"] == f"{base}/dir/x.bin"
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["id"] and isinstance(info["mtime"], float)
    assert fs.info(f"{base}/empty")["type"] == "directory"
    assert fs.exists(f"{base}/dir/x.bin") and fs.isfile(f"{base}/dir/x.bin")
    assert fs.isdir(f"{base}/dir") and not fs.isfile(f"{base}/dir")
    assert not fs.exists(f"{base}/nope") and not fs.exists(f"{base}/dir/x.bin/below")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{base}/nope")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{base}/nope")
    assert fs.checksum(f"{base}/dir/x.bin") == int(hashlib.sha256(data).hexdigest(), 16)
    assert fs.ukey(f"{base}/dir/x.bin") == hashlib.sha256(data).hexdigest()
    assert fs.ls("/", detail=False).count(base) == 1


def test_listings_are_cached_and_writes_invalidate_them(
    fs: KooDriveFileSystem, srv: LocalServer, base: str, tmp_path: Path
) -> None:
    fs.pipe_file(f"{base}/a", b"a")
    assert fs.ls(base, detail=False) == [f"{base}/a"]
    # a file added behind the filesystem's back is not seen while the listing is cached ...
    (tmp_path / "b").write_bytes(b"b")
    folder = fs.client.resolve_path(base, container_id=CONTAINER)
    with srv.client() as other:
        other.upload(tmp_path / "b", container_id=CONTAINER, parent_folder=folder.id,
                     options=UploadOptions(resume=False))
    assert fs.ls(base, detail=False) == [f"{base}/a"]
    # ... every write through the filesystem invalidates what it changed ...
    fs.pipe_file(f"{base}/c", b"c")
    assert fs.ls(base, detail=False) == [f"{base}/a", f"{base}/b", f"{base}/c"]
    fs.rm_file(f"{base}/c")
    assert fs.ls(base, detail=False) == [f"{base}/a", f"{base}/b"]
    # ... and invalidate_cache() forgets everything
    fs.mkdir(f"{base}/d")
    fs.invalidate_cache()
    assert len(fs.dircache) == 0
    assert fs.ls(base, detail=False) == [f"{base}/d", f"{base}/a", f"{base}/b"]


def test_open_rb_reads_ranges_through_the_block_cache(
    fs: KooDriveFileSystem, srv: LocalServer, base: str
) -> None:
    data = data_of(700_000, seed=3)
    fs.pipe_file(f"{base}/big.bin", data)
    gets_before = srv.stats.object_gets
    with fs.open(f"{base}/big.bin", "rb", block_size=65536) as handle:
        assert handle.size == len(data)
        for start, length in [(0, 10), (65530, 20), (699_990, 100), (300_000, 131_072), (5, 1)]:
            handle.seek(start)
            assert handle.read(length) == data[start:start + length]
        handle.seek(65530)  # blocks already fetched come from the cache
        gets_cached = srv.stats.object_gets
        assert handle.read(20) == data[65530:65550]
        assert srv.stats.object_gets == gets_cached
    assert srv.stats.object_gets - gets_before >= 4  # one ranged GET per block, not the file
    assert fs.cat_file(f"{base}/big.bin", start=-100) == data[-100:]
    assert fs.cat_file(f"{base}/big.bin", start=10, end=20) == data[10:20]
    assert fs.cat(f"{base}/big.bin") == data


def test_open_rb_renews_an_expired_url(fs: KooDriveFileSystem, srv: LocalServer, base: str) -> None:
    data = data_of(200_000, seed=5)
    fs.pipe_file(f"{base}/f", data)
    with fs.open(f"{base}/f", "rb", block_size=65536) as handle:
        assert handle.read(10) == data[:10]
        srv.faults.expire_gets(2)
        handle.seek(150_000)
        assert handle.read(1000) == data[150_000:151_000]


def test_open_rb_of_a_folder_or_a_missing_file(fs: KooDriveFileSystem, base: str) -> None:
    fs.mkdir(base)
    with pytest.raises(IsADirectoryError):
        fs.open(base, "rb")
    with pytest.raises(FileNotFoundError):
        fs.open(f"{base}/missing", "rb")
    with pytest.raises(NotImplementedError):
        fs.open(f"{base}/x", "ab")


def test_open_wb_spools_and_uploads_on_close(fs: KooDriveFileSystem, base: str, tmp_path: Path) -> None:
    data = data_of(300_000, seed=7)
    path = f"{base}/sub/w.bin"
    with fs.open(path, "wb", block_size=65536) as handle:
        for start in range(0, len(data), 50_000):
            handle.write(data[start:start + 50_000])
        assert not fs.exists(path)  # nothing is sent before close: the length is not known yet
    assert fs.info(path)["size"] == len(data)
    # verified through the client's SHA-256-checked download, not the filesystem's reader
    fs.client.download(path, tmp_path / "back", container_id=CONTAINER)
    assert (tmp_path / "back").read_bytes() == data
    fs.touch(f"{base}/empty")
    assert fs.cat_file(f"{base}/empty") == b"" and fs.info(f"{base}/empty")["size"] == 0


def test_overwrite_moves_the_old_version_to_the_recycle_bin(fs: KooDriveFileSystem, base: str) -> None:
    path = f"{base}/v.txt"
    fs.pipe_file(path, b"version 1")
    old_id = fs.info(path)["id"]
    fs.pipe_file(path, b"version 2")
    assert fs.cat_file(path) == b"version 2"
    assert fs.info(path)["id"] != old_id
    binned = {e.id for e in fs.client.list_folder("root", container_id=CONTAINER, recycled=True)}
    assert old_id in binned
    with pytest.raises(FileExistsError):
        fs.pipe_file(path, b"version 3", mode="create")
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    assert fs.cat_file(path) == b"version 2"
    fs.mkdir(f"{base}/folder")
    with pytest.raises(IsADirectoryError):
        fs.pipe_file(f"{base}/folder", b"no")


def test_put_recursive_uploads_a_tree_and_get_brings_it_back(
    fs: KooDriveFileSystem, srv: LocalServer, base: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = {
        "top.bin": data_of(200_000, seed=1),
        "a/one.txt": b"one",
        "a/b/two.bin": data_of(150_001, seed=2),
        "a/b/zero": b"",
        "c/three.bin": data_of(64 * 1024 * 3, seed=4),
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "empty-dir").mkdir()
    fs.put(str(src), base, recursive=True)  # base does not exist: src's contents become base
    assert sorted(fs.find(base)) == sorted(f"{base}/{rel}" for rel in files)
    assert fs.isdir(f"{base}/empty-dir")
    for rel, data in files.items():
        assert fs.info(f"{base}/{rel}")["sha256"] == hashlib.sha256(data).hexdigest()
    out = tmp_path / "out"
    fs.get(base, str(out), recursive=True)
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    assert (out / "empty-dir").is_dir()
    # a second put of the same tree replaces every file (the old versions go to the bin)
    (src / "a" / "one.txt").write_bytes(b"ONE")
    jobs = srv.stats.api_calls.get("createJob", 0)
    fs.put(str(src) + "/", base + "/", recursive=True)
    assert srv.stats.api_calls.get("createJob", 0) == jobs + 1  # one job bins every old version
    assert fs.cat_file(f"{base}/a/one.txt") == b"ONE"
    assert len(fs.find(base)) == len(files)


def test_put_file_and_get_file(fs: KooDriveFileSystem, base: str, tmp_path: Path) -> None:
    data = data_of(100_000, seed=9)
    (tmp_path / "one").write_bytes(data)
    fs.put_file(str(tmp_path / "one"), f"{base}/deep/er/one")
    fs.get_file(f"{base}/deep/er/one", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == data


def test_rm_moves_into_the_recycle_bin(fs: KooDriveFileSystem, base: str) -> None:
    fs.pipe_file(f"{base}/keep", b"k")
    fs.pipe_file(f"{base}/tree/a", b"a")
    fs.pipe_file(f"{base}/tree/sub/b", b"b")
    fs.mkdir(f"{base}/hollow")
    tree_id = fs.info(f"{base}/tree")["id"]
    with pytest.raises(IsADirectoryError):
        fs.rm_file(f"{base}/tree")
    with pytest.raises(OSError):
        fs.rmdir(f"{base}/tree")  # not empty
    fs.rm(f"{base}/tree", recursive=True)
    fs.rmdir(f"{base}/hollow")
    assert fs.ls(base, detail=False) == [f"{base}/keep"]
    assert not fs.exists(f"{base}/tree/sub/b")
    binned = {e.id: e.name for e in fs.client.list_folder("root", container_id=CONTAINER, recycled=True)}
    assert binned.get(tree_id) == "tree"  # the folder, with its contents, is in the bin
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{base}/gone")


def test_copy_is_a_flash_upload_and_mv_bins_the_source(
    fs: KooDriveFileSystem, srv: LocalServer, base: str
) -> None:
    data = data_of(250_000, seed=11)
    fs.pipe_file(f"{base}/src.bin", data)
    sent = srv.stats.bytes_accepted
    fs.copy(f"{base}/src.bin", f"{base}/copy.bin")
    assert srv.stats.bytes_accepted == sent  # the server had the content: no part re-sent
    assert fs.cat_file(f"{base}/copy.bin") == data
    src_id = fs.info(f"{base}/src.bin")["id"]
    fs.mv(f"{base}/src.bin", f"{base}/moved/m.bin")
    assert not fs.exists(f"{base}/src.bin")
    assert fs.cat_file(f"{base}/moved/m.bin") == data
    assert src_id in {e.id for e in fs.client.list_folder("root", container_id=CONTAINER, recycled=True)}


def test_pickle_round_trip_rebuilds_the_client_lazily(
    fs: KooDriveFileSystem, srv: LocalServer, base: str
) -> None:
    fs.pipe_file(f"{base}/p", b"pickled")
    copy = pickle.loads(pickle.dumps(fs))
    assert isinstance(copy, KooDriveFileSystem) and copy is not fs
    assert copy._client is None  # no connection until used
    assert copy.cat_file(f"{base}/p") == b"pickled"
    assert copy.client is not fs.client and copy.client.limits == fs.client.limits
    # a filesystem around a caller's client pickles its settings, not the client
    with srv.client() as client:
        borrowed = KooDriveFileSystem(client=client, container_id=CONTAINER)
        again = pickle.loads(pickle.dumps(borrowed))
        assert again.cat_file(f"{base}/p") == b"pickled"
        borrowed.close()  # not ours: the client stays open
        assert not client.http_client.is_closed


def test_settings_come_from_the_environment(
    srv: LocalServer, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOODRIVE_ENDPOINT", srv.base_url)
    monkeypatch.setenv("KOODRIVE_TOKEN", srv.token)
    monkeypatch.setenv("KOODRIVE_USER_ID", srv.user_id)
    monkeypatch.setenv("KOODRIVE_CONTAINER_ID", CONTAINER)
    with fsspec.open(f"koodrive://{base}/env.txt", "w", skip_instance_cache=True,
                     client_kwargs={"limits": srv.limits}) as handle:
        handle.write("from the environment")
    with fsspec.open(f"koodrive://{base}/env.txt", "r", skip_instance_cache=True,
                     client_kwargs={"limits": srv.limits}) as handle:
        assert handle.read() == "from the environment"


def test_missing_settings_raise_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENV, "KOODRIVE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="container_id"):
        KooDriveFileSystem(endpoint="http://127.0.0.1:9", token="t", user_id="u",
                           skip_instance_cache=True)
    with pytest.raises(ValidationError, match="token"):
        KooDriveFileSystem(endpoint="http://127.0.0.1:9", user_id="u", container_id="c",
                           skip_instance_cache=True)
    with pytest.raises(ValidationError, match="endpoint"):
        KooDriveFileSystem(endpoint="ftp://x", token="t", user_id="u", container_id="c",
                           skip_instance_cache=True)


def test_different_credentials_never_share_a_cached_instance() -> None:
    one = fsspec.filesystem("koodrive", endpoint="http://127.0.0.1:9", container_id="c",
                            credentials=BearerToken("token-one", "u"))
    two = fsspec.filesystem("koodrive", endpoint="http://127.0.0.1:9", container_id="c",
                            credentials=BearerToken("token-two", "u"))
    assert one is not two
    assert two.credentials.token == "token-two"


def test_fsspec_open_with_the_instance_options_and_times(fs: KooDriveFileSystem, base: str) -> None:
    """``fsspec.open`` with an instance's options; times come from the listing."""
    fs.pipe_file(f"{base}/t.csv", b"a,b\n1,2\n")
    modified = fs.modified(f"{base}/t.csv")
    assert modified.tzinfo is not None
    of = fsspec.open(f"koodrive://{base}/t.csv", "rb", **fs.storage_options)
    with of as handle:
        assert handle.read() == b"a,b\n1,2\n"
    assert os.path.basename(of.path) == "t.csv"


def test_folders_made_on_the_way_appear_in_cached_listings(fs: KooDriveFileSystem, base: str) -> None:
    """A write creating several missing folders invalidates every ancestor's listing."""
    fs.mkdir(base)
    assert fs.ls(base, detail=False) == []  # cached while empty
    assert not fs.exists(f"{base}/a/b")  # caches base's listing (and the miss)
    fs.pipe_file(f"{base}/a/b/c/file", b"deep")
    assert fs.ls(base, detail=False) == [f"{base}/a"]
    assert fs.find(base) == [f"{base}/a/b/c/file"]


def test_refreshing_credentials_work_and_pickle(srv: LocalServer, base: str, tmp_path: Path) -> None:
    """A TokenProvider reading a token file one process renews: the picklable cluster pattern."""
    token_file = tmp_path / "token"
    token_file.write_text(srv.new_session()[0])
    provider = TokenProvider(functools.partial(Path.read_text, token_file), srv.user_id)
    fs = make_fs(srv, tmp_path, credentials=provider)
    fs.pipe_file(f"{base}/tok", b"with a provider")
    # the token is revoked and renewed in the file: one 401, the file read again, the call repeated
    srv.revoke_token(token_file.read_text())
    token_file.write_text(srv.new_session()[0])
    fs.invalidate_cache()
    assert fs.cat_file(f"{base}/tok") == b"with a provider"
    assert provider.refresh_count == 2
    copy = pickle.loads(pickle.dumps(fs))
    assert isinstance(copy.credentials, TokenProvider) and copy.credentials is not provider
    srv.revoke_token(token_file.read_text())
    token_file.write_text(srv.new_session()[0])
    assert copy.cat_file(f"{base}/tok") == b"with a provider"  # the copy renews on its own
    assert copy.credentials.refresh_count == 3 and provider.refresh_count == 2


def test_a_session_token_refuses_to_be_pickled(srv: LocalServer, tmp_path: Path) -> None:
    token, session = srv.new_session()
    fs = make_fs(srv, tmp_path, credentials=RefreshingBearerToken(token, srv.user_id, session_id=session))
    with pytest.raises(TypeError, match="TokenProvider"):
        pickle.dumps(fs)


def test_put_reports_a_failed_file_and_a_second_put_completes_it(
    srv: LocalServer, base: str, tmp_path: Path
) -> None:
    no_retry = RetryPolicy(max_attempts=1, backoff_base=0.01, backoff_max=0.01, max_elapsed=5)
    opts = UploadOptions(checkpoint_dir=tmp_path / "cp", part_size=64 * 1024, retry=no_retry,
                         rapid=False)
    (tmp_path / "cp").mkdir()
    fs = make_fs(srv, tmp_path, upload_options=opts)
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i}.bin": data_of(3 * 64 * 1024 + i, seed=i) for i in range(3)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    tasks_before = {file_id for file_id, _ in srv.stats.puts_received}
    srv.faults.fail_puts(1, status=500)
    with pytest.raises(OSError, match="1 of 3 uploads failed"):
        fs.put(str(src) + "/", base + "/", recursive=True)
    srv.faults.clear()
    stored = {info["id"] for info in fs.ls(base)}
    assert len(stored) == 2  # the other files were stored
    unfinished = {file_id for file_id, _ in srv.stats.puts_received} - tasks_before - stored
    assert len(unfinished) == 1
    fs.put(str(src) + "/", base + "/", recursive=True)
    for name, data in files.items():
        assert fs.cat_file(f"{base}/{name}") == data
    # the failed file was resumed from its checkpoint: same server task, now complete
    assert unfinished <= {info["id"] for info in fs.ls(base)}


def test_a_profile_with_a_token_command_connects_and_pickles(
    srv: LocalServer, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings resolve as the CLI's do (argument > KOODRIVE_* > profile); a copy made by
    pickling runs the token command again in its own process instead of shipping a lambda."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(srv.token + "\n")
    config = tmp_path / "config.toml"
    config.write_text(
        "[profile.lab]\n"
        f'endpoint = "{srv.base_url}"\nuser_id = "{srv.user_id}"\n'
        f'container_id = "{CONTAINER}"\ntoken_command = "cat {token_file}"\n'
    )
    config.chmod(0o600)
    monkeypatch.setenv("KOODRIVE_CONFIG", str(config))
    fs = KooDriveFileSystem(profile="lab", client_kwargs={"limits": srv.limits},
                            upload_options=UploadOptions(checkpoint_dir=tmp_path),
                            skip_instance_cache=True)
    assert isinstance(fs.credentials, TokenProvider)
    fs.pipe_file(f"{base}/profiled", b"via a profile")
    copy = pickle.loads(pickle.dumps(fs))
    monkeypatch.setenv("KOODRIVE_CONFIG", os.devnull)  # the copy needs neither file nor profile
    assert copy.cat_file(f"{base}/profiled") == b"via a profile"
    assert isinstance(copy.credentials, TokenProvider) and copy.credentials is not fs.credentials
