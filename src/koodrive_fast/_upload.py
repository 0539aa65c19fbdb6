"""One-file uploads: :func:`upload_file` (``Client.upload``) and :func:`upload_file_async`.

The engine itself lives in :mod:`koodrive_fast._engine` (the per-file
coordinator and the pieces it drives) and :mod:`koodrive_fast._manager` (many
files at once).  Here a single upload runs its coordinator on the calling
thread with a private pool of ``options.concurrency`` part senders, so
Ctrl-C stops it where it is and the checkpoint is kept for a resume.

What one upload does:

1. One GIL-free native scan reads the file once and publishes the SHA-256
   chaining state at every part boundary; part *n* is ready as soon as the
   state at its start exists.
2. URLs are requested in batches for a window of ready parts; part senders
   PUT them with an exact ``Content-Length`` while the scan goes on, held at
   most ``hash_window`` parts ahead, so parts leave while their pages are in
   the page cache (and are then dropped from it, see ``drop_page_cache``).
3. When every part is stored and the scan is done, the file's identity is
   checked once more and the whole-file SHA-256 goes to ``files/complete``.

Flash upload (``rapid``), resume from a checkpoint, the retry policy, URL
refresh and task restarts are described in :class:`UploadOptions` and the
modules of the pieces.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Optional, Union

from ._clock import Clock, SystemClock
from ._engine import FileUpload, UploadResult
from ._exceptions import UploadCancelledError, ValidationError
from ._options import UploadOptions
from ._pool import SenderPool
from ._progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncClient, Client

__all__ = ["UploadOptions", "UploadResult", "upload_file", "upload_file_async"]

PathLike = Union[str, "os.PathLike[str]"]


def _options(options: Optional[UploadOptions]) -> UploadOptions:
    if options is None:
        return UploadOptions()
    if not isinstance(options, UploadOptions):
        raise ValidationError("options", f"must be an UploadOptions, got {type(options).__name__}")
    return options


def upload_file(
    client: Client,
    path: PathLike,
    *,
    container_id: Optional[str] = None,
    parent_folder: str = "root",
    file_name: Optional[str] = None,
    options: Optional[UploadOptions] = None,
    progress: Optional[ProgressCallback] = None,
    clock: Optional[Clock] = None,
    _hash_first: bool = False,
) -> UploadResult:
    """Upload the file at ``path``; see the module docstring.

    ``container_id`` (the target space) is required by KooDrive.  Bad
    arguments raise :class:`ValidationError` before any request or write;
    every other failure is a :class:`~koodrive_fast.KooDriveError`.
    """
    opts = _options(options)
    pool = SenderPool(opts.concurrency)
    try:
        upload = FileUpload(
            client, path, container_id=container_id, parent_folder=parent_folder,
            file_name=file_name, options=opts, progress=progress, pool=pool,
            clock=clock or SystemClock(), hash_first=_hash_first,
        )
        return upload.run()
    finally:
        pool.close()


def _upload_hash_then_send(
    client: Client, path: PathLike, *, options: Optional[UploadOptions] = None, **kwargs: object
) -> UploadResult:
    """Baseline for benchmarks and the demo: hash the whole file, then upload it.

    The pattern of other SDKs (no flash upload, no overlap).
    """
    opts = _options(options).replace(rapid=False)
    return upload_file(client, path, options=opts, _hash_first=True, **kwargs)  # type: ignore[arg-type]


def _loop_delivery(callback: Optional[ProgressCallback]) -> Optional[ProgressCallback]:
    """Deliver progress events on the awaiting event loop (asyncio), not on engine threads."""
    if callback is None:
        return None
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another async library: deliver from the engine's thread
        return callback

    def deliver(event: ProgressEvent) -> None:
        try:
            loop.call_soon_threadsafe(callback, event)
        except RuntimeError:  # loop closed: the caller is gone
            pass

    return deliver


async def upload_file_async(
    client: AsyncClient,
    path: PathLike,
    *,
    container_id: Optional[str] = None,
    parent_folder: str = "root",
    file_name: Optional[str] = None,
    options: Optional[UploadOptions] = None,
    progress: Optional[ProgressCallback] = None,
    clock: Optional[Clock] = None,
) -> UploadResult:
    """``AsyncClient.upload``: the same engine on its own threads, awaited.

    A synchronous twin of the async client (same endpoint, credentials,
    limits, TLS settings and retry policy) drives the engine.  Progress
    events are delivered on the event loop.  Cancelling the awaiting task
    stops the upload *and waits for it to stop* (the checkpoint is written
    before this returns), then re-raises the cancellation.
    """
    import anyio

    opts = _options(options)
    sync_client = client.sync_twin()
    pool = SenderPool(opts.concurrency)
    try:
        upload = FileUpload(
            sync_client, path, container_id=container_id, parent_folder=parent_folder,
            file_name=file_name, options=opts, progress=_loop_delivery(progress), pool=pool,
            clock=clock or SystemClock(),
        )
    except BaseException:
        pool.close()
        sync_client.close()
        raise
    finished = threading.Event()

    def run() -> UploadResult:
        try:
            return upload.run()
        finally:
            pool.close()
            sync_client.close()
            finished.set()

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except BaseException as exc:
        if not finished.is_set():
            upload.request_stop()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(finished.wait)
        if isinstance(exc, UploadCancelledError):
            raise
        raise
