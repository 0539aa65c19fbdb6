"""Token lifecycle against the project's local server: refresh before expiry, once after a 401,
one refresh for many concurrent calls, and an upload that outlives several token lifetimes.

Time is virtual: one :class:`ManualClock` drives the server (token expiry, ``X-Date``
check), the client's ``X-Date`` and the credentials; tests advance it, nothing sleeps.
Every scenario runs with :class:`Client` and :class:`AsyncClient` (async parity).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from koodrive_fast import UploadOptions
from koodrive_fast._auth import (
    PATH_CARRIER_REFRESH,
    AppCredentials,
    IssuedToken,
    RefreshExchange,
    RefreshingBearerToken,
    RefreshReply,
    TokenProvider,
    proof_origin,
)
from koodrive_fast._client import AsyncClient, Client
from koodrive_fast._clock import ManualClock
from koodrive_fast._exceptions import AuthenticationError, ValidationError
from koodrive_fast._progress import ProgressEvent
from koodrive_fast._retry import RetryPolicy
from koodrive_fast.server import LocalServer
from _client_helpers import Scenario, SyncAdapter

TTL = 60.0  # the server's idle token lifetime (KooDrive: 1200 s)
LIFETIME, MARGIN = 60.0, 10.0  # what the credentials assume: renew 10 s before expiry
CONTAINER = "space-1"
APP_ID, APP_SECRET = "tl-app", "tl-app-secret"
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, max_elapsed=10)
REFRESH_PATH = "/koodrive/ose/v1/session/refresh"


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(start=time.time())


@pytest.fixture(scope="module")
def server(clock: ManualClock) -> Iterator[LocalServer]:
    with LocalServer(
        min_part_size=64, token_ttl=TTL, clock=clock.time, fsync=False,
        app_credentials={APP_ID: APP_SECRET},
    ) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean_faults(server: LocalServer) -> Iterator[None]:
    server.faults.clear()
    yield
    server.faults.clear()


def x_date_clock(clock: ManualClock) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(clock.time(), timezone.utc)


def client_kw(server: LocalServer, clock: ManualClock) -> dict[str, Any]:
    return {"limits": server.limits, "retry": FAST_RETRY, "timeout": 20.0,
            "clock": x_date_clock(clock)}


@pytest.fixture(scope="module")
def probe(server: LocalServer, clock: ManualClock, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A stored file; ``file_detail`` on it is the authenticated call the tests make."""
    path = tmp_path_factory.mktemp("probe") / "probe.bin"
    path.write_bytes(b"probe" * 100)
    token, session_id = server.new_session()
    credentials = RefreshingBearerToken(token, server.user_id, session_id=session_id)
    with Client(server.base_url, credentials, **client_kw(server, clock)) as client:
        result = client.upload(path, container_id=CONTAINER, options=UploadOptions(part_size=256))
    return result.file_id


def session_token(server: LocalServer, clock: ManualClock, **kw: Any) -> RefreshingBearerToken:
    token, session_id = server.new_session()
    kw.setdefault("lifetime", LIFETIME)
    kw.setdefault("margin", MARGIN)
    return RefreshingBearerToken(token, server.user_id, session_id=session_id, clock=clock.time, **kw)


def server_refreshes(server: LocalServer) -> int:
    return server.stats.api_calls.get("sessionRefresh", 0)


def rejections(caplog: pytest.LogCaptureFixture) -> int:
    """401 answers the client saw (it logs every API answer at DEBUG)."""
    return sum("http 401" in record.getMessage() for record in caplog.records)


both = pytest.mark.parametrize("kind", ["sync", "async"])


def run(kind: str, server: LocalServer, clock: ManualClock, credentials: Any, scenario: Scenario,
        **extra: Any) -> None:
    kw = {**client_kw(server, clock), **extra}

    async def main() -> None:
        if kind == "async":
            async with AsyncClient(server.base_url, credentials, **kw) as client:
                await scenario(client)
        else:
            with Client(server.base_url, credentials, **kw) as client:
                await scenario(SyncAdapter(client))

    asyncio.run(main())


