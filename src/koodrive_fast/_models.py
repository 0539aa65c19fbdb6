"""Typed request/response models of KooDrive's file APIs.

Python attributes are snake_case, JSON keys KooDrive's camelCase.  Parsing is
lenient the way the protocol needs: unknown response fields are ignored,
``code`` may be an int or a string, numbers may arrive as numeric strings.
``raw`` keeps the whole response object for fields we do not model.
Reprs never show presigned URLs in full (the signature is redacted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from ._exceptions import ValidationError
from ._redact import redact_url

__all__ = [
    "MultiPartInfo",
    "CreateFileResult",
    "FileDetail",
    "DownloadLink",
    "FileEntry",
    "FolderEntry",
    "Entry",
    "parse_entry",
    "ListPage",
    "SearchHit",
    "FullPath",
    "Job",
    "JobTask",
    "FOLDER_FILE_TYPE",
    "parse_code",
    "parse_int",
]

Code = Union[int, str]
JsonDict = dict[str, Any]


def parse_code(value: object) -> Optional[Code]:
    """KooDrive ``code`` as an int when numeric (``0``, ``"0"``), else the string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        return text
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def parse_int(value: object, name: str) -> int:
    """An integer JSON field that may arrive as a number or a numeric string."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{name} must be an integer, got {value!r}")


def _opt_int(value: object, name: str) -> Optional[int]:
    return None if value is None else parse_int(value, name)


def _opt_str(value: object) -> Optional[str]:
    return None if value is None else str(value)


def _check_int(value: object, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(field, f"must be an int, got {type(value).__name__}")


@dataclasses.dataclass(frozen=True, repr=False)
class MultiPartInfo:
    """One part of a multipart upload (KooDrive ``MultiPartInfo``).

    ``hash_ctx`` holds the chaining words (8 for SHA-256, 5 for SHA-1) after
    all bytes before the part; ``None`` for part 1.  ``upload_url`` and
    ``part_id`` are filled in by the server.  Range rules are checked by
    :func:`koodrive_fast._planner.validate_parts`; the constructor checks types.
    """

    part_number: int
    part_size: int
    part_offset: Optional[int] = None
    hash_ctx: Optional[tuple[int, ...]] = None
    upload_url: Optional[str] = None
    part_id: Optional[str] = None

    def __post_init__(self) -> None:
        _check_int(self.part_number, "partNumber")
        _check_int(self.part_size, "partSize")
        _check_int(self.part_offset, "partOffset", optional=True)
        if self.hash_ctx is not None:
            if isinstance(self.hash_ctx, (str, bytes)) or not isinstance(self.hash_ctx, Sequence):
                raise ValidationError("hashCtx", "must be a sequence of ints")
            words = tuple(self.hash_ctx)
            for word in words:
                _check_int(word, "hashCtx")
            object.__setattr__(self, "hash_ctx", words)

    def to_json(self, *, include_output: bool = True) -> JsonDict:
        """camelCase dict, omitting ``None`` fields (and URL/partId unless ``include_output``)."""
        out: JsonDict = {"partNumber": self.part_number, "partSize": self.part_size}
        if self.part_offset is not None:
            out["partOffset"] = self.part_offset
        if self.hash_ctx is not None:
            out["hashCtx"] = list(self.hash_ctx)
        if include_output:
            if self.upload_url is not None:
                out["uploadUrl"] = self.upload_url
            if self.part_id is not None:
                out["partId"] = self.part_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultiPartInfo:
        """Parse a response/request part; raises ``ValueError`` on missing or bad fields."""
        if not isinstance(data, Mapping):
            raise ValueError(f"multiParts entry must be an object, got {type(data).__name__}")
        ctx = data.get("hashCtx")
        words: Optional[tuple[int, ...]] = None
        if ctx is not None:
            if not isinstance(ctx, list):
                raise ValueError("hashCtx must be a list")
            words = tuple(parse_int(w, "hashCtx") for w in ctx) if ctx else None
        if "partNumber" not in data:
            raise ValueError("multiParts entry without partNumber")
        return cls(
            part_number=parse_int(data["partNumber"], "partNumber"),
            # partSize is indispensable in requests; a response may omit the echo
            part_size=parse_int(data.get("partSize", 0), "partSize"),
            part_offset=_opt_int(data.get("partOffset"), "partOffset"),
            hash_ctx=words,
            upload_url=_opt_str(data.get("uploadUrl")),
            part_id=_opt_str(data.get("partId")),
        )

    def __repr__(self) -> str:
        url = None if self.upload_url is None else redact_url(self.upload_url)
        return (
            f"MultiPartInfo(part_number={self.part_number}, part_size={self.part_size}, "
            f"part_offset={self.part_offset}, hash_ctx={self.hash_ctx}, "
            f"upload_url={url!r}, part_id={self.part_id!r})"
        )


def _str_tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    raise ValueError(f"expected a list of strings, got {type(value).__name__}")


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


@dataclasses.dataclass(frozen=True)
class CreateFileResult:
    """Response of ``files/create``.

    ``rapid_upload`` is true on a flash-upload hit (nothing to PUT); ``exist``
    is true when ``autoRename=4`` found the same name and content.
    ``multi_parts`` carry the part URLs the server returned.
    """

    file_id: str
    file_name: Optional[str]
    container_id: Optional[str]
    upload_id: Optional[str]
    rapid_upload: bool
    exist: bool
    parent_folder: tuple[str, ...]
    multi_parts: tuple[MultiPartInfo, ...]
    raw: JsonDict = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CreateFileResult:
        file_id = data.get("fileId")
        if not isinstance(file_id, str) or not file_id:
            raise ValueError("create response without fileId")
        parts = data.get("multiParts") or []
        if not isinstance(parts, list):
            raise ValueError("multiParts must be a list")
        return cls(
            file_id=file_id,
            file_name=_opt_str(data.get("fileName")),
            container_id=_opt_str(data.get("containerId")),
            upload_id=_opt_str(data.get("uploadId")),
            rapid_upload=_bool(data.get("rapidUpload", False)),
            exist=_bool(data.get("exist", False)),
            parent_folder=_str_tuple(data.get("parentFolder")),
            multi_parts=tuple(MultiPartInfo.from_json(p) for p in parts),
            raw=dict(data),
        )

    @property
    def finished(self) -> bool:
        """True when nothing has to be uploaded (flash-upload hit or existing file)."""
        return self.rapid_upload or self.exist

    def __repr__(self) -> str:
        return (
            f"CreateFileResult(file_id={self.file_id!r}, file_name={self.file_name!r}, "
            f"container_id={self.container_id!r}, upload_id={self.upload_id!r}, "
            f"rapid_upload={self.rapid_upload}, exist={self.exist}, "
            f"parent_folder={self.parent_folder!r}, multi_parts=<{len(self.multi_parts)} parts>)"
        )


@dataclasses.dataclass(frozen=True)
class FileDetail:
    """Response of ``files/{fileId}/detail`` (fields not modelled stay in ``raw``)."""

    file_id: str
    file_name: Optional[str]
    length: Optional[int]
    sha256: Optional[str]
    container_id: Optional[str] = None
    parent_folder: tuple[str, ...] = ()
    file_type: Optional[str] = None
    mime_type: Optional[str] = None
    created_time: Optional[str] = None
    edited_time: Optional[str] = None
    status: Optional[str] = None
    raw: JsonDict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileDetail:
        # Some deployments wrap the resource in "file"/"fileInfo"; accept both shapes.
        body: Mapping[str, Any] = data
        for key in ("file", "fileInfo", "data"):
            inner = data.get(key)
            if isinstance(inner, Mapping) and "fileId" not in data:
                body = inner
                break
        file_id = body.get("fileId") or body.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ValueError("detail response without fileId")
        file_type = body.get("fileType", body.get("type"))
        return cls(
            file_id=file_id,
            file_name=_opt_str(body.get("fileName", body.get("name"))),
            length=_opt_int(body.get("length", body.get("size")), "length"),
            sha256=_opt_str(body.get("sha256")),
            container_id=_opt_str(body.get("containerId")),
            parent_folder=_str_tuple(body.get("parentFolder")),
            file_type=_opt_str(file_type),
            mime_type=_opt_str(body.get("mimeType")),
            created_time=_opt_str(body.get("createdTime")),
            edited_time=_opt_str(body.get("editedTime")),
            status=_opt_str(body.get("status")),
            raw=dict(data),
        )


@dataclasses.dataclass(frozen=True, repr=False)
class DownloadLink:
    """One entry of ``files/download``'s ``downloads`` list; ``code`` 0 means ``url`` is usable."""

    file_id: str
    file_name: Optional[str]
    url: Optional[str]
    code: Optional[Code]
    msg: Optional[str]

    @property
    def ok(self) -> bool:
        return self.code in (0, None) and bool(self.url)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DownloadLink:
        if not isinstance(data, Mapping):
            raise ValueError("downloads entry must be an object")
        file_id = data.get("fileId")
        if not isinstance(file_id, str):
            raise ValueError("downloads entry without fileId")
        url = data.get("url", data.get("downloadUrl"))
        return cls(
            file_id=file_id,
            file_name=_opt_str(data.get("fileName")),
            url=_opt_str(url),
            code=parse_code(data.get("code", 0)),
            msg=_opt_str(data.get("msg")),
        )

    def __repr__(self) -> str:
        url = None if self.url is None else redact_url(self.url)
        return (
            f"DownloadLink(file_id={self.file_id!r}, file_name={self.file_name!r}, "
            f"url={url!r}, code={self.code!r}, msg={self.msg!r})"
        )


