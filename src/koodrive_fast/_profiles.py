"""Settings from flags, environment, a config-file profile and defaults, resolved in one place.

The config file is TOML: ``$KOODRIVE_CONFIG``, else
``$XDG_CONFIG_HOME/koodrive-fast/config.toml``, else
``~/.config/koodrive-fast/config.toml``::

    default_profile = "work"          # optional; else the profile named "default"

    [profile.work]
    endpoint = "https://intl.myhuaweicloud-koodrive.com"
    user_id = "1505084218764547200"
    container_id = "space-1"
    token_command = "pass show koodrive/token"   # or token = "...", or app_id + app_secret
    part_size = "16MiB"
    concurrency = 8
    bwlimit = "50MB/s"

Each setting comes from the first of: the command-line flag, the
environment variable ``KOODRIVE_<NAME>`` (``KOODRIVE_PART_SIZE``), the
profile (``--profile`` or ``KOODRIVE_PROFILE``), the default.  Credentials
are taken whole from the first of those layers that holds any (a token, an
app id and secret, or a token command), so a flag ``--token`` is never
mixed with a profile's app secret.  A file that holds a secret (``token``,
``app_secret``) must not be readable by group or others.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._exceptions import ConfigError
from ._sizes import format_size, parse_rate, parse_size

if TYPE_CHECKING:  # pragma: no cover
    from ._auth import AppCredentials, BearerToken, RefreshableToken

__all__ = [
    "ResolvedSettings", "ConfigFile", "SETTINGS", "SECRET_KEYS", "config_path", "load_config", "resolve",
    "mask",
]

Value = Union[str, int, float, Path]

#: the secrets a profile may hold; they are masked in every display
SECRET_KEYS = frozenset({"token", "app_secret"})
_CREDENTIAL_KEYS = ("token", "app_id", "app_secret", "token_command")
_PROFILE_ENV = "KOODRIVE_PROFILE"
_CONFIG_ENV = "KOODRIVE_CONFIG"
_TOKEN_COMMAND_TIMEOUT = 60.0


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be a size such as 16MiB")
    return parse_size(value)


def _rate(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value  # bytes per second
    if not isinstance(value, str):
        raise ValueError("must be a rate such as 50MB/s or 100Mbit")
    return parse_rate(value)


def _count(low: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, str):
            value = value.strip()
            if not value.lstrip("-").isdigit():
                raise ValueError(f"must be an integer >= {low}")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"must be an integer >= {low}")
        return value

    return parse


def _seconds(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("must be a number of seconds > 0") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError("must be a number of seconds > 0")
    return float(value)


def _directory(value: object) -> Path:
    return Path(os.path.expanduser(_text(value)))


def _rename_mode(value: object) -> int:
    mode = _count(2)(value)
    if mode not in (2, 3, 4):
        raise ValueError("must be 2, 3 or 4 (KooDrive's rename modes)")
    return mode


#: setting name -> parser of a flag, environment or file value
SETTINGS: dict[str, Callable[[object], Value]] = {
    "endpoint": _text,
    "user_id": _text,
    "container_id": _text,
    "token": _text,
    "app_id": _text,
    "app_secret": _text,
    "token_command": _text,
    "part_size": _size,
    "concurrency": _count(1),
    "retries": _count(0),
    "timeout": _seconds,
    "checkpoint_dir": _directory,
    "bwlimit": _rate,
    "auto_rename": _rename_mode,
}

DEFAULTS: dict[str, Value] = {"concurrency": 8}


def flag_name(key: str) -> str:
    """``part_size`` -> ``--part-size``."""
    return "--" + key.replace("_", "-")


def env_name(key: str) -> str:
    """``part_size`` -> ``KOODRIVE_PART_SIZE``."""
    return "KOODRIVE_" + key.upper()


def mask(key: str, value: object) -> object:
    """A secret shown as ``****`` (plus its last 4 characters when it is long)."""
    if key not in SECRET_KEYS or value is None:
        return value
    text = str(value)
    return "****" + text[-4:] if len(text) >= 20 else "****"


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$KOODRIVE_CONFIG``, else the XDG config directory's ``koodrive-fast/config.toml``."""
    named = environ.get(_CONFIG_ENV)
    if named:
        return Path(os.path.expanduser(named))
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "koodrive-fast" / "config.toml"


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    return tomllib.loads(text)


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """A parsed config file: its profiles' raw settings and ``default_profile``."""

    path: Path
    profiles: Mapping[str, Mapping[str, Any]]
    default_profile: Optional[str] = None


