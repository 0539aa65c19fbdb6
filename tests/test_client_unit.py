"""Client error mapping, retries, headers and batching against httpx.MockTransport.

Narrow tests of decisions that are hard to provoke on the real server; the
end-to-end behaviour is in test_client_server.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from koodrive_fast._auth import AppCredentials, BearerToken, parse_app_authorization
from koodrive_fast._client import PATH_COMPLETE, PATH_CREATE, PATH_UPLOAD_URL, AsyncClient, Client
from koodrive_fast._config import Limits
from koodrive_fast._exceptions import (
    ApiError,
    AuthenticationError,
    IntegrityError,
    MalformedResponseError,
    RateLimitedError,
    TransportError,
    UploadTaskMissingError,
    ValidationError,
)
from koodrive_fast._models import MultiPartInfo
from koodrive_fast._retry import RetryBudget, RetryPolicy, parse_retry_after

TOKEN = "tok-SECRET-123"
USER = "1505084218764547200"
ENDPOINT = "https://api.example.test"
LIMITS = Limits(min_part_size=64)
CTX = (9,) * 8
SIG = "0123456789abcdef" * 4

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and replays scripted responses."""

    def __init__(self, *responses: httpx.Response | Exception | Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            return item(request)
        return item

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def ok(**fields: Any) -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "msg": "Success.", **fields})


