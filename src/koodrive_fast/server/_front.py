"""The connection front end: reads every request head, runs part PUTs itself,
hands everything else to uvicorn; slow-client timeouts and link emulation.

Why: through uvicorn + Starlette a part body arrives as a new ``bytes`` per
socket read (≤ 256 KiB, freshly allocated pages each time), is copied into
the request cycle's buffer, and costs a task switch and two ``epoll_ctl``
calls per chunk.

A part PUT's body normally goes to a receiver thread (``server/_recv.py``):
once the head is parsed and the URL checked, the loop stops reading the
connection and the C core's ``kd_recv_body`` receives the body from a
duplicate of its socket, hashes it from the signed context (sharing passes of
the two-message SHA-NI kernel with another receiver when two hash at once)
and ``pwrite``\\ s it, with no Python per chunk; the loop answers when it is
done.  At most ``native_receivers`` bodies go that way at once; the others,
and all bodies under link emulation or an injected fault, are read by the
loop itself with ``recv_into`` straight into reused ``write_buffer``-sized
buffers (:class:`asyncio.BufferedProtocol`), each full buffer hashed and
``pwritev``\\ d on a worker thread while the loop fills the other.

Every other request (the JSON API, downloads, PUTs on a connection whose
previous response is still being written, anything unusual) is fed to a
uvicorn protocol instance that shares the connection, so Starlette answers
it; a head this module does not fully understand (chunked bodies, upgrades,
pipelined bytes) switches the connection to uvicorn for good.

Timeouts: a request head must be complete within ``header_timeout`` seconds
of the front end starting to wait for it (so idle keep-alive connections
close then too); a body may stall at most ``body_timeout`` seconds between
reads (time spent paused by the server itself does not count).  Either
answers 408 and closes.

Link emulation: request bodies (all of them) are read through token buckets,
one shared by all connections (``link_rate``) and one per connection
(``link_rate_per_connection``); when a bucket runs dry reading pauses, so the
client's socket buffer fills and TCP back-pressure slows the sender.
``link_latency`` pauses once before each body.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ._app import (BUCKET, INTERNAL_ERROR, PartJob, S3Failure, ServerState, _App, failure_bytes, fault_failure,
                   s3_error_bytes)
from ._recv import BodyCut, BodyTimedOut, NativeBody, ReceiverThreads
from ._store import valid_file_id

__all__ = ["TokenBucket", "cancel_receives", "front_protocol_class"]

log = logging.getLogger("koodrive_fast.server")

MAX_HEAD = 64 * 1024
_SCRATCH = 64 * 1024
#: A natively received body passes through this much buffer at a time.  Large
#: reads matter on loopback: each read that frees socket buffer space may send
#: a window update, and the reader then pays for moving the client's next
#: segments (1 MiB: 0.71-0.79 CPU-s/GiB in all, 64 KiB: 0.89-0.93).
NATIVE_BUFFER = 1024 * 1024


class TokenBucket:
    """Bytes per second with a burst allowance; thread-safe, clock injectable.

    :meth:`take` spends ``n`` bytes (the balance may go negative) and returns
    how long the reader must wait before reading more.
    """

    def __init__(self, rate: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 bytes per second")
        self.rate = rate
        self.burst = burst if burst is not None else max(64 * 1024, rate // 50)  # 20 ms of traffic
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._stamp = clock()
        self.taken = 0

    def take(self, n: int) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            self.taken += n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class _ConnTransport(asyncio.Transport):
    """The transport the inner (uvicorn) protocol sees: its reading pauses and
    closes go through the front end, which owns the connection."""

    def __init__(self, front: _Front) -> None:
        super().__init__()
        self._front = front
        self._real: asyncio.Transport = front.transport

    def write(self, data: Any) -> None:
        self._real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._real.writelines(list_of_data)

    def is_closing(self) -> bool:
        return self._real.is_closing()

    def close(self) -> None:
        self._front.close_when_idle()

    def abort(self) -> None:
        self._real.abort()

    def pause_reading(self) -> None:
        self._front.pause("inner")

    def resume_reading(self) -> None:
        self._front.resume("inner")

    def is_reading(self) -> bool:
        return self._real.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._real.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._real.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._real.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._real.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._real.can_write_eof()

    def write_eof(self) -> None:
        self._real.write_eof()


class _BufferPool:
    """Reused body buffers (fresh ones would page-fault on every read)."""

    def __init__(self, size: int, keep: int = 32) -> None:
        self.size, self._keep, self._free = size, keep, list[bytearray]()
        self._lock = threading.Lock()

    def get(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(self.size)

    def put(self, buf: bytearray) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)


class _Link:
    """Server-wide shaping state: the shared bucket and the buffer pool."""

    def __init__(self, state: ServerState) -> None:
        config = state.config
        self.total = TokenBucket(config.link_rate) if config.link_rate else None
        self.per_connection = config.link_rate_per_connection
        self.latency = config.link_latency
        self.pool = _BufferPool(config.write_buffer)
        self.native_free = config.native_receivers  # receives that may start (loop thread only)
        self.native_pool = _BufferPool(NATIVE_BUFFER)
        self.receivers = ReceiverThreads(config.native_receivers)
        self.live: set[NativeBody] = set()  # bodies being received (any thread)

    def cancel_receives(self) -> None:
        """Stop every body still being received (the server is stopping)."""
        for body in list(self.live):
            body.cancel()


class _Put:
    """A part body being received by the front end."""

    def __init__(self, path: str, remaining: int) -> None:
        self.path = path  # for the request log (never the query: it holds signatures)
        self.started = time.monotonic()
        self.remaining = remaining
        self.received = 0
        self.job: PartJob | None = None
        self.error: bytes | None = None  # answer once the body is drained
        self.drop_after: int | None = None
        self.buffers: list[bytearray] = []
        self.filling: bytearray | None = None
        self.fill = 0
        self.offset = 0
        self.writing: asyncio.Future[None] | None = None
        self.waiting_full = False
        self.native: NativeBody | None = None  # set while a receiver thread reads the body


class _Front(asyncio.BufferedProtocol):
    """One connection: see the module docstring."""

    core: _App
    link: _Link
    inner_class: type[asyncio.Protocol]

    def __init__(self, **inner_kwargs: Any) -> None:
        self.loop = inner_kwargs.get("_loop") or asyncio.get_running_loop()
        self.config = self.core.config
        self.inner: Any = self.inner_class(**inner_kwargs)
        self.transport: Any = None
        self.head = bytearray(MAX_HEAD)
        self.head_len = 0
        self.mode = "head"  # head | latency | forward | put | responding | passthrough | closed
        self.forward_left = 0
        self.put: _Put | None = None
        self.keep_alive = True
        self.paused: set[str] = set()
        self.close_requested = False
        self.timer: asyncio.TimerHandle | None = None
        self.bucket = TokenBucket(self.link.per_connection) if self.link.per_connection else None

    # ---- asyncio protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.inner.connection_made(_ConnTransport(self))
        self._arm(self.config.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self.mode = "closed"
        self._disarm()
        if self.put is not None:
            if self.put.native is not None:
                self.put.native.cancel()
            self._release_put(self.put)
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.mode == "head":
            return memoryview(self.head)[self.head_len:]
        if self.mode == "put" and self.put is not None:
            put = self.put
            if put.job is not None and put.filling is not None:
                room = min(len(put.filling) - put.fill, put.remaining, self._burst_cap())
                return memoryview(put.filling)[put.fill: put.fill + room]
            return memoryview(self.head)[: max(1, min(_SCRATCH, put.remaining, self._burst_cap()))]
        if self.mode == "forward":
            return memoryview(self.head)[: max(1, min(_SCRATCH, self.forward_left, self._burst_cap()))]
        return memoryview(self.head)[:_SCRATCH]

    def buffer_updated(self, nbytes: int) -> None:
        if self.mode == "head":
            self.head_len += nbytes
            self._parse_head()
        elif self.mode == "put":
            self._put_bytes(nbytes)
        elif self.mode == "forward":
            self.forward_left -= nbytes
            self._shape(nbytes)
            self.inner.data_received(bytes(self.head[:nbytes]))
            if self.forward_left <= 0:
                self._await_head()
        elif self.mode == "passthrough":
            self.inner.data_received(bytes(self.head[:nbytes]))

    # ---- reading control
    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self.paused.add(reason)
        if self.mode in ("put", "forward") and reason != "inner":
            self._disarm()  # the server's own pauses do not count against the client

    def resume(self, reason: str) -> None:
        if reason not in self.paused:
            return
        self.paused.discard(reason)
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            if self.mode in ("put", "forward"):
                self._arm(self.config.body_timeout, self._body_timed_out)

    def close_when_idle(self) -> None:
        """The inner protocol's close: deferred while the front end is mid-request."""
        if self.mode in ("put", "responding"):
            self.close_requested = True
        elif self.transport is not None:
            self.transport.close()

    def _burst_cap(self) -> int:
        caps = [b.burst for b in (self.link.total, self.bucket) if b is not None]
        return min(caps) if caps else 1 << 62

    def _shape(self, nbytes: int) -> None:
        delay = 0.0
        for bucket in (self.link.total, self.bucket):
            if bucket is not None:
                delay = max(delay, bucket.take(nbytes))
        if delay > 0:
            self.pause("link")
            self.loop.call_later(delay, self.resume, "link")

    def _body_starts(self) -> None:
        if not self.paused:
            self._arm(self.config.body_timeout, self._body_timed_out)

    # ---- timers
    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _head_timed_out(self) -> None:
        if self.mode != "head":
            return
        if self._inner_busy():  # still answering the previous request: not the client's wait
            self._arm(self.config.header_timeout, self._head_timed_out)
            return
        if self.head_len:
            self._send_and_close(_plain(408, "Request Timeout", "request head not received in time"))
        else:  # idle keep-alive connection
            self.transport.close()

    def _body_timed_out(self) -> None:
        if self.mode == "put" and self.put is not None:
            self._release_put(self.put)
            self._send_and_close(s3_error_bytes(408, "RequestTimeout",
                                                "Your socket connection to the server was not read from or written to within the timeout period."))
        elif self.mode == "forward":
            self.mode = "closed"
            self.transport.close()

    def _send_and_close(self, data: bytes) -> None:
        self.mode = "closed"
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()

    def _inner_busy(self) -> bool:
        return not getattr(getattr(self.inner, "cycle", None), "response_complete", True)

    # ---- request heads
    def _await_head(self) -> None:
        self.mode = "head"
        self.head_len = 0
        if self.close_requested or not self.keep_alive:
            self.transport.close()
            return
        self._arm(self.config.header_timeout, self._head_timed_out)

    def _parse_head(self) -> None:
        end = self.head.find(b"\r\n\r\n", 0, self.head_len)
        if end < 0:
            if self.head_len >= MAX_HEAD:
                self._send_and_close(_plain(431, "Request Header Fields Too Large", "request head too large"))
            return
        self._disarm()
        head_end = end + 4
        raw = bytes(self.head[:self.head_len])
        lines = raw[:end].split(b"\r\n")
        parsed = _parse_request(lines)
        if parsed is None or self._inner_busy():
            return self._passthrough(raw)
        method, target, version, headers = parsed
        extra = raw[head_end:]
        keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        length_text = headers.get("content-length", "0")
        if "transfer-encoding" in headers or "upgrade" in headers or not length_text.isdigit():
            return self._passthrough(raw)
        length = int(length_text)
        if len(extra) > length:  # pipelined: uvicorn handles it
            return self._passthrough(raw)
        if length and self.link.latency > 0:  # the body "arrives" one latency later
            self.mode = "latency"
            self.pause("latency")
            self.loop.call_later(self.link.latency, self._after_latency, raw, method, target, headers, length,
                                 extra, keep_alive)
            return None
        self._dispatch(raw, method, target, headers, length, extra, keep_alive)
        return None

    def _after_latency(self, raw: bytes, method: str, target: str, headers: dict[str, str], length: int,
                       extra: bytes, keep_alive: bool) -> None:
        if self.mode != "latency":  # closed meanwhile
            return
        self._dispatch(raw, method, target, headers, length, extra, keep_alive)
        self.resume("latency")

    def _dispatch(self, raw: bytes, method: str, target: str, headers: dict[str, str], length: int,
                  extra: bytes, keep_alive: bool) -> None:
        """A part PUT to the front end's own path, anything else to uvicorn."""
        path, _, query = target.partition("?")
        if method == "PUT" and path.startswith(BUCKET + "/") and valid_file_id(unquote(path[len(BUCKET) + 1:])):
            self.keep_alive = keep_alive  # (forwarded requests: uvicorn closes as asked)
            self._start_put(unquote(path), query, headers, length, extra)
            return
        self.inner.data_received(raw)
        self.forward_left = length - len(extra)
        if self.forward_left > 0:
            self.mode = "forward"
            self._body_starts()
        else:
            self._await_head()
        if extra:
            self._shape(len(extra))

    def _passthrough(self, raw: bytes) -> None:
        self.mode = "passthrough"
        self._disarm()
        self.inner.data_received(raw)

    # ---- part PUTs
    def _start_put(self, path: str, query: str, headers: dict[str, str], length: int, extra: bytes) -> None:
        core = self.core
        file_id = path[len(BUCKET) + 1:]
        put = _Put(path, length)
        self.put = put
        self.mode = "put"
        unset_keep_alive = getattr(self.inner, "_unset_keepalive_if_required", None)
        if unset_keep_alive is not None:  # uvicorn's idle timer must not close us mid-body
            unset_keep_alive()
        number, delay, fault = core.put_arrived(file_id, query)
        if fault is not None:
            if fault.kind == "drop":
                put.drop_after = fault.after_bytes
            else:
                put.error = failure_bytes(fault_failure(fault))
        else:
            try:
                put.job = core.begin_part(file_id, number, path, query, headers, "http")
            except S3Failure as exc:
                put.error = failure_bytes(exc)
            except Exception:
                log.exception("internal error starting a part")
                put.error = failure_bytes(INTERNAL_ERROR)
        if headers.get("expect", "").lower() == "100-continue" and length:
            if put.error is not None:  # the client has not sent the body: answer now
                self.keep_alive = False
                self._respond(put.error)
                return
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if delay:
            self.pause("fault-latency")
            self.loop.call_later(delay, self.resume, "fault-latency")
        elif put.job is not None and length > len(extra) and self._receive_natively(put, extra):
            return
        if put.job is not None:
            put.filling = self.link.pool.get()
            put.buffers.append(put.filling)
        self._body_starts()
        if extra:
            self._take_bytes(put, extra)  # may finish the body
        elif put.remaining == 0:
            self._body_done(put)

    def _receive_natively(self, put: _Put, extra: bytes) -> bool:
        """Hand the body to a receiver thread (C core); False if this one cannot go that way."""
        link = self.link
        if link.native_free <= 0 or link.total is not None or self.bucket is not None:
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None or sock.type != socket.SOCK_STREAM or self.transport.get_extra_info("sslcontext") is not None:
            return False
        job = put.job
        assert job is not None
        buffer = link.native_pool.get()
        try:
            body = NativeBody(sock.fileno(), put.remaining - len(extra), buffer, self.config.body_timeout,
                              family=sock.family)
        except OSError:  # no descriptor left for the duplicate: the loop reads it
            link.native_pool.put(buffer)
            return False
        link.live.add(body)
        try:
            link.receivers.submit(lambda: self._native_receive(put, job, body, extra, buffer))
        except RuntimeError:  # no thread could start: the loop reads this body
            link.live.discard(body)
            body.close()
            link.native_pool.put(buffer)
            return False
        link.native_free -= 1
        self.core.state.stats._count_native()
        put.job, put.native = None, body  # the receiver owns the job now
        self.pause("native")
        return True

    def _native_receive(self, put: _Put, job: PartJob, body: NativeBody, extra: bytes, buffer: bytearray) -> None:
        """Receiver thread: the whole body, then the part's record; the answer goes back to the loop."""
        outcome: str | BaseException
        try:
            if extra:
                try:
                    job.sink.write([extra], 0)
                except OSError as exc:
                    body.drain_only(exc.errno or errno.EIO)
            job.sink.receive(body, len(extra))
            outcome = self.core.end_part(job)
        except BaseException as exc:  # answered on the loop
            outcome = exc
        finally:
            self.link.live.discard(body)
            for release in (body.close, job.abandon):
                try:
                    release()
                except OSError as exc:  # never strand the connection over a failed cleanup
                    log.error("releasing a received part failed: %s", exc)
            self.link.native_pool.put(buffer)
        try:
            self.loop.call_soon_threadsafe(self._native_done, put, outcome)
        except RuntimeError:  # the server stopped meanwhile
            pass

    def _native_done(self, put: _Put, outcome: str | BaseException) -> None:
        self.link.native_free += 1
        put.native = None
        self.paused.discard("native")
        if self.mode == "closed" or put is not self.put:
            return
        if isinstance(outcome, BodyTimedOut):
            self._body_timed_out()
        elif isinstance(outcome, BodyCut):
            self._release_put(put)
            self.mode = "closed"
            self.transport.abort()
        else:
            self._answer_part(outcome)

    def _take_bytes(self, put: _Put, data: bytes) -> None:
        """Bytes that came with the head: into the body as if read."""
        view = memoryview(data)
        while view and self.mode == "put":
            if put.job is not None and put.filling is not None:
                n = min(len(view), len(put.filling) - put.fill)
                put.filling[put.fill: put.fill + n] = view[:n]
            else:
                n = len(view)
            self._put_bytes(n)
            view = view[n:]

    def _put_bytes(self, nbytes: int) -> None:
        put = self.put
        assert put is not None
        put.remaining -= nbytes
        put.received += nbytes
        self._shape(nbytes)
        if self.timer is not None and not self.paused:
            self._arm(self.config.body_timeout, self._body_timed_out)
        if put.drop_after is not None and put.received >= put.drop_after:
            self._release_put(put)
            self.mode = "closed"
            self.transport.abort()
            return
        if put.job is not None and put.filling is not None:
            put.fill += nbytes
            if put.fill == len(put.filling) or put.remaining == 0:
                self._flush(put)
        if put.remaining == 0 and put.job is None:
            self._body_done(put)

    def _flush(self, put: _Put) -> None:
        """Hand the full buffer to a worker; read on into the other one."""
        if put.writing is not None:  # the other buffer is still being hashed: wait for it
            put.waiting_full = True
            self.pause("worker")
            return
        assert put.job is not None and put.filling is not None
        data = memoryview(put.filling)[: put.fill]
        put.writing = self.loop.run_in_executor(None, put.job.sink.write, [data], put.offset)
        put.offset += put.fill
        put.writing.add_done_callback(lambda fut: self._written(put, fut))
        full = put.filling
        put.filling = next((b for b in put.buffers if b is not full), None)
        if put.filling is None and put.remaining > 0:
            put.filling = self.link.pool.get()
            put.buffers.append(put.filling)
        put.fill = 0

    def _written(self, put: _Put, fut: asyncio.Future[None]) -> None:
        put.writing = None
        if put is not self.put or self.mode != "put":
            return
        exc = fut.exception() if not fut.cancelled() else None
        if exc is not None:
            log.error("storing a part failed: %s", exc)
            if put.job is not None:
                put.job.abandon()
                put.job = None
            put.error = failure_bytes(INTERNAL_ERROR)
            self.resume("worker")
            if put.remaining == 0:
                self._body_done(put)
            return
        if put.waiting_full:
            put.waiting_full = False
            self._flush(put)
            self.resume("worker")
        elif put.remaining == 0:
            self._body_done(put)

    def _body_done(self, put: _Put) -> None:
        if put.writing is not None or put.waiting_full:
            return  # _written comes back here
        self._disarm()
        self.mode = "responding"
        self.pause("responding")
        if put.job is None:
            self._respond(put.error or _plain(500, "Internal Server Error", "no answer"))
            return
        job, put.job = put.job, None  # end_part owns it now
        finished = self.loop.run_in_executor(None, self.core.end_part, job)
        finished.add_done_callback(lambda fut: self._finished(put, job, fut))

    def _finished(self, put: _Put, job: PartJob, fut: Any) -> None:
        job.abandon()
        if self.mode == "closed":
            self._release_put(put)
            return
        exc = fut.exception()
        self._answer_part(fut.result() if exc is None else exc)

    def _answer_part(self, outcome: str | BaseException) -> None:
        """200 with the ETag, the S3 error of a refused part, or 500 (logged)."""
        if isinstance(outcome, str):
            self._respond(_response(200, "OK", [("ETag", outcome)], b""))
        elif isinstance(outcome, S3Failure):
            self._respond(failure_bytes(outcome))
        else:
            log.error("storing a part failed: %s", outcome)
            self._respond(failure_bytes(INTERNAL_ERROR))

    def _respond(self, data: bytes) -> None:
        put = self.put
        if put is not None:
            self._release_put(put)
            if self.config.log_requests:
                log.info("PUT %s %s %.1fms", put.path, data[9:12].decode(), (time.monotonic() - put.started) * 1000)
        self.put = None
        if self.transport.is_closing():
            return
        self.transport.write(data)
        self.paused.discard("responding")
        self.paused.discard("worker")
        self.paused.discard("fault-latency")
        if not self.paused:
            self.transport.resume_reading()
        self._await_head()

    def _release_put(self, put: _Put) -> None:
        if put.job is not None and put.writing is None:
            put.job.abandon()
        elif put.job is not None and put.writing is not None:
            job = put.job
            put.writing.add_done_callback(lambda _fut: job.abandon())
        put.job = None
        buffers, put.buffers = put.buffers, []
        put.filling = None

        def give_back(_fut: object = None) -> None:
            for buf in buffers:
                self.link.pool.put(buf)

        if put.writing is not None:  # a worker may still read them
            put.writing.add_done_callback(give_back)
        else:
            give_back()


