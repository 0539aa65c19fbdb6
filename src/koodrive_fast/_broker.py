"""The server-side upload task of one file, owned by one :class:`TaskBroker`.

The broker is the only code that creates the task, asks for part URLs,
restarts the task when the server lost it (13000401) and completes it.
Every URL it hands out is a :class:`PartLease` tagged with the *epoch* of
the task it belongs to; a restart starts a new epoch, and a URL fetched for
an older epoch is never stored or handed out (a sender refreshing its URL
while the task is being replaced gets :class:`TaskSuperseded` instead).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Optional, Sequence

from ._clock import Clock
from ._exceptions import (
    ApiError,
    AuthenticationError,
    KooDriveError,
    MalformedResponseError,
    UploadTaskMissingError,
)
from ._options import MAX_URLS_PER_REQUEST
from ._transfer import url_expiry, url_lifetime

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client
    from ._models import CreateFileResult, MultiPartInfo

__all__ = ["PartLease", "TaskBroker", "TaskSuperseded"]

logger = logging.getLogger("koodrive_fast")


class TaskSuperseded(KooDriveError):
    """Internal: the lease's task was replaced by a newer one; drop the work."""


@dataclasses.dataclass(frozen=True)
class PartLease:
    """A presigned PUT URL for one part of one task epoch."""

    part_number: int
    url: str
    epoch: int
    expires: Optional[float]  # epoch seconds, None when unknown
    lifetime: float

    def is_fresh(self, now: float, margin: float) -> bool:
        """False when it expires within min(margin, half its lifetime)."""
        if self.expires is None or margin <= 0:
            return True
        return self.expires - now >= min(margin, self.lifetime / 2)

    def __repr__(self) -> str:  # never the signature
        return f"PartLease(part={self.part_number}, epoch={self.epoch}, expires={self.expires})"


