"""The one retry policy: exponential backoff with full jitter, bounded in count and time.

API calls and part PUTs use the same :class:`RetryPolicy` (by default the
client's).  The defaults ride out an outage of about a minute (a service
restart, a load balancer failover): up to 30 attempts within 120 s, waits
capped at 10 s.  What is retried on what:

* idempotent calls (``uploadUrl``, ``detail``, ``download``, ``complete``,
  which the server treats idempotently, and part PUTs, where a repeat
  replaces the part) are retried on HTTP 429/500/502/503/504 and on
  connection, read/write and timeout errors;
* ``create`` is **not** idempotent (a repeat may create a second, renamed
  file), so it is retried only when the server certainly did not act on it:
  HTTP 429 or 503 (the gateway refused it), or an error while *connecting*
  (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``: a restarting
  server refuses connections).  Never after 500/502/504 or a read timeout:
  an upload never makes two files;
* errors no retry can fix are never retried: 4xx business errors (KooDrive
  ``code``s), and local protocol errors (``UnsupportedProtocol``,
  ``LocalProtocolError``, ``InvalidURL``, ``ProxyError``: the request itself
  is wrong).

``Retry-After`` (seconds or an HTTP date) is honoured up to ``max_retry_after``;
a longer wait, or one that would overrun ``max_elapsed``, ends the retries.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Optional

import httpx

from ._exceptions import ValidationError

__all__ = [
    "RetryPolicy",
    "RetryBudget",
    "parse_retry_after",
    "is_retryable_transport_error",
    "RETRYABLE_STATUSES",
    "NON_IDEMPOTENT_RETRYABLE_STATUSES",
]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: statuses after which the server certainly did not act on a non-idempotent call
NON_IDEMPOTENT_RETRYABLE_STATUSES = frozenset({429, 503})

_CONNECT_PHASE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one API call.

    ``max_attempts`` counts the first try; delay before retry *k* (1-based) is
    uniform in ``[0, min(backoff_max, backoff_base * 2**(k-1))]`` (full jitter),
    or exactly that cap with ``jitter=False``.  ``max_elapsed`` bounds the time
    spent on a call's retries: no sleep may end later than ``max_elapsed``
    seconds after the first attempt started (the attempt after it still gets
    its own request timeout).
    """

    max_attempts: int = 30
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    max_elapsed: float = 120.0
    max_retry_after: float = 120.0
    jitter: bool = True
    statuses: frozenset[int] = RETRYABLE_STATUSES

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or self.max_attempts < 1
        ):
            raise ValidationError(
                "RetryPolicy.max_attempts", f"must be an int >= 1, got {self.max_attempts!r}"
            )
        for name in ("backoff_base", "backoff_max", "max_elapsed", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValidationError(f"RetryPolicy.{name}", f"must be a number >= 0, got {value!r}")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """Delay before retry ``retry_number`` (1-based), before any ``Retry-After``."""
        cap = min(self.backoff_max, self.backoff_base * (1 << min(retry_number - 1, 62)))
        return cap * rng() if self.jitter else cap


class RetryBudget:
    """The retry state of one call: attempts made and time spent."""

    def __init__(
        self,
        policy: RetryPolicy,
        monotonic: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.attempts = 1
        self._monotonic = monotonic
        self._rng = rng
        self._start = monotonic()

    def next_delay(self, retry_after: Optional[float] = None) -> Optional[float]:
        """Seconds to wait before the next attempt, or ``None`` when the budget is spent."""
        policy = self.policy
        if self.attempts >= policy.max_attempts:
            return None
        delay = policy.backoff(self.attempts, self._rng)
        if retry_after is not None:
            if retry_after > policy.max_retry_after:
                return None
            delay = max(delay, retry_after)
        if self._monotonic() - self._start + delay > policy.max_elapsed:
            return None
        self.attempts += 1
        return delay


def parse_retry_after(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date); ``None`` if absent/invalid."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def is_retryable_transport_error(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether an httpx error may be retried for a call of this kind.

    Local protocol errors (``UnsupportedProtocol``, ``LocalProtocolError``,
    ``ProxyError``, ``InvalidURL``) never are: the request itself is wrong.
    """
    if isinstance(exc, _CONNECT_PHASE_ERRORS):
        return True
    return idempotent and isinstance(exc, _RETRYABLE_TRANSPORT_ERRORS)


def is_retryable_status(status: int, *, idempotent: bool, policy: RetryPolicy) -> bool:
    """Whether an HTTP status may be retried for a call of this kind."""
    if status not in policy.statuses:
        return False
    return idempotent or status in NON_IDEMPOTENT_RETRYABLE_STATUSES
