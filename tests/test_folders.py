"""Folders, listing, search, paths and recycle-bin jobs: client ↔ local server over loopback.

Scenarios are ``async`` and run twice, with :class:`AsyncClient` and with
:class:`Client` behind an awaitable adapter (as in ``test_client_server``).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _server_helpers import api, auth_headers
from koodrive_fast._auth import AppCredentials, BearerToken
from koodrive_fast._client import AsyncClient, Client
from koodrive_fast._exceptions import (
    ApiError,
    AuthenticationError,
    JobTimeoutError,
    MalformedResponseError,
    NotFoundError,
    ValidationError,
)
from koodrive_fast._models import FileEntry, FolderEntry
from koodrive_fast._options import UploadOptions
from koodrive_fast._retry import RetryPolicy
from koodrive_fast.server import LocalServer
from _client_helpers import SyncAdapter

APP_ID, APP_SECRET = "folders-app", "folders-secret"
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05, max_elapsed=10)
both = pytest.mark.parametrize("kind", ["sync", "async"])


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, app_credentials={APP_ID: APP_SECRET}, job_polls=2) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean_faults(server: LocalServer) -> Iterator[None]:
    server.faults.clear()
    yield
    server.faults.clear()


def run(kind: str, server: LocalServer, scenario: Callable[[Any], Awaitable[None]], **kw: Any) -> None:
    credentials = kw.pop("credentials", BearerToken(server.token, server.user_id))
    kw.setdefault("limits", server.limits)
    kw.setdefault("retry", FAST_RETRY)

    async def main() -> None:
        if kind == "async":
            async with AsyncClient(server.base_url, credentials, **kw) as client:
                await scenario(client)
        else:
            with Client(server.base_url, credentials, **kw) as client:
                await scenario(SyncAdapter(client))

    asyncio.run(main())


async def collect(client: Any, method: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Every item of a paged iterator (sync or async client)."""
    result = getattr(client, method)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    if hasattr(result, "__aiter__"):
        return [item async for item in result]
    return list(result)


def calls(server: LocalServer, name: str) -> int:
    return server.stats.api_calls.get(name, 0)


async def put_file(client: Any, tmp_path: Path, container: str, parent: str, name: str,
                   data: bytes) -> str:
    path = tmp_path / f"src-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    path.write_bytes(data)
    result = await client.upload(path, container_id=container, parent_folder=parent,
                                 file_name=name, options=UploadOptions(rapid=False))
    return str(result.file_id)


# ---------------------------------------------------------------- create, list, resolve


