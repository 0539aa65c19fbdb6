"""What the network subcommands share: connection options and their parsing.

Every command that talks to KooDrive takes ``--endpoint``, ``--token``,
``--user-id`` and ``--container-id``, each falling back to an environment
variable (``KOODRIVE_ENDPOINT``, ``KOODRIVE_TOKEN``, ``KOODRIVE_USER_ID``,
``KOODRIVE_CONTAINER_ID``); a missing one is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client
    from ._localtree import PathFilter

__all__ = ["UsageError", "Connection", "add_connection_options", "connection_from_args",
           "add_filter_options", "path_filter_from_args", "setting", "print_error"]


class UsageError(Exception):
    """Bad usage: the command prints it on one line and exits with status 2."""


@dataclasses.dataclass(frozen=True)
class Connection:
    endpoint: str
    token: str
    user_id: str
    container_id: str

    def client(self) -> Client:
        """A :class:`Client` for these settings (:class:`UsageError` if they are malformed)."""
        from ._auth import BearerToken
        from ._client import Client

        try:
            return Client(self.endpoint, BearerToken(self.token, self.user_id))
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from None


def add_connection_options(parser: Any) -> None:
    """``--endpoint``, ``--token``, ``--user-id``, ``--container-id``."""
    parser.add_argument("--endpoint", help="API base URL (env KOODRIVE_ENDPOINT)")
    parser.add_argument("--token", help="access token (env KOODRIVE_TOKEN)")
    parser.add_argument("--user-id", help="KooDrive user id (env KOODRIVE_USER_ID)")
    parser.add_argument("--container-id", help="target space id (env KOODRIVE_CONTAINER_ID)")


def setting(value: Optional[str], env: str, option: str, required: bool = True) -> Optional[str]:
    """The option's value, else the environment variable's, else :class:`UsageError`."""
    if value:
        return value
    value = os.environ.get(env)
    if value:
        return value
    if required:
        raise UsageError(f"{option} is required (or set {env})")
    return None


def connection_from_args(args: argparse.Namespace) -> Connection:
    """The four connection settings from options or environment."""
    values = [
        setting(args.endpoint, "KOODRIVE_ENDPOINT", "--endpoint"),
        setting(args.token, "KOODRIVE_TOKEN", "--token"),
        setting(args.user_id, "KOODRIVE_USER_ID", "--user-id"),
        setting(args.container_id, "KOODRIVE_CONTAINER_ID", "--container-id"),
    ]
    endpoint, token, user_id, container_id = (str(v) for v in values)
    return Connection(endpoint, token, user_id, container_id)


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


def print_error(message: str) -> None:
    print(f"koodrive-fast: error: {message}", file=sys.stderr)