def err(
    status: int, code: Any, msg: str = "nope", headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": msg}, headers=headers)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def monotonic(self) -> float:
        return self.now


POLICY = RetryPolicy(
    max_attempts=4, backoff_base=0.1, backoff_max=1.0, max_elapsed=30, jitter=False
)


def make_client(handler: Recorder, fake: FakeTime | None = None, **kw: Any) -> Client:
    fake = fake or FakeTime()
    kw.setdefault("retry", POLICY)
    kw.setdefault("limits", LIMITS)
    return Client(
        ENDPOINT, kw.pop("credentials", BearerToken(TOKEN, USER)),
        transport=httpx.MockTransport(handler), sleep=fake.sleep, monotonic=fake.monotonic, **kw,
    )


def complete(client: Client) -> None:
    client.complete_file("F1", sha256="ab" * 32)


# ---------------------------------------------------------------- envelope and error mapping


def test_success_with_string_code_and_headers() -> None:
    rec = Recorder(httpx.Response(200, json={"code": "0", "msg": "成功"}))
    fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with make_client(rec, clock=lambda: fixed, language="en-US", share_folder_id="SF") as client:
        complete(client)
    req = rec.requests[0]
    assert req.method == "POST" and req.url.path == PATH_COMPLETE
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["x-user-id"] == USER
    assert req.headers["x-date"] == "20260102T030405Z"
    assert len(req.headers["x-traceid"]) == 58
    assert req.headers["language"] == "en-US" and req.headers["x-hw-share-folder-id"] == "SF"
    assert req.headers["host"] == "api.example.test"
    assert rec.bodies() == [{"fileId": "F1", "sha256": "ab" * 32}]


@pytest.mark.parametrize(
    ("response", "cls", "code"),
    [
        (err(400, 13000402), IntegrityError, 13000402),
        (err(400, "13000401"), UploadTaskMissingError, 13000401),
        (err(401, "APIGW.0301"), AuthenticationError, "APIGW.0301"),
        (err(400, 13000102), ApiError, 13000102),
        (httpx.Response(200, json={"code": 13000409, "msg": "upload failed"}), ApiError, 13000409),
    ],
)
def test_business_errors_map_and_are_not_retried(
    response: httpx.Response, cls: type[ApiError], code: Any
) -> None:
    rec = Recorder(response)
    fake = FakeTime()
    with make_client(rec, fake) as client, pytest.raises(cls) as info:
        complete(client)
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.http_status == response.status_code
    assert info.value.trace_id == rec.requests[0].headers["x-traceid"]
    assert len(rec.requests) == 1 and fake.sleeps == []


def test_non_json_error_body() -> None:
    rec = Recorder(httpx.Response(418, text="<html>teapot</html>"))
    with make_client(rec) as client, pytest.raises(ApiError) as info:
        complete(client)
    assert info.value.code is None and info.value.http_status == 418
    assert "teapot" in info.value.msg


def test_success_status_with_garbage_body_is_malformed() -> None:
    rec = Recorder(httpx.Response(200, text="not json"))
    with make_client(rec) as client, pytest.raises(MalformedResponseError):
        complete(client)


# ---------------------------------------------------------------- retries


def test_5xx_retried_with_fresh_date_and_same_trace_id() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    times = iter([start + timedelta(seconds=s) for s in range(10)])
    rec = Recorder(err(500, 13000201), err(503, 13000201), ok())
    fake = FakeTime()
    with make_client(rec, fake, clock=lambda: next(times)) as client:
        complete(client)
    assert len(rec.requests) == 3
    assert fake.sleeps == [0.1, 0.2]  # exponential backoff (jitter off)
    assert len({r.headers["x-traceid"] for r in rec.requests}) == 1
    assert len({r.headers["x-date"] for r in rec.requests}) == 3


def test_retries_are_bounded_in_count() -> None:
    rec = Recorder(err(502, 13000201))
    fake = FakeTime()
    with make_client(rec, fake) as client, pytest.raises(ApiError) as info:
        complete(client)
    assert len(rec.requests) == POLICY.max_attempts
    assert info.value.http_status == 502


def test_retries_are_bounded_in_time() -> None:
    rec = Recorder(err(500, 1))
    fake = FakeTime()
    policy = RetryPolicy(
        max_attempts=100, backoff_base=1, backoff_max=4, max_elapsed=10, jitter=False
    )
    with make_client(rec, fake, retry=policy) as client, pytest.raises(ApiError):
        complete(client)
    assert sum(fake.sleeps) <= 10
    assert 3 <= len(rec.requests) < 10


def test_429_honours_retry_after_then_gives_rate_limited() -> None:
    rec = Recorder(err(429, "APIGW.0308", headers={"Retry-After": "3"}))
    fake = FakeTime()
    with make_client(rec, fake) as client, pytest.raises(RateLimitedError) as info:
        complete(client)
    assert fake.sleeps == [3.0, 3.0, 3.0]
    assert info.value.retry_after == 3.0 and info.value.http_status == 429


def test_429_with_too_long_retry_after_is_not_waited_for() -> None:
    rec = Recorder(err(429, "APIGW.0308", headers={"Retry-After": "3600"}))
    fake = FakeTime()
    with make_client(rec, fake) as client, pytest.raises(RateLimitedError):
        complete(client)
    assert fake.sleeps == [] and len(rec.requests) == 1


def test_connection_errors_retried_then_transport_error() -> None:
    rec = Recorder(httpx.ConnectError("refused"), httpx.ReadError("reset"), ok())
    with make_client(rec) as client:
        complete(client)
    assert len(rec.requests) == 3
    rec = Recorder(httpx.ReadTimeout("slow"))
    with make_client(rec) as client, pytest.raises(TransportError) as info:
        complete(client)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert info.value.attempts == POLICY.max_attempts == len(rec.requests)


CREATE_OK = ok(fileId="F9", uploadId="U", multiParts=[])


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        (err(500, 13000201), False),
        (err(502, 13000201), False),
        (err(504, 13000201), False),
        (err(503, 13000201), True),  # the gateway refused it: nothing was created
        (httpx.ReadTimeout("lost answer"), False),
        (err(429, "APIGW.0308", headers={"Retry-After": "0"}), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ConnectTimeout("no route"), True),
    ],
)
def test_create_is_retried_only_when_surely_unprocessed(first: Any, retried: bool) -> None:
    rec = Recorder(first, CREATE_OK)
    with make_client(rec) as client:
        if retried:
            assert client.create_file(file_name="a", length=1).file_id == "F9"
        else:
            with pytest.raises((ApiError, TransportError)):
                client.create_file(file_name="a", length=1)
    assert len(rec.requests) == (2 if retried else 1)


def test_never_policy_makes_one_attempt() -> None:
    rec = Recorder(err(503, 1))
    with make_client(rec, retry=RetryPolicy.never()) as client, pytest.raises(ApiError):
        complete(client)
    assert len(rec.requests) == 1


