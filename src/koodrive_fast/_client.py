"""KooDrive file-API clients: :class:`Client` (sync) and :class:`AsyncClient`.

Both share every piece of request building, validation, response parsing and
retry decision (:class:`_ClientCore`); only the I/O loop differs.  Each public
call validates its input *before* any request, uses one ``X-Traceid`` for all
its requests (batches, retries), and signs every attempt afresh (new
``X-Date``).  A refreshable credential (:class:`~koodrive_fast.TokenProvider`,
:class:`~koodrive_fast.RefreshingBearerToken`) is renewed before an attempt
when due, through this client's own connection pool, and once after a 401
(the attempt is then repeated, outside the retry budget).  Logging goes to
``logging.getLogger("koodrive_fast")`` at DEBUG: method, path, status, code,
trace id — never tokens or presigned URLs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar, Union, cast
from urllib.parse import quote, urlsplit

import httpx

from ._auth import (
    AppCredentials,
    BearerToken,
    RefreshableToken,
    RefreshExchange,
    RefreshReply,
    format_x_date,
    new_trace_id,
    proof_origin,
)
from ._config import DEFAULT_LIMITS, Limits
from ._exceptions import (
    CODE_DUPLICATE_NAME,
    CODE_RESOURCE_MISSING,
    ApiError,
    JobTimeoutError,
    MalformedResponseError,
    NotFoundError,
    TransportError,
    ValidationError,
    api_error,
)
from ._models import (
    FOLDER_FILE_TYPE,
    CreateFileResult,
    DownloadLink,
    Entry,
    FileDetail,
    FolderEntry,
    FullPath,
    Job,
    ListPage,
    MultiPartInfo,
    SearchHit,
    parse_code,
)
from ._planner import validate_file_size, validate_parts
from ._redact import redact_text
from ._validate import check_file_id as _check_file_id
from ._validate import check_hex64 as _check_hex64
from ._validate import check_file_name as _check_file_name
from ._validate import check_str as _check_str
from ._retry import (
    RetryBudget,
    RetryPolicy,
    is_retryable_status,
    is_retryable_transport_error,
    parse_retry_after,
)

if TYPE_CHECKING:  # pragma: no cover
    import os

    from ._options import UploadOptions
    from ._download import DownloadConfig, DownloadResult
    from ._progress import ProgressCallback
    from ._upload import UploadResult

__all__ = [
    "Client",
    "AsyncClient",
    "API_PREFIX",
    "PATH_CREATE",
    "PATH_UPLOAD_URL",
    "PATH_COMPLETE",
    "PATH_DETAIL",
    "PATH_DOWNLOAD",
]

logger = logging.getLogger("koodrive_fast")

API_PREFIX = "/koodrive/ose/v1"
PATH_CREATE = f"{API_PREFIX}/files/create"
PATH_UPLOAD_URL = f"{API_PREFIX}/files/multipart/uploadUrl"
PATH_COMPLETE = f"{API_PREFIX}/files/complete"
PATH_DETAIL = f"{API_PREFIX}/files/{{file_id}}/detail"
PATH_DOWNLOAD = f"{API_PREFIX}/files/download"

T = TypeVar("T")
P = TypeVar("P")
E = TypeVar("E")
JsonDict = dict[str, Any]
AnyCredentials = Union[BearerToken, AppCredentials, RefreshableToken]

_MAX_MSG = 500
_AUTO_RENAME = (2, 3, 4)


@dataclasses.dataclass(frozen=True)
class _Call(Generic[T]):
    """One API request: what to send and how to read a success body."""

    operation: str
    path: str
    body: JsonDict
    parse: Callable[[JsonDict], T]
    idempotent: bool
    trace_id: str
    method: str = "POST"
    query: Optional[dict[str, str]] = None


@dataclasses.dataclass(frozen=True)
class _Retry:
    delay: float


# --------------------------------------------------------------------------- validation


def _check_trace_id(trace_id: object) -> str:
    if trace_id is None:
        return new_trace_id()
    text = _check_str(trace_id, "trace_id")
    if len(text) != 58 or not re.fullmatch(r"[A-Za-z0-9_]+", text):
        raise ValidationError("trace_id", "must be 58 characters from [A-Za-z0-9_]")
    return text


def _check_endpoint(endpoint: object) -> str:
    text = _check_str(endpoint, "endpoint")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("endpoint", f"must be an http(s) URL, got {text!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValidationError("endpoint", "must not contain a query, fragment or user info")
    return text.rstrip("/")


def _batches(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- folder-API validation

PATH_DIRECTORY = f"{API_PREFIX}/directory"
PATH_LIST = f"{API_PREFIX}/files/{{type}}"
PATH_SEARCH = f"{API_PREFIX}/files/search"
PATH_FULL_PATH = f"{API_PREFIX}/files/path"
PATH_JOBS = f"{API_PREFIX}/jobs"
PATH_JOB = f"{API_PREFIX}/{{job_id}}"

#: Most files one delete job may name (our choice; the docs state no limit).
MAX_JOB_FILES = 1000
#: Most entries per listing/search page (documented for search; assumed for lists).
MAX_PAGE_SIZE = 100
_RENAME_MODES = (2, 3)
_MAX_KEYWORD = 80
_MAX_CONTAINER_ID = 128
_FILE_TYPES = frozenset({"10", "11", "15", "20", "26", "27", "28", "30", "35", "40", "45"})
_ROOT_ALIASES = frozenset({"root"})
_PATH_CACHE_MAX = 100_000
_MAX_PAGES = 100_000
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

ListPageOfHits = tuple[tuple[SearchHit, ...], Optional[str]]


def _opt_text(value: object) -> Optional[str]:
    return None if value is None else str(value)


def _check_container_id(value: object) -> str:
    text = _check_str(value, "containerId")
    if len(text) > _MAX_CONTAINER_ID or not text.isprintable():
        raise ValidationError(
            "containerId", f"must be 1..{_MAX_CONTAINER_ID} printable characters"
        )
    return text


def _check_page_size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValidationError("pageSize", f"must be an int in 1..{MAX_PAGE_SIZE}, got {value!r}")
    return value


def _check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be a bool, got {type(value).__name__}")
    return value


def _check_file_type(value: object) -> str:
    if value not in _FILE_TYPES:
        raise ValidationError("fileType", f"must be one of {sorted(_FILE_TYPES)}, got {value!r}")
    return str(value)


def _check_sort(sort_type: object, direction: object, *, recycled: bool) -> JsonDict:
    highest = 6
    if not isinstance(sort_type, int) or isinstance(sort_type, bool) or not 1 <= sort_type <= highest:
        raise ValidationError("sortType", f"must be an int in 1..{highest}, got {sort_type!r}")
    if sort_type == 5 and not recycled:
        raise ValidationError("sortType", "5 (recycled time) only applies to the recycle bin")
    if direction not in (1, 2) or isinstance(direction, bool):
        raise ValidationError("sortDirection", f"must be 1 (ascending) or 2 (descending), got {direction!r}")
    return {"sortType": sort_type, "sortDirection": direction}


def _check_job_id(value: object) -> str:
    text = _check_str(value, "jobId")
    if not _JOB_ID.fullmatch(text) or text in ("jobs", "cancel", "directory", "files"):
        raise ValidationError("jobId", "must be 1..64 characters from [A-Za-z0-9_-]")
    return text


def split_remote_path(path: object) -> tuple[str, ...]:
    """``"/a/b"`` → ``("a", "b")``; every component must be a valid KooDrive name.

    The path starts at the space root: a leading ``/`` is required, repeated and
    trailing slashes are ignored, ``"/"`` is the root (``()``).
    """
    text = _check_str(path, "path")
    if not text.startswith("/"):
        raise ValidationError("path", f"must start with '/' (from the space root), got {text!r}")
    parts = tuple(p for p in text.split("/") if p)
    for part in parts:
        try:
            _check_file_name(part)
        except ValidationError as exc:
            raise ValidationError("path", f"component {part!r}: {exc.rule}") from None
    return parts


def root_entry(container_id: str) -> FolderEntry:
    """The space root as an entry (id ``root``, name ``""``)."""
    return FolderEntry(id="root", name="", container_id=container_id)


def _require_folder(entry: Entry, path: str) -> None:
    if not entry.is_folder:
        raise NotFoundError(
            CODE_RESOURCE_MISSING, f"{path!r} is a file, not a folder", method="resolve", path=path
        )


def _pick_child(
    children: Sequence[Entry], name: str, chain: tuple[str, ...], path: str
) -> tuple[Entry, tuple[str, ...]]:
    """The child called ``name`` (a folder first, should a file share its name)."""
    matches = sorted((c for c in children if c.name == name), key=lambda c: not c.is_folder)
    if not matches:
        raise NotFoundError(CODE_RESOURCE_MISSING, f"no such file or folder: {path!r}",
                            method="resolve", path=path)
    return matches[0], chain + (matches[0].id,)


def _require_folder_entry(entry: Entry, path: str) -> FolderEntry:
    if not isinstance(entry, FolderEntry):
        raise ApiError(CODE_DUPLICATE_NAME, f"a file is in the way of folder {path!r}",
                       method="ensure_folder", path=path)
    return entry


def _check_max_pages(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError("max_pages", f"must be an int >= 1, got {value!r}")


def _check_wait(timeout: object, interval: object, max_polls: object) -> None:
    for name, value in (("timeout", timeout), ("interval", interval)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ValidationError(name, f"must be a number >= 0, got {value!r}")
    if not isinstance(max_polls, int) or isinstance(max_polls, bool) or max_polls < 1:
        raise ValidationError("max_polls", f"must be an int >= 1, got {max_polls!r}")


def _job_timeout(job: Job, polls: int) -> JobTimeoutError:
    return JobTimeoutError(
        f"job {job.job_id} still has status {job.status} after {polls} poll(s)",
        job_id=job.job_id, last=job,
    )


def _with_cursor(call: _Call[T], cursor: str) -> _Call[T]:
    body = dict(call.body)
    body["pageInfo"] = {**call.body["pageInfo"], "pageCursor": cursor}
    return dataclasses.replace(call, body=body)


def _join_remote(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def _more_pages(cursor: Optional[str], seen: set[str], pages: int, max_pages: int, what: str) -> bool:
    """Whether to fetch another page after one that returned ``cursor``; bounded."""
    if cursor is None:
        return False
    if cursor in seen:
        raise MalformedResponseError(None, f"{what}: the server repeated cursor after {pages} pages")
    if pages >= max_pages:
        raise MalformedResponseError(None, f"{what}: more than {max_pages} pages (max_pages)")
    seen.add(cursor)
    return True


# --------------------------------------------------------------------------- responses


def _parse_envelope(
    response: httpx.Response,
) -> tuple[Optional[JsonDict], Optional[Union[int, str]], str]:
    """``(json_object_or_None, code, msg)`` of a response."""
    try:
        data = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        text = response.text[:_MAX_MSG] if response.content else ""
        return None, None, redact_text(text.strip()) or response.reason_phrase
    code = parse_code(data.get("code"))
    msg = data.get("msg", data.get("message", ""))
    return data, code, redact_text(str(msg))[:_MAX_MSG]


def _merge_part(requested: Optional[MultiPartInfo], returned: MultiPartInfo) -> MultiPartInfo:
    """Our own part fields, plus what only the server knows (URL, partId)."""
    if requested is None:
        return returned
    return dataclasses.replace(requested, upload_url=returned.upload_url, part_id=returned.part_id)


class _ClientCore:
    """Everything the two clients share: configuration, validation, requests, parsing."""

    def __init__(
        self,
        endpoint: str,
        credentials: AnyCredentials,
        *,
        limits: Limits,
        retry: Optional[RetryPolicy],
        language: Optional[str],
        share_folder_id: Optional[str],
        clock: Optional[Callable[[], datetime]],
        monotonic: Callable[[], float],
        max_connections: int,
    ) -> None:
        self._endpoint = _check_endpoint(endpoint)
        if not isinstance(credentials, (BearerToken, AppCredentials, RefreshableToken)):
            raise ValidationError(
                "credentials",
                "must be BearerToken, AppCredentials, TokenProvider or RefreshingBearerToken, "
                f"got {type(credentials).__name__}",
            )
        if not isinstance(limits, Limits):
            raise ValidationError("limits", f"must be a Limits, got {type(limits).__name__}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", f"must be a RetryPolicy, got {type(retry).__name__}")
        if (
            not isinstance(max_connections, int)
            or isinstance(max_connections, bool)
            or max_connections < 1
        ):
            raise ValidationError(
                "max_connections", f"must be an int >= 1, got {max_connections!r}"
            )
        if language is not None:
            _check_str(language, "language")
        if share_folder_id is not None:
            _check_str(share_folder_id, "share_folder_id")
        self._credentials = credentials
        self._limits = limits
        self._retry = retry if retry is not None else RetryPolicy()
        self._language = language
        self._share_folder_id = share_folder_id
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._monotonic = monotonic
        self._cache_lock = threading.Lock()
        self._path_cache: dict[tuple[str, str], tuple[Entry, tuple[str, ...]]] = {}
        self._path_by_id: dict[tuple[str, str], str] = {}

    # ---- public read-only state

    @property
    def endpoint(self) -> str:
        """The API base URL (no trailing slash)."""
        return self._endpoint

    @property
    def limits(self) -> Limits:
        """The protocol limits this client validates against."""
        return self._limits

    @property
    def credentials(self) -> AnyCredentials:
        return self._credentials

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    @property
    def proof_origin(self) -> str:
        """The ``originValue`` for :func:`koodrive_fast.proof_code` with these credentials."""
        return proof_origin(self._credentials)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self._endpoint!r}, "
            f"user_id={self._credentials.user_id!r})"
        )

    # ---- request building

    def _headers(self, trace_id: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "X-User-Id": self._credentials.user_id,
            "X-Date": format_x_date(self._clock()),
            "X-Traceid": trace_id,
        }
        if self._language:
            headers["language"] = self._language
        if self._share_folder_id:
            headers["x-hw-share-folder-id"] = self._share_folder_id
        return headers

    def _build_request(
        self, http: Union[httpx.Client, httpx.AsyncClient], call: _Call[Any]
    ) -> httpx.Request:
        body = (
            b"" if call.method == "GET"
            else json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        )
        request = http.build_request(
            call.method, self._endpoint + call.path, content=body, params=call.query,
            headers=self._headers(call.trace_id),
        )
        request.headers["Authorization"] = self._credentials.authorization(
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode("ascii"),
            headers=request.headers,
            body=body,
        )
        return request

    # ---- token refresh (RefreshableToken credentials only)

    @property
    def _refreshable(self) -> Optional[RefreshableToken]:
        credentials = self._credentials
        return credentials if isinstance(credentials, RefreshableToken) else None

    def _refresh_request(
        self, http: Union[httpx.Client, httpx.AsyncClient], exchange: RefreshExchange, trace_id: str
    ) -> httpx.Request:
        """The credential's refresh call, with the common headers (never logged)."""
        body = b"" if exchange.body is None else json.dumps(exchange.body).encode("utf-8")
        headers = self._headers(trace_id)
        headers.update(exchange.headers)
        return http.build_request("POST", self._endpoint + exchange.path, content=body,
                                  headers=headers)

    @staticmethod
    def _refresh_reply(exchange: RefreshExchange, response: httpx.Response) -> RefreshReply:
        data, code, msg = _parse_envelope(response)
        logger.debug("POST %s -> http %s code %s", exchange.path, response.status_code, code)
        return RefreshReply(response.status_code, data, code, msg)

    def _rejected_authorization(
        self, request: httpx.Request, response: httpx.Response, reauthenticated: bool
    ) -> Optional[str]:
        """The refreshable token a 401 rejected, when the call deserves one refresh and retry."""
        if response.status_code != 401 or reauthenticated or self._refreshable is None:
            return None
        logger.debug("POST %s -> http 401; refreshing the token once", request.url.path)
        return str(request.headers.get("Authorization", ""))

    # ---- response handling (shared decision logic)

    def _handle_response(
        self, call: _Call[T], response: httpx.Response, budget: RetryBudget
    ) -> Union[T, _Retry]:
        status = response.status_code
        data, code, msg = _parse_envelope(response)
        logger.debug(
            "%s %s -> http %s code %s trace %s attempt %d",
            call.method, call.path, status, code, call.trace_id, budget.attempts,
        )
        if 200 <= status < 300 and code in (0, None):
            if data is None:
                raise MalformedResponseError(
                    None, f"expected a JSON object, got: {msg}", http_status=status,
                    trace_id=call.trace_id, method=call.method, path=call.path,
                )
            try:
                return call.parse(data)
            except (ValueError, KeyError, TypeError) as exc:
                raise MalformedResponseError(
                    code, redact_text(str(exc)), http_status=status,
                    trace_id=call.trace_id, method=call.method, path=call.path,
                ) from None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if self._is_retryable_status(status, call.idempotent):
            delay = budget.next_delay(retry_after)
            if delay is not None:
                logger.debug("retrying %s in %.2fs (trace %s)", call.path, delay, call.trace_id)
                return _Retry(delay)
        raise api_error(
            code, msg, http_status=status, trace_id=call.trace_id, method=call.method,
            path=call.path, retry_after=retry_after,
        )

    def _is_retryable_status(self, status: int, idempotent: bool) -> bool:
        return is_retryable_status(status, idempotent=idempotent, policy=self._retry)

    def _handle_transport_error(
        self, call: _Call[Any], exc: httpx.HTTPError, budget: RetryBudget
    ) -> float:
        """Delay before retrying after ``exc``; raises :class:`TransportError` when done."""
        logger.debug(
            "%s %s -> %s trace %s attempt %d", call.method, call.path, type(exc).__name__,
            call.trace_id, budget.attempts,
        )
        if isinstance(exc, httpx.TransportError) and is_retryable_transport_error(
            exc, idempotent=call.idempotent
        ):
            delay = budget.next_delay()
            if delay is not None:
                return delay
        raise TransportError(
            f"{call.method} {call.path} failed after {budget.attempts} attempt(s): "
            f"{type(exc).__name__}: {redact_text(str(exc))} (trace id {call.trace_id})",
            method=call.method, path=call.path, attempts=budget.attempts,
        ) from exc

    def _new_budget(self) -> RetryBudget:
        return RetryBudget(self._retry, self._monotonic)

    # ---- per-endpoint calls (validation happens here, before any I/O)

    def _create_call(
        self,
        *,
        file_name: str,
        length: int,
        parent_folder: str,
        container_id: Optional[str],
        file_type: str,
        sha256: Optional[str],
        pre_hash: Optional[str],
        proof_code: Optional[str],
        multi_parts: Optional[Sequence[MultiPartInfo]],
        auto_rename: Optional[int],
        mime_type: Optional[str],
        algorithm: str,
        require_contexts: bool,
        trace_id: Optional[str],
    ) -> _Call[CreateFileResult]:
        body: JsonDict = {
            "fileName": _check_file_name(file_name),
            "fileType": _check_str(file_type, "fileType"),
            "parentFolder": [_check_file_id(parent_folder, "parentFolder")],
            "length": validate_file_size(length, self._limits),
            "uploadMode": "multipart",
            "uploadType": 1,
        }
        if container_id is not None:
            body["containerId"] = _check_str(container_id, "containerId")
        if sha256 is not None:
            body["sha256"] = _check_hex64(sha256, "sha256")
        if pre_hash is not None:
            body["preHash"] = _check_hex64(pre_hash, "preHash")
        if proof_code is not None:
            body["proofCode"] = _check_hex64(proof_code, "proofCode")
        if auto_rename is not None:
            if auto_rename not in _AUTO_RENAME or isinstance(auto_rename, bool):
                raise ValidationError(
                    "autoRename", f"must be one of {_AUTO_RENAME}, got {auto_rename!r}"
                )
            body["autoRename"] = auto_rename
        if mime_type is not None:
            body["mimeType"] = _check_str(mime_type, "mimeType")
        requested: dict[int, MultiPartInfo] = {}
        if multi_parts is not None:
            if len(multi_parts) > self._limits.max_parts_per_request:
                raise ValidationError(
                    "multiParts",
                    f"create takes at most {self._limits.max_parts_per_request} parts "
                    f"(got {len(multi_parts)}); request the rest with get_upload_urls",
                )
            validate_parts(
                multi_parts, file_size=length, algorithm=algorithm, limits=self._limits,
                require_contexts=require_contexts,
            )
            body["multiParts"] = [p.to_json(include_output=False) for p in multi_parts]
            requested = {p.part_number: p for p in multi_parts}

        def parse(data: JsonDict) -> CreateFileResult:
            result = CreateFileResult.from_json(data)
            if not requested:
                return result
            merged = tuple(_merge_part(requested.get(p.part_number), p) for p in result.multi_parts)
            return dataclasses.replace(result, multi_parts=merged)

        return _Call("create", PATH_CREATE, body, parse, False, _check_trace_id(trace_id))

    def _upload_url_calls(
        self,
        file_id: str,
        parts: Sequence[MultiPartInfo],
        *,
        file_size: Optional[int],
        algorithm: str,
        require_contexts: bool,
        trace_id: Optional[str],
    ) -> list[_Call[dict[int, MultiPartInfo]]]:
        file_id = _check_file_id(file_id)
        validate_parts(
            parts, file_size=file_size, algorithm=algorithm, limits=self._limits,
            require_contexts=require_contexts,
        )
        trace = _check_trace_id(trace_id)
        calls = []
        for batch in _batches(list(parts), self._limits.max_parts_per_request):
            wanted = {p.part_number: p for p in batch}

            def parse(
                data: JsonDict, wanted: dict[int, MultiPartInfo] = wanted
            ) -> dict[int, MultiPartInfo]:
                entries = data.get("multiParts")
                if not isinstance(entries, list):
                    raise ValueError("uploadUrl response without a multiParts list")
                found: dict[int, MultiPartInfo] = {}
                for entry in entries:
                    returned = MultiPartInfo.from_json(entry)
                    if returned.part_number not in wanted:
                        logger.debug(
                            "ignoring unrequested part %d in response", returned.part_number
                        )
                        continue
                    if not returned.upload_url:
                        raise ValueError(f"part {returned.part_number} has no uploadUrl")
                    number = returned.part_number
                    found[number] = _merge_part(wanted[number], returned)
                missing = sorted(set(wanted) - set(found))
                if missing:
                    raise ValueError(f"response lacks parts {missing[:10]}")
                return found

            body: JsonDict = {
                "fileId": file_id,
                "multiParts": [p.to_json(include_output=False) for p in batch],
            }
            calls.append(_Call("uploadUrl", PATH_UPLOAD_URL, body, parse, True, trace))
        return calls

    def _complete_call(
        self, file_id: str, *, sha256: Optional[str], trace_id: Optional[str]
    ) -> _Call[None]:
        body: JsonDict = {"fileId": _check_file_id(file_id)}
        if sha256 is not None:
            body["sha256"] = _check_hex64(sha256, "sha256")

        def parse(data: JsonDict) -> None:
            return None

        return _Call("complete", PATH_COMPLETE, body, parse, True, _check_trace_id(trace_id))

    def _detail_call(self, file_id: str, *, trace_id: Optional[str]) -> _Call[FileDetail]:
        file_id = _check_file_id(file_id)
        path = PATH_DETAIL.format(file_id=quote(file_id, safe=""))
        return _Call("detail", path, {}, FileDetail.from_json, True, _check_trace_id(trace_id))

    def _download_calls(
        self, file_ids: Sequence[str], *, container_id: Optional[str], trace_id: Optional[str]
    ) -> list[_Call[list[DownloadLink]]]:
        if isinstance(file_ids, str) or not isinstance(file_ids, Sequence):
            raise ValidationError("fileIds", "must be a sequence of file ids (not a str)")
        if not file_ids:
            raise ValidationError("fileIds", "must not be empty")
        ids = [_check_file_id(f, f"fileIds[{i}]") for i, f in enumerate(file_ids)]
        if container_id is not None:
            _check_str(container_id, "containerId")
        trace = _check_trace_id(trace_id)
        calls = []
        for batch in _batches(ids, self._limits.max_parts_per_request):

            def parse(data: JsonDict, batch: Sequence[str] = batch) -> list[DownloadLink]:
                entries = data.get("downloads")
                if not isinstance(entries, list):
                    raise ValueError("download response without a downloads list")
                links = {link.file_id: link for link in map(DownloadLink.from_json, entries)}
                missing = [f for f in batch if f not in links]
                if missing:
                    raise ValueError(f"response lacks file ids {missing[:10]}")
                return [links[f] for f in batch]

            body: JsonDict = {"fileIds": list(batch)}
            if container_id is not None:
                body["containerId"] = container_id
            calls.append(_Call("download", PATH_DOWNLOAD, body, parse, True, trace))
        return calls

    # ---- folders, listing, search, paths, jobs (more-endpoints §3-§9)

    def _create_folder_call(
        self, name: str, *, parent_folder: str, container_id: str, rename_mode: int,
        trace_id: Optional[str],
    ) -> _Call[FolderEntry]:
        if rename_mode not in _RENAME_MODES or isinstance(rename_mode, bool):
            raise ValidationError(
                "renameMode", f"must be one of {_RENAME_MODES}, got {rename_mode!r}"
            )
        body: JsonDict = {
            "fileName": _check_file_name(name),
            "fileType": FOLDER_FILE_TYPE,
            "containerId": _check_container_id(container_id),
            "parentFolder": [_check_file_id(parent_folder, "parentFolder")],
            "renameMode": rename_mode,
        }

        def parse(data: JsonDict) -> FolderEntry:
            folder_id = data.get("id")
            if not isinstance(folder_id, str) or not folder_id:
                raise ValueError("directory response without id")
            final = data.get("fileName") or body["fileName"]
            return FolderEntry(
                id=folder_id, name=str(final), parent_id=parent_folder,
                container_id=container_id, created_time=_opt_text(data.get("createdTime")),
                edited_time=_opt_text(data.get("editedTime")), raw=dict(data),
            )

        return _Call("createDirectory", PATH_DIRECTORY, body, parse, False,
                     _check_trace_id(trace_id))

    def _list_call(
        self, folder_id: str, *, container_id: str, cursor: Optional[str], page_size: int,
        recycled: bool, file_type: Optional[str], sort_type: Optional[int],
        sort_direction: Optional[int], trace_id: str,
    ) -> _Call[ListPage]:
        page_info: JsonDict = {"pageSize": _check_page_size(page_size)}
        if cursor is not None:
            page_info["pageCursor"] = _check_str(cursor, "pageCursor", allow_empty=True)
        body: JsonDict = {
            "containerId": _check_container_id(container_id),
            "parentFileId": _check_file_id(folder_id, "parentFileId"),
            "pageInfo": page_info,
        }
        if sort_type is not None or sort_direction is not None:
            body["sortInfo"] = _check_sort(sort_type, sort_direction, recycled=recycled)
        if file_type is not None:
            body["fileType"] = _check_file_type(file_type)
        path = PATH_LIST.format(type=1 if recycled else 0)
        return _Call("list", path, body, ListPage.from_json, True, trace_id)

    def _search_call(
        self, keyword: Optional[str], *, container_id: str, parent_folder: Optional[str],
        file_type: Optional[str], recursive: bool, recycled: bool, cursor: str, page_size: int,
        trace_id: str,
    ) -> _Call[ListPageOfHits]:
        filters: JsonDict = {"containerId": _check_container_id(container_id)}
        if keyword is not None:
            text = _check_str(keyword, "keyWord")
            if len(text) > _MAX_KEYWORD or any(ord(c) < 32 for c in text):
                raise ValidationError(
                    "keyWord", f"must be 1..{_MAX_KEYWORD} characters without control characters"
                )
            filters["keyWord"] = text
        if parent_folder is not None:
            filters["parentFolder"] = _check_file_id(parent_folder, "parentFolder")
        if file_type is not None:
            filters["fileType"] = _check_file_type(file_type)
        body: JsonDict = {
            "searchType": "personal",
            "pageInfo": {
                "pageSize": _check_page_size(page_size),
                "pageCursor": _check_str(cursor, "pageCursor", allow_empty=True),
            },
            "filter": filters,
            "recursived": _check_bool(recursive, "recursived"),
            "recycled": _check_bool(recycled, "recycled"),
        }

        def parse(data: JsonDict) -> ListPageOfHits:
            files = data.get("files") or []
            if not isinstance(files, list):
                raise ValueError("files must be a list")
            nxt = data.get("nextPageCursor")
            if nxt is not None and not isinstance(nxt, str):
                raise ValueError("nextPageCursor must be a string")
            return tuple(SearchHit.from_json(f) for f in files), (nxt or None)

        return _Call("search", PATH_SEARCH, body, parse, True, trace_id)

    def _full_path_call(
        self, file_id: str, *, container_id: str, trace_id: Optional[str]
    ) -> _Call[FullPath]:
        query = {
            "fileId": _check_file_id(file_id),
            "containerId": _check_container_id(container_id),
        }
        return _Call("path", PATH_FULL_PATH, {}, FullPath.from_json, True,
                     _check_trace_id(trace_id), "GET", query)

    def _delete_job_call(
        self, targets: Sequence[tuple[str, str]], *, container_id: str, trace_id: str
    ) -> _Call[str]:
        body: JsonDict = {
            "taskType": 2,
            "actionType": 201,
            "dstContainerId": container_id,
            "taskInfo": {
                "srcContainerId": container_id,
                "fileInfo": [{"fileId": f, "filePath": p} for f, p in targets],
            },
        }

        def parse(data: JsonDict) -> str:
            job_id = data.get("data")
            if not isinstance(job_id, str) or not job_id:
                raise ValueError("jobs response without a job id in data")
            _check_job_id(job_id)
            return job_id

        # not idempotent: a repeated create would start a second job
        return _Call("createJob", PATH_JOBS, body, parse, False, trace_id)

    def _job_call(self, job_id: str, *, trace_id: Optional[str]) -> _Call[Job]:
        job_id = _check_job_id(job_id)

        def parse(data: JsonDict) -> Job:
            return Job.from_json(data, job_id)

        path = PATH_JOB.format(job_id=quote(job_id, safe=""))
        return _Call("job", path, {}, parse, True, _check_trace_id(trace_id), "GET")

    def _check_delete_ids(self, file_ids: Sequence[str], container_id: str) -> list[str]:
        if isinstance(file_ids, str) or not isinstance(file_ids, Sequence):
            raise ValidationError("fileIds", "must be a sequence of file ids (not a str)")
        if not 1 <= len(file_ids) <= MAX_JOB_FILES:
            raise ValidationError("fileIds", f"must list 1..{MAX_JOB_FILES} ids per job")
        ids = [_check_file_id(f, f"fileIds[{i}]") for i, f in enumerate(file_ids)]
        if any(f in _ROOT_ALIASES for f in ids):
            raise ValidationError("fileIds", "the root folder cannot be deleted")
        if len(set(ids)) != len(ids):
            raise ValidationError("fileIds", "must not repeat an id")
        _check_container_id(container_id)
        return ids

    # ---- path cache (thread-safe; shared by resolve_path and the mutating calls)

    def _cache_get(self, container_id: str, path: str) -> Optional[tuple[Entry, tuple[str, ...]]]:
        with self._cache_lock:
            return self._path_cache.get((container_id, path))

    def _cache_put(
        self, container_id: str, parent_path: str, parent_chain: tuple[str, ...],
        entries: Sequence[Entry],
    ) -> None:
        with self._cache_lock:
            if len(self._path_cache) + len(entries) > _PATH_CACHE_MAX:
                self._path_cache.clear()
                self._path_by_id.clear()
            for entry in entries:
                path = _join_remote(parent_path, entry.name)
                self._path_cache[(container_id, path)] = (entry, parent_chain + (entry.id,))
                self._path_by_id[(container_id, entry.id)] = path

    def _cache_parent(self, container_id: str, folder_id: str) -> Optional[tuple[str, tuple[str, ...]]]:
        if folder_id in _ROOT_ALIASES:
            return "/", ()
        with self._cache_lock:
            path = self._path_by_id.get((container_id, folder_id))
            found = None if path is None else self._path_cache.get((container_id, path))
        if path is None or found is None or found[0].id != folder_id:
            return None
        return path, found[1]

    def _cache_forget(self, container_id: str, ids: Sequence[str]) -> None:
        gone = set(ids)
        with self._cache_lock:
            for key in [k for k, (_, chain) in self._path_cache.items()
                        if k[0] == container_id and gone.intersection(chain)]:
                entry, _ = self._path_cache.pop(key)
                self._path_by_id.pop((container_id, entry.id), None)

    def _cache_created(self, container_id: str, folder: FolderEntry) -> None:
        parent = self._cache_parent(container_id, folder.parent_id or "root")
        if parent is not None:
            self._cache_put(container_id, parent[0], parent[1], [folder])

    def clear_path_cache(self) -> None:
        """Forget every cached path → id resolution of this client."""
        with self._cache_lock:
            self._path_cache.clear()
            self._path_by_id.clear()