@both
def test_tree_with_unicode_names_lists_and_resolves(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    space = f"tree-{kind}"

    async def scenario(client: Any) -> None:
        photos = await client.create_folder("photos", container_id=space)
        assert isinstance(photos, FolderEntry) and photos.name == "photos"
        year = await client.create_folder("2026 ☃ été", container_id=space, parent_folder=photos.id)
        empty = await client.create_folder("空", container_id=space, parent_folder=photos.id)
        data = b"snow" * 100
        file_id = await put_file(client, tmp_path, space, year.id, "bonhomme de neige.jpg", data)
        zero_id = await put_file(client, tmp_path, space, photos.id, "zéro.txt", b"")

        root = await collect(client, "list_folder", container_id=space)
        assert [(e.name, e.is_folder) for e in root] == [("photos", True)]
        children = await collect(client, "list_folder", photos.id, container_id=space)
        # folders first (by name), then files
        assert [(e.name, e.is_folder) for e in children] == [
            ("2026 ☃ été", True), ("空", True), ("zéro.txt", False)]
        zero = children[2]
        assert isinstance(zero, FileEntry) and zero.size == 0 and zero.id == zero_id
        assert zero.sha256 == hashlib.sha256(b"").hexdigest() and zero.parent_id == photos.id
        assert await collect(client, "list_folder", empty.id, container_id=space) == []
        (jpg,) = await collect(client, "list_folder", year.id, container_id=space)
        assert isinstance(jpg, FileEntry)
        assert (jpg.id, jpg.size, jpg.sha256) == (file_id, len(data), hashlib.sha256(data).hexdigest())

        found = await client.resolve_path("/photos/2026 ☃ été/bonhomme de neige.jpg",
                                          container_id=space)
        assert found.id == file_id and not found.is_folder
        assert (await client.resolve_path("//photos/空/", container_id=space)).id == empty.id
        assert (await client.resolve_path("/", container_id=space)).id == "root"
        paths = await client.full_path(file_id, container_id=space)
        assert paths.id_path == f"/DEUI7pa0C24Aroot{space}/{photos.id}/{year.id}/{file_id}"
        assert paths.name_path == f"/root{space}/photos/2026 ☃ été/bonhomme de neige.jpg"
        with pytest.raises(NotFoundError):
            await client.resolve_path("/photos/nope", container_id=space)
        with pytest.raises(NotFoundError, match="not a folder"):
            await client.resolve_path("/photos/zéro.txt/below", container_id=space)
        # another space does not see this tree
        with pytest.raises(NotFoundError):
            await client.resolve_path("/photos", container_id=space + "-other")

    run(kind, server, scenario)


@both
def test_paging_follows_the_cursor_across_pages(kind: str, server: LocalServer) -> None:
    space = f"pages-{kind}"

    async def scenario(client: Any) -> None:
        parent = await client.create_folder("many", container_id=space)
        names = [f"d{i:02d}" for i in range(23)]
        for name in reversed(names):
            await client.create_folder(name, container_id=space, parent_folder=parent.id)
        before = calls(server, "list")
        listed = await collect(client, "list_folder", parent.id, container_id=space, page_size=5)
        assert [e.name for e in listed] == names
        assert calls(server, "list") - before == 5  # 5 + 5 + 5 + 5 + 3
        desc = await collect(client, "list_folder", parent.id, container_id=space, page_size=7,
                             sort_type=1, sort_direction=2)
        assert [e.name for e in desc] == names[::-1]
        # by hand: the cursor of page 1 gives page 2, the last page has none
        page1 = await client.list_folder_page(parent.id, container_id=space, page_size=20)
        assert len(page1.entries) == 20 and page1.next_cursor
        page2 = await client.list_folder_page(parent.id, container_id=space, page_size=20,
                                              cursor=page1.next_cursor)
        assert [e.name for e in page2.entries] == names[20:] and page2.next_cursor is None
        # a cursor belongs to its listing
        with pytest.raises(ApiError) as info:
            await client.list_folder_page("root", container_id=space, cursor=page1.next_cursor)
        assert info.value.code == 13000102

    run(kind, server, scenario)


def test_client_follows_short_and_empty_pages_and_stops_on_a_repeated_cursor() -> None:
    """Pages may be short or empty before the end (more-endpoints §4.1): only a missing
    cursor ends a listing; a server repeating a cursor is caught, not looped on."""
    pages = {
        "": {"files": [], "nextCursor": "a"},
        "a": {"files": [{"id": "F1", "fileName": "x", "fileType": "45", "size": 3}], "nextCursor": "b"},
        "b": {"files": [], "nextCursor": "c"},
        "c": {"files": [{"id": "F2", "fileName": "y", "fileType": "10"}]},
        "loop": {"files": [], "nextCursor": "loop"},
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        cursor = json.loads(request.content)["pageInfo"].get("pageCursor", "")
        seen.append(cursor)
        key = "loop" if cursor == "loop" or request.url.path.endswith("/1") else cursor
        return httpx.Response(200, json={"code": 0, "msg": "ok", **pages[key]})

    with Client("http://kd.test", BearerToken("t", "u"),
                transport=httpx.MockTransport(handler)) as client:
        assert [e.id for e in client.list_folder(container_id="C")] == ["F1", "F2"]
        assert seen == ["", "a", "b", "c"]
        with pytest.raises(MalformedResponseError, match="repeated cursor"):
            list(client.list_folder(container_id="C", recycled=True))


# ---------------------------------------------------------------- names and rename modes


@both
def test_rename_modes_and_names_shared_by_files_and_folders(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    space = f"names-{kind}"

    async def scenario(client: Any) -> None:
        first = await client.create_folder("docs", container_id=space)
        with pytest.raises(ApiError) as info:
            await client.create_folder("docs", container_id=space)  # mode 3 (default)
        assert info.value.code == 13000405
        renamed = await client.create_folder("docs", container_id=space, rename_mode=2)
        assert renamed.id != first.id and renamed.name.startswith("docs_") and renamed.name != "docs"
        # a file may not take a folder's name either
        with pytest.raises(ApiError) as info:
            await client.create_file(file_name="docs", length=0, container_id=space, auto_rename=3)
        assert info.value.code == 13000405
        await put_file(client, tmp_path, space, "root", "notes.txt", b"n")
        with pytest.raises(ApiError) as info:
            await client.create_folder("notes.txt", container_id=space)
        assert info.value.code == 13000405
        names = sorted(e.name for e in await collect(client, "list_folder", container_id=space))
        assert names == sorted(["docs", renamed.name, "notes.txt"])

    run(kind, server, scenario)


@both
def test_files_need_a_real_parent_folder(kind: str, server: LocalServer) -> None:
    space = f"parents-{kind}"

    async def scenario(client: Any) -> None:
        with pytest.raises(ApiError) as info:
            await client.create_file(file_name="a.bin", length=1, container_id=space,
                                     parent_folder="F" + "0" * 32)
        assert info.value.code == 13000304
        folder = await client.create_folder("f", container_id=space)
        # a folder of another space is not a parent here
        with pytest.raises(ApiError) as info:
            await client.create_file(file_name="a.bin", length=1, container_id=space + "x",
                                     parent_folder=folder.id)
        assert info.value.code == 13000304
        # the real root id works like the alias
        created = await client.create_file(file_name="a.bin", length=1, container_id=space,
                                           parent_folder=f"DEUI7pa0C24Aroot{space}")
        assert created.parent_folder == ("root",)
        with pytest.raises(ApiError) as info:
            await client.create_folder("sub", container_id=space, parent_folder=created.file_id)
        assert info.value.code == 13000304  # a file is not a folder

    run(kind, server, scenario)


@both
def test_bad_input_is_rejected_before_any_request(kind: str, server: LocalServer) -> None:
    async def scenario(client: Any) -> None:
        before = dict(server.stats.api_calls)
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.create_folder("a/b", container_id="C"),
            lambda: client.create_folder("..", container_id="C"),
            lambda: client.create_folder("a:b", container_id="C"),
            lambda: client.create_folder("x" * 251, container_id="C"),
            lambda: client.create_folder("ok", container_id=""),
            lambda: client.create_folder("ok", container_id="C", rename_mode=4),
            lambda: client.create_folder("ok", container_id="C", parent_folder="a/b"),
            lambda: collect(client, "list_folder", container_id="C", page_size=0),
            lambda: collect(client, "list_folder", container_id="C", page_size=101),
            lambda: collect(client, "list_folder", container_id="C", file_type="99"),
            lambda: collect(client, "list_folder", container_id="C", sort_type=5, sort_direction=1),
            lambda: collect(client, "list_folder", container_id="C", max_pages=0),
            lambda: collect(client, "search", "k" * 81, container_id="C"),
            lambda: collect(client, "search", "ok", container_id="C", recursive="yes"),
            lambda: client.resolve_path("relative/path", container_id="C"),
            lambda: client.resolve_path("/a/b*c", container_id="C"),
            lambda: client.full_path("a/b", container_id="C"),
            lambda: client.start_delete([], container_id="C"),
            lambda: client.start_delete(["root"], container_id="C"),
            lambda: client.start_delete(["F1", "F1"], container_id="C"),
            lambda: client.start_delete("F1", container_id="C"),
            lambda: client.job("../etc"),
            lambda: client.wait_job("abc", timeout=-1),
            lambda: client.wait_job("abc", max_polls=0),
        ]
        for attempt in attempts:
            with pytest.raises(ValidationError):
                await attempt()
        assert server.stats.api_calls == before

    run(kind, server, scenario)


# ---------------------------------------------------------------- search


@both
def test_search_by_name_parent_and_depth_in_pages(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    space = f"search-{kind}"

    async def scenario(client: Any) -> None:
        top = await client.create_folder("Reports", container_id=space)
        inner = await client.create_folder("2026 rapport", container_id=space, parent_folder=top.id)
        ids = {}
        for parent, name in [(top.id, "report-a.pdf"), (inner.id, "REPORT-b.pdf"),
                             (inner.id, "rapport-été.pdf"), ("root", "other.txt")]:
            ids[name] = await put_file(client, tmp_path, space, parent, name, name.encode())
        hits = await collect(client, "search", "report", container_id=space, page_size=2)
        assert sorted(h.name for h in hits) == ["REPORT-b.pdf", "Reports", "report-a.pdf"]
        only_files = await collect(client, "search", "report", container_id=space, file_type="45")
        assert "Reports" not in {h.name for h in only_files}
        direct = await collect(client, "search", "pdf", container_id=space, parent_folder=top.id)
        assert [h.name for h in direct] == ["report-a.pdf"]
        deep = await collect(client, "search", "pdf", container_id=space, parent_folder=top.id,
                             recursive=True)
        assert sorted(h.name for h in deep) == ["REPORT-b.pdf", "rapport-été.pdf", "report-a.pdf"]
        (hit,) = await collect(client, "search", "été", container_id=space, recursive=True)
        assert hit.id == ids["rapport-été.pdf"] and hit.size == len("rapport-été.pdf".encode())
        assert hit.name_path == f"/root{space}/Reports/2026 rapport/rapport-été.pdf"
        assert hit.id_path is not None and hit.id_path.endswith(f"/{inner.id}/{hit.id}")

    run(kind, server, scenario)


def test_search_type_errors_and_loose_page_size(server: LocalServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        body: dict[str, Any] = {"pageInfo": {"pageSize": 10, "pageCursor": ""}}
        assert api(http, server, "files/search", body).json()["code"] == 13000414
        body["searchType"] = "team"
        assert api(http, server, "files/search", body).json()["code"] == 13000413
        # the docs' own example sends pageSize as a string: accepted by the list API
        listed = api(http, server, "files/0", {"containerId": "loose", "parentFileId": "root",
                                               "pageInfo": {"pageSize": "10", "pageCursor": ""},
                                               "sortInfo": {"sortType": "", "sortDirection": ""},
                                               "fileType": ""})
        assert listed.status_code == 200 and listed.json()["files"] == []
        bad = api(http, server, "files/0", {"containerId": "loose", "parentFileId": "root",
                                            "pageInfo": {"pageCursor": "%%%"}})
        assert bad.status_code == 400 and bad.json()["code"] == 13000102
        # GET /{job_id}: literal routes keep priority, unknown jobs are 13000309
        unknown = http.get("/koodrive/ose/v1/" + "0" * 32, headers=auth_headers(server))
        assert unknown.status_code == 400 and unknown.json()["code"] == 13000309


# ---------------------------------------------------------------- recycle bin, jobs


@both
def test_delete_moves_to_recycle_bin_through_a_job(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    space = f"bin-{kind}"
    sleeps: list[float] = []

    async def scenario(client: Any) -> None:
        folder = await client.create_folder("old", container_id=space)
        keep = await put_file(client, tmp_path, space, "root", "keep.txt", b"keep")
        inside = await put_file(client, tmp_path, space, folder.id, "inside.txt", b"in")
        gone = await put_file(client, tmp_path, space, "root", "gone.txt", b"gone")
        # resolved once: cached; the delete must invalidate it
        assert (await client.resolve_path("/old/inside.txt", container_id=space)).id == inside
        job_id = await client.start_delete([folder.id, gone], container_id=space)
        first = await client.job(job_id)  # the server reports "running" to 2 polls
        assert first.status == 1 and not first.done and first.task_type == 2
        assert {t.status for t in first.tasks} == {"0"}
        job = await client.wait_job(job_id, interval=0.25)
        assert job.done and job.succeeded and job.result_code == 1 and job.progress == 100
        assert {t.file_id for t in job.tasks} == {folder.id, gone}
        assert sleeps == [0.25]  # one poll still running, then finished
        root = await collect(client, "list_folder", container_id=space)
        assert [e.id for e in root] == [keep]
        binned = await collect(client, "list_folder", container_id=space, recycled=True)
        assert {e.id for e in binned} == {folder.id, gone} and all(e.recycled for e in binned)
        (under,) = await collect(client, "list_folder", folder.id, container_id=space, recycled=True)
        assert under.id == inside
        with pytest.raises(NotFoundError):
            await client.resolve_path("/old/inside.txt", container_id=space)
        with pytest.raises(ApiError) as info:  # the folder is in the bin now
            await client.create_folder("new", container_id=space, parent_folder=folder.id)
        assert info.value.code == 13000305
        assert not await collect(client, "search", "gone", container_id=space)
        assert [h.id for h in await collect(client, "search", "gone", container_id=space,
                                            recycled=True)] == [gone]
        # the name is free again
        await client.create_folder("old", container_id=space)
        # deleting again: the job runs, that file fails alone
        again = await client.delete([gone, keep], container_id=space, interval=0.0)
        assert again.done and not again.succeeded and again.result_code == 2
        assert again.failed_file_ids == (gone,)

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    if kind == "async":
        run(kind, server, scenario, sleep=fake_sleep)
    else:
        run(kind, server, scenario, sleep=sleeps.append)


def test_wait_job_is_bounded_in_polls_and_time(server: LocalServer, tmp_path: Path) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with LocalServer(min_part_size=64, job_polls=50) as slow:
        with slow.client(retry=FAST_RETRY, sleep=sleep, monotonic=lambda: now[0]) as client:
            folder = client.create_folder("x", container_id="S")
            job_id = client.start_delete([folder.id], container_id="S")
            before = slow.stats.api_calls.get("job", 0)
            with pytest.raises(JobTimeoutError) as info:
                client.wait_job(job_id, timeout=1.0, interval=0.4)
            assert slow.stats.api_calls["job"] - before == 3  # t = 0, 0.4, 0.8; 1.2 > 1.0
            assert sleeps == [0.4, 0.4] and info.value.job_id == job_id
            assert info.value.last is not None
            with pytest.raises(JobTimeoutError):
                client.wait_job(job_id, timeout=1e9, interval=1.0, max_polls=4)
            assert slow.stats.api_calls["job"] - before == 7


@both
def test_path_cache_fills_once_and_follows_creates(kind: str, server: LocalServer) -> None:
    space = f"cache-{kind}"

    async def scenario(client: Any) -> None:
        a = await client.create_folder("a", container_id=space)
        b = await client.create_folder("b", container_id=space, parent_folder=a.id)
        before = calls(server, "list")
        assert (await client.resolve_path("/a/b", container_id=space)).id == b.id
        assert calls(server, "list") == before  # create_folder filled the cache
        cleared = client.clear_path_cache()
        if inspect.isawaitable(cleared):
            await cleared
        assert (await client.resolve_path("/a/b", container_id=space)).id == b.id
        assert calls(server, "list") - before == 2  # root, then /a
        assert (await client.resolve_path("/a/b", container_id=space)).id == b.id
        assert calls(server, "list") - before == 2  # cached
        c = await client.create_folder("c", container_id=space, parent_folder=b.id)
        assert (await client.resolve_path("/a/b/c", container_id=space)).id == c.id
        assert calls(server, "list") - before == 2  # create_folder filled the cache
        # a folder created by someone else is found by listing again
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            other = api(http, server, "directory", {"fileName": "d", "fileType": "10",
                                                   "containerId": space, "parentFolder": [b.id]})
        assert (await client.resolve_path("/a/b/d", container_id=space)).id == other.json()["id"]
        assert calls(server, "list") - before == 3

    run(kind, server, scenario)


# ---------------------------------------------------------------- auth, persistence


@both
def test_app_auth_signs_get_requests_with_their_query(kind: str, server: LocalServer) -> None:
    space = f"app-{kind}"

    async def scenario(client: Any) -> None:
        folder = await client.create_folder("signed ✓", container_id=space)
        paths = await client.full_path(folder.id, container_id=space)  # GET with a query
        assert paths.name_path == f"/root{space}/signed ✓"
        job = await client.delete([folder.id], container_id=space, interval=0.0)
        assert job.succeeded

    run(kind, server, scenario, credentials=AppCredentials(APP_ID, APP_SECRET, server.user_id),
        sleep=(lambda s: None) if kind == "sync" else None)

    async def rejected(client: Any) -> None:
        with pytest.raises(AuthenticationError):
            await collect(client, "list_folder", container_id=space)
        with pytest.raises(AuthenticationError):
            await client.job("0" * 32)

    run(kind, server, rejected, credentials=BearerToken("wrong", server.user_id))


def test_folders_recycle_bin_and_jobs_survive_a_restart(tmp_path: Path) -> None:
    with LocalServer(min_part_size=64, data_dir=str(tmp_path / "srv")) as srv:
        with srv.client(retry=FAST_RETRY) as client:
            a = client.create_folder("a", container_id="P")
            b = client.create_folder("b", container_id="P", parent_folder=a.id)
            job = client.delete([b.id], container_id="P", interval=0.0)
        srv.restart()
        with srv.client(retry=FAST_RETRY) as client:
            assert client.resolve_path("/a", container_id="P").id == a.id
            assert list(client.list_folder(a.id, container_id="P")) == []
            assert [e.id for e in client.list_folder(container_id="P", recycled=True)] == [b.id]
            assert client.job(job.job_id).succeeded


# ---------------------------------------------------------------- server-side validation (raw HTTP)


def test_server_validates_directory_and_job_bodies(server: LocalServer) -> None:
    space = "raw"
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        def code(endpoint: str, body: dict[str, Any]) -> Any:
            return api(http, server, endpoint, body).json()["code"]

        base = {"fileName": "d", "fileType": "10", "containerId": space}
        assert code("directory", {**base, "fileType": "45"}) == 13000102
        assert code("directory", {**base, "fileName": "a|b"}) == 13000102
        assert code("directory", {**base, "renameMode": 4}) == 13000102
        assert code("directory", {**base, "createdTime": "yesterday"}) == 13000102
        assert code("directory", {**base, "description": "x" * 513}) == 13000102
        # depth limit: 64 folders below the root
        parent = "root"
        for level in range(64):
            made = api(http, server, "directory", {**base, "fileName": f"l{level}",
                                                   "parentFolder": [parent]}).json()
            assert made["code"] == 0, (level, made)
            parent = made["id"]
        assert code("directory", {**base, "fileName": "too-deep", "parentFolder": [parent]}) == 13000310

        folder = api(http, server, "directory", {**base, "fileName": "victim"}).json()
        job = {"taskType": 2, "actionType": 201, "dstContainerId": space,
               "taskInfo": {"srcContainerId": space,
                            "fileInfo": [{"fileId": folder["id"], "filePath": "/wrong"}]}}
        assert code("jobs", {**job, "actionType": 202}) == 13000102  # no permanent delete
        assert code("jobs", {**job, "taskType": 3}) == 13000102
        assert code("jobs", {**job, "taskInfo": {"srcContainerId": space, "fileInfo": []}}) == 13000102
        assert code("jobs", {**job, "taskInfo": {"srcContainerId": space,
                                                 "fileInfo": [{"fileId": folder["id"]}]}}) == 13000102
        # a wrong filePath fails that file only, and nothing is binned
        job_id = api(http, server, "jobs", job).json()["data"]
        for _ in range(3):  # job_polls=2 on this server
            detail = http.get(f"/koodrive/ose/v1/{job_id}", headers=auth_headers(server)).json()
        info, (task,) = detail["data"]["jobInfo"], detail["data"]["taskInfos"]
        assert info["status"] == 2 and info["taskResultCode"] == 3 and task["status"] == "2"
        listed = api(http, server, "files/0", {"containerId": space, "parentFileId": "root"}).json()
        assert "victim" in {f["fileName"] for f in listed["files"]}


@both
def test_ensure_folder_creates_missing_parents_once(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    space = f"mkdir-{kind}"

    async def scenario(client: Any) -> None:
        made = await client.ensure_folder("/backups/2026/q1 ☃", container_id=space)
        assert made.name == "q1 ☃"
        assert (await client.resolve_path("/backups/2026/q1 ☃", container_id=space)).id == made.id
        before = calls(server, "createDirectory")
        again = await client.ensure_folder("/backups/2026/q1 ☃", container_id=space)
        assert again.id == made.id and calls(server, "createDirectory") == before
        deeper = await client.ensure_folder("/backups/2026/q2", container_id=space)
        assert calls(server, "createDirectory") == before + 1 and deeper.parent_id == made.parent_id
        assert (await client.ensure_folder("/", container_id=space)).id == "root"
        await put_file(client, tmp_path, space, made.id, "file", b"x")
        with pytest.raises(ApiError) as info:
            await client.ensure_folder("/backups/2026/q1 ☃/file/below", container_id=space)
        assert info.value.code == 13000405

    run(kind, server, scenario)


def test_ensure_folder_adopts_a_folder_created_meanwhile() -> None:
    """createDirectory answers 13000405 (a concurrent creator won): list again, adopt it."""
    state = {"created": False, "creates": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/directory"):
            state["creates"] += 1
            state["created"] = True
            return httpx.Response(400, json={"code": 13000405, "msg": "name exists"})
        files = [{"id": "Fwon", "fileName": "race", "fileType": "10"}] if state["created"] else []
        return httpx.Response(200, json={"code": 0, "msg": "ok", "files": files})

    with Client("http://kd.test", BearerToken("t", "u"), transport=httpx.MockTransport(handler)) as c:
        assert c.ensure_folder("/race", container_id="C").id == "Fwon"
    assert state["creates"] == 1
