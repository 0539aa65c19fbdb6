"""Folder, listing, search, path and job endpoints of the local server.

::

    POST /koodrive/ose/v1/directory          create a folder
    POST /koodrive/ose/v1/files/{type}       list a folder (0) or the recycle bin (1)
    POST /koodrive/ose/v1/files/search       search by name (personal space)
    GET  /koodrive/ose/v1/files/path         id → id path and name path
    POST /koodrive/ose/v1/jobs               delete into the recycle bin (taskType 2/201)
    GET  /koodrive/ose/v1/{job_id}           job status

Every choice where the docs are silent is listed in ``docs/endpoints.md``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ._store import FileRecord, FolderRecord, JobRecord, Store

if TYPE_CHECKING:  # pragma: no cover
    from ._settings import ServerConfig

__all__ = ["FolderApi", "ROOT", "root_id", "MAX_DEPTH", "MAX_JOB_FILES"]

ROOT = "root"
REAL_ROOT_PREFIX = "DEUI7pa0C24Aroot"
FOLDER_TYPE = "10"
FOLDER_MIME = "application/vnd.huawei-apps.folder"
FILE_TYPES = frozenset({"10", "11", "15", "20", "26", "27", "28", "30", "35", "40", "45"})
MAX_DEPTH = 64
MAX_JOB_FILES = 1000
MAX_PAGE = 100
MAX_KEYWORD = 80
CODE_VALIDATION = 13000102
CODE_FOLDER_ABNORMAL = 13000304
CODE_FOLDER_RECYCLED = 13000305
CODE_ITEM_RECYCLED = 13000306
CODE_NOT_FOUND = 13000309
CODE_DEPTH = 13000310
CODE_PARENT_RECYCLED = 13000404
CODE_DUPLICATE_NAME = 13000405
CODE_NO_PERMISSION = 13000410
CODE_UNSUPPORTED_SEARCH = 13000413
CODE_MISSING_SEARCH = 13000414
_CREATED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def root_id(container_id: str) -> str:
    """The real id of a space's root (``root`` is its alias)."""
    return REAL_ROOT_PREFIX + container_id


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def _job_time(epoch: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch))


def _failure(code: int | str, msg: str) -> Exception:
    from ._app import ApiFailure

    return ApiFailure(code, msg)


def _invalid(field: str, rule: str) -> Exception:
    return _failure(CODE_VALIDATION, f"parameter validation failed: {field} {rule}")


def _int_like(value: object, field: str, lo: int, hi: int, default: int | None = None) -> int:
    """An integer that may arrive as a numeric string (the docs' examples send ``"10"``)."""
    if value is None or value == "":
        if default is None:
            raise _invalid(field, "is required")
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _invalid(field, f"must be an integer in {lo}..{hi}")
    return value


