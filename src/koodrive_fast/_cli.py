"""The ``koodrive-fast`` command line: argparse with one module per subcommand.

Each module in :data:`_COMMAND_MODULES` exposes ``add_parser(subparsers)``,
whose parser sets ``func=run`` with ``run(args) -> int``.  Keep imports at
the top of those modules cheap (start-up time); import heavy things in
``run``.

Exit status: 0 success, 1 the operation failed (an unreadable file, a
failed transfer, a server error), 2 bad usage or input (an unknown option,
a bad value, a missing file or setting, a bad config file), 130 interrupted.
Every failure prints one line on stderr, ``koodrive-fast: error: ...``,
naming the flag as typed and sizes in human units; warnings from the
library's ``koodrive_fast`` logger print as ``koodrive-fast: warning: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import NoReturn, Optional, Sequence

from ._version import __version__

__all__ = [
    "main", "CliError", "build_parser", "print_error", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE",
]

PROG = "koodrive-fast"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_COMMAND_MODULES = [
    "koodrive_fast._cmd_hash", "koodrive_fast._cmd_serve", "koodrive_fast._cmd_upload",
    "koodrive_fast._cmd_files", "koodrive_fast._cmd_sync", "koodrive_fast._cmd_config",
    "koodrive_fast._cmd_checkpoints",
]


class CliError(Exception):
    """A user-facing failure: ``main`` prints the message as one line and exits with ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Fast concurrent multipart uploads to Huawei Cloud KooDrive.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning",
                        help="library messages shown on stderr (default: warning)")
    parser.add_argument("--log-file", metavar="PATH",
                        help="also write library messages (at --log-level, with times) to PATH")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def print_error(message: str) -> None:
    """The one way a command reports a failure: one line on stderr."""
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{PROG}: error: {text}", file=sys.stderr)


class _OneLineFormatter(logging.Formatter):
    """``koodrive-fast: warning: message``; no traceback, one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        return f"{PROG}: {record.levelname.lower()}: {text}"


@contextlib.contextmanager
def _library_logging(level: str = "warning", log_file: Optional[str] = None) -> Iterator[None]:
    """While a command runs, the ``koodrive_fast`` logger's messages at ``level`` go to
    stderr with the CLI's prefix (and, with ``log_file``, to that file with times)
    instead of Python's bare last-resort output.  No message carries a secret."""
    threshold = getattr(logging, level.upper())
    logger = logging.getLogger("koodrive_fast")
    handlers: list[logging.Handler] = []
    stderr_handler = logging.StreamHandler(sys.stderr)
    stderr_handler.setLevel(threshold)
    stderr_handler.setFormatter(_OneLineFormatter())
    handlers.append(stderr_handler)
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(threshold)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    previous = logger.level
    if logger.getEffectiveLevel() > threshold:  # lower it for --log-level; never raise it
        logger.setLevel(threshold)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(previous)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from ._exceptions import KernelUnavailableError, KooDriveError, ValidationError

    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(_library_logging(args.log_level, args.log_file))
            except OSError as exc:
                print_error(f"--log-file: cannot open {args.log_file}: {exc.strerror or exc}")
                return EXIT_USAGE
            status = func(args)
        return int(status) if status is not None else EXIT_OK
    except CliError as exc:
        print_error(str(exc))
        return exc.status
    except ValidationError as exc:  # bad input or config the command did not map itself
        print_error(str(exc))
        return EXIT_USAGE
    except KooDriveError as exc:  # e.g. KernelUnavailableError from the hash core's import
        print_error(str(exc))
        return EXIT_USAGE if isinstance(exc, KernelUnavailableError) else EXIT_FAILED
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``| head``): stay quiet, and keep Python's
        # exit-time flush from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED

if __name__ == "__main__":
    # ``python -m koodrive_fast._cli``: run the imported module, not this
    # ``__main__`` copy, so CliError raised by the commands is the one caught
    from koodrive_fast._cli import main as _main

    sys.exit(_main())
