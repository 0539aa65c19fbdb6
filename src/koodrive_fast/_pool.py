"""A fixed pool of part-sender threads shared by every file of a transfer manager.

Work is queued per file and taken round-robin across files, so a small file's
parts never wait behind the whole window of a 100 GB one.  Each file's own
coordinator bounds how many of its parts are queued or in flight.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Deque, Hashable

__all__ = ["SenderPool"]

logger = logging.getLogger("koodrive_fast")

Job = Callable[[], None]


class SenderPool:
    """``workers`` threads running jobs, fair across owners.  Jobs must not raise."""

    def __init__(self, workers: int, *, name: str = "koodrive-put") -> None:
        self._cond = threading.Condition()
        self._queues: collections.OrderedDict[Hashable, Deque[Job]] = collections.OrderedDict()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    def submit(self, owner: Hashable, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("sender pool is closed")
            queue = self._queues.get(owner)
            if queue is None:
                queue = self._queues[owner] = collections.deque()
            queue.append(job)
            self._cond.notify()

    def withdraw(self, owner: Hashable) -> list[Job]:
        """Remove and return ``owner``'s queued (not yet started) jobs."""
        with self._cond:
            queue = self._queues.pop(owner, None)
            return list(queue) if queue else []

    def _take(self) -> Job | None:
        with self._cond:
            while True:
                for owner, queue in self._queues.items():
                    job = queue.popleft()
                    if queue:
                        self._queues.move_to_end(owner)  # next owner's turn
                    else:
                        del self._queues[owner]
                    return job
                if self._closed:
                    return None
                self._cond.wait()

    def _run(self) -> None:
        while True:
            job = self._take()
            if job is None:
                return
            try:
                job()
            except BaseException:  # pragma: no cover - jobs report their own errors
                logger.exception("part sender job raised")

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the queued jobs; wait up to ``timeout`` seconds for the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
