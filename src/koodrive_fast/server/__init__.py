"""Local KooDrive-compatible server: the file APIs plus a storage node that
verifies the SHA-256 hash chain, for tests, demos and offline development.

>>> from koodrive_fast.server import LocalServer
>>> with LocalServer(min_part_size=64) as srv:          # doctest: +SKIP
...     print(srv.base_url, srv.user_id, srv.token)

Choices where the protocol brief is silent (its §14):

1. Concurrent mode only: parts after the first must carry ``partOffset`` and
   ``hashCtx`` (else 13000102); there is no serial mode, so parts may be PUT in
   any order (§14.1, §14.2).
2. ``proofCode`` is accepted by ``files/create`` (§14.3).  Under token auth the
   origin value may be the Authorization header value as sent or the bare
   token; big-endian reading of the 8 bytes (§14.7).
3. ``multiParts`` is optional in create; create and uploadUrl take at most 100
   parts per request (13000102 above that) and return URLs for every part
   listed, in *descending* partNumber order, so clients must match by number
   (§14.4).  Re-requesting a URL for a part (same plan) is the refresh path
   (§14.12).
4. ``sha256``/``preHash``/``proofCode`` accepted in either hex case and
   normalised to lowercase.  A 0-byte file with sha256 is a flash hit without
   proofCode; without sha256 it completes with no parts (§14.5).
5. ``Authorization: Bearer <token>`` and ``Bearer+<token>`` both accepted (§14.6).
6. ``X-Amz-Iteration-Hash-Ctx`` is written with keys ``md_len,num,h,nh,nl,hash_type``;
   on reading, ``Nl``/``Nh`` and any order are accepted; ``num`` must be 0 and
   ``md_len`` must match.  SHA-1 contexts (5 words) are accepted (§14.8): the
   chain is checked in SHA-1 and complete re-reads the stored data once to check
   the whole-file SHA-256 (and part 1's SHA-1 end state).
7. A PUT whose context length differs from the planned partOffset is rejected
   at PUT (400 InvalidArgument); a wrong context *value* can only be seen at
   complete (13000402).  A re-PUT replaces the part (§14.9).
8. PUT answers 200 with an ``ETag`` (hex of the part's end state); URLs are
   reusable until they expire (§14.10).
9. No abort/list-parts API; unfinished uploads expire after
   ``ServerConfig.upload_expiry`` (24 h) (§14.11).
10. No rate limits except injected ones: 429 with ``Retry-After`` and code
    ``APIGW.0308``; authentication failures are HTTP 401 with code
    ``APIGW.0301`` (§14.13).  ``partId`` is never populated.
11. Success ``msg`` is ``"Success."``; compare on ``code`` (§14.14).
12. ``autoRename`` is optional (default 2: rename on clash); ``uploadMode``
    must be ``multipart``, ``uploadType`` 1 when given (§14.15).
13. App-auth payload hash = lowercase hex SHA-256 of the raw body (§14.16).
14. Sessions (more-endpoints brief §10.1): each bearer token belongs to a
    session (``LocalServer.session_id``, :meth:`LocalServer.new_session`,
    printed by ``serve``).  Tokens expire after ``token_ttl`` idle seconds
    (sliding; default never, ``serve --token-ttl``) with 401 ``APIGW.0301``.
    ``POST /koodrive/ose/v1/session/refresh`` (``Authorization`` +
    ``x-session-id``, no body, no app auth, no ``X-Date`` needed) answers
    ``{"code": 0, "accessToken": "Bearer <new>"}``; the old token stops
    working **at once** (no grace: a request in flight with it gets 401, which
    a client must answer by retrying with the new token).  The refresh accepts
    the session's current token even when expired or revoked (the session
    outlives its token); a superseded token or a closed session is refused
    with 401.  There is no session expiry and no carrier ``auth/*`` API.
15. Folders are real (``directory``): ``parentFolder`` must be ``root`` (or
    ``DEUI7pa0C24Aroot<containerId>``) or a live folder of the same space, else
    13000304 (13000404 when it is in the recycle bin); files and folders share
    one name space per folder.  Listing, search, paths and recycle-bin jobs,
    and every choice made for them, are described in ``docs/endpoints.md``.

Performance: a connection front end (``_front.py``) reads every request head;
part PUT bodies are read with ``recv_into`` straight into reused
``write_buffer``-sized buffers, hashed from the signed context (C core, GIL
released) and written with ``pwritev`` on worker threads while the loop fills
the next buffer.  Everything else goes to uvicorn + Starlette on the same
connection.  Measured on a 2-core VM (``benchmarks/bench_server_cpu.py``,
1 GiB, 8 MiB parts, bodies discarded): ~1.15 CPU-s per GiB verified, of which
SHA-256 is ~0.62 and the kernel's receive copy ~0.25-0.3 (before: ~1.75-1.95).
Limits: the disk (use ``store_bodies=False`` / ``serve --discard-bodies`` or a
tmpfs data dir to benchmark a client) and ``fsync`` (off by default in
:class:`ServerConfig`, on in ``koodrive-fast serve``).

Slow clients get 408 after ``header_timeout`` / ``body_timeout``; link
emulation (``link_rate``, ``link_rate_per_connection``, ``link_latency``;
``serve --link-rate``...) throttles the reading of request bodies.
"""

from ._app import proof_range
from ._faults import Faults, Stats
from ._runner import LocalServer
from ._settings import DEFAULT_USER_ID, ServerConfig

__all__ = ["LocalServer", "ServerConfig", "Faults", "Stats", "DEFAULT_USER_ID", "proof_range"]
