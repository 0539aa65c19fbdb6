"""Server configuration."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .._config import MiB, Limits

__all__ = ["ServerConfig", "DEFAULT_USER_ID", "check_token_ttl"]

DEFAULT_USER_ID = "1505084218764547200"


def check_token_ttl(value: object) -> None:
    """``token_ttl`` is None or a finite number of seconds > 0 (``ValueError`` otherwise)."""
    if value is None:
        return
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"ServerConfig.token_ttl must be None or seconds > 0, got {value!r}")


@dataclasses.dataclass
class ServerConfig:
    """Settings of a local KooDrive-compatible server.

    ``data_dir=None`` means a fresh temporary directory (removed when a
    :class:`~koodrive_fast.server.LocalServer` stops).  ``tokens=None``
    generates one bearer token; each token opens its own session, which
    ``POST …/session/refresh`` renews.  ``token_ttl`` is the idle lifetime of
    an access token in seconds (sliding: each accepted call restarts it, like
    KooDrive's 20 minutes); ``None`` (the default) means tokens never expire.
    ``clock`` is the server's wall clock (epoch seconds, default
    :func:`time.time`), the only time it reads for ``X-Date`` checks, token
    expiry, URL signing and expiry and upload expiry; tests inject one and
    drive it.  ``app_credentials`` maps app ids to
    secrets for the HMAC-SHA256 app-auth scheme.  ``access_key`` /
    ``secret_key`` sign the presigned URLs (generated and kept in the data
    dir when None, so URLs survive a restart).  ``fsync`` (off by default; on
    in ``koodrive-fast serve``) syncs each part body before it is recorded:
    an in-process :meth:`LocalServer.restart` loses nothing without it, only a
    machine crash could, and on a busy disk it costs tens of ms per part.
    ``store_bodies=False`` hashes part bodies and throws them away (for
    client benchmarks: the chain is still verified, but downloads, flash
    upload and SHA-1 chains need bodies).

    ``native_receivers`` part bodies at a time are received by the C core on
    their own threads (socket -> hash -> file, no Python per chunk; see
    ``server/_recv.py``); further bodies, bodies under link emulation and all
    bodies when it is 0 are read by the event loop.  Both paths verify the
    same way.

    Slow clients: a request head must arrive within ``header_timeout``
    seconds of the server starting to wait for it, and a request body may
    stall at most ``body_timeout`` seconds between reads; then the server
    answers 408 and closes the connection.

    Link emulation (0 = off): ``link_rate`` caps the bytes per second of
    request bodies read over *all* connections together (one link);
    ``link_rate_per_connection`` caps each connection on its own.  Reading
    stops while a bucket is empty, so TCP back-pressure reaches the client.
    ``link_latency`` (seconds) delays each request body once, like a round
    trip.
    """

    data_dir: str | Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    tokens: tuple[str, ...] | list[str] | None = None
    user_id: str = DEFAULT_USER_ID
    app_credentials: Mapping[str, str] = dataclasses.field(default_factory=dict)
    min_part_size: int = 5 * MiB
    url_ttl: int = 3600
    upload_expiry: float = 24 * 3600.0
    max_json_body: int = 1 * MiB
    x_date_window: float = 15 * 60.0
    future_leeway: float = 5.0
    region: str = "koodrive-local-1"
    access_key: str | None = None
    secret_key: str | None = None
    fsync: bool = False
    store_bodies: bool = True
    write_buffer: int = 4 * MiB
    native_receivers: int = 16
    reverse_part_order: bool = True
    http_impl: str = "auto"  # uvicorn's HTTP parser: "auto" (httptools if installed), "h11", "httptools"
    log_requests: bool = False
    token_ttl: float | None = None
    clock: Callable[[], float] = time.time
    job_polls: int = 0  # a job reports "running" to this many polls before "finished"
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    link_rate: int = 0
    link_rate_per_connection: int = 0
    link_latency: float = 0.0

    def __post_init__(self) -> None:
        for name in ("port", "min_part_size", "url_ttl", "max_json_body", "write_buffer", "job_polls",
                     "native_receivers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"ServerConfig.{name} must be an int, got {type(value).__name__}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig.port must be in 0..65535, got {self.port}")
        if self.min_part_size < 64 or self.min_part_size % 64:
            raise ValueError("ServerConfig.min_part_size must be a positive multiple of 64")
        if not 1 <= self.url_ttl <= 7 * 24 * 3600:
            raise ValueError("ServerConfig.url_ttl must be in 1..604800 seconds")
        if self.upload_expiry <= 0:
            raise ValueError("ServerConfig.upload_expiry must be > 0 seconds")
        if self.max_json_body < 1024:
            raise ValueError("ServerConfig.max_json_body must be >= 1024 bytes")
        if self.write_buffer < 64 * 1024:
            raise ValueError("ServerConfig.write_buffer must be >= 65536 bytes")
        if not 0 <= self.native_receivers <= 1024:
            raise ValueError("ServerConfig.native_receivers must be in 0..1024")
        if not 0 <= self.job_polls <= 1000:
            raise ValueError("ServerConfig.job_polls must be in 0..1000")
        for name in ("header_timeout", "body_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"ServerConfig.{name} must be in (0, 3600] seconds")
        for name in ("link_rate", "link_rate_per_connection"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ServerConfig.{name} must be an int >= 0 (bytes per second; 0 = unlimited)")
        if not 0 <= self.link_latency <= 60:
            raise ValueError("ServerConfig.link_latency must be in 0..60 seconds")
        if self.http_impl not in ("auto", "h11", "httptools"):
            raise ValueError("ServerConfig.http_impl must be 'auto', 'h11' or 'httptools'")
        if self.tokens is not None:
            self.tokens = tuple(self.tokens)
            if not self.tokens or not all(isinstance(t, str) and t and t.isprintable() and " " not in t for t in self.tokens):
                raise ValueError("ServerConfig.tokens must be non-empty strings without spaces")
        if not isinstance(self.user_id, str) or not self.user_id or not self.user_id.isprintable():
            raise ValueError("ServerConfig.user_id must be a non-empty printable string")
        self.app_credentials = dict(self.app_credentials)
        check_token_ttl(self.token_ttl)
        if not callable(self.clock):
            raise TypeError("ServerConfig.clock must be a callable returning epoch seconds")
        self.limits()  # validates min_part_size against the other limits

    def limits(self) -> Limits:
        """Protocol limits with this server's minimum part size."""
        return Limits(min_part_size=self.min_part_size)
