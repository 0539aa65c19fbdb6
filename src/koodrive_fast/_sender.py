"""Sending one part: the one retry loop for part PUTs.

:class:`PartSender` PUTs a part with the URL its lease carries and decides,
under the upload's :class:`RetryPolicy`, what a failure means: transient
(5xx, 429 + ``Retry-After``, dropped connection) → back off and retry within
the policy's budget; 403 "expired" → a fresh URL for this part only, from
the broker, for the same task epoch; ``NoSuchUpload`` → the task is lost
(:class:`UploadTaskMissingError`, the coordinator restarts it); the file
ended early → :class:`FileChangedError`; anything no retry can fix →
:class:`PartUploadError`.  Progress is reported per chunk and rewound when an
attempt fails.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ._broker import PartLease, TaskBroker
from ._clock import Clock
from ._exceptions import (
    FileChangedError,
    PartUploadError,
    UploadCancelledError,
    UploadTaskMissingError,
    UploadUrlExpiredError,
)
from ._models import MultiPartInfo
from ._retry import RetryBudget, RetryPolicy
from ._transfer import PartTransport, PutCancelled, PutFatal, PutRetryable, PutUrlRejected, ShortRead

__all__ = ["PartSender"]

logger = logging.getLogger("koodrive_fast")


class PartSender:
    """Sends parts of one file; shared by the pool's threads (keeps no per-part state)."""

    def __init__(
        self,
        *,
        transport: PartTransport,
        broker: TaskBroker,
        policy: RetryPolicy,
        clock: Clock,
        path: str,
        url_refresh_margin: float,
        max_url_refreshes: int,
        stop: threading.Event,
        on_sent: Callable[[int, int], None],
        on_retry: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._broker = broker
        self._policy = policy
        self._clock = clock
        self._path = path
        self._margin = url_refresh_margin
        self._max_refreshes = max_url_refreshes
        self._stop = stop
        self._on_sent = on_sent
        self._on_retry = on_retry

    def send(self, fd: int, part: MultiPartInfo, lease: PartLease) -> None:
        """PUT ``part`` until stored; raises a typed error otherwise."""
        budget = RetryBudget(self._policy, self._clock.monotonic)
        refreshes = 0
        number = part.part_number
        offset = part.part_offset or 0
        while True:
            if self._stop.is_set():
                raise UploadCancelledError("upload stopped")
            if not lease.is_fresh(self._clock.time(), self._margin) and refreshes < self._max_refreshes:
                refreshes += 1
                lease = self._broker.refresh(part, lease.epoch)
            sent = 0

            def on_chunk(n: int) -> None:
                nonlocal sent
                sent += n
                self._on_sent(number, n)

            try:
                self._transport.put(
                    lease.url, fd=fd, offset=offset, size=part.part_size, on_sent=on_chunk, stop=self._stop
                )
                return
            except PutRetryable as exc:
                self._rewind(number, sent)
                delay = budget.next_delay(exc.retry_after)
                if delay is None:
                    raise PartUploadError(str(exc), part_number=number, attempts=budget.attempts) from None
                self._on_retry()
                logger.info("part %d: %s; retry %d in %.2fs", number, exc, budget.attempts, delay)
                if self._clock.sleep(delay, self._stop):
                    raise UploadCancelledError("upload stopped") from None
            except PutUrlRejected as exc:
                self._rewind(number, sent)
                refreshes += 1
                if refreshes > self._max_refreshes or (not exc.expired and refreshes > 2):
                    if exc.expired:
                        raise UploadUrlExpiredError(
                            f"part {number}: {exc} even after {refreshes - 1} fresh URL(s)",
                            part_number=number,
                        ) from None
                    raise PartUploadError(str(exc), part_number=number, attempts=budget.attempts) from None
                logger.info("part %d: %s; fetching a fresh URL", number, exc)
                lease = self._broker.refresh(part, lease.epoch)
            except PutFatal as exc:
                self._rewind(number, sent)
                if exc.code == "NoSuchUpload":  # storage lost the task: like 13000401
                    raise UploadTaskMissingError(
                        13000401, f"part {number}: {exc}", http_status=exc.status
                    ) from None
                raise PartUploadError(str(exc), part_number=number, attempts=budget.attempts) from None
            except ShortRead as exc:
                self._rewind(number, sent)
                raise FileChangedError(f"{self._path} changed during the upload: {exc}", path=self._path) from None
            except PutCancelled:
                self._rewind(number, sent)
                raise UploadCancelledError("upload stopped") from None
            except BaseException:
                self._rewind(number, sent)
                raise

    def _rewind(self, number: int, sent: int) -> None:
        if sent:
            self._on_sent(number, -sent)
