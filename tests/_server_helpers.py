"""Raw-HTTP helpers for the local server tests (no client library involved)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from typing import Any

import httpx

from koodrive_fast._hashing import sha256 as native_sha256
from koodrive_fast._hashing import sha1 as native_sha1
from koodrive_fast.server import LocalServer

API = "/koodrive/ose/v1"


def x_date(offset_seconds: float = 0.0) -> str:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_seconds)
    return when.strftime("%Y%m%dT%H%M%SZ")


def auth_headers(srv: LocalServer, **override: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {srv.token}",
        "X-User-Id": srv.user_id,
        "X-Date": x_date(),
    }
    headers.update(override)
    return {k: v for k, v in headers.items() if v is not None}


def data_of(size: int, seed: int = 0) -> bytes:
    period = bytes((i * 7 + seed) % 251 for i in range(251))
    return (period * (size // 251 + 1))[:size]


def words_at(data: bytes, offset: int, algorithm: str = "sha256") -> list[int]:
    hasher = native_sha256() if algorithm == "sha256" else native_sha1()
    hasher.update(data[:offset])
    return list(hasher.state().words)


def plan(data: bytes, part_size: int, algorithm: str = "sha256") -> list[dict[str, Any]]:
    """The multiParts list for ``data`` cut into ``part_size`` parts."""
    parts = []
    offset, number = 0, 1
    while True:
        size = min(part_size, len(data) - offset)
        part: dict[str, Any] = {"partNumber": number, "partSize": size, "partOffset": offset}
        if number > 1:
            part["hashCtx"] = words_at(data, offset, algorithm)
        parts.append(part)
        offset += size
        number += 1
        if offset >= len(data):
            return parts


def create_body(data: bytes, *, name: str = "file.bin", container: str = "c1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fileName": name,
        "fileType": "45",
        "parentFolder": ["root"],
        "containerId": container,
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploadMode": "multipart",
        "uploadType": 1,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def api(http: httpx.Client, srv: LocalServer, endpoint: str, body: Any, **headers: str) -> httpx.Response:
    return http.post(f"{API}/{endpoint}", json=body, headers=auth_headers(srv, **headers))


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["code"] == 0, doc
    return doc  # type: ignore[no-any-return]


def urls_by_number(doc: dict[str, Any]) -> dict[int, str]:
    return {p["partNumber"]: p["uploadUrl"] for p in doc["multiParts"]}


def put(http: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return http.put(url, content=body)


def upload(http: httpx.Client, srv: LocalServer, data: bytes, part_size: int, *, order: list[int] | None = None,
           name: str = "file.bin", algorithm: str = "sha256") -> str:
    """create -> PUT every part (in ``order``) -> complete; returns the file id."""
    parts = plan(data, part_size, algorithm)
    doc = ok(api(http, srv, "files/create", create_body(data, name=name, multiParts=parts)))
    urls = urls_by_number(doc)
    for number in order or [p["partNumber"] for p in parts]:
        p = parts[number - 1]
        r = put(http, urls[number], data[p["partOffset"]: p["partOffset"] + p["partSize"]])
        assert r.status_code == 200, r.text
    ok(api(http, srv, "files/complete", {"fileId": doc["fileId"]}))
    return str(doc["fileId"])


def download(http: httpx.Client, srv: LocalServer, file_id: str, container: str = "c1") -> bytes:
    doc = ok(api(http, srv, "files/download", {"containerId": container, "fileIds": [file_id]}))
    entry = doc["downloads"][0]
    assert entry["code"] == 0, entry
    r = http.get(entry["url"])
    assert r.status_code == 200, r.text
    return r.content


def s3_code(response: httpx.Response) -> str:
    text = response.text
    start = text.index("<Code>") + len("<Code>")
    return text[start: text.index("</Code>")]


class SkewClock:
    """Real wall time plus an offset a test moves forward (``advance``): the
    server's expiry runs on it while X-Date headers (real time) stay valid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.offset = 0.0

    def time(self) -> float:
        with self._lock:
            return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += seconds