# --------------------------------------------------------------------------- folders, listing

FOLDER_FILE_TYPE = "10"


def _opt_size(value: object, name: str) -> Optional[int]:
    return None if value in (None, "") else parse_int(value, name)


def _content_sha256(data: Mapping[str, Any]) -> Optional[str]:
    """Top-level ``sha256``, else the ``attachments[usage=content].sha256`` (more-endpoints §4.3)."""
    top = data.get("sha256")
    if isinstance(top, str) and top:
        return top.lower()
    attachments = data.get("attachments")
    if isinstance(attachments, list):
        for item in attachments:
            if isinstance(item, Mapping) and item.get("usage") == "content":
                digest = item.get("sha256")
                if isinstance(digest, str) and digest:
                    return digest.lower()
    return None


@dataclasses.dataclass(frozen=True)
class FolderEntry:
    """A folder in a listing (``fileType`` ``"10"``); ``raw`` keeps the whole object."""

    id: str
    name: str
    parent_id: Optional[str] = None
    container_id: Optional[str] = None
    created_time: Optional[str] = None
    edited_time: Optional[str] = None
    recycled: bool = False
    raw: JsonDict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    is_folder = True


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A file in a listing; ``sha256`` is ``None`` when the server does not report it."""

    id: str
    name: str
    size: int
    sha256: Optional[str] = None
    file_type: Optional[str] = None
    mime_type: Optional[str] = None
    parent_id: Optional[str] = None
    container_id: Optional[str] = None
    created_time: Optional[str] = None
    edited_time: Optional[str] = None
    recycled: bool = False
    raw: JsonDict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    is_folder = False


Entry = Union[FileEntry, FolderEntry]


def parse_entry(data: Mapping[str, Any]) -> Entry:
    """A File object of a listing (more-endpoints §4.3) as :class:`FileEntry` / :class:`FolderEntry`."""
    if not isinstance(data, Mapping):
        raise ValueError(f"files entry must be an object, got {type(data).__name__}")
    entry_id = data.get("id", data.get("fileId"))
    name = data.get("fileName")
    if not isinstance(entry_id, str) or not entry_id:
        raise ValueError("files entry without id")
    if not isinstance(name, str) or not name:
        raise ValueError(f"files entry {entry_id!r} without fileName")
    parents = _str_tuple(data.get("parentFolder"))
    containers = _str_tuple(data.get("containers", data.get("containerId")))
    common: dict[str, Any] = dict(
        id=entry_id,
        name=name,
        parent_id=parents[0] if parents else None,
        container_id=containers[0] if containers else None,
        created_time=_opt_str(data.get("createdTime")),
        edited_time=_opt_str(data.get("editedTime", data.get("updateTime"))),
        recycled=_bool(data.get("recycled", False)),
        raw=dict(data),
    )
    file_type = _opt_str(data.get("fileType"))
    if file_type == FOLDER_FILE_TYPE:
        return FolderEntry(**common)
    size = _opt_size(data.get("size", data.get("length")), "size")
    if size is None:
        raise ValueError(f"files entry {entry_id!r} without size")
    return FileEntry(
        size=size, sha256=_content_sha256(data), file_type=file_type,
        mime_type=_opt_str(data.get("mimeType")), **common,
    )


@dataclasses.dataclass(frozen=True)
class ListPage:
    """One page of ``files/{type}``; ``next_cursor`` is ``None`` after the last page."""

    entries: tuple[Entry, ...]
    next_cursor: Optional[str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, cursor_key: str = "nextCursor") -> ListPage:
        files = data.get("files")
        if files is None:
            files = []
        if not isinstance(files, list):
            raise ValueError("files must be a list")
        cursor = data.get(cursor_key)
        if cursor is not None and not isinstance(cursor, str):
            raise ValueError(f"{cursor_key} must be a string")
        return cls(tuple(parse_entry(f) for f in files), cursor or None)


@dataclasses.dataclass(frozen=True)
class SearchHit:
    """One ``files/search`` result (more-endpoints §5): no sha256; ``size`` parsed from a string."""

    id: str
    name: str
    file_type: Optional[str]
    size: Optional[int]
    container_id: Optional[str]
    name_path: Optional[str]
    id_path: Optional[str]
    raw: JsonDict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def is_folder(self) -> bool:
        return self.file_type == FOLDER_FILE_TYPE

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchHit:
        if not isinstance(data, Mapping):
            raise ValueError("search entry must be an object")
        hit_id, name = data.get("id"), data.get("fileName")
        if not isinstance(hit_id, str) or not hit_id or not isinstance(name, str):
            raise ValueError("search entry without id or fileName")
        return cls(
            id=hit_id, name=name, file_type=_opt_str(data.get("fileType")),
            size=_opt_size(data.get("size"), "size"),
            container_id=_opt_str(data.get("containerId")),
            name_path=_opt_str(data.get("namePath")), id_path=_opt_str(data.get("idPath")),
            raw=dict(data),
        )


@dataclasses.dataclass(frozen=True)
class FullPath:
    """``files/path``: ``id_path`` (``/<rootId>/<id>/…/<fileId>``) and ``name_path``."""

    id_path: str
    name_path: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FullPath:
        ids, names = data.get("fileIdPath"), data.get("namePath")
        if not isinstance(ids, str) or not ids.startswith("/"):
            raise ValueError("path response without a fileIdPath starting with '/'")
        if not isinstance(names, str):
            raise ValueError("path response without namePath")
        return cls(ids, names)


# --------------------------------------------------------------------------- jobs

JOB_PENDING, JOB_RUNNING, JOB_FINISHED, JOB_CANCELLED = 0, 1, 2, 3
TASK_PENDING, TASK_SUCCEEDED, TASK_FAILED = "0", "1", "2"


@dataclasses.dataclass(frozen=True)
class JobTask:
    """One file of a job (``taskInfos[]``): ``status`` ``"0"`` pending, ``"1"`` ok, ``"2"`` failed."""

    file_id: Optional[str]
    file_path: Optional[str]
    status: str
    raw: JsonDict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.status == TASK_SUCCEEDED


@dataclasses.dataclass(frozen=True)
class Job:
    """``GET /{job_id}`` (more-endpoints §9.3): the job and its per-file tasks.

    ``status``: 0 pending, 1 running, 2 finished, 3 cancelled.
    ``result_code`` (``taskResultCode``): 1 all succeeded, 2 partly, 3 all failed.
    """

    job_id: str
    status: int
    task_type: Optional[int]
    action_type: Optional[int]
    progress: Optional[int]
    result_code: Optional[int]
    tasks: tuple[JobTask, ...]
    raw: JsonDict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Finished or cancelled: polling will not change it any more."""
        return self.status in (JOB_FINISHED, JOB_CANCELLED)

    @property
    def succeeded(self) -> bool:
        """Finished, and every file succeeded."""
        return (
            self.status == JOB_FINISHED
            and self.result_code in (1, None)
            and all(t.succeeded for t in self.tasks)
        )

    @property
    def failed_file_ids(self) -> tuple[str, ...]:
        return tuple(t.file_id or "" for t in self.tasks if t.status == TASK_FAILED)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], job_id: str = "") -> Job:
        body = data.get("data", data)
        if not isinstance(body, Mapping):
            raise ValueError("job response without a data object")
        info = body.get("jobInfo")
        if not isinstance(info, Mapping):
            raise ValueError("job response without jobInfo")
        tasks = body.get("taskInfos") or []
        if not isinstance(tasks, list):
            raise ValueError("taskInfos must be a list")
        if "status" not in info:
            raise ValueError("jobInfo without status")
        parsed = []
        for task in tasks:
            if not isinstance(task, Mapping):
                raise ValueError("taskInfos entry must be an object")
            parsed.append(JobTask(
                _opt_str(task.get("fileId")), _opt_str(task.get("filePath")),
                str(parse_int(task.get("status", 0), "taskInfos.status")), dict(task),
            ))
        return cls(
            job_id=str(info.get("taskId") or job_id),
            status=parse_int(info["status"], "status"),
            task_type=_opt_int(info.get("taskType"), "taskType"),
            action_type=_opt_int(info.get("actionType"), "actionType"),
            progress=_opt_int(info.get("progress"), "progress"),
            result_code=_opt_int(info.get("taskResultCode"), "taskResultCode"),
            tasks=tuple(parsed),
            raw=dict(data),
        )
