"""``koodrive-fast serve``: run the local KooDrive-compatible server in the foreground.

Prints the base URL, user id, and each bearer token with its session id at
start (shown on purpose: it is a local development server; the session id is
what ``POST …/session/refresh`` needs); request logs never include tokens or
query strings.  Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="run a local KooDrive-compatible server (for tests and demos)",
        description=(
            "Serve KooDrive's file APIs and a storage node that verifies the hash chain "
            "of every part, on HOST:PORT, keeping data under --data-dir."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0 = pick a free one)")
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="keep metadata and parts here (default: a temporary directory removed at exit)",
    )
    parser.add_argument(
        "--token", action="append", metavar="T",
        help="accepted bearer token; repeat for several (default: the one kept in "
             "DIR/token, made on first start, so restarts keep it)",
    )
    parser.add_argument("--user-id", help="the user id clients send as X-User-Id")
    parser.add_argument(
        "--min-part-size", metavar="BYTES",
        help="minimum part size, a multiple of 64; suffixes like 5MiB (default: 5MiB)",
    )
    parser.add_argument("--url-ttl", type=int, default=3600, metavar="SECONDS",
                        help="lifetime of presigned URLs (default: 3600)")
    parser.add_argument("--token-ttl", type=float, default=None, metavar="SECONDS",
                        help="access tokens expire after this many idle seconds, like KooDrive's "
                             "1200 (default: never)")
    parser.add_argument("--upload-expiry", type=float, default=86400.0, metavar="SECONDS",
                        help="forget unfinished uploads after this long (default: 86400)")
    parser.add_argument("--no-fsync", action="store_true", help="do not fsync part bodies")
    parser.add_argument(
        "--discard-bodies", action="store_true",
        help="hash part bodies but do not keep them (client benchmarks; no downloads)",
    )
    parser.add_argument("--native-receivers", type=int, default=16, metavar="N",
                        help="part bodies received by the C core on their own threads at once; more, "
                             "and all under link emulation, go through the event loop (0: all; default: 16)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    link = parser.add_argument_group(
        "link emulation",
        "Throttle the reading of request bodies (so TCP back-pressure reaches the client as on a real link).",
    )
    link.add_argument("--link-rate", metavar="RATE",
                      help="total rate of all connections together, e.g. 2.5Gbit, 100Mbps, 300MB (bytes/s)")
    link.add_argument("--link-rate-per-connection", metavar="RATE",
                      help="rate of each connection on its own (same units; combines with --link-rate)")
    link.add_argument("--link-latency", type=float, default=0.0, metavar="MS",
                      help="delay before each request body is read, in milliseconds (default: 0)")
    parser.set_defaults(func=run)


def _foreground_server_class() -> Any:
    import contextlib
    import signal
    from collections.abc import Iterator

    import uvicorn

    class ForegroundServer(uvicorn.Server):
        """Stops gracefully on SIGINT/SIGTERM and returns normally (no re-raised signal)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return ForegroundServer


def run(args: argparse.Namespace) -> int:
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    import uvicorn

    _ForegroundServer = _foreground_server_class()

    from ._cli import EXIT_FAILED, CliError
    from ._sizes import parse_rate, parse_size
    from .server import ServerConfig
    from .server._app import create_app
    from .server._front import cancel_receives, front_protocol_class
    from .server._faults import Faults, Stats
    from .server._runner import bind_socket, build_state, persistent_token
    from .server._sessions import Sessions

    settings: dict[str, Any] = {
        "host": args.host, "port": args.port, "url_ttl": args.url_ttl,
        "upload_expiry": args.upload_expiry, "fsync": not args.no_fsync,
        "store_bodies": not args.discard_bodies,
        "log_requests": not args.quiet, "token_ttl": args.token_ttl,
        "native_receivers": args.native_receivers,
    }
    if args.token:
        settings["tokens"] = tuple(args.token)
    if args.user_id:
        settings["user_id"] = args.user_id
    if args.min_part_size is not None:
        try:
            settings["min_part_size"] = parse_size(args.min_part_size)
        except ValueError as exc:
            raise CliError(f"--min-part-size: {exc}") from None
    for flag, name in (("--link-rate", "link_rate"), ("--link-rate-per-connection", "link_rate_per_connection")):
        text = getattr(args, name)
        if text is not None:
            try:
                settings[name] = parse_rate(text)
            except ValueError as exc:
                raise CliError(f"{flag}: {exc}") from None
    if not 0 <= args.link_latency <= 60_000:
        raise CliError("--link-latency: must be in 0..60000 milliseconds")
    settings["link_latency"] = args.link_latency / 1000
    try:
        config = ServerConfig(**settings)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        for name in ("min_part_size", "url_ttl", "token_ttl", "upload_expiry", "port", "host",
                     "tokens", "user_id", "native_receivers"):
            flag = "--token" if name == "tokens" else "--" + name.replace("_", "-")
            message = message.replace(f"ServerConfig.{name}", flag)
        raise CliError(message) from None

    temp_dir = None
    if args.data_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="koodrive-fast-serve-")
        data_dir = Path(temp_dir)
    else:
        data_dir = Path(args.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"--data-dir: cannot create {data_dir}: {exc.strerror}") from None
    try:
        try:
            sock = bind_socket(config.host, config.port)
        except OSError as exc:
            raise CliError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}", EXIT_FAILED) from None
        port = sock.getsockname()[1]
        config.port = port
        try:
            tokens = tuple(config.tokens) if config.tokens else (persistent_token(data_dir),)
        except (OSError, ValueError) as exc:
            raise CliError(f"--data-dir: cannot keep the token: {exc}") from None
        sessions = Sessions.with_tokens(tokens, config.token_ttl, config.clock)
        state = build_state(config, data_dir, Faults(), Stats(), sessions)
        host = f"[{config.host}]" if ":" in config.host else config.host
        print(f"KooDrive-compatible server on http://{host}:{port}", flush=True)
        print(f"  user id:   {config.user_id}", flush=True)
        for token in tokens:
            print(f"  token:     {token}", flush=True)
            print(f"  session:   {sessions.session_of(token)}", flush=True)
        ttl = "never" if config.token_ttl is None else f"after {config.token_ttl:g} idle s"
        print(f"  tokens expire: {ttl}", flush=True)
        print(f"  data dir:  {data_dir}{' (temporary)' if temp_dir else ''}", flush=True)
        print(f"  min part:  {config.min_part_size} bytes, URL TTL {config.url_ttl} s", flush=True)
        if config.link_rate or config.link_rate_per_connection or config.link_latency:
            print(f"  link:      {config.link_rate or 'unlimited'} B/s total, "
                  f"{config.link_rate_per_connection or 'unlimited'} B/s per connection, "
                  f"{config.link_latency * 1000:g} ms latency per request body", flush=True)
        if not args.quiet:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        app = create_app(state)
        uv_config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off",
            http=(front := front_protocol_class(state, config.http_impl)),
            timeout_graceful_shutdown=5,
        )
        try:
            _ForegroundServer(uv_config).run(sockets=[sock])
        finally:
            cancel_receives(front)
            state.store.close()
            sock.close()
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0
