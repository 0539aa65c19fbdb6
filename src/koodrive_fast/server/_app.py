"""The Starlette application: KooDrive file APIs plus the storage node.

Control plane (JSON, ``{code, msg, ...}`` envelope, HTTP 400 for business
errors, 401 for authentication, 429/5xx only from fault injection)::

    POST /koodrive/ose/v1/files/create
    POST /koodrive/ose/v1/files/multipart/uploadUrl
    POST /koodrive/ose/v1/files/complete
    POST /koodrive/ose/v1/files/{fileId}/detail
    POST /koodrive/ose/v1/files/download
    POST /koodrive/ose/v1/session/refresh     (Authorization + x-session-id)
    POST /koodrive/ose/v1/directory, files/{type}, files/search, jobs
    GET  /koodrive/ose/v1/files/path, /koodrive/ose/v1/{job_id}   (see _folders.py)

Storage plane (SigV4 presigned, S3-style XML errors)::

    PUT /kdbucket/{fileId}?partNumber=N&uploadId=U&X-Amz-Iteration-Hash-Ctx=...
    GET /kdbucket/{fileId}

Decisions where the protocol is silent (§14) are listed in
``koodrive_fast/server/__init__.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import hashlib
import hmac
import http
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union
from urllib.parse import parse_qs, quote, unquote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import _sigv4
from .._config import Limits
from ._ctx import SHA1_IV, SHA256_IV, CtxError, Hasher, IterationCtx, decode_ctx, encode_ctx
from ._faults import Faults, PutFault, Stats
from ._sessions import SessionError, Sessions
from ._folders import CODE_PARENT_RECYCLED, FolderApi
from ._settings import ServerConfig
from ._recv import NativeBody
from ._store import FileRecord, PartRecord, PlanRecord, Store, valid_file_id, valid_upload_id

Buffer = Union[bytes, bytearray, memoryview]

__all__ = ["ServerState", "create_app", "proof_range", "proof_seeds", "ApiFailure", "S3Failure", "PartJob",
           "s3_error_bytes", "BUCKET"]

log = logging.getLogger("koodrive_fast.server")

API = "/koodrive/ose/v1"
BUCKET = "/kdbucket"
CODE_VALIDATION = 13000102
CODE_INTERNAL = 13000201
CODE_NOT_FOUND = 13000309
CODE_NO_UPLOAD = 13000401
CODE_INTEGRITY = 13000402
CODE_DUPLICATE_NAME = 13000405
CODE_UPLOAD_FAILED = 13000409
CODE_AUTH = "APIGW.0301"
CODE_THROTTLED = "APIGW.0308"
CODE_API_NOT_FOUND = "APIGW.0101"
SUCCESS_MSG = "Success."
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BAD_NAME_CHARS = set('<>|:"*?/\\')
_X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class ApiFailure(Exception):
    """A KooDrive-style error response."""

    def __init__(self, code: int | str, msg: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.code, self.msg, self.status, self.headers = code, msg, status, headers or {}


class S3Failure(Exception):
    """An S3-style XML error response from the storage plane."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclasses.dataclass
class ServerState:
    """Everything the app needs; the runner owns it across restarts."""

    config: ServerConfig
    store: Store
    faults: Faults
    stats: Stats
    sessions: Sessions
    access_key: str
    secret_key: str
    url_ttl: int
    limits: Limits
    core: Any = None  # the _App serving this state (set by create_app)


# ---------------------------------------------------------------- helpers
def _api_error(code: int | str, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status, headers=headers)


def _s3_error_xml(code: str, message: str) -> str:
    request_id = secrets.token_hex(8).upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    )


def _s3_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(_s3_error_xml(code, message), status_code=status, media_type="application/xml", headers=headers)


INTERNAL_ERROR = S3Failure(500, "InternalError", "We encountered an internal error. Please try again.")


def fault_failure(fault: PutFault) -> S3Failure:
    """The S3 error an injected (non-drop) PUT fault answers with: one mapping for both paths."""
    if fault.kind == "expire":
        return S3Failure(403, "AccessDenied", "Request has expired")
    if fault.kind == "rate_limit":
        return S3Failure(429, "SlowDown", "Please reduce your request rate.",
                         {"Retry-After": _retry_after(fault.retry_after)})
    if fault.status == 503:
        return S3Failure(503, "ServiceUnavailable", "Please reduce your request rate.")
    return INTERNAL_ERROR


def failure_bytes(failure: S3Failure) -> bytes:
    """``failure`` as a complete HTTP/1.1 response (for the connection front end)."""
    return s3_error_bytes(failure.status, failure.code, failure.message, failure.headers)


