"""Fault injection and request counters for tests (thread-safe, off by default)."""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Literal

__all__ = ["Faults", "Stats", "PutFault", "ApiFault"]

Target = Literal["puts", "api"]


@dataclasses.dataclass(frozen=True)
class PutFault:
    """What to do with one part PUT instead of storing it."""

    kind: Literal["fail", "rate_limit", "drop", "expire"]
    status: int = 500
    retry_after: float = 0.0
    after_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class ApiFault:
    """What to do with one API call instead of serving it."""

    kind: Literal["fail", "rate_limit"]
    status: int = 500
    retry_after: float = 0.0


class Faults:
    """Knobs that make the next requests misbehave.

    Each knob arms a count; every matching request consumes one.  Part-PUT
    faults are taken in the order: rate limit, failure, drop, expiry.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._fail_puts = 0
            self._fail_puts_status = 500
            self._fail_api = 0
            self._fail_api_status = 500
            self._rate = {"puts": 0, "api": 0}
            self._retry_after = {"puts": 1.0, "api": 1.0}
            self._drop_puts = 0
            self._drop_after = 0
            self._expire_puts = 0
            self._latency = 0.0
            self._drop_gets = 0
            self._drop_gets_after = 0
            self._expire_gets = 0

    def fail_puts(self, n: int, status: int = 500) -> None:
        """The next ``n`` part PUTs answer ``status`` (500 or 503) without storing."""
        if status not in (500, 503):
            raise ValueError(f"status must be 500 or 503, got {status}")
        _check_count(n)
        with self._lock:
            self._fail_puts, self._fail_puts_status = n, status

    def fail_api(self, n: int, status: int = 500) -> None:
        """The next ``n`` API calls answer ``status`` with code 13000201."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 5xx, got {status}")
        _check_count(n)
        with self._lock:
            self._fail_api, self._fail_api_status = n, status

    def rate_limit(self, n: int, retry_after: float = 1.0, target: Target = "puts") -> None:
        """The next ``n`` requests of ``target`` answer 429 with ``Retry-After``."""
        if target not in ("puts", "api"):
            raise ValueError(f"target must be 'puts' or 'api', got {target!r}")
        if retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        _check_count(n)
        with self._lock:
            self._rate[target], self._retry_after[target] = n, float(retry_after)

    def drop_puts(self, n: int, after_bytes: int = 0) -> None:
        """The next ``n`` part PUTs have their connection closed after ``after_bytes`` of body."""
        _check_count(n)
        if after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        with self._lock:
            self._drop_puts, self._drop_after = n, after_bytes

    def expire_puts(self, n: int) -> None:
        """The next ``n`` part PUTs are refused as if their presigned URL had expired."""
        _check_count(n)
        with self._lock:
            self._expire_puts = n

    def drop_gets(self, n: int, after_bytes: int = 0) -> None:
        """The next ``n`` object GETs have their connection closed after ``after_bytes`` of body."""
        _check_count(n)
        if after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        with self._lock:
            self._drop_gets, self._drop_gets_after = n, after_bytes

    def expire_gets(self, n: int) -> None:
        """The next ``n`` object GETs are refused as if their presigned URL had expired."""
        _check_count(n)
        with self._lock:
            self._expire_gets = n

    def take_get_expiry(self) -> bool:
        with self._lock:
            if self._expire_gets:
                self._expire_gets -= 1
                return True
            return False

    def take_get_fault(self) -> int | None:
        """Bytes to send before dropping this GET, or None (serve it normally)."""
        with self._lock:
            if self._drop_gets:
                self._drop_gets -= 1
                return self._drop_gets_after
            return None

    def latency(self, seconds: float) -> None:
        """Delay every request (API and PUT) by ``seconds`` (0 turns it off)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._latency = float(seconds)

    @property
    def current_latency(self) -> float:
        with self._lock:
            return self._latency

    def take_put_fault(self) -> PutFault | None:
        with self._lock:
            if self._rate["puts"]:
                self._rate["puts"] -= 1
                return PutFault("rate_limit", 429, self._retry_after["puts"])
            if self._fail_puts:
                self._fail_puts -= 1
                return PutFault("fail", self._fail_puts_status)
            if self._drop_puts:
                self._drop_puts -= 1
                return PutFault("drop", after_bytes=self._drop_after)
            if self._expire_puts:
                self._expire_puts -= 1
                return PutFault("expire", 403)
            return None

    def take_api_fault(self) -> ApiFault | None:
        with self._lock:
            if self._rate["api"]:
                self._rate["api"] -= 1
                return ApiFault("rate_limit", 429, self._retry_after["api"])
            if self._fail_api:
                self._fail_api -= 1
                return ApiFault("fail", self._fail_api_status)
            return None


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")


class Stats:
    """Counters: part PUTs received/accepted per (file_id, part_number), API calls per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._received: collections.Counter[tuple[str, int]] = collections.Counter()
            self._accepted: collections.Counter[tuple[str, int]] = collections.Counter()
            self._api: collections.Counter[str] = collections.Counter()
            self._bytes_accepted = 0
            self._gets = 0
            self._native = 0

    def _count_put(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._received[key] += 1

    def _count_accepted(self, key: tuple[str, int], size: int) -> None:
        with self._lock:
            self._accepted[key] += 1
            self._bytes_accepted += size

    def _count_api(self, endpoint: str) -> None:
        with self._lock:
            self._api[endpoint] += 1

    def _count_native(self) -> None:
        with self._lock:
            self._native += 1

    def _count_get(self) -> None:
        with self._lock:
            self._gets += 1

    @property
    def puts_received(self) -> dict[tuple[str, int], int]:
        """Part PUTs that reached the server, by (file_id, part_number)."""
        with self._lock:
            return dict(self._received)

    @property
    def puts_accepted(self) -> dict[tuple[str, int], int]:
        """Part PUTs stored (200), by (file_id, part_number)."""
        with self._lock:
            return dict(self._accepted)

    @property
    def api_calls(self) -> dict[str, int]:
        """API calls by endpoint: create, uploadUrl, complete, detail, download."""
        with self._lock:
            return dict(self._api)

    @property
    def bytes_accepted(self) -> int:
        with self._lock:
            return self._bytes_accepted

    @property
    def native_bodies(self) -> int:
        """Part bodies handed to the C core's receiver threads (the rest went through the event loop)."""
        with self._lock:
            return self._native

    @property
    def object_gets(self) -> int:
        with self._lock:
            return self._gets

    @property
    def total_puts_received(self) -> int:
        with self._lock:
            return sum(self._received.values())

    @property
    def total_puts_accepted(self) -> int:
        with self._lock:
            return sum(self._accepted.values())
