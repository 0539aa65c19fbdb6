"""Local server under faults and hostile input (issue 8): disk full at completion and
purge, auth before body, unrouted paths, SigV4 host forms, the serve token across restarts."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from _server_helpers import (
    API,
    SkewClock,
    api,
    auth_headers,
    create_body,
    data_of,
    download,
    ok,
    plan,
    put,
    s3_code,
    urls_by_number,
)
from koodrive_fast.server import LocalServer
from koodrive_fast.server._sigv4 import presign_url, verify_presigned

PART = 128


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, app_credentials={"app-1": "app-secret"}) as server:
        yield server


@pytest.fixture()
def http(srv: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.base_url, timeout=10) as client:
        yield client


def disk_full_at(*steps: str, times: int = 1) -> tuple[object, list[str]]:
    """A Store.fault_hook raising ENOSPC at the named steps (``times`` times), and its log."""
    seen: list[str] = []
    left = [times]

    def hook(step: str) -> None:
        seen.append(step)
        if step in steps and left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")

    return hook, seen


def uploaded_parts(http: httpx.Client, srv: LocalServer, data: bytes) -> str:
    parts = plan(data, PART)
    doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
    urls = urls_by_number(doc)
    for p in parts:
        assert put(http, urls[p["partNumber"]], data[p["partOffset"]: p["partOffset"] + p["partSize"]]).status_code == 200
    return str(doc["fileId"])


# ------------------------------------------------------------------ 1. disk full at complete
@pytest.mark.parametrize("step", ["complete.insert", "complete.move", "complete.update", "complete.commit"])
def test_disk_full_during_complete_then_retry_keeps_the_file(srv: LocalServer, http: httpx.Client, step: str) -> None:
    data = data_of(3 * PART + 5, seed=len(step))
    file_id = uploaded_parts(http, srv, data)
    hook, seen = disk_full_at(step)
    srv.store.fault_hook = hook  # type: ignore[assignment]
    try:
        r = api(http, srv, "files/complete", {"fileId": file_id})
        assert r.status_code == 500 and step in seen
        assert srv.store.get_file(file_id).status == "uploading"  # type: ignore[union-attr]
        r = api(http, srv, "files/complete", {"fileId": file_id})  # the client's retry
    finally:
        srv.store.fault_hook = None
    ok(r)
    assert download(http, srv, file_id) == data


def test_disk_full_in_the_old_order_loses_no_bytes(srv: LocalServer, http: httpx.Client) -> None:
    """The issue's sequence: parts moved, the content row fails, the retry must not empty them."""
    data = data_of(2 * PART + 9, seed=77)
    file_id = uploaded_parts(http, srv, data)
    hook, _ = disk_full_at("complete.commit", times=2)
    srv.store.fault_hook = hook  # type: ignore[assignment]
    try:
        for _ in range(2):
            assert api(http, srv, "files/complete", {"fileId": file_id}).status_code == 500
    finally:
        srv.store.fault_hook = None
    assert (srv.data_dir / "uploads" / file_id).is_dir()
    ok(api(http, srv, "files/complete", {"fileId": file_id}))
    assert download(http, srv, file_id) == data
    assert not (srv.data_dir / "uploads" / file_id).exists()