def s3_error_bytes(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """The same error as a complete HTTP/1.1 response (for the connection front end)."""
    body = _s3_error_xml(code, message).encode()
    reason = http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else "Error"
    lines = [f"HTTP/1.1 {status} {reason}", "server: koodrive-fast", f"content-length: {len(body)}",
             "content-type: application/xml"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _invalid(field: str, rule: str) -> ApiFailure:
    return ApiFailure(CODE_VALIDATION, f"parameter validation failed: {field} {rule}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(body: dict[str, Any], name: str, lo: int, hi: int, *, required: bool = True, where: str = "") -> int | None:
    value = body.get(name)
    label = f"{where}{name}"
    if value is None:
        if required:
            raise _invalid(label, "is required")
        return None
    if not _is_int(value):
        raise _invalid(label, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise _invalid(label, f"must be in {lo}..{hi}, got {value}")
    return int(value)


def _str_field(body: dict[str, Any], name: str, max_len: int, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(name, "is required")
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"must be a string, got {type(value).__name__}")
    if not value or len(value) > max_len:
        raise _invalid(name, f"must be 1..{max_len} characters")
    if not value.isprintable():
        raise _invalid(name, "must not contain control characters")
    return value


def _hex_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _invalid(name, "must be 64 hexadecimal characters")
    return value.lower()


def _check_file_name(name: str) -> None:
    if name in (".", "..") or name.strip() == "":
        raise _invalid("fileName", "must not be empty, '.' or '..'")
    if len(name) > 250:
        raise _invalid("fileName", "must be at most 250 characters")
    bad = sorted(set(name) & _BAD_NAME_CHARS)
    if bad:
        raise _invalid("fileName", f"must not contain {''.join(bad)!r}")


def proof_seeds(authorization: str, user_id: str, app_auth: bool) -> list[str]:
    """Candidate ProofCode origin values (§9.5 / §14.7).

    Under app auth the X-User-Id value; under token auth the Authorization
    header value exactly as sent, and also the bare token (the docs leave
    open whether the ``Bearer`` prefix is part of it).
    """
    if app_auth:
        return [user_id]
    seeds = [authorization]
    token = _bearer_token(authorization)
    if token is not None and token not in seeds:
        seeds.append(token)
    return seeds


def proof_range(origin: str, size: int) -> tuple[int, int]:
    """Byte range [start, end) the proofCode covers (§9.5, big-endian reading)."""
    if size <= 0:
        raise ValueError("size must be > 0")
    seed = hashlib.sha256(origin.encode()).hexdigest()
    tail = hashlib.sha256(seed.encode()).digest()[24:32]
    start = (int.from_bytes(tail, "big") & 0x7FFF_FFFF_FFFF_FFFF) % size
    return start, min(start + 8, size)


def _bearer_token(authorization: str) -> str | None:
    for prefix in ("Bearer ", "Bearer+"):
        if authorization.startswith(prefix):
            return authorization[len(prefix):].strip()
    return None


def _app_auth_canonical(request: Request, signed: list[str], body: bytes) -> str:
    segments = [quote(unquote(s), safe="-_.~") for s in request.url.path.split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = []
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    for item in raw_query.split("&"):
        if item:
            k, _, v = item.partition("=")
            pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    headers = "".join(f"{name}:{(request.headers.get(name) or '').strip()}\n" for name in signed)
    return "\n".join(
        [request.method.upper(), uri, query, headers, ";".join(signed), hashlib.sha256(body).hexdigest()]
    )


# ---------------------------------------------------------------- the app
class _Auth(NamedTuple):
    """Who a control-plane request is from (headers checked)."""

    authorization: str
    app_auth: bool
    app_signature: tuple[str, tuple[str, ...], str] | None = None  # secret, signed headers, signature


class _App(FolderApi):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.store = state.store
        self.config = state.config
        self.clock = state.config.clock

    def _now(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(int(self.clock()), _dt.timezone.utc)

    def _expired_before(self) -> float:
        """Uploads created before this (epoch s) have expired."""
        return self.clock() - self.config.upload_expiry

    # ---- control plane plumbing
    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_json_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiFailure(CODE_VALIDATION, f"request body exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiFailure(CODE_VALIDATION, f"request body exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _parse_json(raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except RecursionError:
            raise ApiFailure(CODE_VALIDATION, "request body is nested too deeply") from None
        except (ValueError, UnicodeDecodeError):
            raise ApiFailure(CODE_VALIDATION, "request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ApiFailure(CODE_VALIDATION, "request body must be a JSON object")
        return doc

    def _authenticate(self, request: Request) -> _Auth:
        """Check the credential headers (before any body is read).

        App auth also signs the body: :meth:`_check_body_signature` finishes
        it once the (size-bounded) body is in.
        """
        auth = request.headers.get("authorization")
        if not auth:
            raise ApiFailure(CODE_AUTH, "Authorization header is missing", 401)
        user_id = request.headers.get("x-user-id")
        if not user_id:
            raise ApiFailure(CODE_AUTH, "X-User-Id header is missing", 401)
        x_date = request.headers.get("x-date")
        if not x_date:
            raise ApiFailure(CODE_AUTH, "X-Date header is missing", 401)
        try:
            when = _dt.datetime.strptime(x_date, _X_DATE_FORMAT).replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            raise ApiFailure(CODE_AUTH, "X-Date must be yyyyMMddTHHmmssZ (UTC)", 401) from None
        age = self.clock() - when.timestamp()
        if age > self.config.x_date_window:
            raise ApiFailure(CODE_AUTH, "X-Date is more than 15 minutes old", 401)
        if age < -self.config.future_leeway:
            raise ApiFailure(CODE_AUTH, "X-Date is in the future", 401)
        token = _bearer_token(auth)
        if token is not None:
            try:
                self.state.sessions.check(token)
            except SessionError as exc:
                raise ApiFailure(CODE_AUTH, str(exc), 401) from None
            if user_id != self.config.user_id:
                raise ApiFailure(CODE_AUTH, "X-User-Id does not match the token's user", 401)
            return _Auth(auth, False)
        if auth.startswith("HMAC-SHA256 "):
            fields: dict[str, str] = {}
            for part in auth[len("HMAC-SHA256 "):].split(","):
                key, _, value = part.strip().partition("=")
                fields[key] = value
            app_id, signed_text, signature = (fields.get(k) for k in ("AppId", "SignedHeaders", "Signature"))
            if not app_id or not signed_text or not signature:
                raise ApiFailure(CODE_AUTH, "app auth needs AppId, SignedHeaders and Signature", 401)
            secret = self.config.app_credentials.get(app_id)
            if secret is None:
                raise ApiFailure(CODE_AUTH, "unknown AppId", 401)
            signed = signed_text.lower().split(";")
            if "x-date" not in signed or "x-user-id" not in signed:
                raise ApiFailure(CODE_AUTH, "SignedHeaders must include x-date and x-user-id", 401)
            return _Auth(auth, True, (secret, tuple(signed), signature))
        raise ApiFailure(CODE_AUTH, "Authorization must be 'Bearer <token>' or HMAC-SHA256 app auth", 401)

    @staticmethod
    def _check_body_signature(request: Request, auth: _Auth, body: bytes) -> None:
        """App auth: the signature covers the body (no-op for bearer tokens)."""
        if auth.app_signature is None:
            return
        secret, signed, signature = auth.app_signature
        canonical = _app_auth_canonical(request, list(signed), body)
        to_sign = "HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiFailure(CODE_AUTH, "app auth signature does not match", 401)

    def _api(self, name: str, handler: Callable[[Request, dict[str, Any], tuple[str, bool]], Awaitable[dict[str, Any]]],
             *, authenticate: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self.state.stats._count_api(name)
            delay = self.state.faults.current_latency
            if delay:
                await asyncio.sleep(delay)
            try:
                fault = self.state.faults.take_api_fault()
                if fault is not None:
                    if fault.kind == "rate_limit":
                        raise ApiFailure(CODE_THROTTLED, "request throttled", 429,
                                         {"Retry-After": _retry_after(fault.retry_after)})
                    raise ApiFailure(CODE_INTERNAL, "inner server invoke failure", fault.status)
                auth = self._authenticate(request) if authenticate else _Auth("", False)
                raw = await self._read_body(request)
                self._check_body_signature(request, auth, raw)
                result = await handler(request, self._parse_json(raw), (auth.authorization, auth.app_auth))
                return JSONResponse({"code": 0, "msg": SUCCESS_MSG, **result})
            except ApiFailure as exc:
                return _api_error(exc.code, exc.msg, exc.status, exc.headers)
            except ClientDisconnect:
                return Response(status_code=400)
            except Exception:
                log.exception("internal error in %s", name)
                return _api_error(CODE_INTERNAL, "inner server invoke failure", 500)

        return endpoint

    # ---- sessions
    async def session_refresh(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        """New access token for the session; the old token stops working at once."""
        authorization = request.headers.get("authorization") or ""
        token = _bearer_token(authorization)
        if token is None:
            raise ApiFailure(CODE_AUTH, "session refresh needs 'Authorization: Bearer <token>' (no app auth)", 401)
        session_id = request.headers.get("x-session-id")
        if not session_id:
            raise ApiFailure(CODE_AUTH, "x-session-id header is missing", 401)
        try:
            new = self.state.sessions.refresh(token, session_id)
        except SessionError as exc:
            raise ApiFailure(CODE_AUTH, str(exc), 401) from None
        return {"accessToken": "Bearer " + new}

    # ---- URL building
    def _base_url(self, request: Request) -> str:
        host = request.headers.get("host") or f"{self.config.host}:{self.config.port}"
        return f"{request.url.scheme}://{_sigv4.normalize_host(host, request.url.scheme)}"

    def _part_url(self, request: Request, rec: FileRecord, plan: PlanRecord) -> str:
        query = f"partNumber={plan.part_number}&uploadId={rec.upload_id}"
        if plan.part_number > 1:
            ctx = IterationCtx(plan.hash_type, plan.words, plan.part_offset)
            query += "&X-Amz-Iteration-Hash-Ctx=" + quote(encode_ctx(ctx), safe="")
        url = f"{self._base_url(request)}{BUCKET}/{rec.file_id}?{query}"
        return _sigv4.presign_url(
            "PUT", url, access_key=self.state.access_key, secret_key=self.state.secret_key,
            region=self.config.region, expires=self.state.url_ttl,
            signed_headers=("content-length", "host"),
            headers={"content-length": str(plan.part_size)}, now=self._now(),
        )

    def _object_url(self, request: Request, rec: FileRecord) -> str:
        return _sigv4.presign_url(
            "GET", f"{self._base_url(request)}{BUCKET}/{rec.file_id}",
            access_key=self.state.access_key, secret_key=self.state.secret_key,
            region=self.config.region, expires=self.state.url_ttl, signed_headers=("host",), now=self._now(),
        )

    # ---- part plans
    def _parse_parts(self, items: object, rec: FileRecord, *, required: bool) -> list[PlanRecord]:
        limits = self.state.limits
        if items is None:
            if required:
                raise _invalid("multiParts", "is required")
            return []
        if not isinstance(items, list):
            raise _invalid("multiParts", "must be a list")
        if required and not items:
            raise _invalid("multiParts", "must not be empty")
        if len(items) > limits.max_parts_per_request:
            raise _invalid("multiParts", f"must list at most {limits.max_parts_per_request} parts per request")
        plans: dict[int, PlanRecord] = {}
        for index, item in enumerate(items):
            where = f"multiParts[{index}]."
            if not isinstance(item, dict):
                raise _invalid(f"multiParts[{index}]", "must be an object")
            number = _int_field(item, "partNumber", 1, limits.max_parts, where=where)
            size = _int_field(item, "partSize", 0, limits.max_part_size, where=where)
            assert number is not None and size is not None
            offset = _int_field(item, "partOffset", 0, limits.max_file_size, required=number > 1, where=where)
            offset = 0 if offset is None else offset
            if number in plans:
                raise _invalid(f"{where}partNumber", f"{number} is listed twice")
            if number == 1 and offset != 0:
                raise _invalid(f"{where}partOffset", "must be 0 for part 1")
            if offset % limits.part_alignment:
                raise _invalid(f"{where}partOffset", f"must be a multiple of {limits.part_alignment}")
            if offset < (number - 1) * limits.min_part_size:
                raise _invalid(f"{where}partOffset", f"is too small for part {number} (parts before it are at least {limits.min_part_size} bytes)")
            if offset + size > rec.length:
                raise _invalid(f"{where}partOffset", f"+ partSize exceeds the file length {rec.length}")
            last = offset + size == rec.length
            if not last:
                if size < limits.min_part_size:
                    raise _invalid(f"{where}partSize", f"must be at least {limits.min_part_size} except for the last part")
                if size % limits.part_alignment:
                    raise _invalid(f"{where}partSize", f"must be a multiple of {limits.part_alignment} except for the last part")
            ctx_words = item.get("hashCtx")
            words: tuple[int, ...]
            if ctx_words is None or (number == 1 and ctx_words == []):
                if number > 1:
                    raise _invalid(f"{where}hashCtx", "is required for every part except part 1")
                hash_type, words = "sha256", SHA256_IV
            else:
                if (
                    not isinstance(ctx_words, list)
                    or len(ctx_words) not in (8, 5)
                    or not all(_is_int(w) and 0 <= w < 2**32 for w in ctx_words)
                ):
                    raise _invalid(f"{where}hashCtx", "must be 8 (SHA-256) or 5 (SHA-1) integers in 0..4294967295")
                hash_type = "sha256" if len(ctx_words) == 8 else "sha1"
                words = tuple(int(w) for w in ctx_words)
                if number == 1 and words not in (SHA256_IV, SHA1_IV):
                    raise _invalid(f"{where}hashCtx", "of part 1 must be absent or the initial value")
                if number == 1:
                    hash_type, words = "sha256", SHA256_IV
            plans[number] = PlanRecord(number, size, offset, hash_type, words)
        for number, plan in plans.items():
            neighbour = plans.get(number + 1) or self.store.get_plan(rec.file_id, number + 1)
            if neighbour is not None and neighbour.part_offset != plan.part_offset + plan.part_size:
                raise _invalid("multiParts", f"partOffset of part {number + 1} must equal partOffset + partSize of part {number}")
            before = plans.get(number - 1) or self.store.get_plan(rec.file_id, number - 1)
            if before is not None and plan.part_offset != before.part_offset + before.part_size:
                raise _invalid("multiParts", f"partOffset of part {number} must equal partOffset + partSize of part {number - 1}")
        return list(plans.values())

    def _parts_response(self, request: Request, rec: FileRecord, plans: list[PlanRecord]) -> list[dict[str, Any]]:
        out = []
        for plan in plans:
            item: dict[str, Any] = {
                "partNumber": plan.part_number, "partSize": plan.part_size,
                "partOffset": plan.part_offset, "uploadUrl": self._part_url(request, rec, plan),
            }
            if plan.part_number > 1:
                item["hashCtx"] = list(plan.words)
            out.append(item)
        out.sort(key=lambda p: p["partNumber"], reverse=self.config.reverse_part_order)
        return out

    # ---- endpoints
    async def create(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        limits = self.state.limits
        name = _str_field(body, "fileName", 1000)
        assert name is not None
        _check_file_name(name)
        file_type = body.get("fileType")
        if _is_int(file_type):
            file_type = str(file_type)
        if not isinstance(file_type, str) or not file_type or len(file_type) > 32:
            raise _invalid("fileType", "is required and must be a string of 1..32 characters")
        parents = body.get("parentFolder")
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, list) or not parents or not all(isinstance(p, str) and 0 < len(p) <= 128 and p.isprintable() for p in parents):
            raise _invalid("parentFolder", "must be a non-empty list of folder ids")
        container = _str_field(body, "containerId", 128)
        assert container is not None
        length = _int_field(body, "length", 0, limits.max_file_size)
        assert length is not None
        sha256 = _hex_field(body, "sha256")
        pre_hash = _hex_field(body, "preHash")
        proof = _hex_field(body, "proofCode")
        mode = body.get("uploadMode", "multipart")
        if mode != "multipart":
            raise _invalid("uploadMode", "must be 'multipart' (other modes are not supported)")
        upload_type = _int_field(body, "uploadType", 0, 2, required=False)
        if upload_type not in (None, 1):
            raise _invalid("uploadType", "must be 1 (0 and 2 are not supported yet)")
        auto_rename = _int_field(body, "autoRename", 2, 4, required=False)
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 512):
            raise _invalid("description", "must be a string of at most 512 characters")
        mime = _str_field(body, "mimeType", 255, required=False)
        parent = [self.live_folder(container, parents[0], recycled_code=CODE_PARENT_RECYCLED)[0]]

        self.store.purge_expired(self._expired_before())
        clashes = self.store.find_by_name(container, parent, name)
        if clashes or self.store.folders_named(container, parent[0], name):
            if auto_rename == 3:
                raise ApiFailure(CODE_DUPLICATE_NAME, "a file with this name already exists")
            if auto_rename == 4 and sha256 is not None:
                for old in clashes:
                    if old.status == "complete" and old.sha256 == sha256:
                        return {
                            "fileId": old.file_id, "fileName": old.file_name, "containerId": container,
                            "parentFolder": parent, "uploadId": old.upload_id, "exist": True,
                            "rapidUpload": False, "multiParts": [],
                        }
            name = self._renamed(container, parent, name)

        file_id, upload_id = self.store.new_ids()
        rec = FileRecord(
            file_id, upload_id, request.headers.get("x-user-id", ""), container, parent, name,
            file_type, length, sha256, pre_hash, mime, description, "uploading", self.clock(),
            None, None, False,
        )
        rapid_key = self._rapid_hit(rec, proof, auth)
        plans = [] if rapid_key else self._parse_parts(body.get("multiParts"), rec, required=False)
        self.store.insert_file(rec)
        result: dict[str, Any] = {
            "fileId": file_id, "fileName": name, "containerId": container, "parentFolder": parent,
            "uploadId": upload_id, "exist": False, "rapidUpload": rapid_key is not None,
        }
        if rapid_key is not None:
            assert sha256 is not None
            self.store.complete(file_id, sha256, [], rapid_key=rapid_key)
            result["multiParts"] = []
            return result
        if plans:
            self.store.put_plan(file_id, plans)
        result["multiParts"] = self._parts_response(request, rec, plans)
        return result

    def _renamed(self, container: str, parent: list[str], name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock()))
        for counter in range(1000):
            suffix = f"_{stamp}" + (f"_{counter}" if counter else "")
            candidate = f"{stem}{suffix}" + (f".{ext}" if ext else "")
            if len(candidate) > 250:
                candidate = candidate[-250:]
            if not self.store.name_taken(container, parent[0], candidate):
                return candidate
        raise ApiFailure(CODE_DUPLICATE_NAME, "could not find a free name")

    def _rapid_hit(self, rec: FileRecord, proof: str | None, auth: tuple[str, bool]) -> str | None:
        """Content key if create may finish at once (flash upload), else None."""
        if rec.sha256 is None:
            return None
        found = self.store.find_content(rec.sha256, rec.length)
        if found is None:
            return None
        key, _ = found
        if rec.length == 0:
            return key
        if proof is None:
            return None
        files = self.store.content_files(key)
        for origin in proof_seeds(auth[0], rec.user_id, auth[1]):
            start, end = proof_range(origin, rec.length)
            if hashlib.sha256(self.store.read_range(files, start, end)).hexdigest() == proof:
                return key
        return None

    def _uploading(self, file_id: object) -> FileRecord:
        if not isinstance(file_id, str):
            raise _invalid("fileId", "is required and must be a string")
        rec = self.store.get_file(file_id)
        if rec is not None and rec.status == "uploading" and rec.created_at < self._expired_before():
            self.store.purge_expired(self._expired_before())
            rec = None
        if rec is None:
            raise ApiFailure(CODE_NO_UPLOAD, "upload task does not exist")
        return rec

    async def upload_url(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        rec = self._uploading(body.get("fileId"))
        if rec.status != "uploading":
            raise ApiFailure(CODE_NO_UPLOAD, "upload task does not exist (the file is already complete)")
        plans = self._parse_parts(body.get("multiParts"), rec, required=True)
        self.store.put_plan(rec.file_id, plans)
        return {"fileId": rec.file_id, "uploadId": rec.upload_id, "multiParts": self._parts_response(request, rec, plans)}

    async def complete(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        rec = self._uploading(body.get("fileId"))
        sha256 = _hex_field(body, "sha256") or rec.sha256
        if rec.status == "complete":
            if sha256 is not None and sha256 != rec.sha256:
                raise ApiFailure(CODE_INTEGRITY, "file integrity check failed: sha256 differs from the stored file")
            return {"fileId": rec.file_id, "sha256": rec.sha256}
        final, sizes = await asyncio.to_thread(self._verify_chain, rec)
        if sha256 is not None and final != sha256:
            raise ApiFailure(CODE_INTEGRITY, "file integrity check failed: the SHA-256 of the uploaded data differs from sha256")
        if rec.pre_hash is not None and rec.length and self.config.store_bodies:
            head = self.store.read_range([(self.store.part_path(rec.file_id, i + 1), s) for i, s in enumerate(sizes)], 0, min(1024, rec.length))
            if hashlib.sha256(head).hexdigest() != rec.pre_hash:
                raise ApiFailure(CODE_INTEGRITY, "file integrity check failed: preHash differs from the first 1 KiB")
        await asyncio.to_thread(self.store.complete, rec.file_id, final, sizes, keep=self.config.store_bodies)
        return {"fileId": rec.file_id, "sha256": final}

    def _verify_chain(self, rec: FileRecord) -> tuple[str, list[int]]:
        """Check the stored parts form the file; return (sha256, part sizes)."""
        parts = self.store.parts(rec.file_id)
        if rec.length == 0 and not parts:
            return EMPTY_SHA256, []

        def fail(why: str) -> ApiFailure:
            return ApiFailure(CODE_INTEGRITY, f"file integrity check failed: {why}")

        expected_offset = 0
        for index, part in enumerate(parts, 1):
            if part.part_number != index:
                raise fail(f"part {index} is missing")
            if part.part_offset != expected_offset:
                raise fail(f"part {index} starts at {part.part_offset}, expected {expected_offset}")
            expected_offset += part.part_size
            if expected_offset >= rec.length:
                parts = parts[:index]
                break
        if expected_offset != rec.length:
            raise fail(f"parts cover {expected_offset} of {rec.length} bytes (part {len(parts) + 1} is missing)")
        types = {p.hash_type for p in parts[1:]}
        if len(types) > 1:
            raise fail("parts mix SHA-256 and SHA-1 contexts")
        chain_type = types.pop() if types else "sha256"
        sizes = [p.part_size for p in parts]
        if chain_type == "sha1":
            if not self.config.store_bodies:
                raise fail("SHA-1 chains need stored bodies (store_bodies=False)")
            return self._verify_sha1_chain(rec, parts), sizes
        for before, after in zip(parts, parts[1:]):
            if before.end_words != after.start_words:
                raise fail(f"the state after part {before.part_number} differs from the hashCtx of part {after.part_number}")
        return parts[-1].digest, sizes

    def _verify_sha1_chain(self, rec: FileRecord, parts: list[PartRecord]) -> str:
        """SHA-1 chains: check the SHA-1 links, then re-read the data for SHA-256."""
        whole = Hasher(IterationCtx.initial("sha256"))
        first = Hasher(IterationCtx.initial("sha1"))
        for part in parts:
            with open(self.store.part_path(rec.file_id, part.part_number), "rb") as fh:
                while block := fh.read(4 << 20):
                    whole.update(block)
                    if part.part_number == 1:
                        first.update(block)
        ends = {1: first.words()}
        for part in parts[1:]:
            ends[part.part_number] = part.end_words
        for before, after in zip(parts, parts[1:]):
            if ends[before.part_number] != after.start_words:
                raise ApiFailure(CODE_INTEGRITY, f"file integrity check failed: the SHA-1 state after part {before.part_number} differs from the hashCtx of part {after.part_number}")
        return whole.hexdigest()

    async def detail(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        rec = self.store.get_file(request.path_params["file_id"])
        if rec is None:
            raise ApiFailure(CODE_NOT_FOUND, "resource does not exist")
        return {
            "fileId": rec.file_id, "fileName": rec.file_name, "containerId": rec.container_id,
            "parentFolder": rec.parent_folder, "fileType": rec.file_type, "length": rec.length,
            "sha256": rec.sha256, "hash": rec.sha256, "type": 3, "mimeType": rec.mime_type,
            "status": "completed" if rec.status == "complete" else "uploading",
            "uploadId": rec.upload_id, "rapidUpload": rec.rapid,
            "createdTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.created_at)),
            "recycled": self.store.recycled_at(rec.file_id) is not None,
        }

    async def download(self, request: Request, body: dict[str, Any], auth: tuple[str, bool]) -> dict[str, Any]:
        container = _str_field(body, "containerId", 128)
        ids = body.get("fileIds")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100 or not all(isinstance(i, str) for i in ids):
            raise _invalid("fileIds", "must be a list of 1..100 file ids")
        downloads = []
        for file_id in ids:
            rec = self.store.get_file(file_id)
            entry: dict[str, Any] = {"fileId": file_id}
            if rec is None:
                entry.update(code=CODE_NOT_FOUND, msg="resource does not exist")
            elif rec.container_id != container:
                entry.update(code=13000302, msg="file is not in the given space")
            elif rec.status != "complete" or rec.content_key is None:
                entry.update(code=CODE_UPLOAD_FAILED, msg="file upload is not complete")
            else:
                entry.update(code=0, msg=SUCCESS_MSG, fileName=rec.file_name, url=self._object_url(request, rec))
            downloads.append(entry)
        ok = sum(1 for d in downloads if d["code"] == 0)
        batch = 1 if ok == len(downloads) else (2 if ok == 0 else 0)
        return {"batchCode": batch, "downloads": downloads}

    # ---- storage plane
    def _verify_url(self, method: str, path: str, query: str, headers: Mapping[str, str], scheme: str,
                    signed: tuple[str, ...]) -> _sigv4.VerifiedPresign:
        try:
            return _sigv4.verify_presigned(
                method, path, query, headers,
                secret_for=lambda key: self.state.secret_key if hmac.compare_digest(key, self.state.access_key) else None,
                region=self.config.region, required_signed_headers=signed,
                now=self._now(), scheme=scheme,
            )
        except _sigv4.PresignExpired:
            raise S3Failure(403, "AccessDenied", "Request has expired") from None
        except _sigv4.SignatureMismatch:
            raise S3Failure(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.") from None
        except _sigv4.MalformedPresign as exc:
            raise S3Failure(400, "AuthorizationQueryParametersError", str(exc)) from None

    def _verify_request(self, request: Request, method: str, signed: tuple[str, ...]) -> _sigv4.VerifiedPresign:
        query = request.scope.get("query_string", b"").decode("latin-1")
        return self._verify_url(method, request.url.path, query, dict(request.headers.items()),
                                request.url.scheme, signed)

    def put_arrived(self, file_id: str, query: str) -> tuple[int, float, PutFault | None]:
        """Count a part PUT; its part number, the injected delay and fault (both paths)."""
        number_text = parse_qs(query).get("partNumber", [""])[-1]
        number = int(number_text) if number_text.isdigit() and len(number_text) < 6 else 0
        self.state.stats._count_put((file_id, number))
        return number, self.state.faults.current_latency, self.state.faults.take_put_fault()

    def begin_part(self, file_id: str, number: int, path: str, query: str, headers: Mapping[str, str],
                   scheme: str) -> PartJob:
        """Check a part PUT's URL, headers and plan; open its sink.  Raises :class:`S3Failure`."""
        if "transfer-encoding" in headers:
            raise S3Failure(411, "MissingContentLength", "Chunked transfer encoding is not supported; send Content-Length.")
        declared = headers.get("content-length")
        if declared is None:
            raise S3Failure(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        verified = self._verify_url("PUT", path, query, headers, scheme, ("content-length", "host"))
        upload_id = verified.params.get("uploadId", "")
        if not 1 <= number <= self.state.limits.max_parts or not valid_upload_id(upload_id):
            raise S3Failure(400, "InvalidArgument", "partNumber and uploadId are required")
        rec = self.store.get_file(file_id) if valid_file_id(file_id) else None
        expired = rec is not None and rec.created_at < self._expired_before()
        if rec is None or rec.upload_id != upload_id or rec.status != "uploading" or expired:
            raise S3Failure(404, "NoSuchUpload", "The specified upload does not exist.")
        plan = self.store.get_plan(file_id, number)
        if plan is None:
            raise S3Failure(404, "NoSuchUpload", "The part was never planned for this upload.")
        ctx_text = verified.params.get("X-Amz-Iteration-Hash-Ctx")
        if ctx_text is None:
            if number != 1:
                raise S3Failure(400, "InvalidArgument", "X-Amz-Iteration-Hash-Ctx is required for parts after the first")
            ctx = IterationCtx.initial("sha256")
        else:
            try:
                ctx = decode_ctx(ctx_text)
            except CtxError as exc:
                raise S3Failure(400, "InvalidArgument", str(exc)) from None
        if ctx.offset != plan.part_offset:
            raise S3Failure(400, "InvalidArgument", f"hash context length {ctx.offset} does not match partOffset {plan.part_offset}")
        if number > 1 and (ctx.words != plan.words or ctx.hash_type != plan.hash_type):
            raise S3Failure(400, "InvalidArgument", "hash context differs from the part plan (stale URL)")
        if not declared.isdigit() or int(declared) != plan.part_size:
            raise S3Failure(400, "InvalidArgument", f"Content-Length must equal partSize {plan.part_size}")
        tmp = self.store.temp_path() if self.config.store_bodies else None
        return PartJob(file_id, number, plan, ctx, _PartSink(tmp, ctx, self.config.fsync), tmp)

    def end_part(self, job: PartJob) -> str:
        """Finish a fully received part (worker thread): sync, record; returns the ETag."""
        job.sink.finish()
        part = PartRecord(job.number, job.plan.part_size, job.plan.part_offset, job.ctx.hash_type, job.ctx.words,
                          job.sink.hasher.words(), job.sink.hasher.hexdigest())
        # the upload may have completed or expired while the body streamed
        current = self.store.get_file(job.file_id)
        if current is None or current.status != "uploading":
            raise S3Failure(404, "NoSuchUpload", "The specified upload does not exist.")
        self.store.record_part(job.file_id, part, job.tmp)
        self.state.stats._count_accepted((job.file_id, job.number), job.plan.part_size)
        return '"' + "".join(f"{w:08x}" for w in part.end_words) + '"'

    async def put_part(self, request: Request) -> Response:
        """Part PUTs that the connection front end did not take (see ``_front``)."""
        file_id = request.path_params["file_id"]
        query = request.scope.get("query_string", b"").decode("latin-1")
        number, delay, fault = self.put_arrived(file_id, query)
        if delay:
            await asyncio.sleep(delay)
        try:
            if fault is not None:
                return await self._put_fault(request, fault)
            return await self._store_part(request, file_id, number, query)
        except S3Failure as exc:
            return _s3_error(exc.status, exc.code, exc.message, exc.headers)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            log.exception("internal error storing a part")
            return _s3_error(INTERNAL_ERROR.status, INTERNAL_ERROR.code, INTERNAL_ERROR.message)

    async def _put_fault(self, request: Request, fault: Any) -> Response:
        if fault.kind == "drop":
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received >= fault.after_bytes:
                    break
            _abort_connection(request)
            return Response(status_code=500)
        async for _ in request.stream():  # drain so the client sees the answer cleanly
            pass
        failure = fault_failure(fault)
        return _s3_error(failure.status, failure.code, failure.message, failure.headers)

    async def _store_part(self, request: Request, file_id: str, number: int, query: str) -> Response:
        job = self.begin_part(file_id, number, request.url.path, query, dict(request.headers.items()),
                              request.url.scheme)
        size = job.plan.part_size
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] | None = None
        # chunks are batched (no copy) and hashed + written on a worker thread
        # while the event loop keeps receiving the next batch
        batch: list[bytes] = []
        batched = offset = received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > size:
                    raise S3Failure(400, "IncompleteBody", "The request body is longer than Content-Length.")
                if chunk:
                    batch.append(chunk)
                    batched += len(chunk)
                if batched >= self.config.write_buffer:
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(None, job.sink.write, batch, offset)
                    offset += batched
                    batch, batched = [], 0
            if pending is not None:
                await pending
                pending = None
            if received != size:
                raise S3Failure(400, "IncompleteBody", "The request body is shorter than Content-Length.")
            await loop.run_in_executor(None, job.sink.write, batch, offset)
            etag = await loop.run_in_executor(None, self.end_part, job)
        finally:
            if pending is not None:
                try:
                    await pending
                except Exception:
                    pass
            job.abandon()
        return Response(status_code=200, headers={"ETag": etag})

    async def get_object(self, request: Request) -> Response:
        self.state.stats._count_get()
        try:
            self._verify_request(request, "GET", ("host",))
            if self.state.faults.take_get_expiry():
                raise S3Failure(403, "AccessDenied", "Request has expired")
            rec = self.store.get_file(request.path_params["file_id"])
            if rec is None or rec.status != "complete" or rec.content_key is None:
                raise S3Failure(404, "NoSuchKey", "The specified key does not exist.")
            files = self.store.content_files(rec.content_key)
            start, end = _byte_range(request.headers.get("range"), rec.length)
        except S3Failure as exc:
            return _s3_error(exc.status, exc.code, exc.message, exc.headers)
        headers = {"Content-Length": str(end - start), "ETag": f'"{rec.sha256}"', "Accept-Ranges": "bytes"}
        status = 200
        if request.headers.get("range") is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.length}"
        body = self.store.iter_content(files, start, end)
        drop_after = self.state.faults.take_get_fault()
        if drop_after is not None:
            body = _cut_off(body, drop_after)
        return StreamingResponse(body, status_code=status,
                                 media_type="application/octet-stream", headers=headers)


def _cut_off(blocks: Iterator[bytes], after: int) -> Iterator[bytes]:
    """The first ``after`` bytes, then an error: the server drops the connection mid-body."""
    sent = 0
    for block in blocks:
        if sent + len(block) >= after:
            if after > sent:
                yield block[: after - sent]
            break
        sent += len(block)
        yield block
    raise ConnectionAbortedError("fault injection: GET dropped")


def _byte_range(header: str | None, length: int) -> tuple[int, int]:
    """[start, end) for a single ``Range: bytes=`` spec (whole object without one)."""
    if header is None:
        return 0, length
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        raise S3Failure(416, "InvalidRange", "Only a single bytes=first-last range is supported.")
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(0, length - int(last)), length
    else:
        start = int(first)
        end = length if last == "" else min(int(last) + 1, length)
    if start >= length or start >= end:
        raise S3Failure(416, "InvalidRange", "The requested range is not satisfiable.",
                        {"Content-Range": f"bytes */{length}"})
    return start, end


class _PartSink:
    """Hashes a part body from its context and writes it at offsets (worker threads, one at a time)."""

    def __init__(self, path: Path | None, ctx: IterationCtx, fsync: bool) -> None:
        self.hasher = Hasher(ctx)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if path is not None else -1
        self._fsync = fsync

    def write(self, chunks: Sequence[Buffer], offset: int) -> None:
        """Hash ``chunks`` (the C core releases the GIL) and write them at ``offset``."""
        for chunk in chunks:
            self.hasher.update(chunk)
        if self._fd < 0:
            return
        for start in range(0, len(chunks), 512):  # stay below IOV_MAX
            group: list[Any] = [memoryview(c) for c in chunks[start: start + 512]]
            while group:
                written = os.pwritev(self._fd, group, offset)
                offset += written
                while group and written >= len(group[0]):
                    written -= len(group[0])
                    group.pop(0)
                if group and written:
                    group[0] = group[0][written:]

    def receive(self, body: NativeBody, offset: int) -> None:
        """The rest of the body from its socket straight into the hash and the file at ``offset``."""
        body.run(self.hasher, self._fd, offset)

    def finish(self) -> None:
        if self._fd >= 0 and self._fsync:
            os.fsync(self._fd)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclasses.dataclass
class PartJob:
    """One part PUT being received: its plan, context, sink and temporary file."""

    file_id: str
    number: int
    plan: PlanRecord
    ctx: IterationCtx
    sink: _PartSink
    tmp: Path | None

    def abandon(self) -> None:
        """Close the sink and drop the temporary file (a no-op after :meth:`_App.end_part` moved it)."""
        self.sink.close()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


def _retry_after(seconds: float) -> str:
    return str(max(0, int(seconds))) if float(seconds).is_integer() else f"{seconds:g}"


def _abort_connection(request: Request) -> None:
    """Close the client connection abruptly (uvicorn exposes the transport on receive's owner)."""
    owner = getattr(request.receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is not None:
        transport.abort()
        return
    raise RuntimeError("cannot drop the connection: transport not reachable")


def create_app(state: ServerState) -> Starlette:
    """Build the ASGI app over ``state``."""
    app = _App(state)
    state.core = app
    routes = [
        Route(f"{API}/files/create", app._api("create", app.create), methods=["POST"]),
        Route(f"{API}/files/multipart/uploadUrl", app._api("uploadUrl", app.upload_url), methods=["POST"]),
        Route(f"{API}/files/complete", app._api("complete", app.complete), methods=["POST"]),
        Route(f"{API}/files/download", app._api("download", app.download), methods=["POST"]),
        Route(API + "/files/{file_id}/detail", app._api("detail", app.detail), methods=["POST"]),
        Route(f"{API}/session/refresh", app._api("sessionRefresh", app.session_refresh, authenticate=False),
              methods=["POST"]),
        Route(f"{API}/directory", app._api("createDirectory", app.create_directory), methods=["POST"]),
        Route(f"{API}/files/search", app._api("search", app.search), methods=["POST"]),
        Route(f"{API}/files/path", app._api("path", app.full_path), methods=["GET"]),
        Route(f"{API}/jobs", app._api("createJob", app.create_job), methods=["POST"]),
        Route(API + "/files/{type}", app._api("list", app.list_files), methods=["POST"]),
        # literal routes above take priority over the bare job id
        Route(API + "/{job_id}", app._api("job", app.job_detail), methods=["GET"]),
        Route(BUCKET + "/{file_id}", app.put_part, methods=["PUT"]),
        Route(BUCKET + "/{file_id}", app.get_object, methods=["GET"]),
    ]
    starlette = Starlette(routes=routes, exception_handlers={404: _unrouted, 405: _unrouted})
    starlette.router.redirect_slashes = False
    if state.config.log_requests:
        return _RequestLog(starlette)  # type: ignore[return-value]
    return starlette


async def _unrouted(request: Request, exc: Exception) -> Response:
    """No route (or method): the storage node's S3 XML error under the bucket, else the API envelope."""
    method_wrong = getattr(exc, "status_code", 404) == 405
    path = request.url.path
    if path == BUCKET or path.startswith(BUCKET + "/"):
        if method_wrong:
            return _s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if method_wrong:
        return _api_error(CODE_API_NOT_FOUND, "the API does not support this method", 405)
    return _api_error(CODE_API_NOT_FOUND, "the API does not exist", 404)


class _RequestLog:
    """ASGI wrapper logging method, path (never the query: it holds signatures) and status."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.monotonic()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info("%s %s %s %.1fms", scope["method"], scope["path"], status[0], (time.monotonic() - started) * 1000)
