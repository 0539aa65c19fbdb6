"""A bandwidth limit: one token bucket shared by every sender of a run.

``--bwlimit`` / ``UploadOptions.bwlimit`` caps the bytes per second that a
whole run hands to the network, across all its part senders and files.  A
sender takes tokens for each chunk before sending it; the bucket refills at
``rate`` bytes per second and holds at most ``burst`` (a quarter second's
worth by default), so short stalls are not made up by a burst and even a
short run keeps close to the rate.
Time comes from the injected :class:`~koodrive_fast._clock.Clock`.
"""

from __future__ import annotations

import threading
from typing import Optional

from ._clock import Clock

__all__ = ["TokenBucket"]


class TokenBucket:
    """Thread-safe token bucket over bytes."""

    def __init__(self, rate: float, clock: Clock, *, burst: Optional[float] = None) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate / 4)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock.monotonic()

    def take(self, n: int, stop: Optional[threading.Event] = None) -> bool:
        """Reserve ``n`` bytes and wait until the bucket has paid for them.

        The bucket may go into debt (a chunk larger than what is left); the
        caller then waits exactly the time the rate needs to pay it back, so
        concurrent senders share the rate without polling.  Returns False if
        ``stop`` was set while waiting.
        """
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            debt = -self._tokens
        if debt <= 0:
            return True
        return not self._clock.sleep(debt / self.rate, stop)