def load_config(path: Path) -> ConfigFile:
    """The profiles in ``path`` (none when the file does not exist).

    Raises :class:`ConfigError` for bad TOML, unknown keys, or secrets in a file that
    group or others can read.
    """
    where = str(path)
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            raw = fh.read()
    except FileNotFoundError:
        return ConfigFile(path, {})
    except OSError as exc:
        raise ConfigError("config", f"cannot read {where}: {exc.strerror or exc}", path=where) from None
    try:
        document = _toml_loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"{where} is not valid TOML: {exc}", path=where) from None
    unknown_top = sorted(set(document) - {"profile", "default_profile"})
    if unknown_top:
        raise ConfigError(unknown_top[0], f"unknown key in {where} (expected [profile.NAME] tables)", path=where)
    profiles = document.get("profile", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise ConfigError("profile", f"{where}: profiles must be [profile.NAME] tables", path=where)
    default = document.get("default_profile")
    if default is not None and (not isinstance(default, str) or default not in profiles):
        raise ConfigError("default_profile", f"{where}: names no [profile.{default}] table", path=where)
    has_secret = False
    for name, table in profiles.items():
        for key in table:
            if key not in SETTINGS:
                raise ConfigError(
                    f"profile.{name}.{key}",
                    f"unknown setting in {where} (known: {', '.join(SETTINGS)})", path=where,
                )
            has_secret = has_secret or key in SECRET_KEYS
    if has_secret and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            "config",
            f"{where} holds a secret but group or others can read it; run: chmod 600 {where}",
            path=where,
        )
    return ConfigFile(path, {str(name): dict(table) for name, table in profiles.items()}, default)


@dataclasses.dataclass(frozen=True)
class ResolvedSettings:
    """Every setting a command needs, with where each value came from.

    ``source[key]`` is the flag (``--token``), the variable (``KOODRIVE_TOKEN``),
    ``profile NAME (PATH)`` or ``default``; unset settings have no entry.
    """

    profile: Optional[str]
    config_path: Path
    endpoint: Optional[str] = None
    user_id: Optional[str] = None
    container_id: Optional[str] = None
    token: Optional[str] = None
    app_id: Optional[str] = None
    app_secret: Optional[str] = None
    token_command: Optional[str] = None
    part_size: Optional[int] = None
    concurrency: Optional[int] = None
    retries: Optional[int] = None
    timeout: Optional[float] = None
    checkpoint_dir: Optional[Path] = None
    bwlimit: Optional[int] = None
    auto_rename: Optional[int] = None
    source: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={mask(k, getattr(self, k))!r}" for k in SETTINGS if getattr(self, k) is not None)
        return f"ResolvedSettings(profile={self.profile!r}, {shown})"

    def require(self, *keys: str) -> None:
        """:class:`ConfigError` naming the flag, variable and profile key of the first unset one."""
        for key in keys:
            if getattr(self, key) is None:
                raise ConfigError(
                    key,
                    f"{flag_name(key)} is required (or set {env_name(key)}, "
                    f"or {key} in a profile of {self.config_path})",
                )

    def credentials(self) -> Union[BearerToken, AppCredentials, RefreshableToken]:
        """The credential the settings name: a bearer token, app credentials, or a
        :class:`TokenProvider` running ``token_command`` (again whenever the token expires)."""
        from ._auth import AppCredentials, BearerToken, TokenProvider

        self.require("user_id")
        assert self.user_id is not None
        if self.token is not None:
            return BearerToken(self.token, self.user_id)
        if self.app_id is not None and self.app_secret is not None:
            return AppCredentials(self.app_id, self.app_secret, self.user_id)
        if self.token_command is not None:
            command = self.token_command
            return TokenProvider(lambda: run_token_command(command), self.user_id)
        raise ConfigError(
            "token",
            "no credentials: give --token (or KOODRIVE_TOKEN), or a profile with token, "
            "app_id and app_secret, or token_command",
        )

    def display(self) -> dict[str, dict[str, object]]:
        """``{key: {"value": masked value, "source": where}}`` for every set setting."""
        shown: dict[str, dict[str, object]] = {}
        for key in SETTINGS:
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, Path):
                value = str(value)
            shown[key] = {"value": mask(key, value), "source": self.source[key]}
        return shown

    def describe(self, key: str) -> str:
        """A value for people: sizes in binary units, rates per second, secrets masked."""
        value = getattr(self, key)
        if key == "part_size":
            return format_size(value)
        if key == "bwlimit":
            return f"{value / 1e6:g} MB/s"
        return str(mask(key, value))