def test_full_jitter_stays_within_cap() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=2.0)
    delays = [policy.backoff(k) for k in range(1, 8) for _ in range(20)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 10
    budget = RetryBudget(RetryPolicy(max_attempts=3, jitter=False), monotonic=lambda: 0.0)
    assert [budget.next_delay(), budget.next_delay(), budget.next_delay()] == [0.5, 1.0, None]


def test_parse_retry_after() -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0


# ---------------------------------------------------------------- uploadUrl batching


def parts(first: int, last: int, size: int = 64) -> list[MultiPartInfo]:
    return [
        MultiPartInfo(n, size, (n - 1) * size, None if n == 1 else CTX)
        for n in range(first, last + 1)
    ]


def url_echo_reversed(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    out = [
        dict(p, uploadUrl=f"https://obs.test/o?partNumber={p['partNumber']}&X-Amz-Signature={SIG}")
           for p in reversed(body["multiParts"])]
    return ok(multiParts=out)


def test_upload_urls_batched_by_100_and_matched_by_number() -> None:
    rec = Recorder(url_echo_reversed)
    with make_client(rec) as client:
        got = client.get_upload_urls("F1", parts(1, 250))
    assert [len(b["multiParts"]) for b in rec.bodies()] == [100, 100, 50]
    assert sorted(got) == list(range(1, 251))
    for n, info in got.items():
        assert info.part_number == n and f"partNumber={n}&" in (info.upload_url or "")
        assert info.hash_ctx == (None if n == 1 else CTX)
    assert len({r.headers["x-traceid"] for r in rec.requests}) == 1
    assert all("uploadUrl" not in p for b in rec.bodies() for p in b["multiParts"])


def test_upload_urls_missing_part_is_an_error() -> None:
    def drop_one(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return ok(multiParts=[dict(p, uploadUrl="https://u") for p in body["multiParts"][1:]])

    with make_client(Recorder(drop_one)) as client, pytest.raises(
        MalformedResponseError, match=r"\[46\]"
    ):
        client.get_upload_urls("F1", parts(46, 50))


def test_upload_urls_ignore_unrequested_parts() -> None:
    def extra(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = [dict(p, uploadUrl="https://u") for p in body["multiParts"]]
        return ok(multiParts=[*out, {"partNumber": 99, "uploadUrl": "https://x"}])

    with make_client(Recorder(extra)) as client:
        assert sorted(client.get_upload_urls("F1", parts(2, 3))) == [2, 3]


def test_download_urls_batched_and_ordered() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["fileIds"]
        links = [{"fileId": i, "code": 0, "url": f"https://d/{i}"} for i in reversed(ids)]
        return ok(batchCode=1, downloads=links)

    rec = Recorder(answer)
    ids = [f"F{i}" for i in range(150)]
    with make_client(rec) as client:
        links = client.download_urls(ids, container_id="C")
    assert [link.file_id for link in links] == ids
    assert [len(b["fileIds"]) for b in rec.bodies()] == [100, 50]
    assert all(b["containerId"] == "C" for b in rec.bodies())


# ---------------------------------------------------------------- validation before I/O


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.create_file(file_name="a/b", length=1), "fileName"),
        (lambda c: c.create_file(file_name="..", length=1), "fileName"),
        (lambda c: c.create_file(file_name="x" * 251, length=1), "fileName"),
        (lambda c: c.create_file(file_name="a", length=-1), "length"),
        (lambda c: c.create_file(file_name="a", length=201 * 2**30), "length"),
        (lambda c: c.create_file(file_name="a", length=1, sha256="xyz"), "sha256"),
        (lambda c: c.create_file(file_name="a", length=1, auto_rename=5), "autoRename"),
        (lambda c: c.create_file(file_name="a", length=1, trace_id="short"), "trace_id"),
        (lambda c: c.create_file(file_name="a", length=128, multi_parts=parts(1, 101)),
         "multiParts"),
        (lambda c: c.create_file(file_name="a", length=64 * 3, multi_parts=parts(1, 2, 32)),
         "multiParts[0].partSize"),
        (lambda c: c.get_upload_urls("F1", [MultiPartInfo(2, 64, 64)]), "multiParts[0].hashCtx"),
        (lambda c: c.get_upload_urls("F1", [MultiPartInfo(2, 64, None, CTX)]),
         "multiParts[0].partOffset"),
        (lambda c: c.get_upload_urls("F1", [MultiPartInfo(2, 64, 65, CTX)]),
         "multiParts[0].partOffset"),
        (lambda c: c.get_upload_urls("a/b", parts(1, 1)), "fileId"),
        (lambda c: c.complete_file(""), "fileId"),
        (lambda c: c.complete_file("F", sha256="AB"), "sha256"),
        (lambda c: c.file_detail("../x"), "fileId"),
        (lambda c: c.download_urls("F1"), "fileIds"),
        (lambda c: c.download_urls([]), "fileIds"),
    ],
)
def test_validation_happens_before_any_request(call: Callable[[Client], Any], field: str) -> None:
    rec = Recorder(ok())
    with make_client(rec) as client, pytest.raises(ValidationError) as info:
        call(client)
    assert info.value.field == field
    assert rec.requests == []


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValidationError):
        Client("ftp://x", BearerToken(TOKEN, USER))
    with pytest.raises(ValidationError):
        Client("https://x?q=1", BearerToken(TOKEN, USER))
    with pytest.raises(ValidationError):  # every error in the tree (was TypeError)
        Client(ENDPOINT, "token")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Client(ENDPOINT, BearerToken(TOKEN, USER), max_connections=0)
    with pytest.raises(ValidationError):
        Client(ENDPOINT, BearerToken(TOKEN, USER), verify=123)  # type: ignore[arg-type]


