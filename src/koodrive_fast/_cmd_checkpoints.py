"""``koodrive-fast checkpoints list|clean``: the resume checkpoints failed uploads left.

``list [--json]`` shows each checkpoint (file, size, parts done, age);
``clean [--older-than AGE] [--dry-run]`` removes them (all, or those not
written for AGE: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``), never one an
upload holds right now.  The directory is ``--checkpoint-dir``, else
``KOODRIVE_CHECKPOINT_DIR``, else the profile's ``checkpoint_dir``, else the
default (``$XDG_CACHE_HOME/koodrive-fast``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from ._cmd_common import UsageError, add_profile_option, settings_from_args

__all__ = ["add_parser", "run_list", "run_clean", "parse_age"]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` (or bare seconds) in seconds."""
    match = _AGE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not an age: {text!r} (examples: 30m, 12h, 7d)")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def add_parser(subparsers: Any) -> None:
    """Register ``checkpoints list`` and ``checkpoints clean``."""
    parser = subparsers.add_parser(
        "checkpoints", help="list or remove the resume checkpoints of unfinished uploads",
        description="List or remove the checkpoints that unfinished uploads leave for a resume.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (("list", run_list, "list checkpoints"),
                             ("clean", run_clean, "remove checkpoints")):
        sub = actions.add_parser(name, help=text, description=text.capitalize() + ".")
        add_profile_option(sub)
        sub.add_argument("--checkpoint-dir", metavar="DIR",
                         help="checkpoint directory (env KOODRIVE_CHECKPOINT_DIR; "
                              "default ~/.cache/koodrive-fast)")
        if name == "list":
            sub.add_argument("--json", action="store_true", help="JSON Lines, one per checkpoint")
        else:
            sub.add_argument("--older-than", type=parse_age, metavar="AGE",
                             help="only those not written for AGE (30m, 12h, 7d)")
            sub.add_argument("--dry-run", action="store_true", help="show what would go")
        sub.set_defaults(func=func)


def _store(args: argparse.Namespace) -> Any:
    from ._checkpoint import CheckpointStore

    settings = settings_from_args(args, checkpoint_dir=args.checkpoint_dir)
    return CheckpointStore(settings.checkpoint_dir)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def run_list(args: argparse.Namespace, now: float | None = None) -> int:
    from ._sizes import format_size

    store = _store(args)
    entries = store.entries()
    now = time.time() if now is None else now
    if args.json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry.to_json(), separators=(",", ":")) + "\n")
        return 0
    if not entries:
        print(f"no checkpoints in {store.directory}")
        return 0
    for entry in entries:
        age = _age(now - entry.modified)
        state = " (in use)" if entry.in_use else ""
        if entry.key is None:
            print(f"{age:>5}  {entry.path.name}: {entry.problem}{state}")
            continue
        key = entry.key
        print(f"{age:>5}  {key.path} ({format_size(key.size)}), "
              f"{entry.parts_done}/{key.part_count} parts sent{state}")
    return 0


def run_clean(args: argparse.Namespace, now: float | None = None) -> int:
    store = _store(args)
    now = time.time() if now is None else now
    if args.older_than is not None and args.older_than < 0:
        raise UsageError("--older-than must be >= 0")
    removed = kept = 0
    for entry in store.entries():
        if args.older_than is not None and now - entry.modified < args.older_than:
            continue
        label = entry.key.path if entry.key else entry.path.name
        if args.dry_run:
            print(f"would remove {label}")
            removed += 1
        elif store.remove(entry):
            print(f"removed {label}")
            removed += 1
        else:
            print(f"kept {label}: an upload is using it")
            kept += 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {removed} checkpoint(s)" + (f", {kept} in use" if kept else ""))
    return 0