def _ssl_verify(verify: Union[bool, str, ssl.SSLContext]) -> Union[bool, ssl.SSLContext]:
    """httpx's ``verify``: a CA bundle path becomes an SSL context (str is deprecated there)."""
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise ValidationError("verify", f"cannot load CA bundle {verify!r}: {exc}") from None
    if not isinstance(verify, (bool, ssl.SSLContext)):
        raise ValidationError(
            "verify",
            f"must be a bool, a CA bundle path or an SSLContext, got {type(verify).__name__}",
        )
    return verify


def _http_limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


class Client(_ClientCore):
    """Synchronous KooDrive client; one pooled ``httpx.Client``; use as a context manager.

    Safe to share between threads (the upload engine's workers do).

    ``clock`` supplies the time for ``X-Date`` (tests inject skew), ``sleep``
    and ``monotonic`` drive the retry backoff.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: AnyCredentials,
        *,
        limits: Limits = DEFAULT_LIMITS,
        timeout: Union[float, httpx.Timeout] = 30.0,
        verify: Union[bool, str, ssl.SSLContext] = True,
        retry: Optional[RetryPolicy] = None,
        language: Optional[str] = None,
        share_folder_id: Optional[str] = None,
        transport: Optional[httpx.BaseTransport] = None,
        max_connections: int = 64,
        clock: Optional[Callable[[], datetime]] = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            endpoint, credentials, limits=limits, retry=retry, language=language,
            share_folder_id=share_folder_id, clock=clock, monotonic=monotonic,
            max_connections=max_connections,
        )
        self._sleep = sleep
        ssl_verify = _ssl_verify(verify)
        if transport is None:
            # TCP_NODELAY: a PUT's request head and its body's last small chunk
            # must not wait for a delayed ACK (40 ms per part otherwise)
            transport = httpx.HTTPTransport(
                verify=ssl_verify, limits=_http_limits(max_connections),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
        self._max_connections = max_connections
        self._http = httpx.Client(
            timeout=timeout, verify=ssl_verify, transport=transport,
            limits=_http_limits(max_connections), follow_redirects=False,
        )

    @property
    def http_client(self) -> httpx.Client:
        """The pooled ``httpx.Client`` (the uploader PUTs parts through it)."""
        return self._http

    def _refresh_token(self, trace_id: str, rejected: Optional[str]) -> None:
        """Renew a refreshable token if due (or ``rejected``), through this client's pool.

        Transport errors of the refresh call reach the caller's retry loop.
        """
        credentials = self._refreshable
        if credentials is None:
            return

        def send(exchange: RefreshExchange) -> RefreshReply:
            response = self._http.send(self._refresh_request(self._http, exchange, trace_id))
            return self._refresh_reply(exchange, response)

        credentials.ensure_fresh(send, rejected=rejected)

    def _execute(self, call: _Call[T]) -> T:
        budget = self._new_budget()
        rejected: Optional[str] = None  # the token a 401 refused: refresh once, then retry
        reauthenticated = False
        while True:
            try:
                self._refresh_token(call.trace_id, rejected)
                request = self._build_request(self._http, call)
                response = self._http.send(request)
            except httpx.TransportError as exc:
                self._sleep(self._handle_transport_error(call, exc, budget))
                continue
            rejected = self._rejected_authorization(request, response, reauthenticated)
            if rejected is not None:
                reauthenticated = True
                continue
            outcome = self._handle_response(call, response, budget)
            if isinstance(outcome, _Retry):
                self._sleep(outcome.delay)
                continue
            return outcome

    def create_file(
        self,
        *,
        file_name: str,
        length: int,
        parent_folder: str = "root",
        container_id: Optional[str] = None,
        file_type: str = "45",
        sha256: Optional[str] = None,
        pre_hash: Optional[str] = None,
        proof_code: Optional[str] = None,
        multi_parts: Optional[Sequence[MultiPartInfo]] = None,
        auto_rename: Optional[int] = None,
        mime_type: Optional[str] = None,
        algorithm: str = "sha256",
        require_contexts: bool = True,
        trace_id: Optional[str] = None,
    ) -> CreateFileResult:
        """``files/create``: create the file record (and get URLs for ``multi_parts``).

        At most ``limits.max_parts_per_request`` parts; the returned parts keep
        our offsets/contexts and gain the server's ``upload_url``.
        """
        return self._execute(self._create_call(
            file_name=file_name, length=length, parent_folder=parent_folder,
            container_id=container_id, file_type=file_type, sha256=sha256, pre_hash=pre_hash,
            proof_code=proof_code, multi_parts=multi_parts, auto_rename=auto_rename,
            mime_type=mime_type, algorithm=algorithm, require_contexts=require_contexts,
            trace_id=trace_id,
        ))

    def get_upload_urls(
        self,
        file_id: str,
        parts: Sequence[MultiPartInfo],
        *,
        file_size: Optional[int] = None,
        algorithm: str = "sha256",
        require_contexts: bool = True,
        trace_id: Optional[str] = None,
    ) -> dict[int, MultiPartInfo]:
        """``files/multipart/uploadUrl``: URLs for ``parts``, keyed by part number.

        Sent in batches of ``limits.max_parts_per_request``; answers are matched
        by ``partNumber``, never by position; a part missing from an answer
        raises :class:`MalformedResponseError`.
        """
        result: dict[int, MultiPartInfo] = {}
        for call in self._upload_url_calls(
            file_id, parts, file_size=file_size, algorithm=algorithm,
            require_contexts=require_contexts, trace_id=trace_id,
        ):
            urls: dict[int, MultiPartInfo] = self._execute(call)
            result.update(urls)
        return result

    def complete_file(
        self, file_id: str, *, sha256: Optional[str] = None, trace_id: Optional[str] = None
    ) -> None:
        """``files/complete``: merge and verify; 13000402 raises :class:`IntegrityError`."""
        self._execute(self._complete_call(file_id, sha256=sha256, trace_id=trace_id))

    def file_detail(self, file_id: str, *, trace_id: Optional[str] = None) -> FileDetail:
        """``files/{fileId}/detail``."""
        return self._execute(self._detail_call(file_id, trace_id=trace_id))

    def download_urls(
        self,
        file_ids: Sequence[str],
        *,
        container_id: Optional[str] = None,
        trace_id: Optional[str] = None,
    ) -> list[DownloadLink]:
        """``files/download``: one link per id, in the order of ``file_ids``."""
        links: list[DownloadLink] = []
        for call in self._download_calls(file_ids, container_id=container_id, trace_id=trace_id):
            batch: list[DownloadLink] = self._execute(call)
            links.extend(batch)
        return links

    def upload(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        container_id: Optional[str] = None,
        parent_folder: str = "root",
        file_name: Optional[str] = None,
        options: Optional[UploadOptions] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> UploadResult:
        """Upload one file: one read hashes it while its parts are PUT concurrently.

        ``container_id`` (the target space) is required by KooDrive;
        ``options`` (:class:`~koodrive_fast.UploadOptions`) says how;
        ``progress`` receives :class:`~koodrive_fast.ProgressEvent` objects.
        For many files at once use :class:`~koodrive_fast.TransferManager`.
        """
        from ._upload import upload_file

        return upload_file(
            self, path, container_id=container_id, parent_folder=parent_folder,
            file_name=file_name, options=options, progress=progress,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- folders, listing, search, paths, jobs (more-endpoints §3-§9)

    def create_folder(
        self,
        name: str,
        *,
        container_id: str,
        parent_folder: str = "root",
        rename_mode: int = 3,
        trace_id: Optional[str] = None,
    ) -> FolderEntry:
        """``POST directory``: a new folder under ``parent_folder``.

        ``rename_mode`` 3 (default) fails with code 13000405 on a name clash;
        2 lets the server append a timestamp (the returned name says which).
        """
        folder = self._execute(self._create_folder_call(
            name, parent_folder=parent_folder, container_id=container_id,
            rename_mode=rename_mode, trace_id=trace_id,
        ))
        self._cache_created(container_id, folder)
        return folder

    def list_folder_page(
        self,
        folder_id: str = "root",
        *,
        container_id: str,
        cursor: Optional[str] = None,
        page_size: int = MAX_PAGE_SIZE,
        recycled: bool = False,
        file_type: Optional[str] = None,
        sort_type: Optional[int] = None,
        sort_direction: Optional[int] = None,
        trace_id: Optional[str] = None,
    ) -> ListPage:
        """One page of ``files/{type}`` (``recycled`` lists the recycle bin)."""
        return self._execute(self._list_call(
            folder_id, container_id=container_id, cursor=cursor, page_size=page_size,
            recycled=recycled, file_type=file_type, sort_type=sort_type,
            sort_direction=sort_direction, trace_id=_check_trace_id(trace_id),
        ))

    def list_folder(
        self,
        folder_id: str = "root",
        *,
        container_id: str,
        page_size: int = MAX_PAGE_SIZE,
        recycled: bool = False,
        file_type: Optional[str] = None,
        sort_type: Optional[int] = None,
        sort_direction: Optional[int] = None,
        max_pages: int = _MAX_PAGES,
    ) -> Iterator[Entry]:
        """Every child of a folder, page after page until the cursor runs out.

        Arguments are validated now (before any request); pages are fetched
        while iterating.  Short or empty pages do not end the listing, only a
        missing cursor does; a repeated cursor or more than ``max_pages`` pages
        raises :class:`MalformedResponseError`.
        """
        first = self._list_call(
            folder_id, container_id=container_id, cursor=None, page_size=page_size,
            recycled=recycled, file_type=file_type, sort_type=sort_type,
            sort_direction=sort_direction, trace_id=_check_trace_id(None),
        )
        _check_max_pages(max_pages)
        return self._pages(first, lambda p: (p.entries, p.next_cursor), max_pages)

    def search(
        self,
        keyword: Optional[str] = None,
        *,
        container_id: str,
        parent_folder: Optional[str] = None,
        file_type: Optional[str] = None,
        recursive: bool = False,
        recycled: bool = False,
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = _MAX_PAGES,
    ) -> Iterator[SearchHit]:
        """``files/search`` (``searchType`` personal), every page; validated now.

        KooDrive's search is fuzzy and may lag fresh writes: use listings to
        check what exists.
        """
        first = self._search_call(
            keyword, container_id=container_id, parent_folder=parent_folder,
            file_type=file_type, recursive=recursive, recycled=recycled, cursor="",
            page_size=page_size, trace_id=_check_trace_id(None),
        )
        _check_max_pages(max_pages)
        return self._pages(first, lambda p: p, max_pages)

    def _pages(
        self, call: _Call[P], extract: Callable[[P], tuple[Sequence[E], Optional[str]]],
        max_pages: int,
    ) -> Iterator[E]:
        seen: set[str] = set()
        pages = 0
        while True:
            items, cursor = extract(self._execute(call))
            pages += 1
            yield from items
            if not _more_pages(cursor, seen, pages, max_pages, call.path):
                return
            assert cursor is not None
            call = _with_cursor(call, cursor)

    def resolve_path(self, path: str, *, container_id: str) -> Entry:
        """The file or folder at ``path`` (``"/a/b"``, from the space root; ``"/"`` is root).

        KooDrive has no path lookup: each unknown component lists its parent
        once; every child seen is cached on this client (create_folder adds,
        delete removes).  Raises :class:`NotFoundError` when a component is
        missing or a file stands where a folder is needed.
        """
        parts = split_remote_path(path)
        _check_container_id(container_id)
        current: Entry = root_entry(container_id)
        current_path, chain = "/", cast(tuple[str, ...], ())
        for part in parts:
            child_path = _join_remote(current_path, part)
            cached = self._cache_get(container_id, child_path)
            if cached is None:
                _require_folder(current, current_path)
                children = list(self.list_folder(current.id, container_id=container_id))
                self._cache_put(container_id, current_path, chain, children)
                cached = _pick_child(children, part, chain, child_path)
            current, chain = cached
            current_path = child_path
        return current

    def ensure_folder(self, path: str, *, container_id: str) -> FolderEntry:
        """The folder at ``path``, created with every missing parent (``mkdir -p``).

        Existing folders are found through :meth:`resolve_path` (cached);
        missing ones are created with ``renameMode`` 3, and when that answers
        13000405 (someone created it meanwhile) the parent is listed again and
        the existing folder adopted.  A file in the way raises :class:`ApiError`
        (13000405).
        """
        parts = split_remote_path(path)
        _check_container_id(container_id)
        current: Entry = root_entry(container_id)
        current_path = "/"
        for part in parts:
            child_path = _join_remote(current_path, part)
            try:
                found = self.resolve_path(child_path, container_id=container_id)
            except NotFoundError:
                try:
                    found = self.create_folder(part, container_id=container_id,
                                               parent_folder=current.id)
                except ApiError as exc:
                    if exc.code != CODE_DUPLICATE_NAME:
                        raise
                    # a miss is never cached: resolving again lists the parent anew
                    found = self.resolve_path(child_path, container_id=container_id)
            current = _require_folder_entry(found, child_path)
            current_path = child_path
        assert isinstance(current, FolderEntry)
        return current

    def full_path(
        self, file_id: str, *, container_id: str, trace_id: Optional[str] = None
    ) -> FullPath:
        """``GET files/path``: the id path and name path of a file or folder."""
        return self._execute(self._full_path_call(
            file_id, container_id=container_id, trace_id=trace_id
        ))

    def start_delete(self, file_ids: Sequence[str], *, container_id: str) -> str:
        """Start a job moving files/folders to the recycle bin; returns the job id.

        Looks up each id path (``files/path``, which the job needs) first.
        """
        ids = self._check_delete_ids(file_ids, container_id)
        trace = _check_trace_id(None)
        targets = [
            (f, self._execute(self._full_path_call(
                f, container_id=container_id, trace_id=trace)).id_path)
            for f in ids
        ]
        self._cache_forget(container_id, ids)
        return self._execute(self._delete_job_call(targets, container_id=container_id,
                                                   trace_id=trace))

    def job(self, job_id: str, *, trace_id: Optional[str] = None) -> Job:
        """``GET /{job_id}``: the job's status and per-file results."""
        return self._execute(self._job_call(job_id, trace_id=trace_id))

    def wait_job(
        self, job_id: str, *, timeout: float = 60.0, interval: float = 0.5,
        max_polls: int = 1000,
    ) -> Job:
        """Poll :meth:`job` every ``interval`` s until it is done; bounded by both
        ``max_polls`` and ``timeout`` (on the client's ``monotonic``/``sleep``),
        else :class:`JobTimeoutError`."""
        _check_job_id(job_id)
        _check_wait(timeout, interval, max_polls)
        started = self._monotonic()
        for poll in range(1, max_polls + 1):
            job = self.job(job_id)
            if job.done:
                return job
            if poll == max_polls or self._monotonic() - started + interval > timeout:
                raise _job_timeout(job, poll)
            self._sleep(interval)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(
        self, file_ids: Sequence[str], *, container_id: str, timeout: float = 60.0,
        interval: float = 0.5,
    ) -> Job:
        """Move files/folders to the recycle bin (never permanently) and wait for the job.

        Check :attr:`Job.succeeded` / :attr:`Job.failed_file_ids` for per-file results.
        """
        _check_wait(timeout, interval, 1)
        job_id = self.start_delete(file_ids, container_id=container_id)
        return self.wait_job(job_id, timeout=timeout, interval=interval)

    def download(
        self,
        remote: str,
        local_path: Union[str, os.PathLike[str]],
        *,
        container_id: str,
        config: Optional[DownloadConfig] = None,
        progress: Optional[Callable[[int], object]] = None,
    ) -> DownloadResult:
        """Download a file or, recursively, a folder (``remote``: an id or a ``/path``).

        See :func:`koodrive_fast._download.download`: parallel ranged GETs into
        ``<dest>.part`` (resumable), SHA-256 checked against the server's
        digest before the atomic rename.  ``progress`` gets byte deltas
        (negative when a range is retried), one call at a time.
        """
        from ._download import download

        return download(self, remote, local_path, container_id=container_id, config=config,
                        progress=progress)


