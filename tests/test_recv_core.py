"""The C core's body loop (``kd_recv_body`` via ``server/_recv.py``) on real sockets.

Every digest is cross-checked with hashlib; timeouts use a sender that never
sends, so no machine is too slow or too fast for them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _tsan_harness import needs_gcc, run_tsan_harness
from koodrive_fast.server._ctx import Hasher, IterationCtx
from koodrive_fast.server._recv import BodyCut, BodyTimedOut, NativeBody, ReceiverThreads


_opened: list[NativeBody] = []


def _body(*args: object, **kwargs: object) -> NativeBody:
    """A NativeBody closed after the test (it holds a duplicate of the socket)."""
    body = NativeBody(*args, **kwargs)  # type: ignore[arg-type]
    _opened.append(body)
    return body


@pytest.fixture(autouse=True)
def _close_bodies() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture()
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.setblocking(False)  # like the event loop's sockets
    yield a, b
    a.close()
    b.close()


def _send_in_thread(sock: socket.socket, data: bytes, pieces: int = 1, close: bool = False) -> threading.Thread:
    def run() -> None:
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            sock.sendall(data[i: i + step])
        if close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _resumed(prefix: bytes) -> Hasher:
    """A hasher resumed after ``prefix`` (a multiple of 64 bytes), as a part's signed context would be."""
    h = Hasher(IterationCtx.initial())
    h.update(prefix)
    return Hasher(IterationCtx("sha256", h.words(), len(prefix)))


@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 300_000), buffer=st.sampled_from([64, 100, 4096, 65536, 1 << 20]),
       pieces=st.integers(1, 7), trailing=st.integers(0, 3000))
def test_body_hashed_and_written_exactly(tmp_path_factory: pytest.TempPathFactory, size: int, buffer: int,
                                         pieces: int, trailing: int) -> None:
    prefix = os.urandom(128)
    body = os.urandom(size)
    after = os.urandom(trailing)  # the next request on the connection: never read
    a, b = socket.socketpair()
    b.setblocking(False)
    out = tmp_path_factory.mktemp("recv") / "part"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        sender = _send_in_thread(a, body + after, pieces)
        hasher = _resumed(prefix)
        native = _body(b.fileno(), size, bytearray(buffer), idle_timeout=30)
        native.run(hasher, fd, 7)
        native.close()
        sender.join(30)
        assert native.received == size
        assert hasher.hexdigest() == hashlib.sha256(prefix + body).hexdigest()
        assert out.read_bytes() == (b"\0" * 7 + body if size else b"")
        if trailing:
            assert b.recv(len(after) + 10) == after
    finally:
        os.close(fd)
        a.close()
        b.close()


