"""Local server: slow-client timeouts and link emulation (issue 8).

Timeouts use small explicit values set by each test; link checks assert the
token bucket's accounting on a fake clock, and real transfers only by lower
bounds (size / rate), which no machine speed can break.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from _server_helpers import api, create_body, data_of, ok, plan, s3_code, urls_by_number
from koodrive_fast._sizes import parse_rate
from koodrive_fast.server import LocalServer, ServerConfig
from koodrive_fast.server._front import TokenBucket

PART = 128
KiB = 1024


def connect(srv: LocalServer) -> socket.socket:
    host, port = urlsplit(srv.base_url).netloc.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes (``limit`` only guards a hung test)."""
    out = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"the server did not close the connection; got {out[:200]!r}")


# ------------------------------------------------------------------ timeouts
@pytest.fixture(scope="module", params=[16, 0], ids=["native-receive", "event-loop-receive"])
def slow_srv(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, header_timeout=0.5, body_timeout=0.5,
                     native_receivers=request.param) as server:
        yield server


def test_slow_request_head_gets_408_and_close(slow_srv: LocalServer) -> None:
    with connect(slow_srv) as sock:
        started = time.monotonic()
        sock.sendall(b"PUT /kdbucket/F" + b"a" * 32 + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        response = read_until_closed(sock)
        assert time.monotonic() - started >= 0.5
    assert response.startswith(b"HTTP/1.1 408 ")


def test_idle_connection_is_closed(slow_srv: LocalServer) -> None:
    with connect(slow_srv) as sock:
        assert read_until_closed(sock) == b""


def test_slow_part_body_gets_s3_408_and_nothing_is_stored(slow_srv: LocalServer) -> None:
    data = data_of(2 * PART, seed=3)
    with httpx.Client(base_url=slow_srv.base_url, timeout=10) as http:
        doc = ok(api(http, slow_srv, "files/create", create_body(data, multiParts=plan(data, PART))))
    url = urlsplit(urls_by_number(doc)[1])
    with connect(slow_srv) as sock:
        sock.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {PART}\r\n\r\n".encode()
                     + data[: PART // 2])
        response = read_until_closed(sock)
    assert response.split(b" ", 2)[1] == b"408" and b"<Code>RequestTimeout</Code>" in response
    assert not slow_srv.store.parts(doc["fileId"])
    assert not list((slow_srv.data_dir / "tmp").iterdir())


def test_slow_api_body_is_cut_off(slow_srv: LocalServer) -> None:
    with connect(slow_srv) as sock:
        sock.sendall(b"POST /koodrive/ose/v1/files/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
        read_until_closed(sock)


def test_a_steady_client_is_not_cut_off(slow_srv: LocalServer) -> None:
    """Pauses shorter than the body timeout, a whole part: accepted."""
    data = data_of(2 * PART, seed=4)
    with httpx.Client(base_url=slow_srv.base_url, timeout=10) as http:
        doc = ok(api(http, slow_srv, "files/create", create_body(data, multiParts=plan(data, PART))))
    url = urlsplit(urls_by_number(doc)[1])
    with connect(slow_srv) as sock:
        sock.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {PART}\r\n\r\n".encode())
        for i in range(0, PART, PART // 4):
            sock.sendall(data[i: i + PART // 4])
            time.sleep(0.05)
        assert sock.recv(65536).split(b" ", 2)[1] == b"200"


def test_timeouts_validated() -> None:
    with pytest.raises(ValueError, match="header_timeout"):
        ServerConfig(header_timeout=0)
    with pytest.raises(ValueError, match="link_rate"):
        ServerConfig(link_rate=-1)


# ------------------------------------------------------------------ token bucket (virtual time)
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_accounting() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=100, clock=clock)
    assert bucket.take(100) == 0.0  # the burst
    assert bucket.take(50) == pytest.approx(0.05)  # 50 bytes in debt at 1000 B/s
    clock.now += 0.05
    assert bucket.take(0) == pytest.approx(0.0, abs=1e-9)
    clock.now += 10  # idle time refills only up to the burst
    assert bucket.take(100) == 0.0
    assert bucket.take(1000) == pytest.approx(1.0)
    assert bucket.taken == 1250
    # the debt paid off (1 s), reading on at the pace the delays set holds exactly 1000 B/s
    clock.now += 1.0
    waited = 0.0
    for _ in range(100):
        delay = bucket.take(100)
        waited += delay
        clock.now += delay
    assert waited == pytest.approx(100 * 100 / 1000)


def test_parse_rate() -> None:
    assert parse_rate("2.5Gbit") == 312_500_000
    assert parse_rate("100Mbps") == 12_500_000
    assert parse_rate("300MB") == 300_000_000
    assert parse_rate("64MiB/s") == 64 * 1024 * 1024
    for bad in ("0", "fast", "1bit", "-1Mbit", "2Gbitz"):
        with pytest.raises(ValueError):
            parse_rate(bad)


# ------------------------------------------------------------------ real transfers (lower bounds only)
def upload_parts(srv: LocalServer, data: bytes, part: int, parallel: bool) -> float:
    """PUT every part of ``data`` (each on its own connection when ``parallel``); seconds taken."""
    parts = plan(data, part)
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
    urls = urls_by_number(doc)
    statuses: list[int] = []

    def send(p: dict[str, object]) -> None:
        off, size = int(p["partOffset"]), int(p["partSize"])  # type: ignore[call-overload]
        with httpx.Client(timeout=30) as own:
            statuses.append(own.put(urls[int(p["partNumber"])], content=data[off: off + size]).status_code)  # type: ignore[call-overload]

    started = time.monotonic()
    if parallel:
        threads = [threading.Thread(target=send, args=(p,)) for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    else:
        for p in parts:
            send(p)
    elapsed = time.monotonic() - started
    assert statuses == [200] * len(parts)
    return elapsed


def test_link_rate_is_shared_by_all_connections() -> None:
    rate = 1_000_000
    with LocalServer(min_part_size=64 * KiB, link_rate=rate) as srv:
        data = data_of(1_000_000, seed=5)
        burst = TokenBucket(rate).burst
        elapsed = upload_parts(srv, data, 256 * KiB, parallel=True)
    # the full bucket's burst is free, and the debt of the last read (at most a burst) is never waited
    assert elapsed >= (len(data) - 2 * burst) / rate


def test_link_rate_per_connection_limits_each_connection() -> None:
    rate = 1_000_000
    with LocalServer(min_part_size=64 * KiB, link_rate_per_connection=rate) as srv:
        data = data_of(1_000_000, seed=6)
        burst = TokenBucket(rate).burst
        one_part = 512 * KiB
        elapsed = upload_parts(srv, data, one_part, parallel=True)
    assert elapsed >= (one_part - 2 * burst) / rate  # each connection's own part at 1 MB/s


def test_link_latency_delays_each_body() -> None:
    with LocalServer(min_part_size=64, link_latency=0.2) as srv:
        data = data_of(3 * PART, seed=7)
        elapsed = upload_parts(srv, data, PART, parallel=False)
    assert elapsed >= 3 * 0.2


def upload_and_check(srv: LocalServer, data: bytes, part_size: int) -> int:
    """Create, PUT every part, complete and download ``data``; returns the part count."""
    from _server_helpers import download

    parts = plan(data, part_size)
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
        urls = urls_by_number(doc)
        for p in parts:
            body = data[p["partOffset"]: p["partOffset"] + p["partSize"]]
            assert http.put(urls[p["partNumber"]], content=body).status_code == 200
        ok(api(http, srv, "files/complete", {"fileId": doc["fileId"]}))
        assert download(http, srv, doc["fileId"]) == data
    return len(parts)


def test_throttled_upload_round_trips() -> None:
    with LocalServer(min_part_size=64 * KiB, link_rate=4_000_000, link_rate_per_connection=2_000_000) as srv:
        upload_and_check(srv, data_of(600 * KiB + 5, seed=8), 128 * KiB)


def test_expired_url_is_answered_after_the_body(slow_srv: LocalServer) -> None:
    """An error found at the head is sent once the body is drained; the connection stays usable."""
    data = data_of(2 * PART, seed=9)
    with httpx.Client(base_url=slow_srv.base_url, timeout=10) as http:
        doc = ok(api(http, slow_srv, "files/create", create_body(data, multiParts=plan(data, PART))))
        urls = urls_by_number(doc)
        bad = http.put(urls[1].replace("partNumber=1", "partNumber=2"), content=data[:PART])
        assert bad.status_code == 403 and s3_code(bad) == "SignatureDoesNotMatch"
        assert http.put(urls[1], content=data[:PART]).status_code == 200  # same pooled connection


def test_serve_link_flags(tmp_path: object) -> None:
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "koodrive_fast", "serve", "--link-rate", "fast"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--link-rate" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "koodrive_fast", "serve", "--native-receivers", "-1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--native-receivers must be in 0..1024" in bad.stderr
    proc = subprocess.Popen([sys.executable, "-m", "koodrive_fast", "serve", "--port", "0", "--quiet",
                             "--link-rate", "2.5Gbit", "--link-rate-per-connection", "300MB", "--link-latency", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(12):  # the banner; stop at its link line
            lines.append(proc.stdout.readline())
            if "link:" in lines[-1] or not lines[-1]:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert any("312500000 B/s total, 300000000 B/s per connection, 5 ms" in line for line in lines), lines


# ------------------------------------------------------------------ front end: the paths around the fast PUT
def started_upload(srv: LocalServer, data: bytes) -> tuple[str, dict[int, str], list[dict[str, object]]]:
    parts = plan(data, PART)
    with httpx.Client(base_url=srv.base_url, timeout=10) as http:
        doc = ok(api(http, srv, "files/create", create_body(data, multiParts=parts)))
    return doc["fileId"], urls_by_number(doc), parts


def raw_put(url: str, body: bytes, *extra_headers: str) -> bytes:
    u = urlsplit(url)
    head = f"PUT {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(h + "\r\n" for h in extra_headers) + "\r\n").encode() + body


def test_pipelined_puts_are_answered_in_order() -> None:
    from _server_helpers import download

    with LocalServer(min_part_size=64) as srv:
        data = data_of(2 * PART, seed=10)
        file_id, urls, parts = started_upload(srv, data)
        with connect(srv) as sock:
            sock.sendall(raw_put(urls[1], data[:PART]) + raw_put(urls[2], data[PART:]))
            answers = b""
            deadline = time.monotonic() + 10
            while answers.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
                answers += sock.recv(65536)
        assert answers.count(b"HTTP/1.1 200") == 2
        with httpx.Client(base_url=srv.base_url, timeout=10) as http:
            ok(api(http, srv, "files/complete", {"fileId": file_id}))
            assert download(http, srv, file_id) == data
        assert srv.stats.bytes_accepted == 2 * PART


def test_expect_100_continue() -> None:
    with LocalServer(min_part_size=64) as srv:
        data = data_of(2 * PART, seed=11)
        file_id, urls, parts = started_upload(srv, data)
        with connect(srv) as sock:
            request = raw_put(urls[1], b"", "Expect: 100-continue").replace(b"Content-Length: 0", f"Content-Length: {PART}".encode())
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(data[:PART])
            assert sock.recv(65536).split(b" ", 2)[1] == b"200"
            # a refused PUT with Expect gets its answer without sending the body
            bad = urls[2].replace("partNumber=2", "partNumber=3")
            request = raw_put(bad, b"", "Expect: 100-continue").replace(b"Content-Length: 0", f"Content-Length: {PART}".encode())
            sock.sendall(request)
            assert b"<Code>SignatureDoesNotMatch</Code>" in read_until_closed(sock)


# ------------------------------------------------------------------ the C core's receive path (native_receivers)
BIG = 256 * KiB  # larger than a request head's read: the body never arrives whole with its head


def started_big(srv: LocalServer, data: bytes) -> tuple[str, dict[int, str]]:
    with httpx.Client(base_url=srv.base_url, timeout=10) as http:
        doc = ok(api(http, srv, "files/create", create_body(data, multiParts=plan(data, BIG))))
    return doc["fileId"], urls_by_number(doc)


def put_on(sock: socket.socket, url: str, body: bytes) -> bytes:
    """One PUT on an open connection; the status code of its answer."""
    sock.sendall(raw_put(url, body))
    answer = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
        answer += sock.recv(65536)
    return answer.split(b" ", 2)[1]


def start_body_natively(srv: LocalServer, sock: socket.socket, url: str, body: bytes, count: int = 1) -> None:
    """Send a PUT's head and half its body; return once a receiver has it (``count`` so far)."""
    sock.sendall(raw_put(url, body)[: -len(body) // 2])
    for _ in range(200):  # bounded
        if srv.stats.native_bodies == count:
            break
        time.sleep(0.01)
    assert srv.stats.native_bodies == count


@pytest.mark.parametrize("receivers", [0, 1, 16])
def test_both_receive_paths_store_the_same_bytes(receivers: int) -> None:
    with LocalServer(min_part_size=64, native_receivers=receivers) as srv:
        parts = upload_and_check(srv, data_of(3 * BIG, seed=12), BIG)
        # every body is larger than a head's read, so none can arrive whole with its head
        assert srv.stats.native_bodies == (parts if receivers else 0)


def test_a_body_beyond_the_receivers_goes_through_the_event_loop() -> None:
    """With one receiver busy on a stalled body, the next body is read by the loop, and both finish."""
    with LocalServer(min_part_size=64, native_receivers=1) as srv:
        data = data_of(2 * BIG, seed=13)
        file_id, urls = started_big(srv, data)
        with connect(srv) as first, connect(srv) as second:
            start_body_natively(srv, first, urls[1], data[:BIG])
            assert put_on(second, urls[2], data[BIG:]) == b"200"
            assert srv.stats.native_bodies == 1  # the second body took the event-loop path
            first.sendall(data[BIG // 2: BIG])
            assert first.recv(65536).split(b" ", 2)[1] == b"200"
        with httpx.Client(base_url=srv.base_url, timeout=10) as http:
            ok(api(http, srv, "files/complete", {"fileId": file_id}))


def test_client_vanishing_mid_body_frees_the_receiver() -> None:
    with LocalServer(min_part_size=64, native_receivers=1) as srv:
        data = data_of(2 * BIG, seed=14)
        file_id, urls = started_big(srv, data)
        with connect(srv) as sock:
            start_body_natively(srv, sock, urls[1], data[:BIG])
        # the receiver sees the close, drops the part and is free again: a later body is native
        native_again = False
        with connect(srv) as sock:
            for _ in range(100):  # bounded: each PUT is answered; stop once one went native
                assert put_on(sock, urls[1], data[:BIG]) == b"200"
                if srv.stats.native_bodies == 2:
                    native_again = True
                    break
                time.sleep(0.02)
        assert native_again
        assert [p.part_number for p in srv.store.parts(file_id)] == [1]
        assert not list((srv.data_dir / "tmp").iterdir())


def test_failed_body_write_answers_500_and_keeps_the_connection(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: object) -> None:
    """A write error inside the C loop (here: a descriptor not open for writing) is a
    logged 500 after the whole body is read, so the next request on the connection works."""
    import os

    from koodrive_fast.server import _app

    real_receive = _app._PartSink.receive

    def receive_into_read_only(self: _app._PartSink, body: object, offset: int) -> None:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            body.run(self.hasher, fd, offset)  # type: ignore[attr-defined]
        finally:
            os.close(fd)

    with LocalServer(min_part_size=64) as srv:
        data = data_of(2 * BIG, seed=15)
        file_id, urls = started_big(srv, data)
        with connect(srv) as sock:
            monkeypatch.setattr(_app._PartSink, "receive", receive_into_read_only)
            answer = b""
            sock.sendall(raw_put(urls[1], data[:BIG]))
            while b"</Error>" not in answer:
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.split(b" ", 2)[1] == b"500" and b"<Code>InternalError</Code>" in answer
            monkeypatch.setattr(_app._PartSink, "receive", real_receive)
            assert put_on(sock, urls[1], data[:BIG]) == b"200"
        assert srv.stats.native_bodies == 2
        assert not list((srv.data_dir / "tmp").iterdir())


def test_stopping_the_server_ends_a_body_still_being_received() -> None:
    """uvicorn's graceful shutdown does not wait for receiver threads: the server's stop
    cancels them, so no thread keeps the connection (or the closed store) afterwards."""
    srv = LocalServer(min_part_size=64, native_receivers=4).start()
    try:
        data = data_of(2 * BIG, seed=16)
        file_id, urls = started_big(srv, data)
        sock = connect(srv)
        start_body_natively(srv, sock, urls[1], data[:BIG])
    finally:
        srv.stop()
    try:
        assert read_until_closed(sock, limit=20) == b""  # closed, never answered
    finally:
        sock.close()