def raw_detail(server: LocalServer, clock: ManualClock, authorization: str, file_id: str) -> httpx.Response:
    headers = {"Authorization": authorization, "X-User-Id": server.user_id,
               "X-Date": x_date_clock(clock)().strftime("%Y%m%dT%H%M%SZ")}
    return httpx.post(f"{server.base_url}/koodrive/ose/v1/files/{file_id}/detail", json={},
                      headers=headers, timeout=20)


# ---------------------------------------------------------------- refresh before expiry


@both
def test_token_is_refreshed_before_it_expires(
    kind: str, server: LocalServer, clock: ManualClock, probe: str, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = session_token(server, clock)
    first = credentials.authorization()
    before = server_refreshes(server)

    async def scenario(client: Any) -> None:
        await client.file_detail(probe)
        clock.advance(LIFETIME - MARGIN - 5)  # 45 s after issue: not due yet
        await client.file_detail(probe)
        assert credentials.refresh_count == 0
        clock.advance(6)  # 51 s: inside the margin, 9 s before the client's expiry
        await client.file_detail(probe)
        assert credentials.refresh_count == 1
        clock.advance(LIFETIME - MARGIN - 1)  # the new token is not due yet
        await client.file_detail(probe)
        assert credentials.refresh_count == 1

    with caplog.at_level(logging.DEBUG, logger="koodrive_fast"):
        run(kind, server, clock, credentials, scenario)
    assert server_refreshes(server) - before == 1
    assert rejections(caplog) == 0  # refreshed early, never after a 401
    assert credentials.authorization() != first
    stale = raw_detail(server, clock, first, probe)  # the old token died with the refresh
    assert stale.status_code == 401 and stale.json()["code"] == "APIGW.0301"
    token = first.split()[-1]
    assert all(token not in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------- 401 → one refresh → retry


@both
@pytest.mark.parametrize("cause", ["revoked", "expired"])
def test_rejected_token_is_refreshed_once_and_the_call_retried(
    kind: str, cause: str, server: LocalServer, clock: ManualClock, probe: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the client believes its token good for 20 minutes; the server decides otherwise
    credentials = session_token(server, clock, lifetime=1200.0, margin=60.0)
    before = server_refreshes(server)

    async def scenario(client: Any) -> None:
        await client.file_detail(probe)
        if cause == "revoked":
            assert server.revoke_token(credentials.authorization().split()[-1])
        else:
            clock.advance(TTL + 1)  # idle past the server's sliding lifetime
        detail = await client.file_detail(probe)
        assert detail.file_id == probe

    with caplog.at_level(logging.DEBUG, logger="koodrive_fast"):
        run(kind, server, clock, credentials, scenario)
    assert credentials.refresh_count == 1
    assert server_refreshes(server) - before == 1
    assert rejections(caplog) == 1


@both
def test_refused_refresh_is_a_clear_authentication_error(
    kind: str, server: LocalServer, clock: ManualClock, probe: str
) -> None:
    credentials = session_token(server, clock)
    token = credentials.authorization().split()[-1]
    before = server_refreshes(server)

    async def scenario(client: Any) -> None:
        await client.file_detail(probe)
        assert server.close_session(credentials.session_id or "")  # logged off: token and refresh die
        with pytest.raises(AuthenticationError) as info:
            await client.file_detail(probe)
        assert info.value.http_status == 401
        assert info.value.path == REFRESH_PATH
        assert "token refresh failed" in str(info.value)
        assert token not in str(info.value) and token not in repr(info.value)

    run(kind, server, clock, credentials, scenario)
    assert server_refreshes(server) - before == 1  # one refresh attempt, no loop


@both
def test_failed_early_refresh_keeps_the_valid_token_until_it_expires(
    kind: str, server: LocalServer, clock: ManualClock, probe: str, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = session_token(server, clock)

    async def scenario(client: Any) -> None:
        clock.advance(LIFETIME - MARGIN + 1)  # due, 9 s left
        server.faults.fail_api(1, 503)  # the refresh call (made first) fails
        with caplog.at_level(logging.WARNING, logger="koodrive_fast"):
            assert (await client.file_detail(probe)).file_id == probe
        assert any("token refresh failed" in r.getMessage() for r in caplog.records)
        assert credentials.refresh_count == 0
        clock.advance(MARGIN)  # now past the client's expiry, and the session is gone
        server.close_session(credentials.session_id or "")
        with pytest.raises(AuthenticationError, match="token refresh failed"):
            await client.file_detail(probe)

    run(kind, server, clock, credentials, scenario)


# ---------------------------------------------------------------- one refresh for many callers


def test_eight_threads_share_one_refresh(server: LocalServer, clock: ManualClock, probe: str) -> None:
    credentials = session_token(server, clock)
    clock.advance(LIFETIME - MARGIN + 1)  # due for every caller at once
    before = server_refreshes(server)
    refresh_requests: list[str] = []
    problems: list[str] = []  # a hook's exception would only fail the refresh, so record
    entered, lock = [0], threading.Lock()
    all_in, second = threading.Event(), threading.Event()

    def hold_refresh(request: httpx.Request) -> None:
        """Keep the first refresh in flight until all 8 callers have started; a racing
        second refresh (the bug this test is for) arrives meanwhile and is recorded."""
        if request.url.path != REFRESH_PATH:
            return
        with lock:
            refresh_requests.append(request.headers["x-session-id"])
            first = len(refresh_requests) == 1
        if not first:
            second.set()
            return
        if not all_in.wait(20):
            problems.append("the 8 callers never all started")
        second.wait(0.3)

    barrier = threading.Barrier(8)

    def call(client: Client) -> str:
        barrier.wait(20)
        with lock:
            entered[0] += 1
            if entered[0] == 8:
                all_in.set()
        return client.file_detail(probe).file_id

    with Client(server.base_url, credentials, **client_kw(server, clock)) as client:
        client.http_client.event_hooks = {"request": [hold_refresh], "response": []}
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, client) for _ in range(8)]
            results = [f.result(timeout=60) for f in futures]
    assert problems == []
    assert results == [probe] * 8
    assert len(refresh_requests) == 1
    assert credentials.refresh_count == 1
    assert server_refreshes(server) - before == 1


def test_eight_tasks_share_one_refresh(server: LocalServer, clock: ManualClock, probe: str) -> None:
    credentials = session_token(server, clock)
    clock.advance(LIFETIME - MARGIN + 1)
    before = server_refreshes(server)
    refresh_requests: list[str] = []
    problems: list[str] = []

    async def main() -> list[str]:
        all_in, second = asyncio.Event(), asyncio.Event()
        entered = [0]

        async def hold_refresh(request: httpx.Request) -> None:
            if request.url.path != REFRESH_PATH:
                return
            refresh_requests.append(request.headers["x-session-id"])
            if len(refresh_requests) > 1:
                second.set()
                return
            try:
                await asyncio.wait_for(all_in.wait(), 20)
            except asyncio.TimeoutError:
                problems.append("the 8 callers never all started")
            try:
                await asyncio.wait_for(second.wait(), 0.3)
            except asyncio.TimeoutError:
                pass

        async with AsyncClient(server.base_url, credentials, **client_kw(server, clock)) as client:
            client.http_client.event_hooks = {"request": [hold_refresh], "response": []}

            async def call() -> str:
                entered[0] += 1
                if entered[0] == 8:
                    all_in.set()
                return (await client.file_detail(probe)).file_id

            return list(await asyncio.gather(*(call() for _ in range(8))))

    assert asyncio.run(main()) == [probe] * 8
    assert problems == []
    assert len(refresh_requests) == 1
    assert credentials.refresh_count == 1
    assert server_refreshes(server) - before == 1


# ---------------------------------------------------------------- a long upload


@both
def test_upload_outlives_several_token_lifetimes(
    kind: str, server: LocalServer, clock: ManualClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """60 parts; every part sent moves the server's clock 5 s: 300 s = 5 token lifetimes."""
    part, parts, seconds_per_part = 256, 60, 5.0
    data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(part * parts // 32))[:-17]
    path = tmp_path / f"long-{kind}.bin"
    path.write_bytes(data)
    credentials = session_token(server, clock)
    before = server_refreshes(server)
    start = clock.time()
    sent = [0]

    def progress(event: ProgressEvent) -> None:
        if event.phase != "uploading":
            return
        sent[0] += event.delta
        ahead = start + sent[0] / part * seconds_per_part - clock.time()
        if ahead > 0:
            clock.advance(ahead)

    options = UploadOptions(part_size=part, concurrency=2, url_window=2, resume=False, rapid=False)

    async def scenario(client: Any) -> None:
        result = await client.upload(path, container_id=CONTAINER, options=options, progress=progress)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        link = (await client.download_urls([result.file_id], container_id=CONTAINER))[0]
        assert link.url
        got = httpx.get(link.url, timeout=20)
        assert got.status_code == 200 and got.content == data

    with caplog.at_level(logging.DEBUG, logger="koodrive_fast"):
        run(kind, server, clock, credentials, scenario)
    assert clock.time() - start >= 4 * TTL
    assert credentials.refresh_count >= 4
    assert server_refreshes(server) - before == credentials.refresh_count
    assert rejections(caplog) == 0


# ---------------------------------------------------------------- TokenProvider


@both
def test_token_provider_fetches_lazily_before_expiry_and_after_a_401(
    kind: str, server: LocalServer, clock: ManualClock, probe: str, caplog: pytest.LogCaptureFixture
) -> None:
    issued: list[str] = []

    def fetch() -> IssuedToken:  # a "vault": each call hands out a new session's token
        token, _ = server.new_session()
        issued.append(token)
        return IssuedToken(token, clock.time() + LIFETIME)

    credentials = TokenProvider(fetch, server.user_id, margin=MARGIN, clock=clock.time)

    async def scenario(client: Any) -> None:
        assert issued == []  # nothing fetched before the first call
        await client.file_detail(probe)
        assert len(issued) == 1
        clock.advance(LIFETIME - MARGIN + 1)
        await client.file_detail(probe)  # renewed early
        assert len(issued) == 2
        server.revoke_token(issued[-1])
        await client.file_detail(probe)  # 401 → new token → retried
        assert len(issued) == 3

    with caplog.at_level(logging.DEBUG, logger="koodrive_fast"):
        run(kind, server, clock, credentials, scenario)
    assert rejections(caplog) == 1
    assert all(t not in record.getMessage() for t in issued for record in caplog.records)


def test_token_provider_failure_and_validation() -> None:
    def broken() -> str:
        raise RuntimeError("vault says: s3cret-value")

    provider = TokenProvider(broken, "u1")
    with pytest.raises(AuthenticationError) as info:
        provider.authorization()
    assert "RuntimeError" in str(info.value) and "s3cret" not in str(info.value)
    with pytest.raises(ValidationError):
        TokenProvider("not callable", "u1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TokenProvider(lambda: "t", "u1", lifetime=0)
    with pytest.raises(ValidationError):
        TokenProvider(lambda: "bad token\n", "u1").authorization()
    fixed = TokenProvider(lambda: "tok-1", "u1", lifetime=100, clock=lambda: 1000.0)
    assert fixed.authorization() == "Bearer tok-1"
    assert fixed.expires_at == 1100.0
    assert "tok-1" not in repr(fixed)


# ---------------------------------------------------------------- app auth, credentials, server


@both
def test_app_auth_signs_every_attempt_with_a_fresh_x_date(
    kind: str, server: LocalServer, clock: ManualClock, probe: str
) -> None:
    """A retry 16 minutes later would be refused (X-Date > 15 min old) had it reused the
    first attempt's signature; the server's 503 makes the client retry, its sleep jumps."""
    dates: list[str] = []

    def record(request: httpx.Request) -> None:
        dates.append(request.headers["X-Date"])

    async def record_async(request: httpx.Request) -> None:
        record(request)

    def jump(seconds: float) -> None:
        clock.advance(16 * 60)

    async def jump_async(seconds: float) -> None:
        jump(seconds)

    async def scenario(client: Any) -> None:
        hook = record_async if kind == "async" else record
        client.http_client.event_hooks = {"request": [hook], "response": []}
        server.faults.fail_api(1, 503)
        assert (await client.file_detail(probe)).file_id == probe

    credentials = AppCredentials(APP_ID, APP_SECRET, server.user_id)
    run(kind, server, clock, credentials, scenario, sleep=jump_async if kind == "async" else jump,
        monotonic=clock.monotonic)
    assert len(dates) == 2
    first, second = (datetime.strptime(d, "%Y%m%dT%H%M%SZ") for d in dates)
    assert (second - first).total_seconds() >= 16 * 60


def test_refreshing_credentials_validate_and_hide_secrets() -> None:
    with pytest.raises(ValidationError):
        RefreshingBearerToken("tok", "u1")  # neither session id nor refresh token
    with pytest.raises(ValidationError):
        RefreshingBearerToken("tok", "u1", session_id="s", refresh_token="r")
    with pytest.raises(ValidationError):
        RefreshingBearerToken("tok", "u1", session_id="s", margin=-1)
    enterprise = RefreshingBearerToken("Bearer s3cret", "u1", session_id="sess-s3cret")
    assert enterprise.authorization() == "Bearer s3cret"  # createSession's form, sent once prefixed
    assert proof_origin(enterprise) == "Bearer s3cret"
    carrier = RefreshingBearerToken("AT s3cret", "u1", refresh_token="r-s3cret")
    assert carrier.authorization() == "AT s3cret"  # carrier tokens are sent as issued
    exchange = RefreshExchange(PATH_CARRIER_REFRESH, {"Authorization": "AT s3cret"})
    reply = RefreshReply(200, {"accessToken": "s3cret"}, 0, "ok")
    for holder in (enterprise, carrier, IssuedToken("s3cret", 1.0), exchange, reply):
        assert "s3cret" not in repr(holder)
    with pytest.raises(ValidationError, match="credentials"):
        Client("http://127.0.0.1:9", "Bearer tok")  # type: ignore[arg-type]


def test_carrier_refresh_token_flow() -> None:
    """Narrow mapping test (no carrier API on the local server): ``auth/refreshToken`` with
    the refresh token in the body; ``data.sessionInfo`` gives the token, ``expiresIn`` its
    lifetime and a rotated refresh token."""
    now = [1_000_000.0]
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.url.path, request.headers["Authorization"], body))
        if request.url.path == PATH_CARRIER_REFRESH:
            n = len([s for s in seen if s[0] == PATH_CARRIER_REFRESH])
            info = {"accessToken": f"AT new{n}", "expiresIn": 1800, "issuedAt": "0",
                    "refreshToken": f"rt-{n + 1}"}
            return httpx.Response(200, json={"code": 0, "msg": "ok", "data": {"sessionInfo": info}})
        if request.headers["Authorization"] == "AT old":
            return httpx.Response(401, json={"code": "APIGW.0301", "msg": "expired"})
        return httpx.Response(200, json={"code": 0, "msg": "ok"})

    credentials = RefreshingBearerToken("AT old", "u1", refresh_token="rt-1", clock=lambda: now[0])
    with Client("http://koodrive.test", credentials, transport=httpx.MockTransport(handler),
                retry=FAST_RETRY) as client:
        client.complete_file("F1")  # 401 → refresh → retry
        assert credentials.expires_at == now[0] + 1800
        now[0] += 1800 - 60  # inside the 120 s margin
        client.complete_file("F1")
    refreshes = [s for s in seen if s[0] == PATH_CARRIER_REFRESH]
    assert refreshes == [
        (PATH_CARRIER_REFRESH, "AT old", {"refreshToken": "rt-1"}),
        (PATH_CARRIER_REFRESH, "AT new1", {"refreshToken": "rt-2"}),
    ]
    assert seen[-1][1] == "AT new2"


def test_server_refresh_endpoint_rules(server: LocalServer, clock: ManualClock, probe: str) -> None:
    token, session_id = server.new_session()

    def refresh(authorization: str, sid: str | None) -> httpx.Response:
        headers = {"Authorization": authorization}
        if sid is not None:
            headers["x-session-id"] = sid
        return httpx.post(f"{server.base_url}{REFRESH_PATH}", headers=headers, timeout=20)

    assert refresh(f"Bearer {token}", None).status_code == 401
    assert refresh(f"Bearer {token}", "S-other").status_code == 401
    assert refresh("HMAC-SHA256 AppId=a,SignedHeaders=x-date,Signature=00", session_id).status_code == 401
    answer = refresh(f"Bearer+{token}", session_id)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["code"] == 0 and doc["accessToken"].startswith("Bearer ")
    new = doc["accessToken"].split()[-1]
    assert raw_detail(server, clock, f"Bearer {token}", probe).status_code == 401  # at once
    assert raw_detail(server, clock, f"Bearer {new}", probe).status_code == 200
    assert refresh(f"Bearer {token}", session_id).status_code == 401  # superseded token
    clock.advance(TTL + 1)
    expired = raw_detail(server, clock, f"Bearer {new}", probe)
    assert expired.status_code == 401 and expired.json() == {
        "code": "APIGW.0301", "msg": "access token has expired"}
    assert refresh(f"Bearer {new}", session_id).status_code == 200  # the session outlives it


def test_sessions_survive_a_restart(clock: ManualClock) -> None:
    with LocalServer(min_part_size=64, token_ttl=TTL, clock=clock.time) as srv:
        token, session_id = srv.new_session()
        srv.restart()
        credentials = RefreshingBearerToken(token, srv.user_id, session_id=session_id,
                                            lifetime=LIFETIME, margin=MARGIN, clock=clock.time)
        with Client(srv.base_url, credentials, **client_kw(srv, clock)) as client:
            with pytest.raises(Exception) as info:
                client.file_detail("Fmissing")
            assert not isinstance(info.value, AuthenticationError)
            clock.advance(LIFETIME)
            with pytest.raises(Exception) as info:
                client.file_detail("Fmissing")
            assert not isinstance(info.value, AuthenticationError)
        assert credentials.refresh_count == 1
    with pytest.raises(ValueError):
        LocalServer(token_ttl=0)


def test_serve_prints_sessions_and_refreshes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "koodrive_fast._cli", "serve", "--port", "0", "--token=tok-1",
         "--token-ttl", "1200", "--data-dir", str(tmp_path / "data"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().split()[-1]
        lines = [proc.stdout.readline() for _ in range(5)]
        session_id = next(line.split()[-1] for line in lines if line.strip().startswith("session:"))
        assert any("after 1200 idle s" in line for line in lines)
        answer = httpx.post(f"{base_url}{REFRESH_PATH}", timeout=20,
                            headers={"Authorization": "Bearer tok-1", "x-session-id": session_id})
        assert answer.status_code == 200 and answer.json()["accessToken"].startswith("Bearer ")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
    bad = subprocess.run([sys.executable, "-m", "koodrive_fast._cli", "serve", "--token-ttl", "-5"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--token-ttl" in bad.stderr and "Traceback" not in bad.stderr


def test_sync_outlives_several_token_lifetimes(
    server: LocalServer, clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """A folder sync of 12 files × 8 parts while the server's clock runs through five
    token lifetimes: every file lands, no request is refused."""
    from koodrive_fast import sync
    from koodrive_fast._snapshot import Snapshot

    part, files = 256, 12
    local = tmp_path / "tree"
    (local / "sub").mkdir(parents=True)
    contents = {}
    for i in range(files):
        rel = f"sub/f{i}.bin" if i % 2 else f"f{i}.bin"
        data = hashlib.sha256(b"sync%d" % i).digest() * (8 * part // 32)
        (local / rel).write_bytes(data)
        contents[rel] = data
    credentials = session_token(server, clock)
    start = clock.time()
    total = sum(len(d) for d in contents.values())
    sent = [0]

    def progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta > 0:
            sent[0] += event.delta
            ahead = start + sent[0] / total * 5 * TTL - clock.time()
            if ahead > 0:
                clock.advance(ahead)

    options = UploadOptions(part_size=part, concurrency=2, checkpoint_dir=tmp_path / "state",
                            retry=FAST_RETRY)
    with caplog.at_level(logging.DEBUG, logger="koodrive_fast"):
        with Client(server.base_url, credentials, **client_kw(server, clock)) as client, \
                Snapshot(tmp_path / "snap.sqlite3", racy_window_ns=0) as snap:
            result = sync(client, local, "/long-sync", container_id=CONTAINER, options=options,
                          files=2, progress=progress, snapshot=snap)
            assert result.ok and result.counts == {"uploaded": files}, result.failed
            back = tmp_path / "back"
            client.download("/long-sync", back, container_id=CONTAINER)
    assert {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()} == contents
    assert clock.time() - start >= 4 * TTL
    assert credentials.refresh_count >= 4
    assert rejections(caplog) == 0
