"""Credentials and the request-identity helpers of KooDrive (protocol brief §2, §9.5).

Two credentials, one interface (``authorization(...)`` → header value):

* :class:`BearerToken` — ``Authorization: Bearer <token>`` (a space, as in
  RFC 6750; the docs' ``Bearer+token`` is read as notation).
* :class:`AppCredentials` — the app-auth HMAC-SHA256 scheme (§2.3):
  ``HMAC-SHA256 AppId=<id>,SignedHeaders=host;x-date;x-user-id,Signature=<hex>``.

Both send ``X-User-Id`` and a fresh ``X-Date`` on every request.  Helpers:
:func:`new_trace_id`, :func:`format_x_date`, :func:`pre_hash`,
:func:`proof_code` and :func:`proof_origin`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
import string
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Optional, Protocol, Union
from urllib.parse import quote

from ._exceptions import ValidationError

__all__ = [
    "Credentials",
    "BearerToken",
    "AppCredentials",
    "new_trace_id",
    "format_x_date",
    "parse_x_date",
    "pre_hash",
    "proof_code",
    "proof_range",
    "proof_origin",
    "canonical_request",
    "app_signature",
    "parse_app_authorization",
    "APP_AUTH_ALGORITHM",
    "APP_AUTH_SIGNED_HEADERS",
    "TRACE_ID_LENGTH",
]

APP_AUTH_ALGORITHM = "HMAC-SHA256"
APP_AUTH_SIGNED_HEADERS = ("host", "x-date", "x-user-id")
TRACE_ID_LENGTH = 58
_TRACE_ALPHABET = string.ascii_letters + string.digits + "_"
_X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
PRE_HASH_BYTES = 1024

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]


def _require_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a str, got {type(value).__name__}")
    if not value or value != value.strip() or any(c in value for c in "\r\n"):
        raise ValidationError(field, "must be non-empty, without surrounding spaces or newlines")
    return value


class Credentials(Protocol):
    """What the client needs from a credential."""

    @property
    def user_id(self) -> str: ...

    def authorization(
        self, *, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """The ``Authorization`` header value for a request with these parts."""
        ...


@dataclasses.dataclass(frozen=True, repr=False)
class BearerToken:
    """An access token (the web front end's "AT"); sent as ``Bearer <token>``."""

    token: str
    user_id: str

    def __post_init__(self) -> None:
        _require_text(self.token, "token")
        _require_text(self.user_id, "user_id")

    def authorization(
        self, *, method: str = "", path: str = "", query: str = "",
        headers: Mapping[str, str] | None = None, body: bytes = b"",
    ) -> str:
        return f"Bearer {self.token}"

    def __repr__(self) -> str:
        return f"BearerToken(token='***', user_id={self.user_id!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class AppCredentials:
    """App-auth credentials: requests are signed with HMAC-SHA256 (§2.3)."""

    app_id: str
    app_secret: str
    user_id: str

    def __post_init__(self) -> None:
        _require_text(self.app_id, "app_id")
        _require_text(self.app_secret, "app_secret")
        _require_text(self.user_id, "user_id")
        if any(c in self.app_id for c in ", ="):
            raise ValidationError("app_id", "must not contain ',', '=' or spaces")

    def authorization(
        self, *, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        signature = app_signature(
            self.app_secret, method=method, path=path, query=query, headers=headers, body=body
        )
        return (
            f"{APP_AUTH_ALGORITHM} AppId={self.app_id},"
            f"SignedHeaders={';'.join(APP_AUTH_SIGNED_HEADERS)},Signature={signature}"
        )

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id!r}, app_secret='***', user_id={self.user_id!r})"


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: tuple[str, ...] = APP_AUTH_SIGNED_HEADERS,
) -> str:
    """The §2.3 step-1 canonical request.

    URI: each segment RFC 3986-encoded (of its decoded form), always ending in
    ``/``; query: ``name=value`` pairs sorted, empty values kept; headers:
    lowercase name, trimmed value, one per line; payload: hex SHA-256 of the
    raw body bytes (the brief's §14.16 reading, as in Huawei APIG).
    ``headers`` lookup is case-insensitive.
    """
    from urllib.parse import parse_qsl, unquote

    segments = [_encode(unquote(seg)) for seg in path.split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(
        (_encode(name), _encode(value)) for name, value in parse_qsl(query, keep_blank_values=True)
    )
    canonical_query = "&".join(f"{name}={value}" for name, value in pairs)
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in signed_headers:
        if name not in lowered:
            raise ValidationError(f"headers.{name}", "is required by app auth")
        lines.append(f"{name}:{lowered[name].strip()}\n")
    return "\n".join(
        [
            method.upper(),
            uri,
            canonical_query,
            "".join(lines),
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def app_signature(
    app_secret: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: tuple[str, ...] = APP_AUTH_SIGNED_HEADERS,
) -> str:
    """Lowercase-hex HMAC-SHA256 of the §2.3 string-to-sign with ``app_secret``."""
    canonical = canonical_request(method, path, query, headers, body, signed_headers)
    string_to_sign = f"{APP_AUTH_ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(app_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def parse_app_authorization(value: str) -> tuple[str, tuple[str, ...], str]:
    """Split an app-auth header into ``(app_id, signed_headers, signature)``.

    Raises ``ValueError`` when ``value`` is not of the §2.3 form (servers use this).
    """
    prefix = APP_AUTH_ALGORITHM + " "
    if not value.startswith(prefix):
        raise ValueError("not an HMAC-SHA256 authorization")
    fields: dict[str, str] = {}
    for item in value[len(prefix):].split(","):
        name, sep, field_value = item.strip().partition("=")
        if not sep:
            raise ValueError(f"malformed authorization item {name!r}")
        fields[name] = field_value
    try:
        app_id, signed, signature = fields["AppId"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as exc:
        raise ValueError(f"authorization lacks {exc.args[0]}") from None
    return app_id, tuple(h for h in signed.lower().split(";") if h), signature


def new_trace_id() -> str:
    """A random ``X-Traceid``: 58 characters from ``[A-Za-z0-9_]``."""
    return "".join(secrets.choice(_TRACE_ALPHABET) for _ in range(TRACE_ID_LENGTH))


def format_x_date(dt: Optional[datetime] = None) -> str:
    """``X-Date`` value ``yyyyMMddTHHmmssZ`` in UTC (now when ``dt`` is None).

    A naive ``dt`` is taken to be UTC already.
    """
    if dt is None:
        dt = datetime.now(timezone.utc)
    elif dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime(_X_DATE_FORMAT)


def parse_x_date(value: str) -> datetime:
    """Inverse of :func:`format_x_date` (aware UTC datetime); ``ValueError`` if malformed."""
    if len(value) != 16:
        raise ValueError(f"X-Date must look like 20240909T033325Z, got {value!r}")
    return datetime.strptime(value, _X_DATE_FORMAT).replace(tzinfo=timezone.utc)


def _read_range(source: Source, start: int, end: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(memoryview(source)[start:end])
    if isinstance(source, str) or isinstance(source, os.PathLike):
        with open(source, "rb") as handle:
            handle.seek(start)
            return handle.read(end - start)
    raise TypeError(f"source must be bytes or a path, got {type(source).__name__}")


def pre_hash(path_or_bytes: Source) -> str:
    """``preHash``: lowercase-hex SHA-256 of the first 1024 bytes (all of a shorter file)."""
    return hashlib.sha256(_read_range(path_or_bytes, 0, PRE_HASH_BYTES)).hexdigest()


def proof_range(size: int, origin_value: str) -> tuple[int, int]:
    """The byte range ``[start, end)`` that :func:`proof_code` hashes (§9.5 steps 1-2).

    ``seed`` = hex SHA-256 of ``origin_value``; the last 8 bytes of SHA-256(seed)
    read big-endian with the top bit cleared, mod ``size``, give ``start``.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValidationError("length", f"must be a positive int for a proof range, got {size!r}")
    seed = hashlib.sha256(origin_value.encode("utf-8")).hexdigest()
    tail = hashlib.sha256(seed.encode("ascii")).digest()[24:32]
    value = int.from_bytes(tail, "big") & 0x7FFF_FFFF_FFFF_FFFF
    start = value % size
    return start, min(start + 8, size)


def proof_code(source: Source, size: int, origin_value: str) -> Optional[str]:
    """``proofCode`` (§9.5): hex SHA-256 of 8 file bytes at an identity-derived offset.

    ``origin_value`` comes from :func:`proof_origin`.  ``None`` for ``size == 0``.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValidationError("length", f"must be an int >= 0, got {size!r}")
    if size == 0:
        return None
    start, end = proof_range(size, origin_value)
    data = _read_range(source, start, end)
    if len(data) != end - start:
        raise ValidationError("length", f"source has fewer than {end} bytes (size says {size})")
    return hashlib.sha256(data).hexdigest()


def proof_origin(credentials: Union[BearerToken, AppCredentials]) -> str:
    """The ``originValue`` of §9.5 for these credentials.

    App auth: the ``X-User-Id`` value.  Token auth: the full ``Authorization``
    header value, i.e. ``"Bearer <token>"`` (our answer to open question §14.7;
    the local server does the same with the header it receives).
    """
    if isinstance(credentials, AppCredentials):
        return credentials.user_id
    if isinstance(credentials, BearerToken):
        return credentials.authorization()
    raise TypeError(f"unsupported credentials {type(credentials).__name__}")