def _opt_bool(value: object, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(field, "must be a boolean")
    return value


def _short_str(value: object, field: str, max_len: int, *, required: bool = True) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise _invalid(field, "is required")
        return None
    if not isinstance(value, str) or not value or len(value) > max_len or not value.isprintable():
        raise _invalid(field, f"must be a string of 1..{max_len} printable characters")
    return value


def _suffixes(name: str) -> tuple[str, str]:
    stem, dot, last = name.rpartition(".")
    full = name.partition(".")[2] if "." in name[1:] else ""
    return (last if dot and stem else ""), full


def _encode_cursor(doc: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(text: str, field: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid(field, "is not a cursor this server issued") from None
    if not isinstance(doc, list):
        raise _invalid(field, "is not a cursor this server issued")
    return doc


class FolderApi:
    """Mixin for the server's ``_App``: the folder-related endpoints."""

    store: Store
    config: ServerConfig

    # ---- tree helpers
    def _canonical_folder(self, container: str, folder_id: str) -> str:
        return ROOT if folder_id in (ROOT, root_id(container)) else folder_id

    def _ancestors(self, container: str, folder_id: str) -> list[FolderRecord] | None:
        """Folders from ``folder_id`` up to (not including) the root; None if unknown."""
        chain: list[FolderRecord] = []
        current = folder_id
        for _ in range(MAX_DEPTH + 2):
            if current == ROOT:
                return chain
            rec = self.store.get_folder(current)
            if rec is None or rec.container_id != container:
                return None
            chain.append(rec)
            current = rec.parent_id
        return None  # deeper than allowed: treat as broken

    def live_folder(self, container: str, folder_id: str, *, recycled_code: int) -> tuple[str, int]:
        """``(canonical id, depth)`` of a folder that exists and is not in the bin."""
        folder_id = self._canonical_folder(container, folder_id)
        chain = self._ancestors(container, folder_id)
        if chain is None:
            if self.store.get_file(folder_id) is not None:
                raise _failure(CODE_FOLDER_ABNORMAL, "target folder abnormal: the id is a file, not a folder")
            raise _failure(CODE_FOLDER_ABNORMAL, "target folder abnormal: no such folder in this space")
        if any(self.store.recycled_at(f.folder_id) is not None for f in chain):
            raise _failure(recycled_code, "target folder is in the recycle bin")
        return folder_id, len(chain)

    def _free_name(self, container: str, parent: str, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        for counter in range(1000):
            suffix = f"_{stamp}" + (f"_{counter}" if counter else "")
            candidate = f"{stem}{suffix}" + (f".{ext}" if ext else "")
            if len(candidate) > 250:
                candidate = candidate[-250:]
            if not self.store.name_taken(container, parent, candidate):
                return candidate
        raise _failure(CODE_DUPLICATE_NAME, "could not find a free name")

    def _id_path(self, container: str, item_id: str, parent_id: str, name: str) -> tuple[str, str]:
        chain = self._ancestors(container, parent_id) or []
        ids = [root_id(container)] + [f.folder_id for f in reversed(chain)] + [item_id]
        names = [ROOT + container] + [f.name for f in reversed(chain)] + [name]
        return "/" + "/".join(ids), "/" + "/".join(names)

    def _item(self, item_id: str) -> FolderRecord | FileRecord | None:
        return self.store.get_folder(item_id) or self.store.get_file(item_id)

    def _object(self, item: FolderRecord | FileRecord, *, recycled: bool = False) -> dict[str, Any]:
        """The File object of a listing (more-endpoints §4.3)."""
        if isinstance(item, FolderRecord):
            return {
                "category": "drive#file", "id": item.folder_id, "fileName": item.name,
                "fileType": FOLDER_TYPE, "mimeType": FOLDER_MIME, "parentFolder": [item.parent_id],
                "containers": [item.container_id], "createdTime": _rfc3339(item.created_at),
                "editedTime": _rfc3339(item.edited_at), "recycled": recycled,
            }
        last, full = _suffixes(item.file_name)
        edited = item.completed_at or item.created_at
        return {
            "category": "drive#file", "id": item.file_id, "fileName": item.file_name,
            "fileType": item.file_type, "mimeType": item.mime_type or "application/octet-stream",
            "parentFolder": item.parent_folder[:1], "containers": [item.container_id],
            "createdTime": _rfc3339(item.created_at), "editedTime": _rfc3339(edited),
            "recycled": recycled, "size": item.length, "sha256": item.sha256,
            "fileSuffix": last, "fullFileSuffix": full,
            "attachments": [{"usage": "content", "sha256": item.sha256, "hash": item.sha256, "length": item.length}],
        }

    # ---- POST directory
    async def create_directory(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        from ._app import _check_file_name

        name = _short_str(body.get("fileName"), "fileName", 1000)
        assert name is not None
        _check_file_name(name)
        file_type = body.get("fileType")
        if str(file_type) != FOLDER_TYPE:
            raise _invalid("fileType", "must be \"10\" (folder)")
        container = _short_str(body.get("containerId"), "containerId", 128)
        assert container is not None
        parents = body.get("parentFolder")
        if isinstance(parents, str):
            parents = [parents]
        if parents in (None, []):
            parents = [ROOT]
        if not isinstance(parents, list) or not all(isinstance(p, str) and 0 < len(p) <= 128 and p.isprintable() for p in parents):
            raise _invalid("parentFolder", "must be a list of folder ids")
        mode = _int_like(body.get("renameMode"), "renameMode", 2, 3, default=2)
        for field in ("createdTime", "editedTime"):
            value = body.get(field)
            if value is not None and (not isinstance(value, str) or (field == "createdTime" and not _CREATED_TIME.fullmatch(value))):
                raise _invalid(field, "must be yyyy-MM-ddTHH:mm:ss.sssZ")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 512):
            raise _invalid("description", "must be a string of at most 512 characters")
        parent, depth = self.live_folder(container, parents[0], recycled_code=CODE_FOLDER_RECYCLED)
        if depth + 1 > MAX_DEPTH:
            raise _failure(CODE_DEPTH, f"folder depth limit ({MAX_DEPTH}) exceeded")
        if self.store.name_taken(container, parent, name):
            if mode == 3:
                raise _failure(CODE_DUPLICATE_NAME, "a file or folder with this name already exists")
            name = self._free_name(container, parent, name)
        folder_id, _ = self.store.new_ids()
        now = time.time()
        rec = FolderRecord(folder_id, container, parent, name, request.headers.get("x-user-id", ""), now, now)
        self.store.insert_folder(rec)
        return self._object(rec)

    # ---- POST files/{type}
    async def list_files(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        kind = request.path_params["type"]
        if kind not in ("0", "1"):
            raise _invalid("type", "must be 0 (personal space) or 1 (recycle bin)")
        recycled = kind == "1"
        container = _short_str(body.get("containerId"), "containerId", 128)
        parent = _short_str(body.get("parentFileId"), "parentFileId", 128)
        assert container is not None and parent is not None
        page = body.get("pageInfo") or {}
        if not isinstance(page, dict):
            raise _invalid("pageInfo", "must be an object")
        size = _int_like(page.get("pageSize"), "pageInfo.pageSize", 1, MAX_PAGE, default=MAX_PAGE)
        cursor = page.get("pageCursor") or ""
        if not isinstance(cursor, str):
            raise _invalid("pageInfo.pageCursor", "must be a string")
        sort = body.get("sortInfo") or {}
        if not isinstance(sort, dict):
            raise _invalid("sortInfo", "must be an object")
        sort_type = _int_like(sort.get("sortType"), "sortInfo.sortType", 1, 6, default=1)
        if sort_type == 5 and not recycled:
            raise _invalid("sortInfo.sortType", "5 (recycled time) applies to the recycle bin only")
        direction = _int_like(sort.get("sortDirection"), "sortInfo.sortDirection", 1, 2, default=1)
        type_filter = body.get("fileType") or None
        if type_filter is not None and str(type_filter) not in FILE_TYPES:
            raise _invalid("fileType", f"must be one of {sorted(FILE_TYPES)}")
        items = self._listing(container, parent, recycled)
        if type_filter is not None:
            items = [i for i in items if self._type_of(i) == str(type_filter)]
        rows: list[tuple[tuple[Any, ...], FolderRecord | FileRecord]] = [
            (self._sort_key(i, sort_type), i) for i in items
        ]
        def by_key(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
            return _compare(a, b, direction)

        order = functools.cmp_to_key(by_key)
        rows.sort(key=lambda row: order(row[0]))
        identity = [sort_type, direction, kind, self._canonical_folder(container, parent), type_filter]
        if cursor:
            doc = _decode_cursor(cursor, "pageInfo.pageCursor")
            if len(doc) != 6 or doc[:5] != identity or not isinstance(doc[5], list):
                raise _invalid("pageInfo.pageCursor", "belongs to another listing (folder, type or sort)")
            last = tuple(doc[5])
            rows = [r for r in rows if _compare(r[0], last, direction) > 0]
        chunk = rows[:size]
        result: dict[str, Any] = {
            "category": "drive#fileList",
            "files": [self._object(i, recycled=recycled) for _, i in chunk],
        }
        if len(rows) > size:
            result["nextCursor"] = _encode_cursor(identity + [list(chunk[-1][0])])
        return result

    def _listing(self, container: str, parent: str, recycled: bool) -> list[FolderRecord | FileRecord]:
        parent = self._canonical_folder(container, parent)
        if not recycled:
            parent, _ = self.live_folder(container, parent, recycled_code=CODE_FOLDER_RECYCLED)
            folders, files = self.store.children(container, parent)
            return [*folders, *files]
        if parent == ROOT:
            found = (self._item(i) for i in self.store.recycled_ids(container))
            return [i for i in found if i is not None and (not isinstance(i, FileRecord) or i.status == "complete")]
        folder = self.store.get_folder(parent)
        chain = self._ancestors(container, parent)
        if folder is None or chain is None:
            raise _failure(CODE_FOLDER_ABNORMAL, "target folder abnormal: no such folder in this space")
        if not any(self.store.recycled_at(f.folder_id) is not None for f in chain):
            raise _failure(13000303, "the folder is not in the recycle bin")
        folders, files = self.store.children(container, parent)
        return [*folders, *files]

    @staticmethod
    def _type_of(item: FolderRecord | FileRecord) -> str:
        return FOLDER_TYPE if isinstance(item, FolderRecord) else item.file_type

    def _sort_key(self, item: FolderRecord | FileRecord, sort_type: int) -> tuple[Any, ...]:
        """(0 folder / 1 file, key, id): folders always come first."""
        if isinstance(item, FolderRecord):
            name, size, created, edited, ident = item.name, 0, item.created_at, item.edited_at, item.folder_id
        else:
            name, size, created, ident = item.file_name, item.length, item.created_at, item.file_id
            edited = item.completed_at or item.created_at
        key: Any
        if sort_type == 1:
            key = name
        elif sort_type == 2:
            key = size
        elif sort_type == 3:
            key = created
        elif sort_type == 4:
            key = edited
        elif sort_type == 5:
            key = self.store.recycled_at(ident) or 0.0
        else:
            key = _suffixes(name)[0].lower()
        return (0 if isinstance(item, FolderRecord) else 1, key, ident)

    # ---- POST files/search
    async def search(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        search_type = body.get("searchType")
        if search_type in (None, ""):
            raise _failure(CODE_MISSING_SEARCH, "searchType is missing")
        if search_type != "personal":
            raise _failure(CODE_UNSUPPORTED_SEARCH, "unsupported searchType (this server: personal only)")
        page = body.get("pageInfo")
        if not isinstance(page, dict):
            raise _invalid("pageInfo", "is required")
        size = _int_like(page.get("pageSize"), "pageInfo.pageSize", 1, MAX_PAGE)
        cursor = page.get("pageCursor")
        if not isinstance(cursor, str):
            raise _invalid("pageInfo.pageCursor", "is required (empty for the first page)")
        filters = body.get("filter") or {}
        if not isinstance(filters, dict):
            raise _invalid("filter", "must be an object")
        keyword = _short_str(filters.get("keyWord"), "filter.keyWord", MAX_KEYWORD, required=False)
        container = _short_str(filters.get("containerId"), "filter.containerId", 128, required=False)
        parent = _short_str(filters.get("parentFolder"), "filter.parentFolder", 128, required=False)
        if parent is not None and container is None:
            raise _invalid("filter.containerId", "is required with filter.parentFolder")
        type_filter = filters.get("fileType") or None
        if type_filter is not None and str(type_filter) not in FILE_TYPES:
            raise _invalid("filter.fileType", f"must be one of {sorted(FILE_TYPES)}")
        recursive = _opt_bool(body.get("recursived"), "recursived")
        recycled = _opt_bool(body.get("recycled"), "recycled")
        if parent is not None:
            assert container is not None
            parent = self._canonical_folder(container, parent)
            if self._ancestors(container, parent) is None:
                raise _failure(CODE_FOLDER_ABNORMAL, "target folder abnormal: no such folder in this space")
        folders, files = self.store.all_items(container)
        hits: list[tuple[FolderRecord | FileRecord, str, str]] = []
        needle = keyword.casefold() if keyword else None
        everything: list[FolderRecord | FileRecord] = [*folders, *files]
        for item in everything:
            name = item.name if isinstance(item, FolderRecord) else item.file_name
            if needle is not None and needle not in name.casefold():
                continue
            if type_filter is not None and self._type_of(item) != str(type_filter):
                continue
            placed = self._placement(item)
            if placed is None:
                continue
            chain_ids, in_bin = placed
            if in_bin != recycled:
                continue
            if parent is not None and parent not in (chain_ids if recursive else chain_ids[:1]):
                continue
            hits.append((item, *self._id_path(item.container_id, self._ident(item), self._parent(item), name)))
        hits.sort(key=lambda h: (h[2], h[1]))
        start = 0
        if cursor:
            doc = _decode_cursor(cursor, "pageInfo.pageCursor")
            if len(doc) != 1 or not isinstance(doc[0], int) or doc[0] < 0:
                raise _invalid("pageInfo.pageCursor", "is not a cursor this server issued")
            start = doc[0]
        chunk = hits[start:start + size]
        out = []
        for item, id_path, name_path in chunk:
            obj = self._object(item)
            out.append({
                "id": obj["id"], "fileName": obj["fileName"], "fileSuffix": obj.get("fileSuffix", ""),
                "fileType": obj["fileType"], "size": str(obj.get("size", 0)), "updateTime": obj["editedTime"],
                "namePath": name_path, "idPath": id_path, "containerId": item.container_id,
                "containerType": 1, "favorite": False, "downloadLinks": [],
            })
        nxt = _encode_cursor([start + size]) if start + size < len(hits) else ""
        return {"total": len(hits), "nextPageCursor": nxt, "files": out}

    @staticmethod
    def _ident(item: FolderRecord | FileRecord) -> str:
        return item.folder_id if isinstance(item, FolderRecord) else item.file_id

    @staticmethod
    def _parent(item: FolderRecord | FileRecord) -> str:
        return item.parent_id if isinstance(item, FolderRecord) else (item.parent_folder[:1] or [ROOT])[0]

    def _placement(self, item: FolderRecord | FileRecord) -> tuple[list[str], bool] | None:
        """(ancestor ids nearest first, ending with root; whether it or an ancestor is recycled)."""
        chain = self._ancestors(item.container_id, self._parent(item))
        if chain is None:
            return None
        ids = [f.folder_id for f in chain] + [ROOT]
        in_bin = any(self.store.recycled_at(i) is not None for i in [self._ident(item), *ids[:-1]])
        return ids, in_bin

    # ---- GET files/path
    async def full_path(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        params = request.query_params
        file_id = _short_str(params.get("fileId"), "fileId", 128)
        container = _short_str(params.get("containerId"), "containerId", 128)
        assert file_id is not None and container is not None
        if self._canonical_folder(container, file_id) == ROOT:
            return {"fileIdPath": "/" + root_id(container), "namePath": "/" + ROOT + container}
        item = self._item(file_id)
        if item is None:
            raise _failure(CODE_NOT_FOUND, "resource does not exist")
        if item.container_id != container:
            raise _failure(13000411, "file is not in the given space")
        name = item.name if isinstance(item, FolderRecord) else item.file_name
        ids, names = self._id_path(container, file_id, self._parent(item), name)
        return {"fileIdPath": ids, "namePath": names}

    # ---- POST jobs
    async def create_job(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        task_type = _int_like(body.get("taskType"), "taskType", 1, 7)
        action = _int_like(body.get("actionType"), "actionType", 101, 799, default=201)
        if task_type != 2 or action != 201:
            raise _invalid("taskType", "this server runs delete-to-recycle-bin jobs only (taskType 2, actionType 201)")
        dst = _short_str(body.get("dstContainerId"), "dstContainerId", 128)
        info = body.get("taskInfo")
        if not isinstance(info, dict):
            raise _invalid("taskInfo", "is required")
        src = _short_str(info.get("srcContainerId"), "taskInfo.srcContainerId", 128)
        assert dst is not None and src is not None
        files = info.get("fileInfo")
        if not isinstance(files, list) or not 1 <= len(files) <= MAX_JOB_FILES:
            raise _invalid("taskInfo.fileInfo", f"must list 1..{MAX_JOB_FILES} files")
        targets = []
        for index, entry in enumerate(files):
            where = f"taskInfo.fileInfo[{index}]."
            if not isinstance(entry, dict):
                raise _invalid(f"taskInfo.fileInfo[{index}]", "must be an object")
            file_id = _short_str(entry.get("fileId"), where + "fileId", 128)
            path = _short_str(entry.get("filePath"), where + "filePath", 64 * 130)
            assert file_id is not None and path is not None
            targets.append((file_id, path))
        tasks = [self._recycle_one(src, file_id, path, n) for n, (file_id, path) in enumerate(targets, 1)]
        ok = sum(1 for t in tasks if t["status"] == "1")
        result = 1 if ok == len(tasks) else (3 if ok == 0 else 2)
        job_id = secrets.token_hex(16)
        now = time.time()
        self.store.insert_job(JobRecord(
            job_id, request.headers.get("x-user-id", ""), src, task_type, action, now, now,
            result, tasks, self.config.job_polls,
        ))
        return {"data": job_id}

    def _recycle_one(self, container: str, file_id: str, path: str, number: int) -> dict[str, Any]:
        task: dict[str, Any] = {"id": str(number), "fileId": file_id, "filePath": path,
                                "srcContainerId": container, "status": "2"}
        item = self._item(file_id) if file_id not in (ROOT, root_id(container)) else None
        if item is None or item.container_id != container or (isinstance(item, FileRecord) and item.status != "complete"):
            task.update(resultCode=CODE_NOT_FOUND, msg="resource does not exist")
            return task
        placed = self._placement(item)
        if placed is None or placed[1]:
            task.update(resultCode=CODE_ITEM_RECYCLED, msg="the file is already in the recycle bin")
            return task
        name = item.name if isinstance(item, FolderRecord) else item.file_name
        expected, _ = self._id_path(container, file_id, self._parent(item), name)
        if path != expected:
            task.update(resultCode=CODE_VALIDATION, msg="filePath is not the file's id path")
            return task
        self.store.recycle(file_id, container)
        task.update(status="1", resultCode=0)
        return task

    # ---- GET /{job_id}
    async def job_detail(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        job_id = request.path_params["job_id"]
        rec = self.store.poll_job(job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
        if rec is None or rec.user_id != request.headers.get("x-user-id", ""):
            raise _failure(CODE_NOT_FOUND, "job does not exist")
        running = rec.polls_left > 0
        info = {
            "taskId": rec.job_id, "taskName": "delete", "userId": rec.user_id,
            "taskType": rec.task_type, "actionType": rec.action_type,
            "status": 1 if running else 2, "progress": 50 if running else 100,
            "taskResultCode": None if running else rec.result_code,
            "resultCode": 0, "contentNum": len(rec.tasks), "containerId": rec.container_id,
            "createTime": _job_time(rec.created_at), "beginTime": _job_time(rec.created_at),
            "endTime": None if running else _job_time(rec.finished_at),
        }
        tasks = [dict(t, status="0") for t in rec.tasks] if running else rec.tasks
        return {"data": {"jobInfo": info, "taskInfos": tasks}}


def _compare(a: Iterable[Any], b: Iterable[Any], direction: int) -> int:
    """Order of two sort keys (kind, key, id): kind ascending, key per ``direction``, id ascending."""
    ka, kb = tuple(a), tuple(b)
    if ka[0] != kb[0]:
        return -1 if ka[0] < kb[0] else 1
    if ka[1] != kb[1]:
        less = ka[1] < kb[1]
        return (-1 if less else 1) * (1 if direction == 1 else -1)
    if ka[2] != kb[2]:
        return -1 if ka[2] < kb[2] else 1
    return 0
