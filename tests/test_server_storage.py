"""Local server, storage plane: presigned PUT/GET checks, hash-chain verification, faults."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from _server_helpers import (
    api,
    create_body,
    data_of,
    download,
    ok,
    plan,
    put,
    s3_code,
    upload,
    urls_by_number,
    words_at,
    SkewClock,
)
from koodrive_fast._hashing import HashState
from koodrive_fast.server._sigv4 import presign_url
from koodrive_fast.server import LocalServer


PART = 128


CLOCK = SkewClock()


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, clock=CLOCK.time) as server:
        yield server


@pytest.fixture(scope="module")
def module_http(srv: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.base_url, timeout=10) as client:
        yield client


@pytest.fixture()
def http(srv: LocalServer, module_http: httpx.Client) -> Iterator[httpx.Client]:
    srv.faults.clear()
    srv.stats.reset()
    srv.set_url_ttl(3600)
    yield module_http
    srv.faults.clear()


def started(http: httpx.Client, srv: LocalServer, data: bytes, parts: list[dict[str, Any]] | None = None) -> tuple[str, dict[int, str], list[dict[str, Any]]]:
    parts = parts if parts is not None else plan(data, PART)
    doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
    return doc["fileId"], urls_by_number(doc), parts


def body_of(data: bytes, part: dict[str, Any]) -> bytes:
    return data[part["partOffset"]: part["partOffset"] + part["partSize"]]


def complete(http: httpx.Client, srv: LocalServer, file_id: str) -> httpx.Response:
    return api(http, srv, "files/complete", {"fileId": file_id})


# ------------------------------------------------------------------ chain verification
def test_wrong_context_accepted_at_put_rejected_at_complete(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART, seed=1)
    parts = plan(data, PART)
    parts[1]["hashCtx"] = words_at(data, PART + 64)  # state at the wrong place
    file_id, urls, _ = started(http, srv, data, parts)
    for p in parts:
        assert put(http, urls[p["partNumber"]], body_of(data, p)).status_code == 200
    r = complete(http, srv, file_id)
    assert r.status_code == 400 and r.json()["code"] == 13000402
    assert "part 1" in r.json()["msg"] and "part 2" in r.json()["msg"]
    assert ok(api(http, srv, f"files/{file_id}/detail", {}))["status"] == "uploading"


def test_reput_replaces_part(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART, seed=2)
    file_id, urls, parts = started(http, srv, data)
    for p in parts:
        body = body_of(data, p)
        if p["partNumber"] == 2:
            body = bytes(reversed(body))
        assert put(http, urls[p["partNumber"]], body).status_code == 200
    assert complete(http, srv, file_id).json()["code"] == 13000402
    assert put(http, urls[2], body_of(data, parts[1])).status_code == 200
    ok(complete(http, srv, file_id))
    assert download(http, srv, file_id) == data
    assert srv.stats.puts_accepted[(file_id, 2)] == 2


def test_last_part_bytes_checked_against_sha256(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(2 * PART + 10, seed=3)
    file_id, urls, parts = started(http, srv, data)
    for p in parts:
        body = body_of(data, p)
        if p["partNumber"] == 3:
            body = b"X" * len(body)
        put(http, urls[p["partNumber"]], body)
    r = complete(http, srv, file_id)
    assert r.json()["code"] == 13000402 and "sha256" in r.json()["msg"]


def test_sha1_chain_round_trip_and_break(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART + 5, seed=4)
    file_id = upload(http, srv, data, PART, order=[4, 2, 3, 1], algorithm="sha1")
    assert download(http, srv, file_id) == data
    parts = plan(data, PART, "sha1")
    parts[2]["hashCtx"] = [1, 2, 3, 4, 5]
    file_id, urls, _ = started(http, srv, data, parts)
    for p in parts:
        put(http, urls[p["partNumber"]], body_of(data, p))
    r = complete(http, srv, file_id)
    assert r.json()["code"] == 13000402 and "SHA-1" in r.json()["msg"]


def test_documented_vector_context_in_url(srv: LocalServer, http: httpx.Client) -> None:
    # protocol §9.4: 12 MiB of i % 251, parts of 5 MiB; check the ctx the server signs into part 2's URL
    words = [3421553783, 3807075027, 1869373043, 2340992472, 2724404595, 3434595078, 1034840972, 91544355]
    data_len = 12_582_912
    doc = ok(api(http, srv, "files/create", {
        "fileName": "v.bin", "fileType": "45", "parentFolder": ["root"], "containerId": "c1",
        "length": data_len, "multiParts": [{"partNumber": 2, "partSize": 5_242_880, "partOffset": 5_242_880, "hashCtx": words}],
    }))
    url = doc["multiParts"][0]["uploadUrl"]
    ctx = parse_qs(urlsplit(url).query)["X-Amz-Iteration-Hash-Ctx"][0]
    assert ctx == (
        "eyJtZF9sZW4iOjMyLCJudW0iOjAsImgiOlszNDIxNTUzNzgzLDM4MDcwNzUwMjcsMTg2OTM3MzA0MywyMzQwOTkyNDcy"
        "LDI3MjQ0MDQ1OTUsMzQzNDU5NTA3OCwxMDM0ODQwOTcyLDkxNTQ0MzU1XSwibmgiOjAsIm5sIjo0MTk0MzA0MCwiaGFzaF90eXBlIjoic2hhMjU2In0="
    )


# ------------------------------------------------------------------ URL checks
def craft_url(srv: LocalServer, file_id: str, upload_id: str, number: int, size: int, state: HashState | None) -> str:
    query = f"partNumber={number}&uploadId={upload_id}"
    if state is not None:
        query += "&X-Amz-Iteration-Hash-Ctx=" + quote(state.to_iteration_ctx(), safe="")
    return presign_url("PUT", f"{srv.base_url}/kdbucket/{file_id}?{query}", access_key=srv.access_key,
                       secret_key=srv.secret_key, region=srv.region, expires=60,
                       headers={"content-length": str(size)})


def test_wrong_offset_in_context_rejected_at_put(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART, seed=5)
    file_id, urls, parts = started(http, srv, data)
    upload_id = parse_qs(urlsplit(urls[2]).query)["uploadId"][0]
    state = HashState("sha256", tuple(parts[1]["hashCtx"]), PART + 64)  # nl says 192, plan says 128
    r = put(http, craft_url(srv, file_id, upload_id, 2, PART, state), body_of(data, parts[1]))
    assert r.status_code == 400 and s3_code(r) == "InvalidArgument" and "partOffset" in r.text
    good = craft_url(srv, file_id, upload_id, 2, PART, HashState("sha256", tuple(parts[1]["hashCtx"]), PART))
    assert put(http, good, body_of(data, parts[1])).status_code == 200


def test_tampered_url_rejected(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART, seed=6)
    file_id, urls, parts = started(http, srv, data)
    for old, new in [("partNumber=2", "partNumber=3"), ("X-Amz-Expires=3600", "X-Amz-Expires=3601")]:
        r = put(http, urls[2].replace(old, new), body_of(data, parts[1]))
        assert r.status_code == 403 and s3_code(r) == "SignatureDoesNotMatch"
    ctx = parse_qs(urlsplit(urls[2]).query)["X-Amz-Iteration-Hash-Ctx"][0]
    other = HashState("sha256", (0,) * 8, PART).to_iteration_ctx()
    r = put(http, urls[2].replace(quote(ctx, safe=""), quote(other, safe="")), body_of(data, parts[1]))
    assert r.status_code == 403 and s3_code(r) == "SignatureDoesNotMatch"
    signature = parse_qs(urlsplit(urls[2]).query)["X-Amz-Signature"][0]
    r = put(http, urls[2].replace(signature, "0" * 64), body_of(data, parts[1]))
    assert r.status_code == 403 and signature not in r.text
    assert srv.stats.puts_accepted == {}


def test_wrong_length_body_rejected(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART, seed=7)
    file_id, urls, parts = started(http, srv, data)
    r = put(http, urls[1], data[: PART - 1])
    assert r.status_code == 403 and s3_code(r) == "SignatureDoesNotMatch"


def test_expired_url_rejected_and_refresh_works(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(2 * PART, seed=8)
    srv.set_url_ttl(1)
    file_id, urls, parts = started(http, srv, data)
    assert "X-Amz-Expires=1&" in urls[1]
    CLOCK.advance(2.0)
    r = put(http, urls[1], body_of(data, parts[0]))
    assert r.status_code == 403 and s3_code(r) == "AccessDenied" and "Request has expired" in r.text
    srv.set_url_ttl(3600)
    fresh = urls_by_number(ok(api(http, srv, "files/multipart/uploadUrl", {"fileId": file_id, "multiParts": parts})))
    for p in parts:
        assert put(http, fresh[p["partNumber"]], body_of(data, p)).status_code == 200
    ok(complete(http, srv, file_id))


def raw_request(srv: LocalServer, head: str, body: bytes = b"") -> tuple[int, bytes]:
    host, port = urlsplit(srv.base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + body)
        response = b""
        deadline = time.monotonic() + 5
        while b"</Error>" not in response and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    return int(response.split(b" ", 2)[1]), response


def test_missing_content_length_and_chunked_rejected(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(2 * PART, seed=9)
    file_id, urls, parts = started(http, srv, data)
    target = urls[1].split("/", 3)[3]
    netloc = urlsplit(srv.base_url).netloc
    status, response = raw_request(srv, f"PUT /{target} HTTP/1.1\r\nHost: {netloc}\r\nConnection: close\r\n\r\n")
    assert status == 411 and b"MissingContentLength" in response
    body = body_of(data, parts[0])
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    status, response = raw_request(
        srv, f"PUT /{target} HTTP/1.1\r\nHost: {netloc}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", chunked)
    assert status == 411 and b"Chunked" in response
    r = http.put(urls[1], content=iter([body]))  # httpx sends a generator chunked
    assert r.status_code == 411
    assert srv.stats.puts_accepted == {}


def test_put_after_complete_is_no_such_upload(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART, seed=10)
    file_id, urls, parts = started(http, srv, data)
    put(http, urls[1], data)
    ok(complete(http, srv, file_id))
    r = put(http, urls[1], data)
    assert r.status_code == 404 and s3_code(r) == "NoSuchUpload"


def test_stale_url_after_replan_rejected(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART, seed=11)
    file_id, urls, parts = started(http, srv, data)
    replanned = [dict(parts[1], hashCtx=[7] * 8)]
    ok(api(http, srv, "files/multipart/uploadUrl", {"fileId": file_id, "multiParts": replanned}))
    r = put(http, urls[2], body_of(data, parts[1]))
    assert r.status_code == 400 and "stale" in r.text


def test_download_url_checked(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART + 3, seed=12)
    file_id = upload(http, srv, data, PART)
    doc = ok(api(http, srv, "files/download", {"containerId": "c1", "fileIds": [file_id, "F" + "z" * 32]}))
    assert doc["batchCode"] == 0
    url = doc["downloads"][0]["url"]
    assert http.get(url).content == data
    r = http.get(url.replace(file_id, file_id[:-1] + ("A" if file_id[-1] != "A" else "B")))
    assert r.status_code == 403 and s3_code(r) == "SignatureDoesNotMatch"
    assert http.get(url.split("?")[0]).status_code == 400
    wrong_space = ok(api(http, srv, "files/download", {"containerId": "other", "fileIds": [file_id]}))
    assert wrong_space["downloads"][0]["code"] == 13000302


# ------------------------------------------------------------------ fault injection
def test_fail_puts(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART, seed=13)
    file_id, urls, _ = started(http, srv, data)
    srv.faults.fail_puts(2, status=503)
    assert [put(http, urls[1], data).status_code for _ in range(3)] == [503, 503, 200]
    srv.faults.fail_puts(1)
    r = put(http, urls[1], data)
    assert r.status_code == 500 and s3_code(r) == "InternalError"
    assert srv.stats.puts_received[(file_id, 1)] == 4
    assert srv.stats.puts_accepted[(file_id, 1)] == 1


def test_expire_puts_answers_like_an_expired_url(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART, seed=17)
    file_id, urls, _ = started(http, srv, data)
    srv.faults.expire_puts(2)
    answers = [put(http, urls[1], data) for _ in range(3)]
    assert [r.status_code for r in answers] == [403, 403, 200]
    assert s3_code(answers[0]) == "AccessDenied" and "expired" in answers[0].text
    assert srv.stats.puts_received[(file_id, 1)] == 3
    assert srv.stats.puts_accepted[(file_id, 1)] == 1


def test_rate_limit_puts_and_api(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART, seed=14)
    file_id, urls, _ = started(http, srv, data)
    srv.faults.rate_limit(1, retry_after=2, target="puts")
    r = put(http, urls[1], data)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert put(http, urls[1], data).status_code == 200
    srv.faults.rate_limit(2, retry_after=0.5, target="api")
    for _ in range(2):
        r = api(http, srv, "files/complete", {"fileId": file_id})
        assert r.status_code == 429 and r.headers["Retry-After"] == "0.5" and r.json()["code"] == "APIGW.0308"
    ok(api(http, srv, "files/complete", {"fileId": file_id}))
    assert srv.stats.api_calls["complete"] == 3


def test_fail_api(srv: LocalServer, http: httpx.Client) -> None:
    srv.faults.fail_api(1, status=502)
    r = api(http, srv, "files/create", create_body(b"abc"))
    assert r.status_code == 502 and r.json()["code"] == 13000201
    ok(api(http, srv, "files/create", create_body(b"abc")))


def test_drop_puts_closes_connection_mid_body(srv: LocalServer) -> None:
    data = data_of(8 * 1024 * 1024, seed=15)
    with httpx.Client(base_url=srv.base_url, timeout=10) as http:
        srv.faults.clear()
        parts = [{"partNumber": 1, "partSize": len(data), "partOffset": 0}]
        file_id, urls, _ = started(http, srv, data, parts)
        srv.faults.drop_puts(1, after_bytes=1024)
        with pytest.raises(httpx.TransportError):
            put(http, urls[1], data)
        assert put(http, urls[1], data).status_code == 200
        assert srv.stats.puts_received[(file_id, 1)] == 2
        assert srv.stats.puts_accepted[(file_id, 1)] == 1
        ok(complete(http, srv, file_id))
        assert hashlib.sha256(download(http, srv, file_id)).digest() == hashlib.sha256(data).digest()


def test_latency_and_clear(srv: LocalServer, http: httpx.Client) -> None:
    srv.faults.latency(1.5)  # large, so a throttled machine cannot blur the two cases
    t0 = time.monotonic()
    ok(api(http, srv, "files/create", create_body(b"abc")))
    assert time.monotonic() - t0 >= 1.5
    srv.faults.fail_api(5)
    srv.faults.clear()
    t0 = time.monotonic()
    ok(api(http, srv, "files/create", create_body(b"abc")))
    assert time.monotonic() - t0 < 1.5


def test_fault_knobs_validate_arguments(srv: LocalServer) -> None:
    with pytest.raises(ValueError, match="status"):
        srv.faults.fail_puts(1, status=404)
    with pytest.raises(ValueError, match="target"):
        srv.faults.rate_limit(1, target="gets")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must"):
        srv.faults.drop_puts(-1)
    with pytest.raises(ValueError, match="seconds"):
        srv.set_url_ttl(0)


def test_store_bodies_false_still_verifies_chain() -> None:
    with LocalServer(min_part_size=64, store_bodies=False) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        data = data_of(3 * PART + 9, seed=16)
        file_id = upload(http, server, data, PART, order=[2, 4, 1, 3])
        assert not any((server.data_dir / "contents").iterdir())
        doc = ok(api(http, server, "files/download", {"containerId": "c1", "fileIds": [file_id]}))
        assert doc["downloads"][0]["code"] == 13000409
        file_id, urls, parts = started(http, server, data)
        for p in parts:
            put(http, urls[p["partNumber"]], body_of(data, p)[::-1])
        assert complete(http, server, file_id).json()["code"] == 13000402


def test_download_ranges(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART + 17, seed=17)
    file_id = upload(http, srv, data, PART)
    url = ok(api(http, srv, "files/download", {"containerId": "c1", "fileIds": [file_id]}))["downloads"][0]["url"]
    for spec, expected in [("bytes=0-9", data[:10]), (f"bytes={PART - 3}-{PART + 4}", data[PART - 3: PART + 5]),
                           ("bytes=300-", data[300:]), ("bytes=-20", data[-20:]), ("bytes=390-100000", data[390:])]:
        r = http.get(url, headers={"Range": spec})
        assert r.status_code == 206, spec
        assert r.content == expected, spec
        assert r.headers["Content-Range"].endswith(f"/{len(data)}")
    for bad in ("bytes=5000-", "bytes=9-3", "items=1-2", "bytes=1-2,4-5"):
        assert http.get(url, headers={"Range": bad}).status_code == 416, bad
