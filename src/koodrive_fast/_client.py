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
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar, Union
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
    MalformedResponseError,
    TransportError,
    ValidationError,
    api_error,
)
from ._models import CreateFileResult, DownloadLink, FileDetail, MultiPartInfo, parse_code
from ._planner import validate_file_size, validate_parts
from ._redact import redact_text
from ._validate import check_file_id as _check_file_id
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
JsonDict = dict[str, Any]
AnyCredentials = Union[BearerToken, AppCredentials, RefreshableToken]

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
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


@dataclasses.dataclass(frozen=True)
class _Retry:
    delay: float


# --------------------------------------------------------------------------- validation


def _check_hex64(value: object, field: str) -> str:
    text = _check_str(value, field)
    if not _HEX64.match(text):
        raise ValidationError(field, "must be 64 hexadecimal characters (a SHA-256 digest)")
    return text.lower()


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
        body = json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        request = http.build_request(
            "POST", self._endpoint + call.path, content=body, headers=self._headers(call.trace_id)
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
            "POST %s -> http %s code %s trace %s attempt %d",
            call.path, status, code, call.trace_id, budget.attempts,
        )
        if 200 <= status < 300 and code in (0, None):
            if data is None:
                raise MalformedResponseError(
                    None, f"expected a JSON object, got: {msg}", http_status=status,
                    trace_id=call.trace_id, method="POST", path=call.path,
                )
            try:
                return call.parse(data)
            except (ValueError, KeyError, TypeError) as exc:
                raise MalformedResponseError(
                    code, redact_text(str(exc)), http_status=status,
                    trace_id=call.trace_id, method="POST", path=call.path,
                ) from None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if self._is_retryable_status(status, call.idempotent):
            delay = budget.next_delay(retry_after)
            if delay is not None:
                logger.debug("retrying %s in %.2fs (trace %s)", call.path, delay, call.trace_id)
                return _Retry(delay)
        raise api_error(
            code, msg, http_status=status, trace_id=call.trace_id, method="POST",
            path=call.path, retry_after=retry_after,
        )

    def _is_retryable_status(self, status: int, idempotent: bool) -> bool:
        return is_retryable_status(status, idempotent=idempotent, policy=self._retry)

    def _handle_transport_error(
        self, call: _Call[Any], exc: httpx.HTTPError, budget: RetryBudget
    ) -> float:
        """Delay before retrying after ``exc``; raises :class:`TransportError` when done."""
        logger.debug(
            "POST %s -> %s trace %s attempt %d", call.path, type(exc).__name__,
            call.trace_id, budget.attempts,
        )
        if isinstance(exc, httpx.TransportError) and is_retryable_transport_error(
            exc, idempotent=call.idempotent
        ):
            delay = budget.next_delay()
            if delay is not None:
                return delay
        raise TransportError(
            f"POST {call.path} failed after {budget.attempts} attempt(s): "
            f"{type(exc).__name__}: {redact_text(str(exc))} (trace id {call.trace_id})",
            method="POST", path=call.path, attempts=budget.attempts,
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

