"""What the network subcommands share: connection options and their resolution.

Every command that talks to KooDrive takes ``--profile``, ``--endpoint``,
``--token``, ``--user-id`` and ``--container-id``; each setting comes from
the flag, else its ``KOODRIVE_*`` variable, else the profile
(:mod:`koodrive_fast._profiles`).  A missing one is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any, Callable

from ._cli import EXIT_USAGE, CliError
from ._cli import print_error as print_error

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client
    from ._options import UploadOptions
    from ._localtree import PathFilter
    from ._profiles import ResolvedSettings

__all__ = ["UsageError", "Connection", "add_connection_options", "add_profile_option",
           "connection_from_args", "settings_from_args", "add_filter_options",
           "path_filter_from_args", "print_error"]


class UsageError(CliError):
    """Bad usage: the command prints it on one line and exits with status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


@dataclasses.dataclass(frozen=True)
class Connection:
    """Resolved settings with the four a network command needs checked present."""

    settings: ResolvedSettings

    @property
    def endpoint(self) -> str:
        assert self.settings.endpoint is not None
        return self.settings.endpoint

    @property
    def user_id(self) -> str:
        assert self.settings.user_id is not None
        return self.settings.user_id

    @property
    def container_id(self) -> str:
        assert self.settings.container_id is not None
        return self.settings.container_id

    def client(self) -> Client:
        """A :class:`Client` for these settings (:class:`UsageError` if they are malformed)."""
        from ._client import Client
        from ._exceptions import ValidationError

        try:
            return Client(self.endpoint, self.settings.credentials())
        except ValidationError as exc:  # name the flag, variable or profile it came from
            where = self.settings.source.get(exc.field, exc.field)
            raise UsageError(f"{where}: {exc.rule}") from None
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from None

    def upload_options(self, **fixed: Any) -> UploadOptions:
        """:class:`UploadOptions` from the resolved transfer settings (part size,
        concurrency, retries, timeout, checkpoint dir, bwlimit, auto-rename), plus ``fixed``."""
        from ._exceptions import ValidationError
        from ._options import UploadOptions
        from ._retry import RetryPolicy

        st = self.settings
        values: dict[str, Any] = {
            "part_size": st.part_size, "checkpoint_dir": st.checkpoint_dir,
            "auto_rename": st.auto_rename, "bwlimit": st.bwlimit,
        }
        if st.concurrency is not None:
            values["concurrency"] = st.concurrency
        if st.timeout is not None:
            values["timeout"] = st.timeout
        if st.retries is not None:
            values["retry"] = RetryPolicy(max_attempts=st.retries + 1)
        values.update(fixed)
        try:
            return UploadOptions(**values)
        except ValidationError as exc:
            key = exc.field.rpartition(".")[2]
            raise UsageError(f"{st.source.get(key, key)}: {exc.rule}") from None


def add_transfer_options(parser: Any) -> None:
    """The knobs every transfer command shares (each also a profile key and a
    ``KOODRIVE_*`` variable): ``--bwlimit``, ``--retries``, ``--timeout``,
    ``--checkpoint-dir``, ``--auto-rename``, ``--progress``."""
    parser.add_argument("--bwlimit", metavar="RATE",
                        help="at most this rate for the whole run, e.g. 50MB or 400Mbit")
    parser.add_argument("--retries", metavar="N", help="retries per request after a transient failure")
    parser.add_argument("--timeout", metavar="SECONDS", help="seconds without progress before a request fails")
    parser.add_argument("--checkpoint-dir", metavar="DIR", help="where checkpoints (and the sync snapshot) live")
    parser.add_argument("--auto-rename", metavar="MODE", choices=("2", "3", "4"),
                        help="on a name clash: 2 rename, 3 fail, 4 reuse identical content")
    parser.add_argument("--progress", choices=("auto", "bar", "log", "jsonl", "none"), default="auto",
                        help="auto: a bar on a terminal, else a log line every 10 s; jsonl: JSON events on stdout")


def transfer_flags(args: argparse.Namespace) -> dict[str, object]:
    """The transfer settings given as flags, for :func:`connection_from_args`."""
    return {
        "bwlimit": getattr(args, "bwlimit", None), "retries": getattr(args, "retries", None),
        "timeout": getattr(args, "timeout", None), "checkpoint_dir": getattr(args, "checkpoint_dir", None),
        "auto_rename": getattr(args, "auto_rename", None),
    }


