"""Local server, control plane: endpoints, auth, validation, flash upload, restart.

Raw HTTP with httpx against a LocalServer on 127.0.0.1 (min part size 64).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _server_helpers import (
    API,
    api,
    auth_headers,
    create_body,
    data_of,
    download,
    ok,
    plan,
    put,
    upload,
    urls_by_number,
    x_date,
    SkewClock,
)
from koodrive_fast.server import LocalServer, ServerConfig, proof_range


PART = 128


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, app_credentials={"app-1": "app-secret"}) as server:
        yield server


@pytest.fixture(scope="module")
def module_http(srv: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.base_url, timeout=10) as client:
        yield client


@pytest.fixture()
def http(srv: LocalServer, module_http: httpx.Client) -> httpx.Client:
    srv.faults.clear()
    srv.stats.reset()
    return module_http


def proof_for(data: bytes, origin: str) -> str:
    start, end = proof_range(origin, len(data))
    return hashlib.sha256(data[start:end]).hexdigest()


# ------------------------------------------------------------------ runner
def test_runner_exposes_contract(srv: LocalServer) -> None:
    assert srv.base_url.startswith("http://127.0.0.1:") and srv.port > 0
    assert srv.token and srv.user_id == "1505084218764547200"
    assert srv.limits.min_part_size == 64
    assert srv.config.min_part_size == 64
    assert srv.data_dir.is_dir()


def test_temporary_data_dir_removed_on_stop() -> None:
    server = LocalServer(min_part_size=64).start()
    data_dir = server.data_dir
    assert (data_dir / "meta.sqlite3").exists()
    server.stop()
    assert not data_dir.exists()
    assert not server.running


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="min_part_size"):
        ServerConfig(min_part_size=100)
    with pytest.raises(ValueError, match="url_ttl"):
        ServerConfig(url_ttl=0)
    with pytest.raises(TypeError, match="port"):
        ServerConfig(port="80")  # type: ignore[arg-type]


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize("order", [[1, 2, 3], [3, 1, 2], [2, 3, 1]])
def test_round_trip_any_order(srv: LocalServer, http: httpx.Client, order: list[int]) -> None:
    data = data_of(2 * PART + 50, seed=order[0])
    file_id = upload(http, srv, data, PART, order=order)
    assert download(http, srv, file_id) == data
    detail = ok(api(http, srv, f"files/{file_id}/detail", {}))
    assert detail["length"] == len(data)
    assert detail["sha256"] == hashlib.sha256(data).hexdigest()
    assert detail["status"] == "completed"
    assert srv.stats.puts_accepted == {(file_id, n): 1 for n in (1, 2, 3)}
    assert srv.stats.api_calls["complete"] == 1


def test_upload_url_batches_match_by_part_number(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(5 * PART)
    parts = plan(data, PART)
    created = ok(api(http, srv, "files/create", create_body(data)))
    assert created["multiParts"] == [] and created["rapidUpload"] is False
    assert len(created["uploadId"]) == 32 and created["fileId"].startswith("F")
    file_id = created["fileId"]
    doc = ok(api(http, srv, "files/multipart/uploadUrl", {"fileId": file_id, "multiParts": parts[:3]}))
    assert [p["partNumber"] for p in doc["multiParts"]] == [3, 2, 1]  # documented: descending
    urls = urls_by_number(doc)
    doc2 = ok(api(http, srv, "files/multipart/uploadUrl", {"fileId": file_id, "multiParts": parts[3:]}))
    urls.update(urls_by_number(doc2))
    for p in doc2["multiParts"]:
        assert p["hashCtx"] == parts[p["partNumber"] - 1]["hashCtx"]
    assert "X-Amz-Iteration-Hash-Ctx=" in urls[2] and "X-Amz-Iteration-Hash-Ctx" not in urls[1]
    for p in parts:
        assert put(http, urls[p["partNumber"]], data[p["partOffset"]: p["partOffset"] + p["partSize"]]).status_code == 200
    ok(api(http, srv, "files/complete", {"fileId": file_id, "sha256": hashlib.sha256(data).hexdigest()}))
    assert download(http, srv, file_id) == data


def test_complete_missing_part_is_13000402_and_file_stays_incomplete(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART)
    parts = plan(data, PART)
    doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
    urls = urls_by_number(doc)
    put(http, urls[1], data[:PART])
    put(http, urls[3], data[2 * PART:])
    r = api(http, srv, "files/complete", {"fileId": doc["fileId"]})
    assert r.status_code == 400 and r.json()["code"] == 13000402
    assert "part 2" in r.json()["msg"]
    assert ok(api(http, srv, f"files/{doc['fileId']}/detail", {}))["status"] == "uploading"
    put(http, urls[2], data[PART: 2 * PART])
    ok(api(http, srv, "files/complete", {"fileId": doc["fileId"]}))
    assert download(http, srv, doc["fileId"]) == data


def test_complete_with_wrong_sha256_fails(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART + 10)
    parts = plan(data, PART)
    doc = ok(api(http, srv, "files/create", create_body(data, sha256=None, multiParts=parts)))
    for n, url in urls_by_number(doc).items():
        p = parts[n - 1]
        put(http, url, data[p["partOffset"]: p["partOffset"] + p["partSize"]])
    r = api(http, srv, "files/complete", {"fileId": doc["fileId"], "sha256": "0" * 64})
    assert r.json()["code"] == 13000402
    done = ok(api(http, srv, "files/complete", {"fileId": doc["fileId"]}))
    assert done["sha256"] == hashlib.sha256(data).hexdigest()


def test_complete_unknown_file_is_13000401(srv: LocalServer, http: httpx.Client) -> None:
    r = api(http, srv, "files/complete", {"fileId": "F" + "a" * 32})
    assert r.status_code == 400 and r.json()["code"] == 13000401


def test_empty_file(srv: LocalServer, http: httpx.Client) -> None:
    doc = ok(api(http, srv, "files/create", create_body(b"", sha256=None, name="empty")))
    done = ok(api(http, srv, "files/complete", {"fileId": doc["fileId"]}))
    assert done["sha256"] == hashlib.sha256(b"").hexdigest()
    assert download(http, srv, doc["fileId"]) == b""


def test_detail_and_download_unknown_ids(srv: LocalServer, http: httpx.Client) -> None:
    r = api(http, srv, "files/Fnope/detail", {})
    assert r.status_code == 400 and r.json()["code"] == 13000309
    doc = ok(api(http, srv, "files/download", {"containerId": "c1", "fileIds": ["F" + "b" * 32]}))
    assert doc["batchCode"] == 2 and doc["downloads"][0]["code"] == 13000309


# ------------------------------------------------------------------ flash upload
def test_flash_upload_hit_and_miss(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART + 5, seed=99)
    upload(http, srv, data, PART, name="original.bin")
    proof = proof_for(data, f"Bearer {srv.token}")
    hit = ok(api(http, srv, "files/create", create_body(data, name="copy.bin", proofCode=proof)))
    assert hit["rapidUpload"] is True and hit["multiParts"] == []
    assert download(http, srv, hit["fileId"]) == data
    bare_token = ok(api(http, srv, "files/create", create_body(data, name="copy2.bin", proofCode=proof_for(data, srv.token))))
    assert bare_token["rapidUpload"] is True
    wrong = ok(api(http, srv, "files/create", create_body(data, name="copy3.bin", proofCode="ab" * 32)))
    assert wrong["rapidUpload"] is False
    assert ok(api(http, srv, f"files/{wrong['fileId']}/detail", {}))["status"] == "uploading"
    missing = ok(api(http, srv, "files/create", create_body(data, name="copy4.bin")))
    assert missing["rapidUpload"] is False


def test_proof_range_matches_protocol_vector() -> None:
    assert proof_range("1505084218764547200", 12_582_912) == (7_918_831, 7_918_839)
    data = bytes(i % 251 for i in range(7_918_831, 7_918_839))
    assert hashlib.sha256(data).hexdigest() == "1efc915d1274d56c3a2800a0eadaf508be4ea8fbb30093445d94b7864a5c578b"


def test_flash_upload_under_app_auth_uses_user_id(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(2 * PART, seed=5)
    upload(http, srv, data, PART, name="app-original.bin")
    body = create_body(data, name="app-copy.bin", proofCode=proof_for(data, srv.user_id))
    raw = json.dumps(body).encode()
    headers = app_auth_headers(srv, "POST", f"{API}/files/create", raw)
    doc = ok(http.post(f"{API}/files/create", content=raw, headers=headers))
    assert doc["rapidUpload"] is True


# ------------------------------------------------------------------ names
def test_auto_rename_policies(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(PART, seed=3)
    upload(http, srv, data, PART, name="same.txt")
    refused = api(http, srv, "files/create", create_body(data, name="same.txt", autoRename=3))
    assert refused.json()["code"] == 13000405
    renamed = ok(api(http, srv, "files/create", create_body(data, name="same.txt", autoRename=2)))
    assert renamed["fileName"] != "same.txt" and renamed["fileName"].endswith(".txt")
    exist = ok(api(http, srv, "files/create", create_body(data, name="same.txt", autoRename=4)))
    assert exist["exist"] is True


# ------------------------------------------------------------------ auth
def app_auth_headers(srv: LocalServer, method: str, path: str, body: bytes, secret: str = "app-secret") -> dict[str, str]:
    host = srv.base_url.split("//", 1)[1]
    date = x_date()
    signed = "host;x-date;x-user-id"
    canonical = "\n".join([
        method, path + "/", "", f"host:{host}\nx-date:{date}\nx-user-id:{srv.user_id}\n", signed,
        hashlib.sha256(body).hexdigest(),
    ])
    to_sign = "HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Authorization": f"HMAC-SHA256 AppId=app-1,SignedHeaders={signed},Signature={signature}",
        "X-User-Id": srv.user_id, "X-Date": date, "Content-Type": "application/json",
    }


def test_app_auth_accepted_and_wrong_secret_rejected(srv: LocalServer, http: httpx.Client) -> None:
    raw = json.dumps(create_body(b"x" * 10, name="app.bin")).encode()
    path = f"{API}/files/create"
    ok(http.post(path, content=raw, headers=app_auth_headers(srv, "POST", path, raw)))
    bad = http.post(path, content=raw, headers=app_auth_headers(srv, "POST", path, raw, secret="nope"))
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"Authorization": "Bearer wrong-token"}, "invalid"),
        ({"Authorization": None}, "Authorization"),
        ({"X-User-Id": None}, "X-User-Id"),
        ({"X-User-Id": "someone-else"}, "X-User-Id"),
        ({"X-Date": None}, "X-Date"),
        ({"X-Date": "2024-01-01 00:00:00"}, "X-Date"),
        ({"X-Date": x_date(-16 * 60)}, "15 minutes"),
        ({"X-Date": x_date(+6 * 3600)}, "future"),  # computed at collection: keep it far ahead
        ({"Authorization": "Basic abc"}, "Authorization"),
    ],
)
def test_auth_failures_are_401(srv: LocalServer, http: httpx.Client, override: dict[str, str], fragment: str) -> None:
    if "X-Date" in override and override["X-Date"] and override["X-Date"].endswith("Z"):
        pass  # computed at collection time; still well outside the window
    r = api(http, srv, "files/create", create_body(b"abc"), **override)
    assert r.status_code == 401
    doc = r.json()
    assert doc["code"] == "APIGW.0301" and fragment in doc["msg"]
    assert srv.token not in r.text


def test_bearer_plus_form_accepted(srv: LocalServer, http: httpx.Client) -> None:
    ok(api(http, srv, "files/create", create_body(b"abc", name="plus"), Authorization=f"Bearer+{srv.token}"))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fileName": None}, "fileName"),
        ({"fileName": 5}, "fileName"),
        ({"fileName": "a/b"}, "fileName"),
        ({"fileName": ".."}, "fileName"),
        ({"fileName": "x" * 251}, "fileName"),
        ({"length": "12"}, "length"),
        ({"length": -1}, "length"),
        ({"length": True}, "length"),
        ({"parentFolder": []}, "parentFolder"),
        ({"containerId": None}, "containerId"),
        ({"sha256": "xyz"}, "sha256"),
        ({"uploadType": 0}, "uploadType"),
        ({"uploadMode": "put"}, "uploadMode"),
        ({"multiParts": "all"}, "multiParts"),
        ({"multiParts": [{"partNumber": 0, "partSize": 3}]}, "partNumber"),
        ({"multiParts": [{"partNumber": 1, "partSize": "3"}]}, "partSize"),
        ({"multiParts": [{"partNumber": 1, "partSize": 3, "partOffset": 64}]}, "partOffset"),
        ({"multiParts": [{"partNumber": 2, "partSize": 3, "partOffset": 64}], "length": 67}, "hashCtx"),
        ({"multiParts": [{"partNumber": 2, "partSize": 3, "partOffset": 64, "hashCtx": [1, 2, 3]}], "length": 67}, "hashCtx"),
        ({"multiParts": [{"partNumber": 2, "partSize": 3, "partOffset": 64, "hashCtx": [-1] * 8}], "length": 67}, "hashCtx"),
        ({"multiParts": [{"partNumber": 1, "partSize": 67}], "length": 200}, "multiple of 64"),
        ({"multiParts": [{"partNumber": 1, "partSize": 4}]}, "exceeds the file length"),
        ({"multiParts": [{"partNumber": 1, "partSize": 65, "partOffset": 0}], "length": 200}, "partSize"),
    ],
)
def test_validation_errors_are_13000102(srv: LocalServer, http: httpx.Client, change: dict[str, object], field: str) -> None:
    body = create_body(b"abc")
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    r = api(http, srv, "files/create", body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 13000102 and field in r.json()["msg"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"', b"null"])
@pytest.mark.parametrize("endpoint", ["files/create", "files/multipart/uploadUrl", "files/complete", "files/download"])
def test_malformed_json_is_13000102(srv: LocalServer, http: httpx.Client, raw: bytes, endpoint: str) -> None:
    r = http.post(f"{API}/{endpoint}", content=raw, headers=auth_headers(srv))
    assert r.status_code == 400 and r.json()["code"] == 13000102


@pytest.mark.parametrize(
    "body",
    [{}, {"fileId": 5}, {"fileId": ["F"]}, {"fileId": None}, {"fileId": "F" * 33, "multiParts": 3}],
)
def test_wrong_types_never_500(srv: LocalServer, http: httpx.Client, body: dict[str, object]) -> None:
    for endpoint in ("files/multipart/uploadUrl", "files/complete", "files/download"):
        r = api(http, srv, endpoint, body)
        assert r.status_code == 400, (endpoint, r.text)
        assert r.json()["code"] in (13000102, 13000401)


def test_oversized_body_rejected(srv: LocalServer, http: httpx.Client) -> None:
    big = {"fileName": "x", "description": "y" * (2 * 1024 * 1024)}
    r = api(http, srv, "files/create", big)
    assert r.status_code == 400 and r.json()["code"] == 13000102 and "exceeds" in r.json()["msg"]


def test_too_many_parts_per_request(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(64 * 101)
    doc = ok(api(http, srv, "files/create", create_body(data)))
    parts = [{"partNumber": n, "partSize": 64, "partOffset": (n - 1) * 64, "hashCtx": [0] * 8} for n in range(1, 102)]
    r = api(http, srv, "files/multipart/uploadUrl", {"fileId": doc["fileId"], "multiParts": parts})
    assert r.json()["code"] == 13000102 and "100" in r.json()["msg"]


def test_inconsistent_offsets_rejected(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(3 * PART)
    parts = plan(data, PART)
    parts[2]["partOffset"] += 64
    r = api(http, srv, "files/create", create_body(data, multiParts=parts))
    assert r.json()["code"] == 13000102 and "partOffset" in r.json()["msg"]


# ------------------------------------------------------------------ path escape
@pytest.mark.parametrize(
    "file_id",
    ["../../etc/passwd", "..%2F..%2Fmeta.sqlite3", "F" + "." * 32, "/etc/passwd", "F" + "a" * 31 + "/"],
)
def test_ids_cannot_escape_data_dir(srv: LocalServer, http: httpx.Client, file_id: str) -> None:
    for endpoint in ("files/complete", "files/multipart/uploadUrl"):
        r = api(http, srv, endpoint, {"fileId": file_id, "multiParts": [{"partNumber": 1, "partSize": 1}]})
        assert r.status_code == 400 and r.json()["code"] in (13000401, 13000102)
    r = http.post(f"{API}/files/{file_id}/detail", headers=auth_headers(srv))
    assert r.status_code in (400, 404)
    r = http.put(f"/kdbucket/{file_id}?partNumber=1&uploadId={'A' * 32}", content=b"x")
    assert r.status_code in (400, 403, 404)
    r = http.get(f"/kdbucket/{file_id}")
    assert r.status_code in (400, 403, 404)


def test_file_name_with_traversal_is_stored_as_name_only(srv: LocalServer, http: httpx.Client) -> None:
    data = data_of(10)
    r = api(http, srv, "files/create", create_body(data, name="..\\..\\evil"))
    assert r.json()["code"] == 13000102
    before = {p.name for p in srv.data_dir.parent.iterdir()}
    upload(http, srv, data, PART, name="..evil..")
    assert {p.name for p in srv.data_dir.parent.iterdir()} == before


# ------------------------------------------------------------------ restart and expiry
def test_restart_between_puts_and_complete_loses_nothing(tmp_path: Path) -> None:
    data = data_of(3 * PART + 7, seed=11)
    parts = plan(data, PART)
    with LocalServer(min_part_size=64, data_dir=tmp_path) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            doc = ok(api(http, server, "files/create", create_body(data, multiParts=parts)))
            urls = urls_by_number(doc)
            for n in (3, 1):
                p = parts[n - 1]
                assert put(http, urls[n], data[p["partOffset"]: p["partOffset"] + p["partSize"]]).status_code == 200
        port = server.port
        server.restart()
        assert server.port == port
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            for n in (2, 4):  # the URLs issued before the restart still work
                p = parts[n - 1]
                assert put(http, urls[n], data[p["partOffset"]: p["partOffset"] + p["partSize"]]).status_code == 200
            server.restart()
            ok(api(http, server, "files/complete", {"fileId": doc["fileId"]}))
            server.restart()
            assert download(http, server, doc["fileId"]) == data
    with LocalServer(min_part_size=64, data_dir=tmp_path, tokens=["t2"]) as again:
        with httpx.Client(base_url=again.base_url, timeout=10) as http:
            assert again.token == "t2"
            assert download(http, again, doc["fileId"]) == data


def test_expire_uploads_forgets_unfinished_tasks_only(tmp_path: Path) -> None:
    with LocalServer(min_part_size=64, data_dir=tmp_path) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            data = data_of(PART + 1, seed=21)
            parts = plan(data, PART)
            finished = ok(api(http, server, "files/create", create_body(data, multiParts=parts)))
            urls = urls_by_number(finished)
            for n, body in ((1, data[:PART]), (2, data[PART:])):
                assert put(http, urls[n], body).status_code == 200
            ok(api(http, server, "files/complete", {"fileId": finished["fileId"]}))
            other = data_of(PART + 1, seed=22)
            open_doc = ok(api(http, server, "files/create", create_body(other, multiParts=parts)))
            assert server.expire_uploads() == 1
            r = put(http, urls_by_number(open_doc)[1], other[:PART])
            assert r.status_code == 404
            r = api(http, server, "files/complete", {"fileId": open_doc["fileId"]})
            assert r.json()["code"] == 13000401
            assert download(http, server, finished["fileId"]) == data
            assert server.expire_uploads() == 0


def test_unfinished_uploads_expire(tmp_path: Path) -> None:
    clock = SkewClock()
    with LocalServer(min_part_size=64, data_dir=tmp_path, upload_expiry=3.0, clock=clock.time) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            data = data_of(PART + 1)
            parts = plan(data, PART)
            doc = ok(api(http, server, "files/create", create_body(data, multiParts=parts)))
            urls = urls_by_number(doc)
            assert put(http, urls[1], data[:PART]).status_code == 200
            assert (tmp_path / "uploads" / doc["fileId"]).is_dir()
            clock.advance(2.0)  # not yet expired
            assert put(http, urls[1], data[:PART]).status_code == 200
            clock.advance(1.5)
            r = put(http, urls[2], data[PART:])
            assert r.status_code == 404
            r = api(http, server, "files/complete", {"fileId": doc["fileId"]})
            assert r.json()["code"] == 13000401
            assert not (tmp_path / "uploads" / doc["fileId"]).exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["fileId", "fileName", "fileType", "parentFolder", "containerId", "length", "sha256",
                               "multiParts", "fileIds", "proofCode", "autoRename", "uploadType", "partNumber"])
bodies = st.one_of(json_values, st.dictionaries(field_names, json_values, max_size=6))
endpoints = st.sampled_from(["files/create", "files/multipart/uploadUrl", "files/complete", "files/download",
                             "files/Fxyz/detail"])


@given(endpoint=endpoints, body=bodies)
def test_fuzzed_bodies_never_500(srv: LocalServer, module_http: httpx.Client, endpoint: str, body: object) -> None:
    r = module_http.post(f"{API}/{endpoint}", content=json.dumps(body), headers=auth_headers(srv))
    assert r.status_code in (200, 400), r.text
    assert isinstance(r.json()["code"], int)
    assert "Traceback" not in r.text
