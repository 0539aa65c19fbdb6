"""``koodrive-fast hash FILE``: digest, preHash and every part's hashCtx in one pass.

With ``--json`` stdout is exactly one JSON object whose ``multiParts`` is
what an uploadUrl request carries; otherwise a short human summary.  On a
terminal, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Optional

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``hash`` subcommand."""
    parser = subparsers.add_parser(
        "hash",
        help="compute digest, preHash and per-part hash contexts of a file",
        description=(
            "Hash FILE once and print its size, digest, preHash (SHA-256 of the first "
            "1024 bytes) and, per part, the offset and hashCtx an upload needs."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="file to hash")
    parser.add_argument(
        "--part-size",
        metavar="SIZE",
        help=(
            "part size, as upload accepts it: a multiple of 64 bytes from 5 MiB to 5 GiB, "
            "at most 10000 parts; suffixes like 8MiB or 5MB "
            "(default: the upload rule, at least 8 MiB)"
        ),
    )
    parser.add_argument(
        "--algorithm",
        choices=("sha256", "sha1"),
        default="sha256",
        help="hash algorithm of digest and contexts (default: sha256)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (uploadUrl multiParts shape)"
    )
    parser.set_defaults(func=run)


def _part_size(text: Optional[str], size: int) -> int:
    """``--part-size`` parsed and checked by the upload's own rule (KooDrive's limits), so
    every plan ``hash`` prints is one ``upload`` would send; else the default rule."""
    from ._cli import CliError
    from ._config import DEFAULT_LIMITS, default_part_size
    from ._planner import validate_part_size
    from ._sizes import parse_size

    if text is None:
        try:
            return default_part_size(size)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    try:
        part_size = parse_size(text)
    except ValueError as exc:
        raise CliError(f"--part-size: {exc}") from None
    return validate_part_size(part_size, size, DEFAULT_LIMITS, "--part-size")


def _terminal_progress(total: int) -> Optional[Callable[[int], None]]:
    """A stderr progress line when stderr is a terminal, else None."""
    if total == 0 or not sys.stderr.isatty():
        return None
    from ._sizes import format_size

    done = 0
    started = time.perf_counter()

    def progress(delta: int) -> None:
        nonlocal done
        done += delta
        elapsed = max(time.perf_counter() - started, 1e-9)
        sys.stderr.write(
            f"\rhashing {format_size(done)} / {format_size(total)} "
            f"({100 * done // total}%, {done / elapsed / 1e9:.2f} GB/s)  "
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return progress


def run(args: argparse.Namespace) -> int:
    """Hash ``args.file``; print JSON or a summary."""
    import os

    from ._cli import EXIT_FAILED, CliError
    from ._contexts import part_contexts
    from ._exceptions import FileChangedError
    from ._hashing import kernels
    from ._sizes import format_size

    path = args.file
    try:
        if os.path.isdir(path):
            raise CliError(f"{path} is a directory, not a file")
        size = os.stat(path).st_size
        part_size = _part_size(args.part_size, size)
        started = time.perf_counter()
        result = part_contexts(path, part_size, args.algorithm, progress=_terminal_progress(size))
        elapsed = time.perf_counter() - started
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except PermissionError:
        raise CliError(f"cannot read {path}: permission denied", EXIT_FAILED) from None
    except FileChangedError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except ValueError as exc:  # not a regular file, and other validation
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_FAILED) from None

    if args.json:
        sys.stdout.write(result.to_json() + "\n")
        return 0
    rate = result.size / elapsed / 1e9 if elapsed > 0 else float("inf")
    rows = [
        ("file", path),
        ("size", f"{result.size} bytes ({format_size(result.size)})"),
        ("algorithm", result.algorithm),
        ("digest", result.digest),
        ("preHash", result.pre_hash),
        ("part size", f"{result.part_size} bytes ({format_size(result.part_size)})"),
        ("parts", str(len(result.parts))),
        ("kernel", kernels()[result.algorithm]),
        ("time", f"{elapsed:.3f} s ({rate:.2f} GB/s)"),
    ]
    sys.stdout.write("".join(f"{label:<10} {value}\n" for label, value in rows))
    return 0
