"""Time, injectable: the engine reads wall time (URL expiry), monotonic time
(retry budgets, checkpoint throttling) and sleeps (backoff) only through a
:class:`Clock`, so tests drive expiry, refresh and backoff on virtual time."""

from __future__ import annotations

import threading
import time
from typing import Optional, Protocol

__all__ = ["Clock", "SystemClock", "ManualClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def sleep(self, seconds: float, stop: Optional[threading.Event] = None) -> bool:
        """Wait ``seconds`` or until ``stop`` is set; True when stopped."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, stop: Optional[threading.Event] = None) -> bool:
        if stop is None:
            time.sleep(max(0.0, seconds))
            return False
        return stop.wait(max(0.0, seconds))


class ManualClock:
    """Virtual time for tests: ``sleep`` advances the clock instead of waiting.

    Thread-safe; ``advance`` moves both wall and monotonic time.  ``slept``
    adds up every sleep, so a test can assert how long backoff *would* have
    taken without spending it.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = start
        self.slept = 0.0

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, stop: Optional[threading.Event] = None) -> bool:
        with self._lock:
            self._now += max(0.0, seconds)
            self.slept += max(0.0, seconds)
        return stop is not None and stop.is_set()