def test_disk_full_while_storing_a_part_then_retry(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(2 * PART + 1, seed=41)
    parts = plan(data, PART)
    doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
    urls = urls_by_number(doc)
    hook, seen = disk_full_at("part.record")
    srv.store.fault_hook = hook  # type: ignore[assignment]
    try:
        r = put(http, urls[1], data[:PART])
    finally:
        srv.store.fault_hook = None
    assert r.status_code == 500 and s3_code(r) == "InternalError" and "part.record" in seen
    assert not srv.store.parts(doc["fileId"]) and not list((srv.data_dir / "tmp").iterdir())
    for p in parts:  # the client's retry, on the same connection
        assert put(http, urls[p["partNumber"]], data[p["partOffset"]: p["partOffset"] + p["partSize"]]).status_code == 200
    ok(api(http, srv, "files/complete", {"fileId": doc["fileId"]}))
    assert download(http, srv, doc["fileId"]) == data


# ------------------------------------------------------------------ 2. atomic purge
def test_purge_under_disk_full_is_all_or_nothing(tmp_path: Path) -> None:
    clock = SkewClock()
    with LocalServer(min_part_size=64, data_dir=tmp_path, upload_expiry=60.0, clock=clock.time) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            ids = []
            for seed in (1, 2, 3):
                data = data_of(PART + 1, seed=seed)
                parts = plan(data, PART)
                doc = ok(api(http, server, "files/create", create_body(data, name=f"f{seed}", multiParts=parts)))
                assert put(http, urls_by_number(doc)[1], data[:PART]).status_code == 200
                ids.append(doc["fileId"])
            clock.advance(61.0)
            hook, seen = disk_full_at("purge.delete")
            seen_deletes = []

            def second_delete_fails(step: str) -> None:
                if step == "purge.delete":
                    seen_deletes.append(step)
                    if len(seen_deletes) == 2:
                        raise OSError(errno.ENOSPC, "No space left on device")

            server.store.fault_hook = second_delete_fails
            with pytest.raises(OSError):
                server.expire_uploads()
            server.store.fault_hook = None
            for file_id in ids:  # nothing half-deleted: rows, plans, parts and files all still there
                assert server.store.get_file(file_id) is not None
                assert server.store.get_plan(file_id, 1) is not None and server.store.parts(file_id)
                assert (tmp_path / "uploads" / file_id / "1.part").is_file()
            assert server.expire_uploads() == 3
            for file_id in ids:
                assert server.store.get_file(file_id) is None
                assert server.store.get_plan(file_id, 1) is None and not server.store.parts(file_id)
                assert not (tmp_path / "uploads" / file_id).exists()


# ------------------------------------------------------------------ 3. auth before body, bounded parsing
NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("endpoint", ["files/create", "files/complete", "files/Fabc/detail"])
def test_unauthenticated_body_is_never_parsed(srv: LocalServer, http: httpx.Client, endpoint: str) -> None:
    for body in (NESTED, b"{not json", b'{"fileId": 1}'):
        r = http.post(f"{API}/{endpoint}", content=body, headers={"X-User-Id": srv.user_id})
        assert r.status_code == 401 and r.json()["code"] == "APIGW.0301"


def test_deep_nesting_is_a_validation_error_without_traceback(srv: LocalServer, http: httpx.Client,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="koodrive_fast.server"):
        for body in (NESTED, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
            r = http.post(f"{API}/files/create", content=body, headers=auth_headers(srv))
            assert r.status_code == 400 and r.json()["code"] == 13000102, r.text
            assert "nested too deeply" in r.json()["msg"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_app_auth_signature_still_covers_the_body(srv: LocalServer, http: httpx.Client) -> None:
    headers = auth_headers(srv, Authorization="HMAC-SHA256 AppId=app-1,SignedHeaders=x-date;x-user-id,Signature=00")
    r = http.post(f"{API}/files/create", content=NESTED, headers=headers)
    assert r.status_code == 401 and "signature" in r.json()["msg"]


# ------------------------------------------------------------------ 5. unrouted paths
def raw(srv: LocalServer, request_line: str) -> tuple[int, str, bytes]:
    host, port = urlsplit(srv.base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"{request_line}\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        response = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    content_type = re.search(rb"(?i)content-type: *([^\r;]+)", head)
    return int(head.split(b" ", 2)[1]), (content_type.group(1).decode() if content_type else ""), body


@pytest.mark.parametrize("line", [
    "PUT /kdbucket/../meta.sqlite3 HTTP/1.1", "PUT /kdbucket/%2e%2e/x HTTP/1.1", "PUT /kdbucket//x HTTP/1.1",
    "GET /kdbucket/a/b HTTP/1.1", "DELETE /kdbucket/Fabc HTTP/1.1",
])
def test_unrouted_storage_paths_get_s3_xml(srv: LocalServer, line: str) -> None:
    status, content_type, body = raw(srv, line)
    assert status in (404, 405) and content_type == "application/xml", body
    assert re.search(rb"<Error><Code>(NoSuchKey|MethodNotAllowed)</Code>", body), body


@pytest.mark.parametrize("line", [
    f"POST {API}/no/such/api HTTP/1.1", f"POST {API}/../x HTTP/1.1", "GET / HTTP/1.1", f"GET {API}/files/create HTTP/1.1",
])
def test_unrouted_api_paths_get_the_json_envelope(srv: LocalServer, line: str) -> None:
    status, content_type, body = raw(srv, line)
    assert status in (404, 405) and content_type == "application/json", body
    assert json.loads(body)["code"] == "APIGW.0101"


# ------------------------------------------------------------------ 6. SigV4 host forms
@pytest.mark.parametrize("host_form", ["LOCALHOST:{port}", "Localhost:{port}", "127.0.0.1:{port}"])
def test_urls_issued_for_any_host_spelling_verify(srv: LocalServer, http: httpx.Client, host_form: str) -> None:
    data = data_of(PART + 3, seed=31)
    parts = plan(data, PART)
    host = host_form.format(port=srv.port)
    base = f"http://{host.lower()}"
    r = http.post(f"{API}/files/create", json=create_body(data, name=f"h-{len(host_form)}-{host_form[0]}", multiParts=parts),
                  headers={**auth_headers(srv), "Host": host})
    urls = urls_by_number(ok(r))
    assert all(u.startswith(base) for u in urls.values())
    with httpx.Client(timeout=10) as other:  # the URL as given, host normalised by httpx
        for p in parts:
            r = other.put(urls[p["partNumber"]], content=data[p["partOffset"]: p["partOffset"] + p["partSize"]])
            assert r.status_code == 200, r.text


@pytest.mark.parametrize(("signed_url", "sent_host"), [
    ("http://Example.COM:80/kdbucket/F1?partNumber=1", "example.com"),
    ("http://example.com/kdbucket/F1?partNumber=1", "EXAMPLE.com:80"),
    ("https://example.com:443/kdbucket/F1?partNumber=1", "example.com"),
])
def test_sigv4_host_is_normalised_on_both_sides(signed_url: str, sent_host: str) -> None:
    url = presign_url("PUT", signed_url, access_key="AK", secret_key="SK", region="r", expires=60,
                      signed_headers=("content-length", "host"), headers={"content-length": "5"})
    parts = urlsplit(url)
    verify_presigned("PUT", parts.path, parts.query, {"Host": sent_host, "Content-Length": "5"},
                     secret_for=lambda key: "SK", region="r", required_signed_headers=("host",),
                     scheme=parts.scheme)


def test_sigv4_other_port_still_differs() -> None:
    url = presign_url("PUT", "http://example.com:8080/k", access_key="AK", secret_key="SK", region="r",
                      expires=60, signed_headers=("host",))
    parts = urlsplit(url)
    with pytest.raises(Exception, match="signature"):
        verify_presigned("PUT", parts.path, parts.query, {"Host": "example.com"},
                         secret_for=lambda key: "SK", region="r")


# ------------------------------------------------------------------ 7. serve keeps its token
def serve_once(data_dir: Path, *extra: str) -> str:
    """Start ``koodrive-fast serve`` on ``data_dir``, return the token it prints, stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "koodrive_fast", "serve", "--port", "0", "--quiet", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        token = None
        for _ in range(20):
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"token:\s+(\S+)", line):
                token = m.group(1)
                break
        assert token is not None, "serve printed no token"
        return token
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_keeps_its_token_across_restarts(tmp_path: Path) -> None:
    first = serve_once(tmp_path)
    assert serve_once(tmp_path) == first
    token_file = tmp_path / "token"
    assert token_file.read_text().strip() == first
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert serve_once(tmp_path, "--token", "given-token") == "given-token"
    assert token_file.read_text().strip() == first  # an explicit token is not stored
