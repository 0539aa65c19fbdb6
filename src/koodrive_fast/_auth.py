"""Credentials and the request-identity helpers of KooDrive (protocol brief §2, §9.5).

Credentials, one interface (``authorization(...)`` → header value):

* :class:`BearerToken` — a fixed token, ``Authorization: Bearer <token>`` (a
  space, as in RFC 6750; the docs' ``Bearer+token`` is read as notation).
* :class:`AppCredentials` — the app-auth HMAC-SHA256 scheme (§2.3):
  ``HMAC-SHA256 AppId=<id>,SignedHeaders=host;x-date;x-user-id,Signature=<hex>``;
  every request (every retry too) is signed afresh with a new ``X-Date``.
* :class:`TokenProvider` — a token from your callable (a vault, a command).
* :class:`RefreshingBearerToken` — a KooDrive session that the client keeps
  alive through the documented refresh endpoint (more-endpoints brief §10).

The last two are :class:`RefreshableToken` objects: the client renews them shortly
before they expire, and once after a 401 (then retries the call).

All send ``X-User-Id`` and a fresh ``X-Date`` on every request.  Helpers:
:func:`new_trace_id`, :func:`format_x_date`, :func:`pre_hash`,
:func:`proof_code` and :func:`proof_origin`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import math
import os
import secrets
import string
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple, Optional, Protocol, Union
from urllib.parse import quote

from ._exceptions import AuthenticationError, KooDriveError, ValidationError
from ._redact import redact_text
from ._validate import check_seconds

__all__ = [
    "Credentials",
    "BearerToken",
    "AppCredentials",
    "RefreshableToken",
    "TokenProvider",
    "RefreshingBearerToken",
    "IssuedToken",
    "RefreshExchange",
    "RefreshReply",
    "PATH_SESSION_REFRESH",
    "PATH_CARRIER_REFRESH",
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

logger = logging.getLogger("koodrive_fast")

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


# --------------------------------------------------------------------------- refreshable tokens

PATH_SESSION_REFRESH = "/koodrive/ose/v1/session/refresh"
PATH_CARRIER_REFRESH = "/koodrive/ose/v1/auth/refreshToken"
_WAIT_FOR_OTHER_REFRESH = 120.0  # seconds a request waits for another one's refresh
_MAX_CLAIM_ROUNDS = 8  # refreshes by others a request sits through before giving up


@dataclasses.dataclass(frozen=True, repr=False)
class IssuedToken:
    """An access token and, when known, when it expires (wall-clock epoch seconds)."""

    token: str
    expires_at: Optional[float] = None

    def __post_init__(self) -> None:
        _require_text(self.token, "token")
        if self.expires_at is not None and (
            not isinstance(self.expires_at, (int, float))
            or isinstance(self.expires_at, bool)
            or not math.isfinite(self.expires_at)
        ):
            raise ValidationError(
                "expires_at", f"must be epoch seconds or None, got {self.expires_at!r}"
            )

    def __repr__(self) -> str:
        return f"IssuedToken(token='***', expires_at={self.expires_at!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class RefreshExchange:
    """A refresh request for the client to send through its own connection pool.

    ``path`` follows the client's endpoint, as API paths do; ``headers`` are added to the
    client's common ones; ``body`` is JSON, or None for an empty body.
    """

    path: str
    headers: Mapping[str, str]
    body: Optional[dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"RefreshExchange(path={self.path!r}, headers=<{len(self.headers)} redacted>)"


class RefreshReply(NamedTuple):
    """What the client got back: HTTP status, the JSON object (or None), ``code``, ``msg``."""

    status: int
    data: Optional[dict[str, Any]]
    code: Optional[Union[int, str]]
    msg: str

    def __repr__(self) -> str:  # ``data`` holds the new token
        return f"RefreshReply(status={self.status}, code={self.code!r}, data=<redacted>)"


SendRefresh = Callable[[RefreshExchange], RefreshReply]
SendRefreshAsync = Callable[[RefreshExchange], Awaitable[RefreshReply]]


def _authorization_for(token: str) -> str:
    """Header value for an issued token: ``Bearer <t>``; a carrier ``AT …`` token as issued."""
    for prefix in ("Bearer ", "Bearer+"):
        if token.startswith(prefix):
            return "Bearer " + token[len(prefix):]
    if token.startswith(("AT ", "AT+")):
        return token
    return "Bearer " + token


class RefreshableToken:
    """A bearer token that is renewed while in use; base of the refreshing credentials.

    The client calls :meth:`ensure_fresh` (or :meth:`ensure_fresh_async`)
    before each request, and again with ``rejected=`` the header it sent
    after a 401.  One refresh runs at a time, across threads and event
    loops; other requests wait for it and reuse its token (if it fails,
    they fail too, unless the current token is still valid).  A token is renewed ``margin`` seconds before it
    expires (at most half its lifetime early).  An early refresh that fails
    is logged and retried by the next request while the token is still
    valid; once it has expired or was rejected, a failed refresh raises
    :class:`AuthenticationError`.  ``clock`` gives wall-clock epoch seconds.
    The token never appears in a repr, log or message.
    """

    def __init__(
        self, user_id: str, *, margin: float, clock: Callable[[], float]
    ) -> None:
        self._user_id = _require_text(user_id, "user_id")
        self._margin = check_seconds(margin, "margin", positive=False)
        if not callable(clock):
            raise ValidationError("clock", "must be a callable returning epoch seconds")
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._token: Optional[str] = None
        self._refresh_at: Optional[float] = None
        self._expires_at: Optional[float] = None
        self._refreshing = False
        self._round = 0  # refreshes started
        self._failed: Optional[tuple[int, BaseException]] = None
        self._refreshes = 0  # refreshes completed

    # ---- state

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def refresh_count(self) -> int:
        """Tokens obtained so far (from the refresh endpoint or the callable; a token
        given to the constructor does not count)."""
        with self._cond:
            return self._refreshes

    @property
    def expires_at(self) -> Optional[float]:
        """When the current token expires (epoch seconds), if known."""
        with self._cond:
            return self._expires_at

    def authorization(
        self, *, method: str = "", path: str = "", query: str = "",
        headers: Optional[Mapping[str, str]] = None, body: bytes = b"",
    ) -> str:
        """The header for the current token (obtained first if there is none yet)."""
        with self._cond:
            token = self._token
        if token is None:
            self.ensure_fresh(_no_http)
            with self._cond:
                token = self._token
        assert token is not None
        return _authorization_for(token)

    def _install(self, issued: IssuedToken) -> None:
        """Adopt ``issued`` (lock held)."""
        now = self._clock()
        self._token = issued.token
        self._expires_at = issued.expires_at
        if issued.expires_at is None:
            self._refresh_at = None
        else:
            early = min(self._margin, max(0.0, issued.expires_at - now) / 2)
            self._refresh_at = issued.expires_at - early
        self._refreshes += 1

    def _due(self, rejected: Optional[str]) -> bool:
        """Whether the current token must be replaced (lock held)."""
        if self._token is None:
            return True
        if rejected is not None:
            return rejected == _authorization_for(self._token)
        return self._refresh_at is not None and self._clock() >= self._refresh_at

    # ---- coordination: one refresh at a time

    def _usable(self, rejected: Optional[str]) -> bool:
        """Whether a due but unrefreshed token may still be sent (lock held): an early
        refresh failed, but the token was not rejected and has not expired."""
        return (
            rejected is None
            and self._token is not None
            and (self._expires_at is None or self._clock() < self._expires_at)
        )

    def _claim(self, rejected: Optional[str], waited_round: Optional[int]) -> tuple[str, int]:
        """``("fresh"|"mine"|"busy", round)`` (lock held).

        After waiting for another request's refresh that failed: its token is
        used if still :meth:`_usable`, its :class:`AuthenticationError` is
        raised, and after other failures (transport) this request tries itself.
        """
        if not self._due(rejected):
            return "fresh", self._round
        if waited_round is not None and self._failed is not None and self._failed[0] == waited_round:
            if self._usable(rejected):
                return "fresh", self._round
            if isinstance(self._failed[1], AuthenticationError):
                raise AuthenticationError(
                    None, f"another request's token refresh failed: {self._failed[1]}"
                ) from self._failed[1]
        if self._refreshing:
            return "busy", self._round
        self._refreshing = True
        self._round += 1
        self._failed = None
        return "mine", self._round

    def _finish(self, round_: int, issued: Optional[IssuedToken], error: Optional[BaseException]) -> None:
        with self._cond:
            if issued is not None:
                self._install(issued)
            elif error is not None:
                self._failed = (round_, error)
            self._refreshing = False
            self._cond.notify_all()

    def _refresh_failed(self, round_: int, exc: BaseException, rejected: Optional[str]) -> None:
        """Record our failed refresh; re-raise ``exc`` unless the current token may still serve."""
        self._finish(round_, None, exc)
        with self._cond:
            usable = isinstance(exc, Exception) and self._usable(rejected)
            left = None if self._expires_at is None else self._expires_at - self._clock()
        if not usable:
            raise exc
        logger.warning(
            "token refresh failed (%s: %s); the current token is still valid%s",
            type(exc).__name__, redact_text(str(exc)), "" if left is None else f" for {left:.0f} s",
        )

    def _wait_idle(self, deadline: float) -> None:
        """Block until no refresh is running (or ``deadline`` on ``time.monotonic``)."""
        with self._cond:
            while self._refreshing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AuthenticationError(None, "timed out waiting for a token refresh")
                self._cond.wait(remaining)

    def ensure_fresh(self, send: SendRefresh, *, rejected: Optional[str] = None) -> None:
        """Make the current token usable: refresh it if due (or if it is ``rejected``)."""
        deadline = time.monotonic() + _WAIT_FOR_OTHER_REFRESH
        waited: Optional[int] = None
        for _ in range(_MAX_CLAIM_ROUNDS):
            with self._cond:
                state, round_ = self._claim(rejected, waited)
            if state == "fresh":
                return
            if state == "busy":
                self._wait_idle(deadline)
                waited = round_
                continue
            try:
                issued = self._obtain(send)
            except BaseException as exc:
                self._refresh_failed(round_, exc, rejected)
                return
            self._finish(round_, issued, None)
            return
        raise AuthenticationError(None, f"no usable token after {_MAX_CLAIM_ROUNDS} refresh rounds")

    async def ensure_fresh_async(
        self, send: SendRefreshAsync, *, rejected: Optional[str] = None
    ) -> None:
        """:meth:`ensure_fresh` for async clients (never blocks the event loop)."""
        import anyio

        deadline = time.monotonic() + _WAIT_FOR_OTHER_REFRESH
        waited: Optional[int] = None
        for _ in range(_MAX_CLAIM_ROUNDS):
            with self._cond:
                state, round_ = self._claim(rejected, waited)
            if state == "fresh":
                return
            if state == "busy":
                await anyio.to_thread.run_sync(self._wait_idle, deadline, abandon_on_cancel=True)
                waited = round_
                continue
            try:
                issued = await self._obtain_async(send)
            except BaseException as exc:
                self._refresh_failed(round_, exc, rejected)
                return
            self._finish(round_, issued, None)
            return
        raise AuthenticationError(None, f"no usable token after {_MAX_CLAIM_ROUNDS} refresh rounds")

    # ---- what a refresh is (subclasses)

    def _obtain(self, send: SendRefresh) -> IssuedToken:
        raise NotImplementedError

    async def _obtain_async(self, send: SendRefreshAsync) -> IssuedToken:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token='***', user_id={self._user_id!r})"

    # ---- pickling (a copy in another process refreshes on its own)

    def __getstate__(self) -> dict[str, Any]:
        """The token and its times, without the lock or a refresh in progress."""
        with self._cond:
            state = dict(self.__dict__)
        del state["_cond"]
        state.update(_refreshing=False, _failed=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cond = threading.Condition(threading.Lock())


def _no_http(exchange: RefreshExchange) -> RefreshReply:
    raise AuthenticationError(
        None, "this token can only be refreshed by a client (it needs an HTTP call)",
        method="POST", path=exchange.path,
    )


TokenSource = Callable[[], Union[str, IssuedToken]]


class TokenProvider(RefreshableToken):
    """A token from your callable: a vault lookup, a ``token_command``, a file.

    ``fetch()`` returns the token (``str``) or an :class:`IssuedToken` with its
    expiry.  Called for the first request, ``margin`` seconds before the
    expiry, and once after a 401.  Without an expiry, a token is treated as
    valid for ``lifetime`` seconds (``None``: until the server rejects it).
    The callable runs on a worker thread under :class:`AsyncClient`; its
    exceptions (other than :class:`KooDriveError`) become
    :class:`AuthenticationError`.
    """

    def __init__(
        self,
        fetch: TokenSource,
        user_id: str,
        *,
        lifetime: Optional[float] = None,
        margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(user_id, margin=margin, clock=clock)
        if not callable(fetch):
            raise ValidationError("fetch", "must be a callable returning a token")
        self._fetch = fetch
        self._lifetime = None if lifetime is None else check_seconds(lifetime, "lifetime", positive=True)

    def _obtain(self, send: SendRefresh) -> IssuedToken:
        try:
            value = self._fetch()
        except KooDriveError:
            raise
        except Exception as exc:
            raise AuthenticationError(
                None, f"the token callable failed: {type(exc).__name__}"
            ) from exc
        issued = value if isinstance(value, IssuedToken) else IssuedToken(_require_text(value, "token"))
        if issued.expires_at is None and self._lifetime is not None:
            issued = IssuedToken(issued.token, self._clock() + self._lifetime)
        return issued

    async def _obtain_async(self, send: SendRefreshAsync) -> IssuedToken:
        import anyio

        return await anyio.to_thread.run_sync(self._obtain, _no_http)


class RefreshingBearerToken(RefreshableToken):
    """A KooDrive session kept alive through its refresh endpoint (more-endpoints §10).

    Enterprise (``session_id``): ``POST /koodrive/ose/v1/session/refresh`` with
    ``Authorization`` and ``x-session-id``; the answer's top-level
    ``accessToken`` replaces the token.  The documented 20-minute sliding
    idle window is taken as a fixed ``lifetime`` from issue, so the token is
    renewed every ``lifetime - margin`` seconds whether or not calls slid it.

    Carrier (``refresh_token``): ``POST /koodrive/ose/v1/auth/refreshToken``
    with body ``refreshToken``; ``expiresIn`` (seconds) gives the lifetime and
    a returned ``refreshToken`` replaces ours.

    ``access_token`` may carry its scheme (``Bearer …`` as createSession
    returns it; a carrier ``AT …`` token is sent as issued).  ``expires_at``
    (epoch seconds) overrides ``lifetime`` for the first token.
    """

    def __init__(
        self,
        access_token: str,
        user_id: str,
        *,
        session_id: Optional[str] = None,
        refresh_token: Optional[str] = None,
        lifetime: float = 20 * 60.0,
        expires_at: Optional[float] = None,
        margin: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(user_id, margin=margin, clock=clock)
        if (session_id is None) == (refresh_token is None):
            raise ValidationError(
                "session_id", "give exactly one of session_id (enterprise) or refresh_token (carrier)"
            )
        self._session_id = None if session_id is None else _require_text(session_id, "session_id")
        self._refresh_token = (
            None if refresh_token is None else _require_text(refresh_token, "refresh_token")
        )
        self._lifetime = check_seconds(lifetime, "lifetime", positive=True)
        first = IssuedToken(
            _require_text(access_token, "access_token"),
            expires_at if expires_at is not None else self._clock() + self._lifetime,
        )
        with self._cond:
            self._install(first)
            self._refreshes = 0

    @property
    def session_id(self) -> Optional[str]:
        return self._session_id

    def __getstate__(self) -> dict[str, Any]:
        """Refused: copies refreshing one session would invalidate each other's token."""
        raise TypeError(
            "a RefreshingBearerToken cannot be pickled: copies in several processes would each "
            "refresh the same session and invalidate each other's token; give each process a "
            "TokenProvider whose callable reads a token that one process renews"
        )

    def _exchange(self) -> RefreshExchange:
        with self._cond:
            token, refresh_token = self._token, self._refresh_token
        assert token is not None
        authorization = _authorization_for(token)
        if self._session_id is not None:
            return RefreshExchange(
                PATH_SESSION_REFRESH,
                {"Authorization": authorization, "x-session-id": self._session_id},
            )
        return RefreshExchange(
            PATH_CARRIER_REFRESH, {"Authorization": authorization}, {"refreshToken": refresh_token}
        )

    def _issued(self, exchange: RefreshExchange, reply: RefreshReply) -> IssuedToken:
        def failed(why: str) -> AuthenticationError:
            return AuthenticationError(
                reply.code, f"token refresh failed: {why}", http_status=reply.status,
                method="POST", path=exchange.path,
            )

        if not 200 <= reply.status < 300 or reply.code not in (0, None):
            raise failed(reply.msg or f"HTTP {reply.status}")
        data = reply.data or {}
        if self._session_id is not None:
            token = data.get("accessToken")
            if not isinstance(token, str) and isinstance(data.get("data"), dict):
                token = data["data"].get("accessToken")
            if not isinstance(token, str) or not token.strip():
                raise failed("the answer has no accessToken")
            return IssuedToken(token.strip(), self._clock() + self._lifetime)
        info = data.get("data")
        if isinstance(info, dict) and isinstance(info.get("sessionInfo"), dict):
            info = info["sessionInfo"]
        if not isinstance(info, dict) or not isinstance(info.get("accessToken"), str):
            raise failed("the answer has no sessionInfo.accessToken")
        try:
            lifetime = check_seconds(float(info.get("expiresIn", "")), "expiresIn", positive=True)
        except (TypeError, ValueError):
            lifetime = self._lifetime
        rotated = info.get("refreshToken")
        if isinstance(rotated, str) and rotated.strip():
            with self._cond:
                self._refresh_token = rotated.strip()
        return IssuedToken(info["accessToken"].strip(), self._clock() + lifetime)

    def _obtain(self, send: SendRefresh) -> IssuedToken:
        exchange = self._exchange()
        return self._issued(exchange, send(exchange))

    async def _obtain_async(self, send: SendRefreshAsync) -> IssuedToken:
        exchange = self._exchange()
        return self._issued(exchange, await send(exchange))

    def __repr__(self) -> str:
        kind = "enterprise" if self._session_id is not None else "carrier"
        return f"RefreshingBearerToken(token='***', user_id={self._user_id!r}, {kind})"


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
    """A random ``X-Traceid``: 58 characters from ``[A-Za-z0-9_]``.

    One read of the OS's random source (``secrets.choice`` per character made
    58 and cost ~1.6 ms per upload); bytes 252..255 are redrawn so each of the
    63 characters stays equally likely.
    """
    out: list[str] = []
    size = len(_TRACE_ALPHABET)
    limit = 256 - 256 % size
    while len(out) < TRACE_ID_LENGTH:  # ends: each byte is usable with p = 252/256
        out.extend(_TRACE_ALPHABET[b % size] for b in secrets.token_bytes(TRACE_ID_LENGTH + 8) if b < limit)
    return "".join(out[:TRACE_ID_LENGTH])


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


def proof_origin(credentials: Union[BearerToken, AppCredentials, RefreshableToken]) -> str:
    """The ``originValue`` of §9.5 for these credentials.

    App auth: the ``X-User-Id`` value.  Token auth: the full ``Authorization``
    header value, i.e. ``"Bearer <token>"`` (our answer to open question §14.7;
    the local server does the same with the header it receives).
    """
    if isinstance(credentials, AppCredentials):
        return credentials.user_id
    if isinstance(credentials, (BearerToken, RefreshableToken)):
        return credentials.authorization()
    raise TypeError(f"unsupported credentials {type(credentials).__name__}")
