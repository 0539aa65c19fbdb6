"""Upload progress: :class:`ProgressEvent`, a thread-safe dispatcher and the CLI bars.

The engine never draws.  Events come from several threads (the coordinator
and the part senders); the dispatcher queues them and one thread at a time
delivers them to the user's callback *outside any lock* (an engine thread
never waits while user code runs under a lock), merging consecutive deltas
of the same phase that piled up meanwhile.  Calls never overlap, so the
callback needs no locking of its own.  Deltas are in bytes:

* ``phase == "hashing"``: bytes hashed.  Their sum is the file size once
  hashing ends (on resume the first event covers the bytes hashed before).
* ``phase == "uploading"``: bytes handed to the network.  A part that fails
  mid-body and is retried produces a *negative* delta cancelling what it had
  sent, so the sum is the file size when the upload completes (on resume the
  first event covers the parts finished before).
* ``phase == "completing"`` / ``"done"``: phase changes, delta 0.  ``done``
  carries ``rapid_upload=True`` on a flash-upload hit (nothing was sent).

A callback that raises is logged once and then ignored: a broken progress
display must not break an upload.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from typing import IO, Any, Callable, Literal, Optional

__all__ = [
    "ProgressEvent",
    "ProgressCallback",
    "ProgressDispatcher",
    "TqdmProgress",
    "LogProgress",
    "JsonlProgress",
]

logger = logging.getLogger("koodrive_fast")

#: the phases, in the order an upload goes through them
Phase = Literal["hashing", "uploading", "completing", "done"]
PHASES: tuple[Phase, ...] = ("hashing", "uploading", "completing", "done")


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    ``phase``: ``"hashing"``, ``"uploading"``, ``"completing"`` or ``"done"``.
    ``delta``: bytes since the previous event of the same phase (may be
    negative for ``"uploading"`` when a part is retried).  ``total``: the file
    size.  ``part_number``: the part concerned, when there is one.
    ``rapid_upload``: True on the ``"done"`` event of a flash-upload hit.
    ``resumed``: True on the event that counts what an earlier run had already
    hashed or stored (no time was spent on it now: not a rate).
    """

    phase: Phase
    delta: int
    total: int
    part_number: Optional[int] = None
    rapid_upload: bool = False
    resumed: bool = False


ProgressCallback = Callable[[ProgressEvent], Any]


class ProgressDispatcher:
    """Queues events from any thread and delivers them one at a time, outside locks.

    Consecutive events of one phase that queue up while the callback runs
    are merged into one (their deltas added).  A callback exception is
    logged once and the callback is not called again.
    """

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._lock = threading.Lock()
        self._sums: dict[str, int] = {}
        self._pending: list[ProgressEvent] = []
        self._delivering = False

    def emit(
        self,
        phase: Phase,
        delta: int = 0,
        *,
        part_number: int | None = None,
        rapid_upload: bool = False,
        resumed: bool = False,
    ) -> None:
        with self._lock:
            self._sums[phase] = self._sums.get(phase, 0) + delta
            if self._callback is None:
                return
            last = self._pending[-1] if self._pending else None
            if (last is not None and last.phase == phase and delta and last.delta
                    and not rapid_upload and not resumed and not last.resumed):
                self._pending[-1] = dataclasses.replace(
                    last, delta=last.delta + delta,
                    part_number=part_number if part_number == last.part_number else None,
                )
            else:
                self._pending.append(
                    ProgressEvent(phase, delta, self._total, part_number, rapid_upload, resumed)
                )
            if self._delivering:
                return  # the thread delivering now will deliver this one too
            self._delivering = True
        self._deliver()

    def _deliver(self) -> None:
        while True:
            with self._lock:
                callback = self._callback
                if not self._pending or callback is None:
                    self._pending.clear()
                    self._delivering = False
                    return
                batch, self._pending = self._pending, []
            for event in batch:
                try:
                    callback(event)
                except Exception:  # a broken display must not break the upload
                    logger.warning("progress callback raised; disabling it", exc_info=True)
                    with self._lock:
                        self._callback = None
                    break

    def total_for(self, phase: str) -> int:
        """Sum of the deltas emitted so far for ``phase``."""
        with self._lock:
            return self._sums.get(phase, 0)


