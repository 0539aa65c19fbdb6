"""AWS Signature Version 4 in query-string ("presigned URL") form.

Used by the local server to issue part-upload and download URLs and to
verify them when they come back, exactly as an S3-compatible storage node
does: every query parameter except ``X-Amz-Signature`` is signed (so the
``X-Amz-Iteration-Hash-Ctx`` a URL carries cannot be altered), and so are
the headers named in ``X-Amz-SignedHeaders`` (``content-length;host`` for
part PUTs, which pins the body size).  The payload is ``UNSIGNED-PAYLOAD``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = [
    "ALGORITHM",
    "UNSIGNED_PAYLOAD",
    "PresignError",
    "MalformedPresign",
    "SignatureMismatch",
    "PresignExpired",
    "VerifiedPresign",
    "presign_url",
    "verify_presigned",
    "redact_url",
    "normalize_host",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_MAX_EXPIRES = 7 * 24 * 3600
_REDACTED_PARAMS = ("x-amz-signature", "x-amz-credential", "x-amz-security-token")


class PresignError(ValueError):
    """A presigned URL could not be accepted (base class)."""


class MalformedPresign(PresignError):
    """Required ``X-Amz-*`` parameters are missing or malformed."""


class SignatureMismatch(PresignError):
    """The signature does not match the request (tampered URL, wrong header)."""


class PresignExpired(PresignError):
    """``X-Amz-Date`` + ``X-Amz-Expires`` lies in the past."""


@dataclasses.dataclass(frozen=True)
class VerifiedPresign:
    """What a successfully verified presigned request carried."""

    access_key: str
    signed_at: _dt.datetime
    expires: int
    params: dict[str, str]  # decoded query parameters (last value wins)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_UNRESERVED_OR_SLASH = re.compile(r"[A-Za-z0-9_.~/-]*")


def _uri_encode(text: str, *, keep_slash: bool = False) -> str:
    if (_UNRESERVED_OR_SLASH if keep_slash else _UNRESERVED).fullmatch(text):
        return text  # nothing to encode (most names and values): skip quote()'s per-byte work
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def _canonical_uri(path: str) -> str:
    # S3 style: encode each segment once (no double encoding), keep "/".
    return _uri_encode(unquote(path) or "/", keep_slash=True)


def _parse_query(query: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((unquote(name.replace("+", "%20")), unquote(value.replace("+", "%20"))))
    return pairs


def _canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((_uri_encode(k), _uri_encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_headers(signed: list[str], headers: Mapping[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    lines = []
    for name in signed:
        if name not in lowered:
            raise MalformedPresign(f"signed header {name!r} is missing from the request")
        lines.append(f"{name}:{' '.join(str(lowered[name]).split())}\n")
    return "".join(lines)


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_host(host: str, scheme: str = "http") -> str:
    """``host[:port]`` as HTTP clients send it: lowercase, no default port.

    httpx and botocore lowercase the host and drop ``:80`` (``:443`` for
    https) before sending, so signer and verifier both sign this form.
    """
    host = host.strip().lower()
    name, sep, port = host.rpartition(":")
    if sep and "]" not in port and port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return host


@functools.lru_cache(maxsize=64)  # one HMAC instead of five per URL signed or checked
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signature(
    method: str,
    path: str,
    pairs: list[tuple[str, str]],
    signed: list[str],
    headers: Mapping[str, str],
    *,
    secret_key: str,
    amz_date: str,
    scope: str,
) -> str:
    canonical_request = "\n".join(
        [
            method.upper(),
            _canonical_uri(path),
            _canonical_query(pairs),
            _canonical_headers(signed, headers),
            ";".join(signed),
            UNSIGNED_PAYLOAD,
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    day, region, service, _ = scope.split("/", 3)
    key = _signing_key(secret_key, day, region, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _utc(now: _dt.datetime | None) -> _dt.datetime:
    if now is None:
        return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now.astimezone(_dt.timezone.utc)


def presign_url(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "s3",
    expires: int,
    signed_headers: Iterable[str] = ("content-length", "host"),
    headers: Mapping[str, str] | None = None,
    now: _dt.datetime | None = None,
) -> str:
    """Return ``url`` with SigV4 query authentication appended.

    ``url`` may already carry query parameters (``partNumber``, ``uploadId``,
    ``X-Amz-Iteration-Hash-Ctx``); they are all covered by the signature.
    ``headers`` gives the values of the signed headers the request will send
    (``host`` defaults to the URL's netloc).  ``expires`` is in seconds,
    1..604800.
    """
    if not isinstance(expires, int) or isinstance(expires, bool) or not 1 <= expires <= _MAX_EXPIRES:
        raise ValueError(f"expires must be an int in 1..{_MAX_EXPIRES}, got {expires!r}")
    if not access_key or "/" in access_key:
        raise ValueError("access_key must be non-empty and contain no '/'")
    parts = urlsplit(url)
    signed = sorted({h.lower() for h in signed_headers})
    if "host" not in signed:
        raise ValueError("signed_headers must include 'host'")
    all_headers = {k.lower(): str(v) for k, v in (headers or {}).items()}
    all_headers["host"] = normalize_host(all_headers.get("host", parts.netloc), parts.scheme or "http")
    when = _utc(now)
    amz_date = when.strftime(_AMZ_DATE_FORMAT)
    scope = f"{when:%Y%m%d}/{region}/{service}/aws4_request"
    pairs = _parse_query(parts.query)
    pairs += [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", ";".join(signed)),
    ]
    signature = _signature(
        method, parts.path, pairs, signed, all_headers,
        secret_key=secret_key, amz_date=amz_date, scope=scope,
    )
    query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in pairs)
    query += f"&X-Amz-Signature={signature}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


def verify_presigned(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    secret_for: Callable[[str], str | None],
    region: str | None = None,
    service: str = "s3",
    required_signed_headers: Iterable[str] = ("host",),
    now: _dt.datetime | None = None,
    scheme: str = "http",
) -> VerifiedPresign:
    """Check a presigned request as an S3 storage node would.

    ``path`` is the request path, ``query`` the raw query string,
    ``headers`` the request headers (any case; the host is compared as
    :func:`normalize_host` gives it for ``scheme``).  ``secret_for(access_key)``
    returns the secret or None for an unknown key.  Raises
    :class:`MalformedPresign`, :class:`SignatureMismatch` or
    :class:`PresignExpired`; the signature is checked before the expiry so
    a tampered ``X-Amz-Expires`` cannot extend a URL.
    """
    pairs = _parse_query(query)
    params = dict(pairs)
    try:
        algorithm = params["X-Amz-Algorithm"]
        credential = params["X-Amz-Credential"]
        amz_date = params["X-Amz-Date"]
        expires_text = params["X-Amz-Expires"]
        signed_text = params["X-Amz-SignedHeaders"]
        given = params["X-Amz-Signature"]
    except KeyError as exc:
        raise MalformedPresign(f"query parameter {exc.args[0]} is missing") from None
    if algorithm != ALGORITHM:
        raise MalformedPresign(f"X-Amz-Algorithm must be {ALGORITHM}")
    cred = credential.split("/")
    if len(cred) != 5 or cred[4] != "aws4_request" or cred[3] != service:
        raise MalformedPresign("X-Amz-Credential must be <key>/<date>/<region>/<service>/aws4_request")
    if region is not None and cred[2] != region:
        raise MalformedPresign("X-Amz-Credential names the wrong region")
    try:
        signed_at = _dt.datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise MalformedPresign("X-Amz-Date must be yyyyMMddTHHmmssZ") from None
    if cred[1] != amz_date[:8]:
        raise MalformedPresign("X-Amz-Credential date does not match X-Amz-Date")
    if not expires_text.isdigit() or not 1 <= int(expires_text) <= _MAX_EXPIRES:
        raise MalformedPresign(f"X-Amz-Expires must be an integer in 1..{_MAX_EXPIRES}")
    signed = signed_text.split(";")
    if signed != sorted(set(signed)) or not all(signed):
        raise MalformedPresign("X-Amz-SignedHeaders must be a sorted ';'-list of header names")
    for name in required_signed_headers:
        if name not in signed:
            raise MalformedPresign(f"X-Amz-SignedHeaders must include {name}")
    secret = secret_for(cred[0])
    if secret is None:
        raise SignatureMismatch("unknown access key")
    unsigned = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
    headers = {k.lower(): v for k, v in headers.items()}
    if "host" in headers:
        headers["host"] = normalize_host(headers["host"], scheme)
    expected = _signature(
        method, path, unsigned, signed, headers,
        secret_key=secret, amz_date=amz_date, scope="/".join(cred[1:]),
    )
    if not hmac.compare_digest(expected, given.lower()):
        raise SignatureMismatch("the request signature does not match")
    expires = int(expires_text)
    if _utc(now) > signed_at + _dt.timedelta(seconds=expires):
        raise PresignExpired("Request has expired")
    return VerifiedPresign(cred[0], signed_at, expires, params)


def redact_url(url: str) -> str:
    """``url`` with the signature, credential and token parameters replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    out = []
    for item in parts.query.split("&"):
        name, sep, _ = item.partition("=")
        if unquote(name).lower() in _REDACTED_PARAMS:
            out.append(f"{name}{sep}***")
        else:
            out.append(item)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(out), parts.fragment))
