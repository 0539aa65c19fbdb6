"""A part body received by the C core: socket -> SHA-256 -> file, GIL released.

The front end hands a part PUT's connection to a :class:`NativeBody` on a
receiver thread once the request head is parsed; ``kd_recv_body`` then reads
the body straight into one reused buffer, resumes the hash from the signed
context over it and ``pwrite``\\ s it, with no Python per chunk.  The socket is
a duplicate of the connection's, so closing the connection can never leave
the loop reading a reused descriptor; :meth:`NativeBody.cancel` stops it.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from .._native import ffi, lib
from ._ctx import Hasher

__all__ = ["BodyCut", "BodyTimedOut", "NativeBody", "ReceiverThreads", "pair_kernel", "paired_blocks"]

log = logging.getLogger("koodrive_fast.server")

#: How long a receiver with a full buffer waits for another to hash it
#: together with (the pair kernel: two messages for little more than one).
PAIR_WAIT = 0.002


def pair_kernel() -> str:
    """The kernel whose two-message form receivers share, or "" (then each hashes alone)."""
    return str(ffi.string(lib.kd_pair_kernel_name()).decode())


def paired_blocks() -> int:
    """64-byte blocks that receivers have hashed in pairs since the module loaded."""
    return int(lib.kd_recv_paired_blocks())


class BodyTimedOut(Exception):
    """The client sent nothing for the idle timeout."""


class BodyCut(Exception):
    """The connection ended (or was cancelled) before the whole body arrived."""


class NativeBody:
    """One body of ``length`` bytes read from stream socket ``fd`` (a duplicate is kept) into
    ``buffer``; ``family`` if known spares the lookup."""

    def __init__(self, fd: int, length: int, buffer: bytearray, idle_timeout: float,
                 pair_wait: float = PAIR_WAIT, partner_idle: float | None = None,
                 family: int = -1) -> None:
        self._sock = socket.socket(family, socket.SOCK_STREAM, fileno=os.dup(fd))
        self._buffer = buffer
        self._job: Any = ffi.new("kd_recv *")
        self._buf = ffi.from_buffer(buffer)
        job = self._job
        job.sock = self._sock.fileno()
        job.remaining = length
        job.buf = self._buf
        job.buf_size = len(buffer)
        job.idle_ms = max(1, min(2**31 - 1, int(idle_timeout * 1000)))
        job.pair_wait_us = max(0, min(10**6, int(pair_wait * 1e6)))
        if partner_idle is not None:  # tests: keep a quiet receiver counted as a partner
            job.partner_idle_ms = max(1, min(2**31 - 1, int(partner_idle * 1000)))
        self._closed = False
        self._lock = threading.Lock()

    @property
    def received(self) -> int:
        return int(lib.kd_recv_bytes_done(self._job))

    def drain_only(self, errno: int) -> None:
        """Receive the rest without hashing or storing it; :meth:`run` then raises ``OSError(errno)``."""
        self._job.write_error = errno or 5

    def run(self, hasher: Hasher, out_fd: int, offset: int) -> None:
        """Receive the body (blocking; call from a receiver thread).

        Raises :class:`BodyTimedOut`, :class:`BodyCut`, or :class:`OSError`
        for a failed write (the body was still received in full)."""
        job = self._job
        job.ctx = hasher.native[0]
        job.out_fd = out_fd
        job.offset = offset
        status = lib.kd_recv_body(job)
        hasher.native[0] = job.ctx
        if status == lib.KD_OK:
            return
        if status == lib.KD_ETIMEDOUT:
            raise BodyTimedOut("no body bytes within the timeout")
        if status == lib.KD_EWRITE:
            raise OSError(int(job.write_error), os.strerror(int(job.write_error)))
        if status in (lib.KD_ESHORT, lib.KD_EIO, lib.KD_ECANCELLED):
            reason = {lib.KD_ESHORT: "the client closed the connection",
                      lib.KD_ECANCELLED: "the connection was closed by the server"}.get(
                status, f"socket error: {os.strerror(int(job.error))}")
            raise BodyCut(f"{reason} after {self.received} body bytes")
        raise RuntimeError(f"kd_recv_body rejected its arguments (status {status})")

    def cancel(self) -> None:
        """Stop :meth:`run` soon (any thread): flag it, and wake a waiting read."""
        lib.kd_recv_cancel(self._job)
        with self._lock:
            if not self._closed:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Drop the duplicate socket (after :meth:`run` returned)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.close()


class ReceiverThreads:
    """Threads that run body receives; they start on demand, up to ``limit``,
    and exit after ``idle_exit`` seconds without work, so a stopped server
    leaves none behind."""

    def __init__(self, limit: int, idle_exit: float = 10.0, name: str = "kd-recv") -> None:
        self._limit = limit
        self._name = name
        self._idle_exit = idle_exit
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` on a receiver thread (the caller keeps at most ``limit`` running).

        Raises ``RuntimeError`` if a needed thread cannot start; ``work`` is then not queued."""
        with self._lock:
            start = self._idle == 0 and self._threads < self._limit
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        if start:
            try:
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                raise
        self._work.put(work)

    def _run(self) -> None:
        while True:
            try:
                work = self._work.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no work was promised to an idle thread: leave
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a submit counted on this thread: its work is on the way
            try:
                work()
            except BaseException as exc:  # a receive reports its own outcome; this is a bug's last stop
                log.exception("a receiver thread's work failed: %s", exc)
            with self._lock:
                self._idle += 1
