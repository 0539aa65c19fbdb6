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