def test_verify_accepts_a_ca_bundle_path(recwarn: pytest.WarningsRecorder) -> None:
    import certifi

    with Client(ENDPOINT, BearerToken(TOKEN, USER), verify=certifi.where()) as client:
        assert client.endpoint == ENDPOINT
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


# ---------------------------------------------------------------- secrets stay out


def test_no_secrets_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="koodrive_fast")
    leak = f"https://obs.test/o?X-Amz-Credential=AKSECRET&X-Amz-Signature={SIG}"
    rec = Recorder(url_echo_reversed, err(400, 13000102, f"bad url {leak} for Bearer {TOKEN}"))
    with make_client(rec) as client:
        got = client.get_upload_urls("F1", parts(1, 2))
        with pytest.raises(ApiError) as info:
            complete(client)
        texts = [caplog.text, repr(got), str(info.value), repr(client)]
    for text in texts:
        assert TOKEN not in text and SIG not in text and "AKSECRET" not in text
    assert "uploadUrl" in caplog.text or PATH_UPLOAD_URL in caplog.text


def test_app_credentials_sign_each_request() -> None:
    rec = Recorder(ok())
    creds = AppCredentials("app1", "appsecret", USER)
    with make_client(rec, credentials=creds) as client:
        client.complete_file("F1")
    app_id, signed, signature = parse_app_authorization(rec.requests[0].headers["authorization"])
    assert app_id == "app1" and signed == ("host", "x-date", "x-user-id") and len(signature) == 64
    assert client.proof_origin == USER


# ---------------------------------------------------------------- async parity


def test_async_client_same_mapping_and_retries() -> None:
    async def main() -> None:
        fake = FakeTime()
        rec = Recorder(err(503, 13000201), url_echo_reversed)
        async with AsyncClient(
            ENDPOINT, BearerToken(TOKEN, USER), limits=LIMITS, retry=POLICY,
            transport=httpx.MockTransport(rec), sleep=fake.asleep, monotonic=fake.monotonic,
        ) as client:
            got = await client.get_upload_urls("F1", parts(1, 3))
            assert sorted(got) == [1, 2, 3] and fake.sleeps == [0.1]
            rec.responses = [err(400, 13000402)]
            with pytest.raises(IntegrityError):
                await client.complete_file("F1")
            rec.responses = [CREATE_OK]
            before = len(rec.requests)
            with pytest.raises(ValidationError):
                await client.create_file(file_name="a:b", length=1)
            assert len(rec.requests) == before
            assert rec.requests[0].url.path == PATH_UPLOAD_URL

    asyncio.run(main())


def test_create_body_shape() -> None:
    rec = Recorder(lambda r: ok(fileId="F1", uploadId="U", multiParts=[
        dict(p, uploadUrl="https://u") for p in json.loads(r.content).get("multiParts", [])]))
    with make_client(rec) as client:
        result = client.create_file(
            file_name="big.bin", length=200, container_id="C", sha256="AB" * 32, pre_hash="cd" * 32,
            proof_code="ef" * 32, multi_parts=parts(1, 3, 64)[:2], auto_rename=2, mime_type="x/y",
        )
    body = rec.bodies()[0]
    assert body == {
        "fileName": "big.bin", "fileType": "45", "parentFolder": ["root"], "length": 200,
        "uploadMode": "multipart", "uploadType": 1, "containerId": "C", "sha256": "ab" * 32,
        "preHash": "cd" * 32, "proofCode": "ef" * 32, "autoRename": 2, "mimeType": "x/y",
        "multiParts": [{"partNumber": 1, "partSize": 64, "partOffset": 0},
                       {"partNumber": 2, "partSize": 64, "partOffset": 64, "hashCtx": list(CTX)}],
    }
    assert rec.requests[0].url.path == PATH_CREATE
    assert [p.hash_ctx for p in result.multi_parts] == [None, CTX]


def test_async_sync_twin_keeps_settings() -> None:
    async def main() -> None:
        fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        async with AsyncClient(ENDPOINT, BearerToken(TOKEN, USER), limits=LIMITS, retry=POLICY,
                               language="zh-CN", clock=lambda: fixed) as client:
            with client.sync_twin() as twin:
                assert (twin.endpoint, twin.limits, twin.retry_policy) == (ENDPOINT, LIMITS, POLICY)
                assert twin.credentials == client.credentials
                headers = twin._headers("t" * 58)
                assert headers["language"] == "zh-CN" and headers["X-Date"] == "20260102T030405Z"

    asyncio.run(main())