def test_low_water_mark_is_restored(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    body = os.urandom(3 << 20)
    sender = _send_in_thread(a, body, pieces=24)
    hasher = Hasher(IterationCtx.initial())
    native = _body(b.fileno(), len(body), bytearray(1 << 20), idle_timeout=30)
    native.run(hasher, -1, 0)
    sender.join(30)
    assert hasher.hexdigest() == hashlib.sha256(body).hexdigest()
    # the event loop's next read of this socket must wake for a single byte again
    assert b.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1


def test_silent_client_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(b"x" * 100)
    native = _body(b.fileno(), 1000, bytearray(4096), idle_timeout=0.2)
    with pytest.raises(BodyTimedOut):
        native.run(Hasher(IterationCtx.initial()), -1, 0)
    assert native.received == 100


def test_client_closing_early_is_a_cut(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(b"y" * 500)
    a.shutdown(socket.SHUT_WR)
    native = _body(b.fileno(), 1000, bytearray(4096), idle_timeout=30)
    with pytest.raises(BodyCut, match="closed the connection after 500"):
        native.run(Hasher(IterationCtx.initial()), -1, 0)


def test_cancel_stops_a_waiting_receive(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    native = _body(b.fileno(), 1000, bytearray(4096), idle_timeout=600)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            native.run(Hasher(IterationCtx.initial()), -1, 0)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    native.cancel()
    thread.join(30)
    assert not thread.is_alive() and len(errors) == 1 and isinstance(errors[0], BodyCut)


def test_failed_write_still_drains_the_body(pair: tuple[socket.socket, socket.socket], tmp_path: Path) -> None:
    a, b = pair
    body, after = os.urandom(200_000), b"NEXT"
    sender = _send_in_thread(a, body + after, pieces=5)
    (tmp_path / "ro").write_bytes(b"")
    read_only = os.open(tmp_path / "ro", os.O_RDONLY)
    try:
        native = _body(b.fileno(), len(body), bytearray(65536), idle_timeout=30)
        with pytest.raises(OSError) as failure:
            native.run(Hasher(IterationCtx.initial()), read_only, 0)
    finally:
        os.close(read_only)
    sender.join(30)
    assert failure.value.errno == 9  # EBADF: the descriptor is not open for writing
    assert native.received == len(body)
    assert b.recv(10) == after  # the connection is still in step for the next request


def test_drain_only(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(b"z" * 5000)
    native = _body(b.fileno(), 5000, bytearray(1024), idle_timeout=30)
    native.drain_only(28)
    with pytest.raises(OSError) as failure:
        native.run(Hasher(IterationCtx.initial()), -1, 0)
    assert failure.value.errno == 28 and native.received == 5000


def test_receiver_threads_run_everything_and_leave_when_idle() -> None:
    threads = ReceiverThreads(limit=3, idle_exit=0.05, name="kd-recv-test")
    done: list[int] = []
    lock = threading.Lock()
    finished = threading.Event()

    def work(i: int) -> None:
        with lock:
            done.append(i)
            if len(done) == 20:
                finished.set()

    for i in range(20):
        threads.submit(lambda i=i: work(i))
    assert finished.wait(30)
    assert sorted(done) == list(range(20))
    for _ in range(600):  # bounded: idle threads leave after 0.05 s each
        if not any(t.name == "kd-recv-test" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "kd-recv-test" for t in threading.enumerate())


# ------------------------------------------------------------------ two receivers, one pass of the pair kernel
@pytest.mark.parametrize("blocks", [1, 2, 7, 64, 1000])
def test_pair_kernel_matches_two_single_runs(blocks: int) -> None:
    from koodrive_fast._native import ffi, lib

    if not lib.kd_kernel_available(lib.KD_ALG_SHA256, b"sha-ni"):
        pytest.skip("this CPU has no SHA-NI (the only kernel with a pair form)")
    one, two = os.urandom(64 * blocks), os.urandom(64 * blocks + 1)[1:]  # the second unaligned in memory
    s1 = ffi.new("uint32_t[8]", [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                                 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19])
    s2 = ffi.new("uint32_t[8]", [0xFFFFFFFF - i for i in range(8)])
    r1, r2 = ffi.new("uint32_t[8]", list(s1)), ffi.new("uint32_t[8]", list(s2))
    assert lib.kd_sha256_pairs_with(b"sha-ni", s1, one, s2, two, blocks) == lib.KD_OK
    assert lib.kd_blocks_with(lib.KD_ALG_SHA256, b"portable", r1, one, blocks) == lib.KD_OK
    assert lib.kd_blocks_with(lib.KD_ALG_SHA256, b"portable", r2, two, blocks) == lib.KD_OK
    assert list(s1) == list(r1) and list(s2) == list(r2)
    assert lib.kd_sha256_pairs_with(b"portable", s1, one, s2, two, blocks) == lib.KD_ENOKERNEL


@pytest.fixture()
def two_pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Two socketpairs (receiving ends non-blocking), where the pair kernel is active."""
    from koodrive_fast.server._recv import pair_kernel

    if not pair_kernel():
        pytest.skip("the active SHA-256 kernel has no pair form")
    pairs = [socket.socketpair() for _ in range(2)]
    for _, receiving in pairs:
        receiving.setblocking(False)
    yield pairs
    for ends in pairs:
        for end in ends:
            end.close()


def test_two_receivers_hash_together_and_both_digests_hold(
        two_pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    """Both receivers' bytes are flowing (a long partner-idle keeps them counted), so
    whichever hashes first offers its buffer and waits, and the other takes it: one pass
    of the pair kernel, and each body's digest is still its own."""
    from koodrive_fast.server._recv import paired_blocks

    (a_out, a_in), (b_out, b_in) = two_pairs
    body_a, body_b = os.urandom(1 << 20), os.urandom(1 << 20)
    hashers = {"a": Hasher(IterationCtx.initial()), "b": Hasher(IterationCtx.initial())}
    bodies = {"a": _body(a_in.fileno(), len(body_a), bytearray(1 << 20), 30, pair_wait=30, partner_idle=60),
              "b": _body(b_in.fileno(), len(body_b), bytearray(1 << 20), 30, pair_wait=30, partner_idle=60)}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            bodies[name].run(hashers[name], -1, 0)
        except BaseException as exc:
            errors.append(exc)

    before = paired_blocks()
    receiver_a = threading.Thread(target=run, args=("a",))
    receiver_a.start()
    a_out.sendall(body_a[:10])
    for _ in range(3000):  # bounded: until A is certainly inside its loop
        if bodies["a"].received == 10:
            break
        threading.Event().wait(0.01)
    assert bodies["a"].received == 10
    receiver_b = threading.Thread(target=run, args=("b",))
    receiver_b.start()
    sender_b = _send_in_thread(b_out, body_b)
    for _ in range(3000):  # bounded: B's bytes flow too, so whichever hashes first waits for the other
        if bodies["b"].received > 0:
            break
        threading.Event().wait(0.01)
    assert bodies["b"].received > 0
    sender_a = _send_in_thread(a_out, body_a[10:])
    for t in (receiver_a, receiver_b, sender_a, sender_b):
        t.join(60)
    assert not errors
    assert hashers["a"].hexdigest() == hashlib.sha256(body_a).hexdigest()
    assert hashers["b"].hexdigest() == hashlib.sha256(body_b).hexdigest()
    assert paired_blocks() - before >= 2 * 256  # at least one shared pass of the minimum size


def test_a_stalled_receiver_is_not_waited_for(two_pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    """A receiver whose client went quiet stops counting as a partner, so another
    receiver never sleeps on offers nobody will take (no slowdown by a stalled upload)."""
    from koodrive_fast._native import lib

    (a_out, a_in), (b_out, b_in) = two_pairs
    stalled = _body(a_in.fileno(), 1 << 20, bytearray(1 << 20), 60, pair_wait=30)
    runner = threading.Thread(target=lambda: pytest.raises(BodyCut, stalled.run, Hasher(IterationCtx.initial()), -1, 0))
    try:
        runner.start()
        a_out.sendall(b"s" * 10)
        for _ in range(3000):  # bounded: the stalled receiver counted, then dropped after 20 ms of silence
            if stalled.received == 10 and lib.kd_recv_streaming() == 0:
                break
            threading.Event().wait(0.01)
        assert stalled.received == 10 and lib.kd_recv_streaming() == 0
        unanswered = lib.kd_recv_unanswered_offers()
        body = os.urandom(4 << 20)
        sender = _send_in_thread(b_out, body)
        hasher = Hasher(IterationCtx.initial())
        _body(b_in.fileno(), len(body), bytearray(1 << 20), 30, pair_wait=30).run(hasher, -1, 0)
        sender.join(30)
        assert hasher.hexdigest() == hashlib.sha256(body).hexdigest()
        assert lib.kd_recv_unanswered_offers() == unanswered  # never offered, so never slept 30 s
    finally:
        stalled.cancel()
        runner.join(30)


@needs_gcc
def test_pairing_rendezvous_is_race_free_under_tsan(tmp_path: Path) -> None:
    """Build the core with -fsanitize=thread and run csrc/tests/recv_pair_harness.c: four
    receivers on socketpairs pair their hashing (one thread reads another's buffer and
    writes its state while it sleeps); no data race, every digest right, pairs happened."""
    out = run_tsan_harness("recv_pair_harness.c", tmp_path)
    assert out.count(" ok\n") == 4, out