class TaskBroker:
    """Creates, feeds, restarts and completes one file's upload task.  Thread-safe."""

    def __init__(
        self,
        client: Client,
        *,
        file_name: str,
        size: int,
        parent_folder: str,
        container_id: str,
        auto_rename: Optional[int],
        trace_id: str,
        clock: Clock,
    ) -> None:
        self._client = client
        self._file_name = file_name
        self._size = size
        self._parent_folder = parent_folder
        self._container_id = container_id
        self._auto_rename = auto_rename
        self._trace_id = trace_id
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch = 0
        self._file_id: Optional[str] = None
        self._upload_id: Optional[str] = None
        self._server_name: Optional[str] = None
        self._leases: dict[int, PartLease] = {}
        self.url_refreshes = 0
        self.restarts = 0

    # -- state

    @property
    def epoch(self) -> int:
        with self._lock:
            return self._epoch

    @property
    def file_id(self) -> Optional[str]:
        return self._file_id

    @property
    def upload_id(self) -> Optional[str]:
        return self._upload_id

    @property
    def server_file_name(self) -> str:
        """The name the server gave the file (it may have renamed it)."""
        return self._server_name or self._file_name

    def _lease(self, part_number: int, url: str, epoch: int) -> PartLease:
        return PartLease(part_number, url, epoch, url_expiry(url), url_lifetime(url))

    # -- task lifecycle

    def create(
        self,
        first_parts: Sequence[MultiPartInfo],
        *,
        sha256: Optional[str] = None,
        pre_hash: Optional[str] = None,
        proof_code: Optional[str] = None,
    ) -> CreateFileResult:
        """``files/create`` with URLs for ``first_parts``; starts a new epoch."""
        result = self._client.create_file(
            file_name=self._file_name,
            length=self._size,
            parent_folder=self._parent_folder,
            container_id=self._container_id,
            multi_parts=list(first_parts),
            sha256=sha256,
            pre_hash=pre_hash,
            proof_code=proof_code,
            auto_rename=self._auto_rename,
            trace_id=self._trace_id,
        )
        with self._lock:
            self._epoch += 1
            self._file_id, self._upload_id = result.file_id, result.upload_id
            self._server_name = result.file_name or self._server_name
            self._leases = {
                info.part_number: self._lease(info.part_number, info.upload_url, self._epoch)
                for info in result.multi_parts
                if info.upload_url
            }
        return result

    def adopt(self, file_id: str, upload_id: Optional[str]) -> None:
        """Continue a task from a checkpoint (new epoch, no URLs yet)."""
        with self._lock:
            self._epoch += 1
            self._file_id, self._upload_id = file_id, upload_id
            self._leases = {}

    def forget(self) -> None:
        with self._lock:
            self._epoch += 1
            self._file_id = self._upload_id = None
            self._leases = {}

    def restart(self, first_part: MultiPartInfo) -> None:
        """13000401: a new task for the same file; every older lease is void."""
        self.restarts += 1
        logger.warning("the server lost upload task %s; starting a new one", self._file_id)
        self.forget()
        self.create([first_part])

    def completed_on_server(self, digest: Optional[str]) -> bool:
        """On resume: did an earlier run already complete this task's file with ``digest``?"""
        file_id = self._file_id
        assert file_id is not None
        try:
            detail = self._client.file_detail(file_id, trace_id=self._trace_id)
        except AuthenticationError:
            raise
        except ApiError as exc:  # unknown task: start a new one
            logger.info("resume: the server no longer knows file %s (%s)", file_id, exc.code)
            self.forget()
            return False
        status = (detail.status or "").lower()
        done = (
            status in ("complete", "completed")
            and bool(detail.sha256)
            and digest is not None
            and (detail.sha256 or "").lower() == digest
            and detail.length == self._size
        )
        if done:
            self._server_name = detail.file_name or self._server_name
        return done

    def complete(self, digest: str) -> None:
        file_id = self._file_id
        assert file_id is not None
        self._client.complete_file(file_id, sha256=digest, trace_id=self._trace_id)

    # -- URLs

    def take_leases(self, parts: Sequence[MultiPartInfo], *, margin: float) -> list[PartLease]:
        """One fresh lease per part (batched ``uploadUrl`` requests for the rest)."""
        now = self._clock.time()
        with self._lock:
            epoch = self._epoch
            ready = {}
            for part in parts:
                lease = self._leases.pop(part.part_number, None)
                if lease is not None and lease.is_fresh(now, margin):
                    ready[part.part_number] = lease
        missing = [p for p in parts if p.part_number not in ready]
        for start in range(0, len(missing), MAX_URLS_PER_REQUEST):
            batch = missing[start : start + MAX_URLS_PER_REQUEST]
            for number, url in self._fetch(batch).items():
                ready[number] = self._lease(number, url, epoch)
        if self.epoch != epoch:
            raise TaskSuperseded("the upload task was replaced while fetching URLs")
        return [ready[p.part_number] for p in parts]

    def refresh(self, part: MultiPartInfo, epoch: int) -> PartLease:
        """A new URL for one part of task ``epoch`` (after 403 or near expiry)."""
        if self.epoch != epoch:
            raise TaskSuperseded("the upload task was replaced")
        with self._lock:
            self.url_refreshes += 1
        url = self._fetch([part])[part.part_number]
        if self.epoch != epoch:  # replaced meanwhile: this URL belongs to the old task
            raise TaskSuperseded("the upload task was replaced")
        return self._lease(part.part_number, url, epoch)

    def _fetch(self, parts: Sequence[MultiPartInfo]) -> dict[int, str]:
        file_id = self._file_id
        if file_id is None:
            raise UploadTaskMissingError(13000401, "no upload task")
        got = self._client.get_upload_urls(
            file_id, list(parts), file_size=self._size, trace_id=self._trace_id
        )
        urls = {}
        for part in parts:
            info = got.get(part.part_number)
            if info is None or not info.upload_url:
                raise MalformedResponseError(None, f"no upload URL returned for part {part.part_number}")
            urls[part.part_number] = info.upload_url
        return urls
