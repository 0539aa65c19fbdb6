"""Access tokens and the sessions they belong to (more-endpoints brief §10.1).

A session (``sessionId``) holds one current access token.  A token expires
after ``ttl`` idle seconds (sliding: every accepted call restarts it, as
KooDrive's 20 idle minutes); ``ttl=None`` means never.  ``refresh`` swaps
a session's token for a new one: the old token stops working at once, and
the refresh itself accepts the session's current token even when expired or
revoked (the session outlives its token; only a logged-off session or a
superseded token is refused).  Thread-safe: tests call in from outside the
server's event loop.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import threading
from collections.abc import Callable, Iterable

__all__ = ["Sessions", "SessionError"]


class SessionError(Exception):
    """A token or session was refused; the message says why (never the token)."""


@dataclasses.dataclass
class _Token:
    session_id: str
    last_used: float
    revoked: bool = False


class Sessions:
    """The server's token table."""

    def __init__(self, ttl: float | None, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._ttl = ttl
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, str] = {}  # session id -> its current token

    @classmethod
    def with_tokens(cls, tokens: Iterable[str], ttl: float | None, clock: Callable[[], float]) -> Sessions:
        """A table where each of ``tokens`` opens its own session."""
        sessions = cls(ttl, clock)
        for token in tokens:
            sessions.open(token)
        return sessions

    def open(self, token: str | None = None) -> tuple[str, str]:
        """A new session; returns ``(access token, session id)``."""
        with self._lock:
            token = token or secrets.token_urlsafe(32)
            session_id = "S" + secrets.token_hex(16)
            self._tokens[token] = _Token(session_id, self._clock())
            self._current[session_id] = token
            return token, session_id

    def _find(self, token: str) -> tuple[str, _Token] | None:
        # compare_digest over every key: no timing hint about valid tokens
        found = None
        for known, record in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = (known, record)
        return found

    def check(self, token: str) -> None:
        """Accept ``token`` for a call (restarting its idle time) or raise :class:`SessionError`."""
        with self._lock:
            found = self._find(token)
            if found is None:
                raise SessionError("access token is invalid or expired")
            _, record = found
            now = self._clock()
            if record.revoked:
                raise SessionError("access token has been revoked")
            if self._ttl is not None and now - record.last_used > self._ttl:
                raise SessionError("access token has expired")
            record.last_used = now

    def refresh(self, token: str, session_id: str) -> str:
        """A new token for the session ``token`` belongs to; the old one dies at once."""
        with self._lock:
            found = self._find(token)
            if found is None or found[1].session_id != session_id or self._current.get(session_id) != found[0]:
                raise SessionError("session is invalid or the token does not belong to it")
            del self._tokens[found[0]]
            new = secrets.token_urlsafe(32)
            self._tokens[new] = _Token(session_id, self._clock())
            self._current[session_id] = new
            return new

    def revoke_token(self, token: str) -> bool:
        """Make ``token`` fail every call (its session can still refresh); False if unknown."""
        with self._lock:
            found = self._find(token)
            if found is None:
                return False
            found[1].revoked = True
            return True

    def close(self, session_id: str) -> bool:
        """Log a session off: its token fails and it cannot refresh; False if unknown."""
        with self._lock:
            token = self._current.pop(session_id, None)
            if token is None:
                return False
            self._tokens.pop(token, None)
            return True

    def session_of(self, token: str) -> str | None:
        with self._lock:
            found = self._find(token)
            return None if found is None else found[1].session_id

    def set_ttl(self, ttl: float | None) -> None:
        with self._lock:
            self._ttl = ttl
