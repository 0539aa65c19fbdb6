"""Part PUTs: exact Content-Length, never chunked, streamed in bounded reads;
response classification; presigned-URL expiry parsing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from koodrive_fast._transfer import (
    PartTransport,
    PutCancelled,
    PutFatal,
    PutRetryable,
    PutUrlRejected,
    ShortRead,
    url_expiry,
)
from koodrive_fast._retry import parse_retry_after

URL = ("http://storage.test/b/F1?partNumber=2&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600"
       "&X-Amz-Credential=AK%2Fscope&X-Amz-Signature=deadbeef")


def _file(tmp_path: Path, size: int) -> int:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    return os.open(path, os.O_RDONLY)


def _put(transport: PartTransport, fd: int, offset: int, size: int,
         stop: threading.Event | None = None) -> list[int]:
    sent: list[int] = []
    transport.put(URL, fd=fd, offset=offset, size=size, on_sent=sent.append,
                  stop=stop or threading.Event())
    return sent


def test_request_has_exact_content_length_and_is_not_chunked(tmp_path: Path) -> None:
    fd = _file(tmp_path, 10_000)
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = b"".join(request.stream)  # type: ignore[union-attr]
        seen.update(headers=dict(request.headers), body=body, method=request.method)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler)) as _http:
        transport = PartTransport(_http, read_size=1000, timeout=5)
        sent = _put(transport, fd, 1234, 4567)
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["content-length"] == "4567"
    assert "transfer-encoding" not in headers
    assert seen["method"] == "PUT"
    assert seen["body"] == os.pread(fd, 4567, 1234)
    assert sent == [1000] * 4 + [567]  # bounded reads of read_size bytes
    os.close(fd)


def test_empty_part(tmp_path: Path) -> None:
    fd = _file(tmp_path, 10)
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["cl"] = request.headers.get("content-length")
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler)) as _http:
        transport = PartTransport(_http, read_size=64, timeout=5)
        assert _put(transport, fd, 0, 0) == []
    assert seen["cl"] == "0"
    os.close(fd)


@pytest.mark.parametrize(
    "status, body, headers, error",
    [
        (403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
         {}, PutUrlRejected),
        (403, "<Error><Code>SignatureDoesNotMatch</Code></Error>", {}, PutUrlRejected),
        (500, "", {}, PutRetryable),
        (503, "", {"Retry-After": "2"}, PutRetryable),
        (429, "", {"Retry-After": "1.5"}, PutRetryable),
        (400, "<Error><Code>InvalidArgument</Code></Error>", {}, PutFatal),
        (404, "", {}, PutFatal),
    ],
)
def test_status_classification(tmp_path: Path, status: int, body: str,
                               headers: dict[str, str], error: type[Exception]) -> None:
    fd = _file(tmp_path, 100)
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(status, text=body, headers=headers))
    )
    transport = PartTransport(http, read_size=64, timeout=5)
    with pytest.raises(error) as info:
        _put(transport, fd, 0, 100)
    message = str(info.value)
    assert "deadbeef" not in message and "X-Amz-Credential" not in message
    if status == 403:
        assert isinstance(info.value, PutUrlRejected)
        assert info.value.expired == ("expired" in body)
    if "Retry-After" in headers:
        assert isinstance(info.value, PutRetryable)
        assert info.value.retry_after == float(headers["Retry-After"])
    http.close()
    os.close(fd)


def test_connection_error_is_retryable(tmp_path: Path) -> None:
    fd = _file(tmp_path, 100)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as _http:
        transport = PartTransport(_http, read_size=64, timeout=5)
        with pytest.raises(PutRetryable):
            _put(transport, fd, 0, 100)
    os.close(fd)


def test_short_read_when_file_shrank(tmp_path: Path) -> None:
    fd = _file(tmp_path, 100)

    def handler(request: httpx.Request) -> httpx.Response:
        b"".join(request.stream)  # type: ignore[union-attr]
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler)) as _http:
        transport = PartTransport(_http, read_size=64, timeout=5)
        with pytest.raises(ShortRead):
            _put(transport, fd, 50, 100)
    os.close(fd)


def test_stop_event_cancels_body(tmp_path: Path) -> None:
    fd = _file(tmp_path, 1000)
    stop = threading.Event()
    stop.set()

    def handler(request: httpx.Request) -> httpx.Response:
        b"".join(request.stream)  # type: ignore[union-attr]
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler)) as _http:
        transport = PartTransport(_http, read_size=64, timeout=5)
        with pytest.raises(PutCancelled):
            _put(transport, fd, 0, 1000, stop=stop)
    os.close(fd)


def test_url_expiry() -> None:
    assert url_expiry(URL) == 1767225600 + 3600
    assert url_expiry("http://x/y?X-Amz-Date=bad&X-Amz-Expires=1") is None
    assert url_expiry("http://x/y") is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    value = parse_retry_after(future)
    assert value is not None and 90 <= value <= 101


def test_httpx_request_log_lines_are_redacted(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import logging

    fd = _file(tmp_path, 100)
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as http:
        transport = PartTransport(http, read_size=64, timeout=5)
        with caplog.at_level(logging.INFO, logger="httpx"):
            _put(transport, fd, 0, 100)
    assert "HTTP Request: PUT" in caplog.text
    assert "deadbeef" not in caplog.text and "AK%2Fscope" not in caplog.text
    assert "partNumber=2" in caplog.text
    os.close(fd)


@pytest.mark.parametrize(
    "url",
    ["http://[::1/b/F1?partNumber=2", "ftp://storage.test/b/F1?partNumber=2", "http:///nohost"],
)
def test_malformed_upload_url_is_fatal_not_retried(tmp_path: Path, url: str) -> None:
    """A URL the request cannot even be built or sent for is never retried (issue: 600 s of retries)."""
    fd = _file(tmp_path, 100)
    with httpx.Client() as http:
        transport = PartTransport(http, read_size=64, timeout=5)
        with pytest.raises(PutFatal):
            transport.put(url, fd=fd, offset=0, size=100, on_sent=lambda n: None,
                          stop=threading.Event())
    assert url_expiry(url) is None
    os.close(fd)
