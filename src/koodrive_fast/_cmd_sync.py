"""``koodrive-fast sync LOCAL_DIR REMOTE_FOLDER``: a folder tree into KooDrive.

Exit status: 0 when every file succeeded, 1 when any failed (the rest was
still done), 2 for usage errors.  ``--json`` prints JSON Lines: one object
per path (``path``, ``action``, ``bytes``, ``sha256``, ``fileId``,
``error``), then one ``{"summary": true, ...}`` object with the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from ._cmd_common import (
    UsageError,
    add_connection_options,
    add_transfer_options,
    add_filter_options,
    connection_from_args,
    path_filter_from_args,
    positive_int_arg,
    print_error,
    size_arg,
    transfer_flags,
)

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="sync a local folder into a KooDrive folder (skips what is unchanged)",
        description=(
            "Make REMOTE_FOLDER (a slash path from the space root, created as needed) hold "
            "what LOCAL_DIR holds: unchanged files are skipped without being read again, "
            "changed and new ones uploaded (many at once), empty folders created."
        ),
    )
    p.add_argument("local_dir", metavar="LOCAL_DIR")
    p.add_argument("remote_folder", metavar="REMOTE_FOLDER")
    add_connection_options(p)
    add_filter_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be created, uploaded, skipped, deleted; change nothing")
    p.add_argument("--delete", action="store_true",
                   help="move remote files absent locally to the recycle bin (never permanently)")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per path, then a summary")
    p.add_argument("--concurrency", type=positive_int_arg, help="part uploads in flight (default 8)")
    p.add_argument("--files", type=positive_int_arg, default=4, help="files in flight (default 4)")
    p.add_argument("--part-size", type=size_arg, help="part size, e.g. 16MiB (default: auto)")
    p.add_argument("--follow-symlinks", action="store_true", help="follow symbolic links (default: skip them)")
    add_transfer_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="upload on a Dask cluster (e.g. tcp://host:8786); plan here, files sharded "
                        "across its workers; LOCAL_DIR and --checkpoint-dir must be on storage every "
                        "worker sees at the same path (needs koodrive-fast[dask])")
    p.add_argument("--max-parts-in-flight", type=positive_int_arg, metavar="N",
                   help="with --dask-scheduler: part uploads in flight in the whole cluster "
                        "(default: --concurrency per worker, every worker)")
    p.set_defaults(func=run)


class _Bar:
    """One aggregate bar: files done/total, bytes, rate, ETA (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._lock = threading.Lock()
        self.files_done = 0
        self.files_total = 0

    def start(self, total_bytes: int, files_total: int) -> None:
        if not self.enabled:
            return
        import importlib

        tqdm: Any = importlib.import_module("tqdm").tqdm
        self.files_total = files_total
        self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="sync", file=sys.stderr,
                         dynamic_ncols=True, mininterval=0.2)

    def bytes(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def file_done(self) -> None:
        if self._bar is not None:
            with self._lock:
                self.files_done += 1
                self._bar.set_postfix_str(f"files {self.files_done}/{self.files_total}")

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run(args: argparse.Namespace) -> int:
    from ._exceptions import KooDriveError
    from ._progress import ProgressEvent
    from ._sync import SyncItem, sync

    try:
        conn = connection_from_args(args, part_size=args.part_size, concurrency=args.concurrency,
                                    **transfer_flags(args))
        filters = path_filter_from_args(args)
        options = conn.upload_options()
        if options.part_size is not None:  # what holds for any file; the rest is per file
            from ._planner import validate_part_size

            validate_part_size(options.part_size, 0, field=conn.settings.source.get("part_size", "--part-size"))
        client = conn.client()
    except UsageError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except KooDriveError as exc:
        print_error(str(exc))
        return EXIT_USAGE

    dask_client: Any = None
    dask_options: Any = None
    if args.dask_scheduler:
        try:
            import importlib

            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            print_error("--dask-scheduler needs Dask: pip install 'koodrive-fast[dask]'")
            return EXIT_USAGE
        from ._dask import DaskOptions

        try:
            dask_options = DaskOptions(max_parts_in_flight=args.max_parts_in_flight)
            dask_client = distributed.Client(args.dask_scheduler, timeout=30)
        except (OSError, TimeoutError, ValueError) as exc:
            print_error(f"--dask-scheduler: cannot reach the Dask scheduler {args.dask_scheduler}: {exc}")
            return EXIT_FAILED  # a runtime failure, not bad usage
    elif args.max_parts_in_flight is not None:
        print_error("--max-parts-in-flight needs --dask-scheduler")
        return EXIT_USAGE

    bar = _Bar(enabled=not args.no_progress and not args.json and args.progress in ("auto", "bar"))
    out_lock = threading.Lock()

    def on_item(item: SyncItem) -> None:
        with out_lock:
            if args.json:
                print(json.dumps(item.to_json(), separators=(",", ":")), flush=True)
            elif item.action != "skipped" or item.note not in ("unchanged", None):
                detail = f": {item.error}" if item.error else (f" ({item.note})" if item.note else "")
                line = f"{item.action:<12} {item.path}{detail}"
                if bar.enabled:
                    bar.write(line)
                else:
                    print(line, flush=True)
        if item.action in ("uploaded", "skipped", "failed"):
            bar.file_done()

    def on_progress(event: ProgressEvent) -> None:
        if event.phase == "uploading" and event.delta:
            bar.bytes(event.delta)

    try:
        with client:
            if bar.enabled:
                from ._localtree import scan_tree

                tree = scan_tree(args.local_dir, filters=filters, follow_symlinks=args.follow_symlinks)
                bar.start(tree.total_bytes, len(tree.files))
            result = sync(
                client, args.local_dir, args.remote_folder, container_id=conn.container_id,
                options=options, filters=filters, delete=args.delete, dry_run=args.dry_run,
                follow_symlinks=args.follow_symlinks, files=args.files, on_item=on_item,
                progress=on_progress, dask_client=dask_client,
                dask_options=dask_options,
            )
    except KeyboardInterrupt:
        bar.close()
        print_error("interrupted; run the same command again to finish")
        return 130
    except KooDriveError as exc:
        bar.close()
        print_error(str(exc))
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_FAILED
    finally:
        if dask_client is not None:
            dask_client.close()
    bar.close()
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))
    else:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(result.counts.items())) or "nothing to do"
        print(f"{'dry run: ' if args.dry_run else ''}{counts}; {len(result.folders_created)} "
              f"folder(s) {'to create' if args.dry_run else 'created'}; "
              f"{result.bytes_sent} bytes sent, {result.bytes_hashed} hashed in {result.seconds:.1f} s")
    return EXIT_OK if result.ok else EXIT_FAILED