class TqdmProgress:
    """Progress callback drawing one aggregate tqdm bar per phase.

    A "hash" bar and an "upload" bar (bytes, rate, ETA); both stay visible
    while hashing and uploading overlap.  Silent when ``enabled`` is False or
    ``stream`` is not a terminal.  Call :meth:`close` when done (or use it as
    a context manager).
    """

    def __init__(self, *, enabled: bool = True, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self.enabled = bool(enabled and isatty is not None and isatty())
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _bar(self, phase: str, total: int, initial: int = 0) -> Any:
        bar = self._bars.get(phase)
        if bar is None:
            import importlib

            tqdm: Any = importlib.import_module("tqdm").tqdm
            bar = tqdm(
                total=total,
                desc="hash  " if phase == "hashing" else "upload",
                unit="B",
                unit_scale=True,
                unit_divisor=1000,  # decimal, like the summary's MB/s
                file=self._stream,
                initial=initial,
                position=len(self._bars),
                leave=True,
                dynamic_ncols=True,
                mininterval=0.2,
            )
            self._bars[phase] = bar
        return bar

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        with self._lock:
            if event.phase in ("hashing", "uploading") and event.delta:
                if event.resumed and event.phase not in self._bars:
                    # an earlier run's share starts the bar: not counted in its rate
                    self._bar(event.phase, event.total, initial=event.delta)
                else:
                    self._bar(event.phase, event.total).update(event.delta)
            elif event.phase == "done" and event.rapid_upload:
                bar = self._bar("uploading", event.total)
                bar.set_postfix_str("flash upload: nothing to send")

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProgressTotals:
    """Cumulative bytes per phase, with the rate and ETA of the upload phase."""

    def __init__(self, now: float) -> None:
        self.started = now
        self.total = 0
        self.hashed = 0
        self.uploaded = 0
        self.resumed = 0  # uploaded by an earlier run: not part of this run's rate
        self.phase = "hashing"

    def add(self, event: ProgressEvent) -> None:
        self.total = event.total
        self.phase = event.phase
        if event.phase == "hashing":
            self.hashed += event.delta
        elif event.phase == "uploading":
            self.uploaded += event.delta
            if event.resumed:
                self.resumed += event.delta

    def snapshot(self, now: float) -> dict[str, Any]:
        elapsed = max(1e-9, now - self.started)
        rate = (self.uploaded - self.resumed) / elapsed
        left = max(0, self.total - self.uploaded)
        return {
            "phase": self.phase,
            "total": self.total,
            "hashed": self.hashed,
            "uploaded": self.uploaded,
            "elapsed": round(elapsed, 3),
            "rate": round(rate),
            "eta": round(left / rate, 1) if rate > 0 and left else (0.0 if not left else None),
        }


class LogProgress:
    """Progress for logs (cron, CI, a supervisor): one line every ``interval`` seconds,
    plus one at each phase change, never a terminal control character.

    ``write`` receives each line (default: the ``koodrive_fast`` logger at INFO).
    Lines hold sizes, rate and ETA only: no name that could carry a secret.
    """

    def __init__(
        self,
        *,
        interval: float = 10.0,
        write: Optional[Callable[[str], object]] = None,
        monotonic: Optional[Callable[[], float]] = None,
        label: str = "",
    ) -> None:
        import time

        self._monotonic = monotonic or time.monotonic
        self._interval = interval
        self._write = write or (lambda line: logger.info("%s", line))
        self._totals = ProgressTotals(self._monotonic())
        self._last = self._totals.started
        self._label = f"{label}: " if label else ""

    def __call__(self, event: ProgressEvent) -> None:
        from ._sizes import format_size

        previous = self._totals.phase
        self._totals.add(event)
        now = self._monotonic()
        if event.phase == previous and now - self._last < self._interval:
            return
        self._last = now
        s = self._totals.snapshot(now)
        eta = "" if s["eta"] is None else f", ETA {s['eta']:.0f} s"
        self._write(
            f"{self._label}{s['phase']}: hashed {format_size(s['hashed'])}, uploaded "
            f"{format_size(s['uploaded'])} of {format_size(s['total'])} "
            f"({s['rate'] / 1e6:.1f} MB/s{eta})"
        )


class JsonlProgress:
    """Machine-readable progress: one JSON object per line (``--progress=jsonl``).

    Written at each phase change and at most every ``interval`` seconds in
    between, with cumulative byte counts, rate (bytes/s) and ETA (s).
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        interval: float = 1.0,
        monotonic: Optional[Callable[[], float]] = None,
        extra: Optional[dict[str, Any]] = None,
    ) -> None:
        import time

        self._stream = stream
        self._monotonic = monotonic or time.monotonic
        self._interval = interval
        self._totals = ProgressTotals(self._monotonic())
        self._last = self._totals.started
        self._extra = dict(extra or {})

    def __call__(self, event: ProgressEvent) -> None:
        import json

        previous = self._totals.phase
        self._totals.add(event)
        now = self._monotonic()
        if event.phase == previous and now - self._last < self._interval and event.phase != "done":
            return
        self._last = now
        record = {"event": "progress", **self._extra, **self._totals.snapshot(now)}
        if event.rapid_upload:
            record["rapidUpload"] = True
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()
