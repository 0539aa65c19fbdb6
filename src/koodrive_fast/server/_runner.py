"""Run the server in a background thread (tests, demos) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from .._config import Limits
from ._app import ServerState, create_app
from ._front import cancel_receives, front_protocol_class
from ._faults import Faults, Stats
from ._sessions import Sessions
from ._settings import ServerConfig, check_token_ttl
from ._store import Store

__all__ = ["LocalServer", "build_state", "bind_socket", "persistent_token"]

TOKEN_FILE = "token"

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


class _ThreadServer(uvicorn.Server):
    """uvicorn.Server whose main loop wakes at once when asked to exit from another thread."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    front: type[asyncio.Protocol] | None = None  # the connection front end's class

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            try:
                await asyncio.wait_for(self._wake.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
            should_exit = await self.on_tick(counter)

    def request_exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closed in between
                pass


def build_state(config: ServerConfig, data_dir: Path, faults: Faults, stats: Stats, sessions: Sessions) -> ServerState:
    """Open the store and resolve generated credentials (kept in the data dir)."""
    store = Store(data_dir, config.clock)
    store.purge_expired(config.clock() - config.upload_expiry)
    access_key = config.access_key or store.setting("s3_access_key", "KDLOCAL" + secrets.token_hex(8).upper())
    secret_key = config.secret_key or store.setting("s3_secret_key", secrets.token_urlsafe(30))
    return ServerState(config, store, faults, stats, sessions, access_key, secret_key, config.url_ttl, config.limits())


def persistent_token(data_dir: Path) -> str:
    """The bearer token kept in ``data_dir/token`` (mode 0600), made on first use.

    So a server restarted on the same data dir keeps the token its clients
    and their resumable uploads hold.
    """
    path = data_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="ascii").strip()
        if not token or not token.isprintable() or " " in token:
            raise ValueError(f"{path} does not hold a token; delete it to make a new one") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return token


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with SO_REUSEADDR (so a restart can rebind the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only then
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class LocalServer:
    """A KooDrive-compatible server on loopback, run in a background thread.

    >>> with LocalServer(min_part_size=64) as srv:       # doctest: +SKIP
    ...     client = srv.client()

    Keyword arguments build a :class:`ServerConfig` (or pass ``config=``).
    Exposes ``base_url``, ``token``, ``user_id``, ``limits``, ``data_dir``,
    ``faults`` (:class:`~koodrive_fast.server._faults.Faults`), ``stats``
    (:class:`~koodrive_fast.server._faults.Stats`), :meth:`restart` and
    :meth:`set_url_ttl`; sessions: :meth:`new_session`, :meth:`revoke_token`,
    :meth:`close_session`, :meth:`set_token_ttl` (``token`` opens a session
    too, whose id is :attr:`session_id`).  A temporary data dir (``data_dir=None``) is
    removed at :meth:`stop`.
    """

    def __init__(self, config: ServerConfig | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("pass either config= or keyword settings, not both")
        self.config = config if config is not None else ServerConfig(**kwargs)
        self.faults = Faults()
        self.stats = Stats()
        tokens = self.config.tokens
        self._tokens: tuple[str, ...] = tuple(tokens) if tokens else (secrets.token_urlsafe(32),)
        # sessions live here, not in the state: they survive restart()
        self._sessions = Sessions.with_tokens(self._tokens, self.config.token_ttl, self.config.clock)
        self._session_id = self._sessions.session_of(self._tokens[0]) or ""
        self._temp_dir: str | None = None
        self._data_dir: Path | None = None
        self._port = self.config.port
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._state: ServerState | None = None
        self._url_ttl = self.config.url_ttl
        self._error: BaseException | None = None

    # ---- public properties
    @property
    def token(self) -> str:
        return self._tokens[0]

    @property
    def tokens(self) -> tuple[str, ...]:
        return self._tokens

    @property
    def session_id(self) -> str:
        """The session of :attr:`token` (refreshing it makes :attr:`token` invalid)."""
        return self._session_id

    def new_session(self) -> tuple[str, str]:
        """Open a session for :attr:`user_id`; returns ``(access token, session id)``."""
        return self._sessions.open()

    def revoke_token(self, token: str) -> bool:
        """Make ``token`` fail with 401 from now on (its session may still refresh)."""
        return self._sessions.revoke_token(token)

    def close_session(self, session_id: str) -> bool:
        """Log a session off: its token fails and refresh is refused."""
        return self._sessions.close(session_id)

    def set_token_ttl(self, seconds: float | None) -> None:
        """Idle lifetime of access tokens from now on (None: never expire)."""
        check_token_ttl(seconds)
        self._sessions.set_ttl(seconds)

    @property
    def user_id(self) -> str:
        return self.config.user_id

    @property
    def limits(self) -> Limits:
        return self.config.limits()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        if not self.running:
            raise RuntimeError("the server is not running")
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise RuntimeError("the server has not been started")
        return self._data_dir

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def access_key(self) -> str:
        """Access key of the presigned URLs (tests craft URLs with it)."""
        return self._require_state().access_key

    @property
    def secret_key(self) -> str:
        return self._require_state().secret_key

    @property
    def store(self) -> Store:
        """The metadata/part store (tests inject disk faults through its ``fault_hook``)."""
        return self._require_state().store

    @property
    def region(self) -> str:
        return self.config.region

    def set_url_ttl(self, seconds: int) -> None:
        """Lifetime of URLs issued from now on (also kept across restarts)."""
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 604800:
            raise ValueError(f"seconds must be an int in 1..604800, got {seconds!r}")
        self._url_ttl = seconds
        if self._state is not None:
            self._state.url_ttl = seconds

    def expire_uploads(self) -> int:
        """Forget every unfinished upload now, as if it had expired (for tests of
        lost tasks); returns how many were forgotten.  Completed files stay."""
        return self._require_state().store.purge_expired(self.config.clock() + 1)

    def client(self, **kwargs: Any) -> Any:
        """A :class:`koodrive_fast.Client` for this server (bearer token, lowered limits)."""
        from .._auth import BearerToken
        from .._client import Client

        kwargs.setdefault("limits", self.limits)
        return Client(self.base_url, BearerToken(self.token, self.user_id), **kwargs)

    # ---- lifecycle
    def start(self) -> LocalServer:
        """Start serving; returns once the port accepts connections."""
        if self.running:
            raise RuntimeError("the server is already running")
        if self._data_dir is None:
            if self.config.data_dir is None:
                self._temp_dir = tempfile.mkdtemp(prefix="koodrive-fast-server-")
                self._data_dir = Path(self._temp_dir)
            else:
                self._data_dir = Path(self.config.data_dir)
                self._data_dir.mkdir(parents=True, exist_ok=True)
        sock = bind_socket(self.config.host, self._port)
        self._port = sock.getsockname()[1]
        try:
            state = build_state(self.config, self._data_dir, self.faults, self.stats, self._sessions)
        except BaseException:
            sock.close()
            raise
        state.url_ttl = self._url_ttl
        self._state = state
        app = create_app(state)
        uv_config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off",
            http=(front := front_protocol_class(state, self.config.http_impl)),
            timeout_graceful_shutdown=2, h11_max_incomplete_event_size=64 * 1024,
        )
        server = _ThreadServer(uv_config)
        server.front = front
        self._server = server
        self._error = None
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(self._serve(server, sock, started))
            except BaseException as exc:  # reported to start()
                self._error = exc
            finally:
                started.set()
                loop.close()
                sock.close()

        self._thread = threading.Thread(target=run, name=f"koodrive-local-server:{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                self._cleanup_after_stop()
                raise RuntimeError(f"local server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("local server did not start in time")
            started.wait(0.01)
        return self

    @staticmethod
    async def _serve(server: _ThreadServer, sock: socket.socket, started: threading.Event) -> None:
        # uvicorn installs signal handlers only on the main thread; this is not it
        try:
            await server.serve(sockets=[sock])
        finally:
            if server.front is not None:
                cancel_receives(server.front)

    def stop(self) -> None:
        """Stop serving (bounded in time) and close the store; removes a temporary data dir."""
        self._shutdown()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
            self._data_dir = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data dir."""
        self._shutdown()
        self.start()

    def _shutdown(self) -> None:
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.request_exit()
            thread.join(_STOP_TIMEOUT / 2)
            if thread.is_alive():
                server.force_exit = True
                thread.join(_STOP_TIMEOUT / 2)
        self._cleanup_after_stop()

    def _cleanup_after_stop(self) -> None:
        if self._state is not None:
            self._state.store.close()
            self._state = None
        self._server = None
        self._thread = None

    def _require_state(self) -> ServerState:
        if self._state is None:
            raise RuntimeError("the server is not running")
        return self._state

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"http://{self.config.host}:{self._port}" if self.running else "stopped"
        return f"<LocalServer {where}>"
