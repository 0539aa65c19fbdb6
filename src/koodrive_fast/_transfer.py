"""Streaming part PUTs to presigned storage URLs.

:class:`PartTransport` PUTs through the :class:`~koodrive_fast.Client`'s own
``httpx.Client``, so every client setting (``verify`` as a bool, a CA path or
an ``SSLContext``, an injected ``transport``, proxies, limits) applies to the
bulk traffic exactly as to the API calls.  A part body streams from the file
with ``os.pread``, ``read_size`` bytes at a time (each chunk is released once
written), so memory is bounded by about concurrency × read size whatever the
part size.  Every request carries the exact ``Content-Length`` (a signed
header of the presigned URL) and never ``Transfer-Encoding: chunked``.

:meth:`PartTransport.put` classifies failures into the small internal
exceptions below; the engine decides what to do (retry, refresh the URL,
give up).  Messages never contain the URL's query (signature, credential),
and a filter on the ``httpx`` logger blanks presigned-URL secrets in its
request log lines.
"""

from __future__ import annotations

import calendar
import logging
import os
import threading
import time
from typing import Callable, Iterable, Iterator, Optional, Union
from urllib.parse import parse_qs, urlsplit

import httpx

from ._ratelimit import TokenBucket
from ._redact import redact_url
from ._retry import parse_retry_after

__all__ = [
    "PartTransport",
    "PutRetryable",
    "PutUrlRejected",
    "PutFatal",
    "ShortRead",
    "PutCancelled",
    "url_expiry",
    "url_lifetime",
]

_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _RedactUrlsFilter(logging.Filter):
    """httpx logs every request URL at INFO; blank presigned-URL secrets in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


def _install_log_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrlsFilter) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactUrlsFilter())


_install_log_redaction()


class PutRetryable(Exception):
    """Transient failure (5xx, 429, 408, connection error): retry after backoff."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PutUrlRejected(Exception):
    """403 from storage; ``expired`` when the body says the URL expired."""

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired


class PutFatal(Exception):
    """A 4xx that retrying the same request cannot fix; ``code`` is the S3 error code."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ShortRead(Exception):
    """The file ended before the part did: it shrank during the upload."""


class PutCancelled(Exception):
    """The upload is being stopped; the body generator gave up."""


def url_expiry(url: str) -> Optional[float]:
    """Epoch seconds at which a SigV4 presigned URL expires, or None if unknown.

    Read from ``X-Amz-Date`` (``yyyymmddTHHMMSSZ``) plus ``X-Amz-Expires``.
    """
    try:
        query = parse_qs(urlsplit(url).query)
        stamp = query["X-Amz-Date"][0]
        expires = int(query["X-Amz-Expires"][0])
        parsed = time.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except (KeyError, IndexError, ValueError):
        return None
    return calendar.timegm(parsed) + expires


def url_lifetime(url: str) -> float:
    """``X-Amz-Expires`` of a presigned URL in seconds (3600 when absent)."""
    try:
        return float(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    except (KeyError, IndexError, ValueError):  # ValueError: also a malformed URL
        return 3600.0


_UNFIXABLE = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


def _url_for_messages(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    except ValueError:
        return "<malformed URL>"


class PartTransport:
    """PUTs part bodies streamed from a file descriptor through ``http``.  Thread-safe."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        read_size: int,
        timeout: float,
        bucket: Optional[TokenBucket] = None,
    ) -> None:
        self._http = http
        self.read_size = read_size
        self._bucket = bucket
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 30.0))

    def _body(
        self,
        fd: int,
        offset: int,
        size: int,
        on_sent: Callable[[int], None],
        stop: threading.Event,
    ) -> Iterator[bytes]:
        position = 0
        while position < size:
            if stop.is_set():
                raise PutCancelled("upload stopped")
            want = min(self.read_size, size - position)
            if self._bucket is not None and not self._bucket.take(want, stop):
                raise PutCancelled("upload stopped")
            # os.pread reads straight into a new immutable bytes object: one
            # copy from the page cache, none in h11 (a one-chunk join returns
            # the object itself), and safe with transports that keep chunks.
            chunk = os.pread(fd, want, offset + position)
            while len(chunk) < want:
                more = os.pread(fd, want - len(chunk), offset + position + len(chunk))
                if not more:
                    raise ShortRead(
                        f"file ended at byte {offset + position + len(chunk)}, inside a part "
                        f"that ends at {offset + size}"
                    )
                chunk += more
            yield chunk
            position += want
            on_sent(want)

    def put(
        self,
        url: str,
        *,
        fd: int,
        offset: int,
        size: int,
        on_sent: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        """PUT ``size`` bytes of ``fd`` from ``offset`` to ``url``.

        The body is read ``read_size`` bytes at a time; ``on_sent(n)`` is
        called after each chunk is handed to the connection.  Raises :class:`PutRetryable`, :class:`PutUrlRejected`,
        :class:`PutFatal`, :class:`ShortRead` or :class:`PutCancelled`.
        """
        headers = {
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }
        body: Union[bytes, Iterable[bytes]] = b""
        if size:
            body = self._body(fd, offset, size, on_sent, stop)
        where = _url_for_messages(url)
        try:
            response = self._http.put(url, content=body, headers=headers, timeout=self._timeout)
        except _UNFIXABLE as exc:
            # the URL or the request itself is wrong: no retry can fix it
            raise PutFatal(f"{type(exc).__name__} for {where}", 0, "InvalidRequest") from None
        except httpx.TransportError as exc:
            raise PutRetryable(f"{type(exc).__name__} while sending to {where}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        text = response.text[:2000]
        if status == 403:
            expired = "expired" in text.lower()
            what = "URL expired" if expired else "access denied"
            raise PutUrlRejected(f"HTTP 403 ({what}) from {where}", expired=expired)
        if status in _RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise PutRetryable(f"HTTP {status} from {where}", retry_after)
        code = _xml_code(text)
        raise PutFatal(f"HTTP {status}{f' ({code})' if code else ''} from {where}", status, code)


def _xml_code(text: str) -> str:
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    if start < 0 or end < 0:
        return ""
    return text[start + 6 : end][:100]
