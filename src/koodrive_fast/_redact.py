"""Keep secrets out of logs, reprs and exception messages.

``redact_url`` blanks the secret query parameters of presigned URLs
(``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token`` and token-like
parameters) but keeps the rest readable for debugging; ``redact_text`` does the
same to every URL-ish fragment inside free text; ``redact_headers`` blanks
``Authorization`` and cookie headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["REDACTED", "SECRET_QUERY_PARAMS", "redact_url", "redact_text", "redact_headers"]

REDACTED = "REDACTED"

#: Query parameters whose values are secrets (compared case-insensitively).
SECRET_QUERY_PARAMS = (
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "Signature",
    "token",
    "access_token",
    "kdstoken",
)

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

_PARAM_RE = re.compile(
    r"(?P<lead>(?:^|[?&;\s\"'(]))(?P<name>"
    + "|".join(re.escape(p) for p in SECRET_QUERY_PARAMS)
    + r")=(?P<value>[^&#\s\"'<>)]*)",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(?P<scheme>Bearer[ +])[^\s,\"']+", re.IGNORECASE)
_HMAC_SIG_RE = re.compile(r"(?P<lead>Signature=)[0-9a-fA-F]{16,}")


def _sub_params(text: str) -> str:
    return _PARAM_RE.sub(lambda m: f"{m.group('lead')}{m.group('name')}={REDACTED}", text)


def redact_url(url: object) -> str:
    """``url`` with secret query values replaced by ``REDACTED``.

    >>> redact_url("https://h/o?partNumber=2&X-Amz-Signature=abc&X-Amz-Credential=AK%2Fx")
    'https://h/o?partNumber=2&X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED'
    """
    return _sub_params(str(url))


def redact_text(text: str) -> str:
    """Redact presigned-URL secrets, bearer tokens and HMAC signatures in free text."""
    text = _sub_params(text)
    text = _BEARER_RE.sub(lambda m: f"{m.group('scheme')}{REDACTED}", text)
    return _HMAC_SIG_RE.sub(lambda m: f"{m.group('lead')}{REDACTED}", text)


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, str]:
    """A copy of ``headers`` with authorization/cookie values replaced."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {
        name: (REDACTED if name.lower() in _SECRET_HEADERS else value) for name, value in items
    }
