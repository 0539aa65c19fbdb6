"""Sync and one-file uploads on a real Dask ``LocalCluster`` (2 worker processes) against the
local server on loopback; every upload verified by downloading it."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from koodrive_fast import RetryPolicy, TokenProvider, UploadOptions, ValidationError  # noqa: E402
from koodrive_fast._cli import main as cli_main  # noqa: E402
from koodrive_fast._client import Client  # noqa: E402
from koodrive_fast._dask import DaskOptions, shard_by_bytes, upload_on_dask  # noqa: E402
from koodrive_fast._snapshot import Snapshot  # noqa: E402
from koodrive_fast._sync import SyncItem, SyncResult, sync  # noqa: E402
from koodrive_fast.server import LocalServer  # noqa: E402

from _upload_helpers import CONTAINER, make_file  # noqa: E402

PS = 64 * 1024
OLD = 1_600_000_000

# the fault installed on one worker travels by value (workers cannot import this module)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, memory_limit="768MiB",
        dashboard_address=None, silence_logs=40,
    ) as local_cluster:
        yield local_cluster


@pytest.fixture()
def dask_client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


@pytest.fixture()
def srv() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, fsync=False) as server:
        yield server


def _tree(root: Path, sizes: list[int]) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    for n, size in enumerate(sizes):
        folder = root / ("a" if n % 3 == 0 else "a/b" if n % 3 == 1 else "")
        make_file(folder, size, name=f"f{n}.bin", seed=n)
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))
    return root


def _opts(tmp_path: Path, **kw: Any) -> UploadOptions:
    kw.setdefault("part_size", PS)
    kw.setdefault("concurrency", 2)
    kw.setdefault("checkpoint_dir", tmp_path / "state")  # shared: same machine, same path
    kw.setdefault("checkpoint_interval", 0)
    kw.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_max=0.05))
    return UploadOptions(**kw)


def _sync(client: Client, local: Path, tmp_path: Path, dask_client: Any, **kw: Any) -> SyncResult:
    kw.setdefault("options", _opts(tmp_path))
    with Snapshot(tmp_path / "snapshot.sqlite3", racy_window_ns=0) as snapshot:
        return sync(client, local, "/cluster", container_id=CONTAINER, snapshot=snapshot,
                    dask_client=dask_client, **kw)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _assert_remote_equals(client: Client, local: Path, tmp_path: Path) -> None:
    """Download the remote folder: exactly the local files, byte for byte, no extra copies."""
    dest = tmp_path / "down"
    client.download("/cluster", dest, container_id=CONTAINER)
    assert _files(dest) == _files(local)
    folder = client.resolve_path("/cluster", container_id=CONTAINER)
    names = collections.Counter(e.name for e in client.list_folder(folder.id, container_id=CONTAINER))
    assert all(count == 1 for count in names.values()), names


def test_shards_balance_bytes_largest_first() -> None:
    groups = shard_by_bytes([10, 70, 20, 30, 40, 50], 2)
    totals = sorted(sum([10, 70, 20, 30, 40, 50][i] for i in g) for g in groups)
    assert totals == [110, 110]
    assert sorted(i for g in groups for i in g) == list(range(6))
    assert shard_by_bytes([5], 3) == [[0], [], []]


def test_bad_dask_arguments_fail_before_any_request(
    srv: LocalServer, dask_client: Any, tmp_path: Path
) -> None:
    with srv.client() as c:
        with pytest.raises(ValidationError, match="distributed.Client"):
            sync(c, tmp_path, "/x", container_id=CONTAINER, dask_client=object())
        with pytest.raises(ValidationError, match="checkpoint_dir"):
            sync(c, tmp_path, "/x", container_id=CONTAINER, dask_client=dask_client)
        with pytest.raises(ValidationError, match="resume"):
            sync(c, tmp_path, "/x", container_id=CONTAINER, dask_client=dask_client,
                 options=_opts(tmp_path, resume=False))
        with pytest.raises(ValidationError, match="max_parts_in_flight"):
            DaskOptions(max_parts_in_flight=0)


def test_tree_synced_across_workers_verifies_by_download(
    srv: LocalServer, dask_client: Any, tmp_path: Path
) -> None:
    local = _tree(tmp_path / "src", [5 * PS + 3, 3 * PS, 7 * PS + 100, 1000, 0, 2 * PS + 1, 4 * PS])
    items: list[SyncItem] = []
    bytes_seen = []
    with srv.client() as client:
        result = _sync(client, local, tmp_path, dask_client, on_item=items.append,
                       progress=lambda e: bytes_seen.append(e.delta))
        assert result.ok, result.failed
        assert result.counts == {"uploaded": 7}
        assert sorted(i.path for i in items) == sorted(_files(local))
        assert "empty" in result.folders_created
        assert sum(bytes_seen) == result.bytes_sent >= sum(len(b) for b in _files(local).values())
        _assert_remote_equals(client, local, tmp_path)
        # the driver recorded the snapshot: a second run skips all without hashing
        again = _sync(client, local, tmp_path, dask_client)
        assert again.counts == {"skipped": 7} and again.bytes_hashed == 0


def test_budget_caps_shards(srv: LocalServer, dask_client: Any, tmp_path: Path) -> None:
    """max_parts_in_flight = concurrency: one shard, still every file, once."""
    local = _tree(tmp_path / "src", [3 * PS, 2 * PS, PS + 1])
    with srv.client() as client:
        result = _sync(client, local, tmp_path, dask_client,
                       dask_options=DaskOptions(max_parts_in_flight=2))
        assert result.counts == {"uploaded": 3}
        _assert_remote_equals(client, local, tmp_path)


def test_workers_never_refresh_the_token_the_driver_does_once(
    srv: LocalServer, dask_client: Any, tmp_path: Path
) -> None:
    """The token is revoked after planning; both workers get 401 and ask the driver, which
    fetches one new token (not one per worker) and every file still goes up."""
    local = _tree(tmp_path / "src", [2 * PS, 3 * PS, PS, 2 * PS + 5])
    make_file(local, 100, name="same.txt", seed=99)
    os.utime(local / "same.txt", (OLD, OLD))
    second, _session = srv.new_session()
    current = [srv.token]
    fetches = []

    def fetch() -> str:
        fetches.append(current[0])
        return current[0]

    with srv.client() as plain:  # the remote already holds same.txt: planning skips it
        folder = plain.ensure_folder("/cluster", container_id=CONTAINER)
        plain.upload(local / "same.txt", container_id=CONTAINER, parent_folder=folder.id)

    def on_item(item: SyncItem) -> None:
        if item.note == "unchanged":  # planning is over: the token dies before the workers start
            srv.revoke_token(current[0])
            current[0] = second

    token = TokenProvider(fetch, srv.user_id)
    with Client(srv.base_url, token, limits=srv.limits) as client:
        result = _sync(client, local, tmp_path, dask_client, on_item=on_item)
        assert result.ok, result.failed
        assert result.counts == {"uploaded": 4, "skipped": 1}
        assert fetches == [srv.token, second]  # the driver fetched; once after the 401s
    with Client(srv.base_url, TokenProvider(lambda: second, srv.user_id), limits=srv.limits) as check:
        _assert_remote_equals(check, local, tmp_path)


def _crash_after(site: str) -> None:
    """Installed in one worker process: it exits (like a crash) right after its first ``site``:
    ``complete`` (the server completed a file; its checkpoint still names the task) or
    ``discard`` (the checkpoint is gone too; the outcome not yet reported), while its
    other files are half sent."""
    from koodrive_fast import _broker, _checkpoint

    owner: Any = _broker.TaskBroker if site == "complete" else _checkpoint.CheckpointWriter
    original = getattr(owner, site)

    def crash(self: Any, *args: Any) -> None:
        original(self, *args)
        os._exit(17)

    setattr(owner, site, crash)


@pytest.mark.parametrize("site", ["complete", "discard"])
def test_killed_worker_files_finish_elsewhere_once_and_intact(
    srv: LocalServer, dask_client: Any, tmp_path: Path, site: str
) -> None:
    local = _tree(tmp_path / "src", [6 * PS, 5 * PS + 7, 6 * PS + 1, 4 * PS, 3 * PS, 2 * PS + 9])
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    dask_client.run(_crash_after, site, workers=[victim])
    items: list[SyncItem] = []
    with srv.client() as client:
        result = _sync(client, local, tmp_path, dask_client, on_item=items.append)
        assert result.ok, result.failed
        assert result.counts == {"uploaded": 6}
        assert sorted(i.path for i in items) == sorted(_files(local))  # one outcome per file
        assert victim not in dask_client.scheduler_info()["workers"]  # it really died
        _assert_remote_equals(client, local, tmp_path)  # one remote file per name, intact
    dask_client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_one_file_from_many_hosts_verifies_by_digest(
    srv: LocalServer, dask_client: Any, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 40 * PS + 123, name="huge.bin", seed=7)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with srv.client() as client:
        result = upload_on_dask(dask_client, client, path, container_id=CONTAINER,
                                options=_opts(tmp_path, rapid=False), hosts=2)
        assert result.sha256 == digest and result.parts == 41 and not result.rapid_upload
        assert result.bytes_sent == path.stat().st_size
        assert client.file_detail(result.file_id).sha256 == digest
        target = tmp_path / "back.bin"
        client.download(result.file_id, target, container_id=CONTAINER)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
        # every part was PUT exactly once, by the two workers between them
        puts = {n: c for (f, n), c in srv.stats.puts_received.items() if f == result.file_id}
        assert puts == {n: 1 for n in range(1, 42)}


def test_cli_sync_dask_scheduler(
    srv: LocalServer, cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = _tree(tmp_path / "src", [2 * PS + 1, PS, 3 * PS])
    code = cli_main([
        "sync", str(local), "/cluster", "--dask-scheduler", cluster.scheduler_address, "--json",
        "--endpoint", srv.base_url, "--token", srv.token, "--user-id", srv.user_id,
        "--container-id", CONTAINER, "--checkpoint-dir", str(tmp_path / "state"),
        "--concurrency", "2", "--max-parts-in-flight", "4",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err  # the one-line error says why, if it ever fails
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted(line["path"] for line in lines if "action" in line) == sorted(_files(local))
    assert lines[-1]["summary"] and lines[-1]["counts"] == {"uploaded": 3}
    with srv.client() as client:
        _assert_remote_equals(client, local, tmp_path)


def test_dask_stays_optional(tmp_path: Path) -> None:
    """Importing the package (and the Dask module) never imports distributed; without it,
    asking for a cluster is a ValidationError naming the extra, before any request."""
    import subprocess

    code = (
        "import sys\n"
        "import koodrive_fast, koodrive_fast._dask, koodrive_fast._sync\n"
        "assert 'distributed' not in sys.modules, 'imported eagerly'\n"
        "sys.modules['distributed'] = None  # as if not installed\n"
        "from koodrive_fast import ValidationError, sync\n"
        "from koodrive_fast._auth import BearerToken\n"
        "from koodrive_fast._client import Client\n"
        "with Client('http://127.0.0.1:9', BearerToken('t', 'u')) as c:\n"
        "    try:\n"
        f"        sync(c, {str(tmp_path)!r}, '/x', container_id='s', dask_client=object())\n"
        "    except ValidationError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "koodrive-fast[dask]" in out.stdout