def _parse_request(lines: list[bytes]) -> tuple[str, str, str, dict[str, str]] | None:
    """Method, target, version and lowercase headers; None unless plainly well-formed."""
    try:
        request_line = lines[0].decode("ascii")
        method, target, version = request_line.split(" ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or not target.startswith("/"):
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip() or " " in name:
                return None
            key = name.lower()
            if key in headers and key in ("content-length", "host", "transfer-encoding"):
                return None
            headers[key] = value.strip()
        return method, target, version, headers
    except (UnicodeDecodeError, ValueError):
        return None


def _response(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", "server: koodrive-fast", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _plain(status: int, reason: str, text: str) -> bytes:
    return _response(status, reason, [("content-type", "text/plain; charset=utf-8"), ("connection", "close")],
                     text.encode())


def cancel_receives(protocol_class: type[asyncio.Protocol]) -> None:
    """After the server stopped: end the bodies still held by receiver threads
    (uvicorn's graceful shutdown waits only for its own requests)."""
    link = getattr(protocol_class, "link", None)
    if isinstance(link, _Link):
        link.cancel_receives()


def front_protocol_class(state: ServerState, http_impl: str) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (``uvicorn.Config(http=...)``) for ``state``'s app."""
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    inner = import_from_string(HTTP_PROTOCOLS[http_impl])
    core = state.core
    if core is None:
        raise RuntimeError("create_app(state) must run before front_protocol_class(state)")
    attrs = {"core": core, "link": _Link(state), "inner_class": inner}
    front: type[asyncio.Protocol] = type("KooDriveFront", (_Front,), attrs)  # uvicorn's annotation; it takes buffered ones
    return front