class AsyncClient(_ClientCore):
    """Asynchronous twin of :class:`Client` (``async`` methods, ``aclose``, ``async with``)."""

    def __init__(
        self,
        endpoint: str,
        credentials: AnyCredentials,
        *,
        limits: Limits = DEFAULT_LIMITS,
        timeout: Union[float, httpx.Timeout] = 30.0,
        verify: Union[bool, str, ssl.SSLContext] = True,
        retry: Optional[RetryPolicy] = None,
        language: Optional[str] = None,
        share_folder_id: Optional[str] = None,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        max_connections: int = 16,
        clock: Optional[Callable[[], datetime]] = None,
        sleep: Optional[Callable[[float], Awaitable[None]]] = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            endpoint, credentials, limits=limits, retry=retry, language=language,
            share_folder_id=share_folder_id, clock=clock, monotonic=monotonic,
            max_connections=max_connections,
        )
        if sleep is None:
            import anyio

            sleep = anyio.sleep
        self._sleep = sleep
        self._timeout = timeout
        self._verify = verify
        self._max_connections = max_connections
        self._http = httpx.AsyncClient(
            timeout=timeout, verify=_ssl_verify(verify), transport=transport,
            limits=_http_limits(max_connections), follow_redirects=False,
        )

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The pooled ``httpx.AsyncClient`` (the uploader PUTs parts through it)."""
        return self._http

    def sync_twin(self) -> Client:
        """A new :class:`Client` with this client's settings (all but transport and sleep).

        For thread-based work driven from async code; the caller closes it.
        """
        return Client(
            self._endpoint, self._credentials, limits=self._limits, timeout=self._timeout,
            verify=self._verify, retry=self._retry, language=self._language,
            share_folder_id=self._share_folder_id, max_connections=self._max_connections,
            clock=self._clock, monotonic=self._monotonic,
        )

    async def _refresh_token(self, trace_id: str, rejected: Optional[str]) -> None:
        """Async :meth:`Client._refresh_token`."""
        credentials = self._refreshable
        if credentials is None:
            return

        async def send(exchange: RefreshExchange) -> RefreshReply:
            request = self._refresh_request(self._http, exchange, trace_id)
            return self._refresh_reply(exchange, await self._http.send(request))

        await credentials.ensure_fresh_async(send, rejected=rejected)

    async def _execute(self, call: _Call[T]) -> T:
        budget = self._new_budget()
        rejected: Optional[str] = None  # the token a 401 refused: refresh once, then retry
        reauthenticated = False
        while True:
            try:
                await self._refresh_token(call.trace_id, rejected)
                request = self._build_request(self._http, call)
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                await self._sleep(self._handle_transport_error(call, exc, budget))
                continue
            rejected = self._rejected_authorization(request, response, reauthenticated)
            if rejected is not None:
                reauthenticated = True
                continue
            outcome = self._handle_response(call, response, budget)
            if isinstance(outcome, _Retry):
                await self._sleep(outcome.delay)
                continue
            return outcome

    async def create_file(
        self,
        *,
        file_name: str,
        length: int,
        parent_folder: str = "root",
        container_id: Optional[str] = None,
        file_type: str = "45",
        sha256: Optional[str] = None,
        pre_hash: Optional[str] = None,
        proof_code: Optional[str] = None,
        multi_parts: Optional[Sequence[MultiPartInfo]] = None,
        auto_rename: Optional[int] = None,
        mime_type: Optional[str] = None,
        algorithm: str = "sha256",
        require_contexts: bool = True,
        trace_id: Optional[str] = None,
    ) -> CreateFileResult:
        """Async :meth:`Client.create_file`."""
        return await self._execute(self._create_call(
            file_name=file_name, length=length, parent_folder=parent_folder,
            container_id=container_id, file_type=file_type, sha256=sha256, pre_hash=pre_hash,
            proof_code=proof_code, multi_parts=multi_parts, auto_rename=auto_rename,
            mime_type=mime_type, algorithm=algorithm, require_contexts=require_contexts,
            trace_id=trace_id,
        ))

    async def get_upload_urls(
        self,
        file_id: str,
        parts: Sequence[MultiPartInfo],
        *,
        file_size: Optional[int] = None,
        algorithm: str = "sha256",
        require_contexts: bool = True,
        trace_id: Optional[str] = None,
    ) -> dict[int, MultiPartInfo]:
        """Async :meth:`Client.get_upload_urls`."""
        result: dict[int, MultiPartInfo] = {}
        for call in self._upload_url_calls(
            file_id, parts, file_size=file_size, algorithm=algorithm,
            require_contexts=require_contexts, trace_id=trace_id,
        ):
            urls: dict[int, MultiPartInfo] = await self._execute(call)
            result.update(urls)
        return result

    async def complete_file(
        self, file_id: str, *, sha256: Optional[str] = None, trace_id: Optional[str] = None
    ) -> None:
        """Async :meth:`Client.complete_file`."""
        await self._execute(self._complete_call(file_id, sha256=sha256, trace_id=trace_id))

    async def file_detail(self, file_id: str, *, trace_id: Optional[str] = None) -> FileDetail:
        """Async :meth:`Client.file_detail`."""
        return await self._execute(self._detail_call(file_id, trace_id=trace_id))

    async def download_urls(
        self,
        file_ids: Sequence[str],
        *,
        container_id: Optional[str] = None,
        trace_id: Optional[str] = None,
    ) -> list[DownloadLink]:
        """Async :meth:`Client.download_urls`."""
        links: list[DownloadLink] = []
        for call in self._download_calls(file_ids, container_id=container_id, trace_id=trace_id):
            batch: list[DownloadLink] = await self._execute(call)
            links.extend(batch)
        return links

    async def upload(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        container_id: Optional[str] = None,
        parent_folder: str = "root",
        file_name: Optional[str] = None,
        options: Optional[UploadOptions] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> UploadResult:
        """Async :meth:`Client.upload`; cancelling the task stops the upload and awaits it."""
        from ._upload import upload_file_async

        return await upload_file_async(
            self, path, container_id=container_id, parent_folder=parent_folder,
            file_name=file_name, options=options, progress=progress,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


    # ---- folders, listing, search, paths, jobs (more-endpoints §3-§9)

    async def create_folder(
        self,
        name: str,
        *,
        container_id: str,
        parent_folder: str = "root",
        rename_mode: int = 3,
        trace_id: Optional[str] = None,
    ) -> FolderEntry:
        """Async :meth:`Client.create_folder`."""
        folder = await self._execute(self._create_folder_call(
            name, parent_folder=parent_folder, container_id=container_id,
            rename_mode=rename_mode, trace_id=trace_id,
        ))
        self._cache_created(container_id, folder)
        return folder

    async def list_folder_page(
        self,
        folder_id: str = "root",
        *,
        container_id: str,
        cursor: Optional[str] = None,
        page_size: int = MAX_PAGE_SIZE,
        recycled: bool = False,
        file_type: Optional[str] = None,
        sort_type: Optional[int] = None,
        sort_direction: Optional[int] = None,
        trace_id: Optional[str] = None,
    ) -> ListPage:
        """Async :meth:`Client.list_folder_page`."""
        return await self._execute(self._list_call(
            folder_id, container_id=container_id, cursor=cursor, page_size=page_size,
            recycled=recycled, file_type=file_type, sort_type=sort_type,
            sort_direction=sort_direction, trace_id=_check_trace_id(trace_id),
        ))

    def list_folder(
        self,
        folder_id: str = "root",
        *,
        container_id: str,
        page_size: int = MAX_PAGE_SIZE,
        recycled: bool = False,
        file_type: Optional[str] = None,
        sort_type: Optional[int] = None,
        sort_direction: Optional[int] = None,
        max_pages: int = _MAX_PAGES,
    ) -> AsyncIterator[Entry]:
        """Async :meth:`Client.list_folder` (``async for``; validated when called)."""
        first = self._list_call(
            folder_id, container_id=container_id, cursor=None, page_size=page_size,
            recycled=recycled, file_type=file_type, sort_type=sort_type,
            sort_direction=sort_direction, trace_id=_check_trace_id(None),
        )
        _check_max_pages(max_pages)
        return self._pages(first, lambda p: (p.entries, p.next_cursor), max_pages)

    def search(
        self,
        keyword: Optional[str] = None,
        *,
        container_id: str,
        parent_folder: Optional[str] = None,
        file_type: Optional[str] = None,
        recursive: bool = False,
        recycled: bool = False,
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = _MAX_PAGES,
    ) -> AsyncIterator[SearchHit]:
        """Async :meth:`Client.search` (``async for``; validated when called)."""
        first = self._search_call(
            keyword, container_id=container_id, parent_folder=parent_folder,
            file_type=file_type, recursive=recursive, recycled=recycled, cursor="",
            page_size=page_size, trace_id=_check_trace_id(None),
        )
        _check_max_pages(max_pages)
        return self._pages(first, lambda p: p, max_pages)

    async def _pages(
        self, call: _Call[P], extract: Callable[[P], tuple[Sequence[E], Optional[str]]],
        max_pages: int,
    ) -> AsyncIterator[E]:
        seen: set[str] = set()
        pages = 0
        while True:
            items, cursor = extract(await self._execute(call))
            pages += 1
            for item in items:
                yield item
            if not _more_pages(cursor, seen, pages, max_pages, call.path):
                return
            assert cursor is not None
            call = _with_cursor(call, cursor)

    async def resolve_path(self, path: str, *, container_id: str) -> Entry:
        """Async :meth:`Client.resolve_path` (same cache rules)."""
        parts = split_remote_path(path)
        _check_container_id(container_id)
        current: Entry = root_entry(container_id)
        current_path, chain = "/", cast(tuple[str, ...], ())
        for part in parts:
            child_path = _join_remote(current_path, part)
            cached = self._cache_get(container_id, child_path)
            if cached is None:
                _require_folder(current, current_path)
                children = [c async for c in self.list_folder(current.id, container_id=container_id)]
                self._cache_put(container_id, current_path, chain, children)
                cached = _pick_child(children, part, chain, child_path)
            current, chain = cached
            current_path = child_path
        return current

    async def ensure_folder(self, path: str, *, container_id: str) -> FolderEntry:
        """Async :meth:`Client.ensure_folder`."""
        parts = split_remote_path(path)
        _check_container_id(container_id)
        current: Entry = root_entry(container_id)
        current_path = "/"
        for part in parts:
            child_path = _join_remote(current_path, part)
            try:
                found = await self.resolve_path(child_path, container_id=container_id)
            except NotFoundError:
                try:
                    found = await self.create_folder(part, container_id=container_id,
                                               parent_folder=current.id)
                except ApiError as exc:
                    if exc.code != CODE_DUPLICATE_NAME:
                        raise
                    # a miss is never cached: resolving again lists the parent anew
                    found = await self.resolve_path(child_path, container_id=container_id)
            current = _require_folder_entry(found, child_path)
            current_path = child_path
        assert isinstance(current, FolderEntry)
        return current

    async def full_path(
        self, file_id: str, *, container_id: str, trace_id: Optional[str] = None
    ) -> FullPath:
        """Async :meth:`Client.full_path`."""
        return await self._execute(self._full_path_call(
            file_id, container_id=container_id, trace_id=trace_id
        ))

    async def start_delete(self, file_ids: Sequence[str], *, container_id: str) -> str:
        """Async :meth:`Client.start_delete`."""
        ids = self._check_delete_ids(file_ids, container_id)
        trace = _check_trace_id(None)
        targets = []
        for f in ids:
            found = await self._execute(self._full_path_call(
                f, container_id=container_id, trace_id=trace))
            targets.append((f, found.id_path))
        self._cache_forget(container_id, ids)
        return await self._execute(self._delete_job_call(targets, container_id=container_id,
                                                         trace_id=trace))

    async def job(self, job_id: str, *, trace_id: Optional[str] = None) -> Job:
        """Async :meth:`Client.job`."""
        return await self._execute(self._job_call(job_id, trace_id=trace_id))

    async def wait_job(
        self, job_id: str, *, timeout: float = 60.0, interval: float = 0.5,
        max_polls: int = 1000,
    ) -> Job:
        """Async :meth:`Client.wait_job` (sleeps with the client's ``sleep``)."""
        _check_job_id(job_id)
        _check_wait(timeout, interval, max_polls)
        started = self._monotonic()
        for poll in range(1, max_polls + 1):
            job = await self.job(job_id)
            if job.done:
                return job
            if poll == max_polls or self._monotonic() - started + interval > timeout:
                raise _job_timeout(job, poll)
            await self._sleep(interval)
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(
        self, file_ids: Sequence[str], *, container_id: str, timeout: float = 60.0,
        interval: float = 0.5,
    ) -> Job:
        """Async :meth:`Client.delete`."""
        _check_wait(timeout, interval, 1)
        job_id = await self.start_delete(file_ids, container_id=container_id)
        return await self.wait_job(job_id, timeout=timeout, interval=interval)

    async def download(
        self,
        remote: str,
        local_path: Union[str, os.PathLike[str]],
        *,
        container_id: str,
        config: Optional[DownloadConfig] = None,
        progress: Optional[Callable[[int], object]] = None,
    ) -> DownloadResult:
        """Async :meth:`Client.download` (runs in a worker thread on a sync twin)."""
        from ._download import download_async

        return await download_async(self, remote, local_path, container_id=container_id,
                                    config=config, progress=progress)
