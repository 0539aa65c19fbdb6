"""What the network subcommands share: connection options and their resolution.

Every command that talks to KooDrive takes ``--profile``, ``--endpoint``,
``--token``, ``--user-id`` and ``--container-id``; each setting comes from
the flag, else its ``KOODRIVE_*`` variable, else the profile
(:mod:`koodrive_fast._profiles`).  A missing one is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from ._cli import EXIT_USAGE, CliError
from ._cli import print_error as print_error

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client
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

