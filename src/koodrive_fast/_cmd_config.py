"""``koodrive-fast config [--profile P] [--json]``: the resolved settings, secrets masked.

Shows every setting that is set, its value and where it came from (flag,
``KOODRIVE_*`` variable, ``profile NAME (PATH)``, default); no network call.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cmd_common import add_profile_option, settings_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``config`` subcommand."""
    parser = subparsers.add_parser(
        "config",
        help="show the resolved settings (secrets masked) and where each comes from",
        description="Resolve settings as upload does (flags > KOODRIVE_* variables > profile "
        "> defaults) and show them, secrets masked.  The config file is $KOODRIVE_CONFIG, "
        "else $XDG_CONFIG_HOME/koodrive-fast/config.toml (~/.config/...).",
    )
    add_profile_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    shown = settings.display()
    if args.json:
        document = {"configFile": str(settings.config_path), "profile": settings.profile,
                    "settings": shown}
        sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
        return 0
    lines = [f"config file  {settings.config_path}"
             + ("" if settings.config_path.exists() else " (not found)"),
             f"profile      {settings.profile or '(none)'}"]
    lines += [f"{key:<13}{settings.describe(key)}  [{entry['source']}]"
              for key, entry in shown.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