def progress_reporter(mode: str, *, quiet: bool, label: str = "") -> tuple[Any, Callable[[], None]]:
    """(progress callback or None, close) for ``--progress``: a bar on a terminal, log
    lines when stderr is not one (cron, CI), JSON Lines on stdout, or nothing."""
    from ._progress import JsonlProgress, LogProgress, TqdmProgress

    if quiet or mode == "none":
        return None, lambda: None
    if mode == "jsonl":
        return JsonlProgress(sys.stdout, extra={"path": label} if label else None), lambda: None
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        bar = TqdmProgress(enabled=True)
        return bar, bar.close
    return LogProgress(label=label, write=lambda line: print(f"koodrive-fast: {line}", file=sys.stderr,
                                                             flush=True)), lambda: None


def positive_int_arg(text: str) -> int:
    """argparse type: an int > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def size_arg(text: str) -> int:
    """argparse type: a size such as 16MiB or 5MB (:func:`koodrive_fast.parse_size`)."""
    from ._sizes import parse_size

    try:
        return parse_size(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_profile_option(parser: Any) -> None:
    """``--profile NAME`` (env KOODRIVE_PROFILE)."""
    parser.add_argument("--profile", metavar="NAME",
                        help="config-file profile to use (env KOODRIVE_PROFILE)")


def add_connection_options(parser: Any) -> None:
    """``--profile``, ``--endpoint``, ``--token``, ``--user-id``, ``--container-id``."""
    add_profile_option(parser)
    parser.add_argument("--endpoint", help="API base URL (env KOODRIVE_ENDPOINT)")
    parser.add_argument("--token", help="access token (env KOODRIVE_TOKEN)")
    parser.add_argument("--user-id", help="KooDrive user id (env KOODRIVE_USER_ID)")
    parser.add_argument("--container-id", help="target space id (env KOODRIVE_CONTAINER_ID)")


def settings_from_args(args: argparse.Namespace, **flags: object) -> ResolvedSettings:
    """Resolve settings from ``args``' connection options plus ``flags`` (setting name ->
    flag value, ``None`` when not given); config errors become :class:`UsageError`."""
    from ._exceptions import ValidationError
    from ._profiles import resolve

    given: dict[str, object] = {
        key: getattr(args, key, None) for key in ("endpoint", "token", "user_id", "container_id")
    }
    given.update(flags)
    try:
        return resolve(given, profile=getattr(args, "profile", None))
    except ValidationError as exc:
        raise UsageError(str(exc)) from None


def connection_from_args(args: argparse.Namespace, **flags: object) -> Connection:
    """The connection settings (flag > environment > profile), all four required."""
    from ._exceptions import ValidationError

    settings = settings_from_args(args, **flags)
    try:
        settings.require("endpoint", "user_id", "container_id")
        if settings.token is None and settings.app_id is None and settings.token_command is None:
            settings.require("token")
    except ValidationError as exc:
        raise UsageError(exc.rule) from None
    return Connection(settings)


def _include(glob: str) -> tuple[bool, str]:
    return True, glob


def _exclude(glob: str) -> tuple[bool, str]:
    return False, glob


def add_filter_options(parser: Any) -> None:
    """Repeatable ``--include GLOB`` / ``--exclude GLOB`` into one list that keeps their
    command-line order (first match wins; rules in :mod:`koodrive_fast._localtree`)."""
    parser.add_argument("--include", dest="filters", action="append", type=_include,
                        metavar="GLOB", help="include matching paths (repeatable; first match wins)")
    parser.add_argument("--exclude", dest="filters", action="append", type=_exclude,
                        metavar="GLOB", help="exclude matching paths (repeatable; first match wins)")


def path_filter_from_args(args: argparse.Namespace) -> PathFilter:
    """The :class:`PathFilter` of ``--include``/``--exclude`` (:class:`UsageError` if malformed)."""
    from ._exceptions import ValidationError
    from ._localtree import PathFilter

    try:
        return PathFilter(getattr(args, "filters", None) or [])
    except ValidationError as exc:
        raise UsageError(f"bad --include/--exclude: {exc.rule}") from None