def run_token_command(command: str) -> str:
    """Run ``command`` (split like a shell would, no shell) and return its first output line."""
    import shlex
    import subprocess

    from ._exceptions import AuthenticationError

    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True,
            timeout=_TOKEN_COMMAND_TIMEOUT, check=False,
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise AuthenticationError(None, f"token_command could not run: {type(exc).__name__}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[0].strip():
        raise AuthenticationError(
            None, f"token_command exited with status {done.returncode} and printed no token"
        )
    return lines[0].strip()


def _parse(key: str, raw: object, where: str, path: Path) -> Value:
    try:
        return SETTINGS[key](raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(where, f"{exc}, got {raw!r}" if key not in SECRET_KEYS else str(exc),
                          path=str(path)) from None


def resolve(
    flags: Optional[Mapping[str, object]] = None,
    *,
    profile: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> ResolvedSettings:
    """Resolve every setting: ``flags`` (``None`` values are unset) > ``KOODRIVE_*`` >
    the profile > defaults.  ``profile`` is ``--profile``; else ``KOODRIVE_PROFILE``,
    else the file's ``default_profile``, else a profile named ``default`` if there is one."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    config = load_config(path)
    profiles = config.profiles
    chosen = profile or env.get(_PROFILE_ENV) or config.default_profile
    if chosen is not None and chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            "--profile", f"no profile {chosen!r} in {path} (profiles: {known})", path=str(path)
        )
    if chosen is None and "default" in profiles:
        chosen = "default"
    table = profiles.get(chosen, {}) if chosen is not None else {}

    layers: list[tuple[dict[str, Value], dict[str, str]]] = []
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise TypeError(f"unknown settings: {unknown}")
    layers.append((
        {k: _parse(k, v, flag_name(k), path) for k, v in given.items()},
        {k: flag_name(k) for k in given},
    ))
    from_env = {k: env[env_name(k)] for k in SETTINGS if env.get(env_name(k))}
    layers.append((
        {k: _parse(k, v, env_name(k), path) for k, v in from_env.items()},
        {k: env_name(k) for k in from_env},
    ))
    profile_source = f"profile {chosen} ({path})"
    layers.append((
        {k: _parse(k, v, f"profile.{chosen}.{k}", path) for k, v in table.items()},
        {k: profile_source for k in table},
    ))
    layers.append((dict(DEFAULTS), {k: "default" for k in DEFAULTS}))

    values: dict[str, Value] = {}
    source: dict[str, str] = {}
    for layer_values, layer_source in layers:
        for key, value in layer_values.items():
            if key in _CREDENTIAL_KEYS:
                continue
            if key not in values:
                values[key], source[key] = value, layer_source[key]
    for layer_values, layer_source in layers:  # credentials: whole, from one layer
        found = {k: layer_values[k] for k in _CREDENTIAL_KEYS if k in layer_values}
        if not found:
            continue
        kinds = [kind for kind, keys in (("token", ("token",)),
                                          ("app_id/app_secret", ("app_id", "app_secret")),
                                          ("token_command", ("token_command",)))
                 if any(k in found for k in keys)]
        where = next(iter(layer_source[k] for k in found))
        if len(kinds) > 1:
            raise ConfigError("credentials", f"{where}: give only one of {', '.join(kinds)}",
                              path=str(path))
        if kinds == ["app_id/app_secret"] and len(found) != 2:
            missing = "app_secret" if "app_id" in found else "app_id"
            raise ConfigError(missing, f"{where} sets {next(iter(found))} but not {missing}",
                              path=str(path))
        for key, value in found.items():
            values[key], source[key] = value, layer_source[key]
        break
    return ResolvedSettings(profile=chosen, config_path=path, source=source, **values)  # type: ignore[arg-type]
