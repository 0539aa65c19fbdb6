"""The API client against the project's local server over real HTTP on loopback.

Every scenario is an ``async`` function run twice: with :class:`AsyncClient`,
and with :class:`Client` behind a thin awaitable adapter (async parity).
Part PUTs use plain httpx with an exact ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from koodrive_fast._auth import AppCredentials, BearerToken, pre_hash, proof_code
from koodrive_fast._client import AsyncClient, Client
from koodrive_fast._exceptions import (
    ApiError,
    AuthenticationError,
    IntegrityError,
    RateLimitedError,
    UploadTaskMissingError,
    ValidationError,
)
from koodrive_fast._models import MultiPartInfo
from koodrive_fast._planner import PartPlan, plan_with_contexts
from koodrive_fast._retry import RetryPolicy
from koodrive_fast.server import LocalServer
from _client_helpers import Scenario, SyncAdapter


APP_ID, APP_SECRET = "test-app", "test-app-secret"
CONTAINER = "space-1"
PART = 256  # bytes; the server's min part size is lowered to 64
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, max_elapsed=10)


_STORAGE = httpx.Client(timeout=20.0)  # one pool for all part PUTs and object GETs


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, app_credentials={APP_ID: APP_SECRET}, fsync=False) as srv:
        yield srv
    _STORAGE.close()


@pytest.fixture(autouse=True)
def _clean_faults(server: LocalServer) -> Iterator[None]:
    server.faults.clear()
    yield
    server.faults.clear()




def run(kind: str, server: LocalServer, scenario: Scenario, **client_kw: Any) -> None:
    credentials = client_kw.pop("credentials", BearerToken(server.token, server.user_id))
    client_kw.setdefault("limits", server.limits)
    client_kw.setdefault("retry", FAST_RETRY)
    client_kw.setdefault("timeout", 20.0)

    async def main() -> None:
        if kind == "async":
            async with AsyncClient(server.base_url, credentials, **client_kw) as client:
                await scenario(client)
        else:
            with Client(server.base_url, credentials, **client_kw) as client:
                await scenario(SyncAdapter(client))

    asyncio.run(main())


both = pytest.mark.parametrize("kind", ["sync", "async"])


def make_file(tmp_path: Path, size: int, seed: int) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / f"f{seed}.bin"
    path.write_bytes(data)
    return path, data


def put_part(info: MultiPartInfo, data: bytes) -> httpx.Response:
    """PUT one part with plain httpx: ``bytes`` content → exact Content-Length."""
    assert info.upload_url is not None and info.part_offset is not None
    body = data[info.part_offset : info.part_offset + info.part_size]
    response = _STORAGE.put(info.upload_url, content=body)
    assert response.request.headers["content-length"] == str(len(body))
    return response


async def upload_all(
    client: Any, name: str, plan: PartPlan, data: bytes, *, first: int = 2, send_digest: bool = True
) -> str:
    """create (first parts) → uploadUrl (the rest) → PUT in reverse order; returns fileId."""
    digest = hashlib.sha256(data).hexdigest() if send_digest else None
    created = await client.create_file(
        file_name=name, length=plan.size, container_id=CONTAINER, sha256=digest,
        multi_parts=list(plan.parts[:first]),
    )
    assert not created.rapid_upload and created.upload_id
    urls = {p.part_number: p for p in created.multi_parts}
    assert sorted(urls) == list(range(1, min(first, plan.part_count) + 1))
    if plan.part_count > first:
        more = await client.get_upload_urls(
            created.file_id, list(plan.parts[first:]), file_size=plan.size
        )
        assert sorted(more) == list(range(first + 1, plan.part_count + 1))
        urls.update(more)
    for number in sorted(urls, reverse=True):
        info = urls[number]
        assert info.hash_ctx == plan.parts[number - 1].hash_ctx
        response = put_part(info, data)
        assert response.status_code == 200, response.text
    return str(created.file_id)


# ---------------------------------------------------------------- round trip


@both
def test_round_trip_every_endpoint(kind: str, server: LocalServer, tmp_path: Path) -> None:
    path, data = make_file(tmp_path, 5 * PART + 17, seed=1)
    plan, contexts = plan_with_contexts(path, PART, limits=server.limits)
    assert contexts.digest == hashlib.sha256(data).hexdigest()

    async def scenario(client: Any) -> None:
        file_id = await upload_all(client, f"round-{kind}.bin", plan, data)
        await client.complete_file(file_id, sha256=contexts.digest)
        await client.complete_file(file_id)  # complete is idempotent
        detail = await client.file_detail(file_id)
        assert detail.file_id == file_id and detail.length == len(data)
        assert detail.sha256 == contexts.digest and detail.status == "completed"
        links = await client.download_urls([file_id, "Fnope"], container_id=CONTAINER)
        assert [link.file_id for link in links] == [file_id, "Fnope"]
        assert links[0].ok and not links[1].ok and links[1].code != 0
        assert links[0].url is not None
        got = _STORAGE.get(links[0].url, timeout=20.0)
        assert got.status_code == 200 and got.content == data

    run(kind, server, scenario)


@both
def test_single_part_and_empty_files(kind: str, server: LocalServer, tmp_path: Path) -> None:
    async def scenario(client: Any) -> None:
        for size in (0, 100):
            path, data = make_file(tmp_path, size, seed=10 + size)
            plan, contexts = plan_with_contexts(path, PART, limits=server.limits)
            # no sha256 at create: the content may be known already (a flash hit)
            file_id = await upload_all(
                client, f"small-{size}-{kind}.bin", plan, data, send_digest=False
            )
            await client.complete_file(file_id, sha256=contexts.digest)
            detail = await client.file_detail(file_id)
            assert detail.length == size and detail.sha256 == hashlib.sha256(data).hexdigest()

    run(kind, server, scenario)


@both
def test_more_than_100_parts_are_batched(kind: str, server: LocalServer, tmp_path: Path) -> None:
    path, data = make_file(tmp_path, 64 * 230 + 5, seed=3)
    plan, _ = plan_with_contexts(path, 64, limits=server.limits)
    assert plan.part_count == 231

    async def scenario(client: Any) -> None:
        created = await client.create_file(
            file_name=f"many-{kind}.bin", length=plan.size, container_id=CONTAINER,
            multi_parts=list(plan.parts[:100]),
        )
        assert sorted(p.part_number for p in created.multi_parts) == list(range(1, 101))
        before = server.stats.api_calls.get("uploadUrl", 0)
        more = await client.get_upload_urls(
            created.file_id, list(plan.parts[100:]), file_size=plan.size
        )
        assert server.stats.api_calls.get("uploadUrl", 0) - before == 2  # 131 parts → 100 + 31
        assert sorted(more) == list(range(101, 232))
        for number, info in more.items():
            assert info.hash_ctx == plan.parts[number - 1].hash_ctx
            assert f"partNumber={number}&" in (info.upload_url or "")
        # spot-check a few URLs really work for their own part
        first = {p.part_number: p for p in created.multi_parts}
        for number in (231, 101, 1):
            info = more.get(number) or first[number]
            assert put_part(info, data).status_code == 200

    run(kind, server, scenario)


# ---------------------------------------------------------------- integrity


@both
def test_wrong_context_is_caught_at_complete(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, 4 * PART, seed=4)
    plan, contexts = plan_with_contexts(path, PART, limits=server.limits)
    bad_ctx = tuple((w + 1) % 2**32 for w in plan.parts[2].hash_ctx or ())
    parts = list(plan.parts)
    parts[2] = dataclasses.replace(parts[2], hash_ctx=bad_ctx)
    tampered = PartPlan(plan.size, plan.part_size, tuple(parts))

    async def scenario(client: Any) -> None:
        file_id = await upload_all(client, f"badctx-{kind}.bin", tampered, data)
        with pytest.raises(IntegrityError) as info:
            await client.complete_file(file_id, sha256=contexts.digest)
        assert info.value.code == 13000402 and info.value.http_status == 400
        assert info.value.trace_id and len(info.value.trace_id) == 58

    run(kind, server, scenario)


@both
def test_wrong_sha256_and_missing_part(kind: str, server: LocalServer, tmp_path: Path) -> None:
    path, data = make_file(tmp_path, 3 * PART, seed=5)
    plan, _ = plan_with_contexts(path, PART, limits=server.limits)

    async def scenario(client: Any) -> None:
        created = await client.create_file(
            file_name=f"missing-{kind}.bin", length=plan.size, container_id=CONTAINER,
            multi_parts=list(plan.parts),
        )
        for info in created.multi_parts[1:]:  # part 1 is never sent
            assert put_part(info, data).status_code == 200
        with pytest.raises(IntegrityError):
            await client.complete_file(created.file_id)
        assert put_part(created.multi_parts[0], data).status_code == 200
        with pytest.raises(IntegrityError):
            await client.complete_file(created.file_id, sha256="0" * 64)
        await client.complete_file(created.file_id, sha256=hashlib.sha256(data).hexdigest())

    run(kind, server, scenario)


@both
def test_unknown_file_id(kind: str, server: LocalServer) -> None:
    async def scenario(client: Any) -> None:
        with pytest.raises(UploadTaskMissingError):
            await client.complete_file("Fdoesnotexist")
        with pytest.raises(ApiError) as info:
            await client.file_detail("Fdoesnotexist")
        assert info.value.code == 13000309

    run(kind, server, scenario)


# ---------------------------------------------------------------- auth


@both
def test_bad_token_is_authentication_error(kind: str, server: LocalServer) -> None:
    async def scenario(client: Any) -> None:
        with pytest.raises(AuthenticationError) as info:
            await client.file_detail("Fwhatever")
        assert info.value.http_status == 401
        assert "wrong-token" not in str(info.value)

    run(kind, server, scenario, credentials=BearerToken("wrong-token", server.user_id))


@both
@pytest.mark.parametrize("skew", [timedelta(minutes=-20), timedelta(minutes=10)])
def test_stale_or_future_x_date_is_rejected(
    kind: str, server: LocalServer, skew: timedelta
) -> None:
    async def scenario(client: Any) -> None:
        with pytest.raises(AuthenticationError, match="X-Date"):
            await client.complete_file("Fwhatever")

    run(kind, server, scenario, clock=lambda: datetime.now(timezone.utc) + skew)


@both
def test_app_auth_hmac_accepted_and_wrong_secret_rejected(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, 2 * PART + 3, seed=6)
    plan, contexts = plan_with_contexts(path, PART, limits=server.limits)

    async def scenario(client: Any) -> None:
        file_id = await upload_all(client, f"app-{kind}.bin", plan, data)
        await client.complete_file(file_id, sha256=contexts.digest)
        assert (await client.file_detail(file_id)).sha256 == contexts.digest

    run(kind, server, scenario, credentials=AppCredentials(APP_ID, APP_SECRET, server.user_id))

    async def rejected(client: Any) -> None:
        with pytest.raises(AuthenticationError):
            await client.file_detail("Fwhatever")

    wrong = AppCredentials(APP_ID, "not-the-secret", server.user_id)
    run(kind, server, rejected, credentials=wrong)


# ---------------------------------------------------------------- flash upload


@both
@pytest.mark.parametrize("auth", ["bearer", "app"])
def test_flash_upload_hit_and_miss(
    kind: str, auth: str, server: LocalServer, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, 3 * PART + 9, seed=7 if auth == "bearer" else 8)
    plan, contexts = plan_with_contexts(path, PART, limits=server.limits)
    credentials: Any = (
        BearerToken(server.token, server.user_id) if auth == "bearer"
        else AppCredentials(APP_ID, APP_SECRET, server.user_id)
    )

    async def scenario(client: Any) -> None:
        original = await upload_all(client, f"flash-src-{kind}-{auth}.bin", plan, data)
        await client.complete_file(original, sha256=contexts.digest)
        good_proof = proof_code(path, len(data), client.proof_origin)
        puts_before = server.stats.total_puts_received
        hit = await client.create_file(
            file_name=f"flash-hit-{kind}-{auth}.bin", length=len(data), container_id=CONTAINER,
            sha256=contexts.digest, pre_hash=pre_hash(path), proof_code=good_proof,
            multi_parts=list(plan.parts[:2]),
        )
        assert hit.rapid_upload and hit.finished and hit.multi_parts == ()
        assert (await client.file_detail(hit.file_id)).status == "completed"
        miss = await client.create_file(
            file_name=f"flash-miss-{kind}-{auth}.bin", length=len(data), container_id=CONTAINER,
            sha256=contexts.digest, pre_hash=pre_hash(path), proof_code="0" * 64,
            multi_parts=list(plan.parts[:2]),
        )
        assert not miss.rapid_upload and len(miss.multi_parts) == 2
        assert server.stats.total_puts_received == puts_before

    run(kind, server, scenario, credentials=credentials)


# ---------------------------------------------------------------- validation before requests


@both
def test_validation_errors_send_nothing(kind: str, server: LocalServer, tmp_path: Path) -> None:
    path, _ = make_file(tmp_path, 3 * PART, seed=9)
    plan, _ = plan_with_contexts(path, PART, limits=server.limits)
    no_ctx = [dataclasses.replace(p, hash_ctx=None) for p in plan.parts]
    misaligned = [plan.parts[0], dataclasses.replace(plan.parts[1], part_offset=PART + 1)]

    async def scenario(client: Any) -> None:
        before = dict(server.stats.api_calls)
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.create_file(file_name="a|b", length=1, container_id=CONTAINER),
            lambda: client.create_file(file_name="a", length=-5, container_id=CONTAINER),
            lambda: client.create_file(file_name="a", length=plan.size, container_id=CONTAINER,
                                       multi_parts=no_ctx),
            lambda: client.get_upload_urls("F1", misaligned),
            lambda: client.get_upload_urls("F1", [MultiPartInfo(10_001, PART, 0)]),
            lambda: client.complete_file("F1", sha256="abc"),
            lambda: client.download_urls([]),
        ]
        for attempt in attempts:
            with pytest.raises(ValidationError):
                await attempt()
        assert server.stats.api_calls == before

    run(kind, server, scenario)


# ---------------------------------------------------------------- faults and retries


@both
def test_server_faults_retried_for_idempotent_calls(kind: str, server: LocalServer) -> None:
    async def scenario(client: Any) -> None:
        server.faults.fail_api(2, status=503)
        with pytest.raises(UploadTaskMissingError):  # reached the real handler after 2 retries
            await client.complete_file("Fnothing")
        server.faults.rate_limit(1, retry_after=0.0, target="api")
        with pytest.raises(ApiError) as info:
            await client.file_detail("Fnothing")
        assert info.value.code == 13000309

    run(kind, server, scenario)


@both
def test_create_not_retried_after_5xx_but_after_429(kind: str, server: LocalServer) -> None:
    async def scenario(client: Any) -> None:
        before = server.stats.api_calls.get("create", 0)
        server.faults.fail_api(1, status=500)
        with pytest.raises(ApiError) as info:
            await client.create_file(file_name=f"c5-{kind}.bin", length=1, container_id=CONTAINER)
        assert info.value.http_status == 500 and info.value.code == 13000201
        assert server.stats.api_calls.get("create", 0) - before == 1
        server.faults.rate_limit(1, retry_after=0.0, target="api")
        created = await client.create_file(
            file_name=f"c4-{kind}.bin", length=1, container_id=CONTAINER
        )
        assert created.file_id
        assert server.stats.api_calls.get("create", 0) - before == 3

    run(kind, server, scenario)


@both
def test_rate_limit_exhausted(kind: str, server: LocalServer) -> None:
    async def scenario(client: Any) -> None:
        server.faults.rate_limit(10, retry_after=0.0, target="api")
        with pytest.raises(RateLimitedError) as info:
            await client.file_detail("Fany")
        assert info.value.http_status == 429 and info.value.retry_after == 0.0

    run(kind, server, scenario, retry=RetryPolicy(max_attempts=2, backoff_base=0.01, max_elapsed=5))


def test_server_restart_keeps_parts_and_files(tmp_path: Path) -> None:
    path, data = make_file(tmp_path, 3 * PART + 1, seed=11)
    data_dir = tmp_path / "srv"
    with LocalServer(min_part_size=64, data_dir=str(data_dir), fsync=False) as srv:
        plan, contexts = plan_with_contexts(path, PART, limits=srv.limits)
        with srv.client(retry=FAST_RETRY) as client:
            created = client.create_file(
                file_name="restart.bin", length=plan.size, container_id=CONTAINER,
                multi_parts=list(plan.parts),
            )
            urls = {p.part_number: p for p in created.multi_parts}
            assert put_part(urls[2], data).status_code == 200
        srv.restart()
        with srv.client(retry=FAST_RETRY) as client:
            for number in (4, 1, 3):
                assert put_part(urls[number], data).status_code == 200
            srv.restart()
            client.complete_file(created.file_id, sha256=contexts.digest)
            srv.restart()
            assert client.file_detail(created.file_id).sha256 == contexts.digest
            (link,) = client.download_urls([created.file_id], container_id=CONTAINER)
            assert link.url is not None and _STORAGE.get(link.url, timeout=20).content == data


def test_trace_id_kept_and_passed(server: LocalServer) -> None:
    trace = "T" * 58
    with server.client(retry=FAST_RETRY) as client:
        with pytest.raises(UploadTaskMissingError) as info:
            client.complete_file("Fnothing", trace_id=trace)
    assert info.value.trace_id == trace
