"""``koodrive-fast ls`` and ``koodrive-fast download``.

``ls REMOTE [--json]`` lists a folder's children (or shows one file): name,
type, size, sha256 (when the server reports it) and id.  REMOTE is a slash
path from the space root (``/photos/2026``) or the id of a folder or a file.  ``--json`` prints
JSON Lines, one object per entry: ``name``, ``type`` (``folder``/``file``),
``size`` (files), ``sha256`` (or null), ``id``.

``download REMOTE LOCAL_DEST`` fetches a file (to LOCAL_DEST, or into it
when it is an existing directory) or a folder tree (LOCAL_DEST becomes the
folder: created if missing, merged if it exists; empty folders are
recreated).  Big files are fetched as parallel ranges into ``<dest>.part``
and renamed once their SHA-256 matches the server's; re-running an
interrupted download continues it.  ``--json``: one JSON line per file,
then ``{"summary": true, ...}``.

Connection options as ``upload`` (flags or ``KOODRIVE_*`` variables).
Exit status: 0 done, 1 the operation failed (not found, API, integrity,
I/O), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cmd_common import (
    UsageError,
    add_connection_options,
    connection_from_args,
    positive_int_arg,
    print_error,
    size_arg,
)

__all__ = ["add_parser", "run_ls", "run_download"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    """Register ``ls`` and ``download``."""
    ls = subparsers.add_parser(
        "ls", help="list a remote folder",
        description="List REMOTE (a /path from the space root, or an id): name, type, size, "
        "sha256 when known, id.",
    )
    ls.add_argument("remote", metavar="REMOTE", help="remote folder (/path or id)")
    add_connection_options(ls)
    ls.add_argument("--json", action="store_true", help="JSON Lines, one object per entry")
    ls.set_defaults(func=run_ls)

    dl = subparsers.add_parser(
        "download", help="download a file or a folder tree (parallel, resumable, verified)",
        description="Download REMOTE (a /path or an id; a file, or recursively a folder) to "
        "LOCAL_DEST.  Files are checked against the server's SHA-256; an interrupted run "
        "continues where it stopped.",
    )
    dl.add_argument("remote", metavar="REMOTE", help="remote file or folder (/path or id)")
    dl.add_argument("dest", metavar="LOCAL_DEST", help="local file or folder to write")
    add_connection_options(dl)
    dl.add_argument("--concurrency", type=positive_int_arg, default=4,
                    help="ranged GETs in flight per file (default 4)")
    dl.add_argument("--chunk-size", type=size_arg, default=None,
                    help="bytes per ranged GET (default 16MiB)")
    dl.add_argument("--no-resume", action="store_true", help="ignore any partial download")
    dl.add_argument("--json", action="store_true", help="JSON Lines: one per file, then a summary")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    dl.set_defaults(func=run_download)


def _entry_json(entry: Any) -> dict[str, Any]:
    if entry.is_folder:
        return {"name": entry.name, "type": "folder", "id": entry.id}
    return {"name": entry.name, "type": "file", "size": entry.size, "sha256": entry.sha256,
            "id": entry.id}


def run_ls(args: argparse.Namespace) -> int:
    """``koodrive-fast ls``."""
    from ._exceptions import KooDriveError, ValidationError

    try:
        conn = connection_from_args(args)
        client = conn.client()
    except UsageError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    try:
        with client:
            remote: str = args.remote
            target: Any
            if remote.startswith("/"):
                target = client.resolve_path(remote, container_id=conn.container_id)
            else:
                target = _entry_by_id(client, remote, conn.container_id)
            entries = (
                list(client.list_folder(target.id, container_id=conn.container_id))
                if target.is_folder else [target]
            )
    except ValidationError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except KooDriveError as exc:
        print_error(f"ls failed: {exc}")
        return EXIT_FAILED
    entry: Any
    for entry in entries:
        if args.json:
            print(json.dumps(_entry_json(entry), ensure_ascii=False, separators=(",", ":")))
        else:
            kind = "dir " if entry.is_folder else "file"
            size = "-" if entry.is_folder else str(entry.size)
            digest = (None if entry.is_folder else entry.sha256) or "-"
            name = entry.name + ("/" if entry.is_folder else "")
            print(f"{kind}  {size:>14}  {digest:<64}  {entry.id}  {name}")
    return EXIT_OK


def _entry_by_id(client: Any, entry_id: str, container_id: str) -> Any:
    """A folder (listable) or, failing that, a file (its detail) with this id."""
    from ._exceptions import ApiError
    from ._models import FileEntry, FolderEntry

    try:
        client.list_folder_page(entry_id, container_id=container_id, page_size=1)
        return FolderEntry(id=entry_id, name=entry_id)
    except ApiError as exc:
        if exc.code != 13000304:  # "target folder abnormal": not a folder
            raise
    detail = client.file_detail(entry_id)
    return FileEntry(id=detail.file_id, name=detail.file_name or detail.file_id,
                     size=detail.length or 0, sha256=detail.sha256)


class _Bar:
    """A bytes bar on a TTY (tqdm); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            import importlib

            tqdm: Any = importlib.import_module("tqdm").tqdm
            self._bar = tqdm(unit="B", unit_scale=True, unit_divisor=1000, desc="download",
                             file=sys.stderr, dynamic_ncols=True, mininterval=0.2)

    def __call__(self, delta: int) -> None:
        if self._bar is not None:
            self._bar.update(delta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_download(args: argparse.Namespace) -> int:
    """``koodrive-fast download``."""
    from ._download import DownloadConfig
    from ._exceptions import KooDriveError, ValidationError

    try:
        conn = connection_from_args(args)
        options: dict[str, Any] = {"concurrency": args.concurrency, "resume": not args.no_resume}
        if args.chunk_size is not None:
            options["chunk_size"] = args.chunk_size
        config = DownloadConfig(**options)
        client = conn.client()
    except (UsageError, ValidationError) as exc:
        print_error(str(exc))
        return EXIT_USAGE
    bar = _Bar(not args.no_progress)
    try:
        with client:
            result = client.download(args.remote, args.dest, container_id=conn.container_id,
                                     config=config, progress=bar)
    except ValidationError as exc:
        bar.close()
        print_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        bar.close()
        print_error("interrupted; run the same command again to resume")
        return 130
    except (KooDriveError, OSError) as exc:
        bar.close()
        print_error(f"download failed: {exc}")
        return EXIT_FAILED
    bar.close()
    if args.json:
        for f in result.files:
            print(json.dumps({
                "path": f.remote_path, "localPath": str(f.local_path), "fileId": f.file_id,
                "size": f.size, "sha256": f.sha256, "bytesReceived": f.bytes_received,
                "resumed": f.resumed,
            }, ensure_ascii=False, separators=(",", ":")))
        print(json.dumps({"summary": True, "files": len(result.files),
                          "folders": len(result.folders), "bytes": result.size,
                          "bytesReceived": result.bytes_received,
                          "seconds": round(result.seconds, 3)}, separators=(",", ":")))
    else:
        print(f"downloaded {len(result.files)} file(s), {result.size} bytes"
              + (f", {len(result.folders)} folder(s)" if result.folders else "")
              + f" to {args.dest} (sha256 verified)")
    return EXIT_OK
