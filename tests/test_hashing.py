"""sha256 / sha1: known vectors, hashlib cross-checks, state export, threads."""

from __future__ import annotations

import array
import copy
import hashlib
import json
import mmap
import pickle
import random
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from _sha_oracle import IV, absorb, finalize
from hypothesis import given
from hypothesis import strategies as st

import koodrive_fast
from koodrive_fast import HashState, kernels, sha1, sha256
from koodrive_fast._native import kernel_names

DATA = Path(__file__).parent / "data"
VECTORS = json.loads((DATA / "sha_vectors.json").read_text())["vectors"]
HASHERS: dict[str, Any] = {"sha256": sha256, "sha1": sha1}
HASHLIB: dict[str, Callable[..., Any]] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
ALGORITHMS = pytest.mark.parametrize("algorithm", ["sha256", "sha1"])


def message(vector: dict[str, Any]) -> bytes:
    return (vector["message"] * vector["repeat"]).encode("ascii")


def feed_one_shot(cls: Any, data: bytes) -> Any:
    return cls(data)


def feed_halves(cls: Any, data: bytes) -> Any:
    hasher = cls()
    hasher.update(data[: len(data) // 2])
    hasher.update(data[len(data) // 2 :])
    return hasher


def feed_small_pieces(cls: Any, data: bytes) -> Any:
    # byte by byte for the short vectors; 997-byte pieces for the million 'a'
    step = 1 if len(data) < 4096 else 997
    hasher = cls()
    for start in range(0, len(data), step):
        hasher.update(data[start : start + step])
    return hasher


def feed_through_copy(cls: Any, data: bytes) -> Any:
    hasher = cls(data[:7])
    forked = hasher.copy()
    hasher.update(b"garbage that must not leak into the copy")
    forked.update(data[7:])
    return forked


@ALGORITHMS
@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
@pytest.mark.parametrize(
    "feed", [feed_one_shot, feed_halves, feed_small_pieces, feed_through_copy]
)
def test_known_vectors(algorithm: str, vector: dict[str, Any], feed: Any) -> None:
    hasher = feed(HASHERS[algorithm], message(vector))
    assert hasher.hexdigest() == vector[algorithm]
    assert hasher.digest() == bytes.fromhex(vector[algorithm])


@ALGORITHMS
def test_attributes(algorithm: str) -> None:
    ours, theirs = HASHERS[algorithm](), HASHLIB[algorithm]()
    assert (ours.name, ours.digest_size, ours.block_size) == (
        theirs.name,
        theirs.digest_size,
        theirs.block_size,
    )
    relaxed = HASHERS[algorithm](b"x", usedforsecurity=False)
    assert relaxed.digest() == HASHLIB[algorithm](b"x").digest()
    assert algorithm in repr(ours)


@ALGORITHMS
def test_digest_does_not_consume(algorithm: str) -> None:
    hasher = HASHERS[algorithm](b"hello ")
    first = hasher.digest()
    assert hasher.digest() == first
    assert hasher.hexdigest() == first.hex()
    hasher.update(b"world")
    assert hasher.digest() == HASHLIB[algorithm](b"hello world").digest()
    assert hasher.length == 11


@ALGORITHMS
def test_copy_is_independent(algorithm: str) -> None:
    data = bytes(range(256)) * 40  # large updates go straight to C
    original = HASHERS[algorithm](data)
    for clone in (original.copy(), copy.copy(original), copy.deepcopy(original)):
        assert type(clone) is type(original)
        clone.update(b"more")
        assert clone.digest() == HASHLIB[algorithm](data + b"more").digest()
    assert original.digest() == HASHLIB[algorithm](data).digest()


@ALGORITHMS
def test_pickle_refused(algorithm: str) -> None:
    hasher = HASHERS[algorithm](b"abc")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot pickle"):
            pickle.dumps(hasher, protocol)


@ALGORITHMS
@pytest.mark.parametrize("bad", ["text", 12, None, 1.5, [1, 2], object()])
def test_update_rejects_non_buffers(algorithm: str, bad: Any) -> None:
    hasher = HASHERS[algorithm](b"abc")
    with pytest.raises(TypeError):
        hasher.update(bad)
    with pytest.raises(TypeError):
        HASHERS[algorithm](bad)
    assert hasher.digest() == HASHLIB[algorithm](b"abc").digest()


def test_str_message_matches_hashlib() -> None:
    with pytest.raises(TypeError, match="Strings must be encoded before hashing"):
        sha256("abc")


@pytest.mark.parametrize("size", [10, 5000])
def test_update_rejects_non_contiguous(size: int) -> None:
    view = memoryview(bytes(size))[::2]
    with pytest.raises((BufferError, TypeError, ValueError)):
        sha256().update(view)


def as_buffer(data: bytes, kind: str) -> Any:
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview-slice":
        padded = b"#" * 3 + data + b"#" * 5
        return memoryview(padded)[3 : 3 + len(data)]
    if kind == "array-B":
        return array.array("B", data)
    if kind == "array-I":
        assert len(data) % 4 == 0
        return array.array("I", data)
    if kind == "mmap":
        mapping = mmap.mmap(-1, max(len(data), 1))
        mapping.write(data)
        return memoryview(mapping)[: len(data)] if len(data) else b""
    raise AssertionError(kind)


BUFFER_KINDS = ["bytes", "bytearray", "memoryview-slice", "array-B", "array-I", "mmap"]


@given(
    algorithm=st.sampled_from(["sha256", "sha1"]),
    data=st.binary(max_size=20000)
    | st.integers(0, 70000).map(lambda n: random.Random(n).randbytes(n)),
    cuts=st.lists(st.integers(min_value=0, max_value=70000), max_size=12),
    kinds=st.lists(st.sampled_from(BUFFER_KINDS), min_size=1, max_size=13),
)
def test_matches_hashlib_at_random_splits(
    algorithm: str, data: bytes, cuts: list[int], kinds: list[str]
) -> None:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    hasher = HASHERS[algorithm]()
    for index, (start, end) in enumerate(zip(points, points[1:])):
        piece = data[start:end]
        kind = kinds[index % len(kinds)]
        if kind == "array-I" and len(piece) % 4:
            kind = "bytes"
        hasher.update(as_buffer(piece, kind))
    assert hasher.digest() == HASHLIB[algorithm](data).digest()


def test_mmap_of_file(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(300_001)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert sha256(m).hexdigest() == hashlib.sha256(data).hexdigest()
        assert sha1(m).hexdigest() == hashlib.sha1(data).hexdigest()


@given(
    algorithm=st.sampled_from(["sha256", "sha1"]),
    size=st.integers(min_value=0, max_value=40000),
    seed=st.integers(0, 2**32),
    data_strategy=st.data(),
)
def test_state_resume_at_random_offsets(
    algorithm: str, size: int, seed: int, data_strategy: st.DataObject
) -> None:
    data = random.Random(seed).randbytes(size)
    offset = data_strategy.draw(st.integers(0, size // 64)) * 64
    head = HASHERS[algorithm]()
    # feed the head in two pieces so buffered small updates are exercised
    middle = data_strategy.draw(st.integers(0, offset))
    head.update(data[:middle])
    head.update(data[middle:offset])
    state = head.state()
    assert state.algorithm == algorithm and state.length == offset
    assert len(state.words) == (8 if algorithm == "sha256" else 5)
    resumed = HASHERS[algorithm].from_state(state)
    resumed.update(data[offset:])
    assert resumed.digest() == HASHLIB[algorithm](data).digest()
    # the exported words agree with an independent implementation
    if offset <= 2048:
        assert state.words == absorb(algorithm, IV[algorithm], data[:offset])


@ALGORITHMS
def test_initial_state(algorithm: str) -> None:
    assert HASHERS[algorithm]().state() == HashState.initial(algorithm)  # type: ignore[arg-type]
    resumed = HASHERS[algorithm].from_state(HashState.initial(algorithm))  # type: ignore[arg-type]
    assert resumed.digest() == HASHLIB[algorithm]().digest()


@ALGORITHMS
@pytest.mark.parametrize("length", [1, 63, 65, 100, 1000, 4097])
def test_state_needs_block_boundary(algorithm: str, length: int) -> None:
    hasher = HASHERS[algorithm](bytes(length))
    with pytest.raises(ValueError, match="multiple of 64"):
        hasher.state()
    hasher.update(bytes(-length % 64))
    assert hasher.state().length == length + (-length % 64)


@ALGORITHMS
@pytest.mark.parametrize(
    "length",
    [
        2**29,  # first offset with nh = 1
        600 * 1024 * 1024,  # §9.2's example
        2**32,  # nl wraps to 0
        5 * 2**40 + 64 * 12345,  # a 5 TiB offset
        2**61 - 64,  # the largest representable length
    ],
)
@pytest.mark.parametrize("tail", [b"", b"x", bytes(55), bytes(56), bytes(63), bytes(range(200))])
def test_lengths_past_2_to_the_32_bits(algorithm: str, length: int, tail: bytes) -> None:
    words = tuple(random.Random(length).getrandbits(32) for _ in IV[algorithm])
    state = HashState(algorithm, words, length)  # type: ignore[arg-type]
    ctx = json.loads(__import__("base64").b64decode(state.to_iteration_ctx()))
    assert ctx["nh"] == (length * 8) >> 32 and ctx["nh"] >= 1
    assert ctx["nl"] == (length * 8) % 2**32

    hasher = HASHERS[algorithm].from_state(state)
    hasher.update(tail)
    whole = len(tail) - len(tail) % 64
    expected = finalize(
        algorithm,
        absorb(algorithm, words, tail[:whole]),
        length + len(tail),
        tail[whole:],
    )
    assert hasher.digest() == expected
    assert hasher.length == length + len(tail)
    if len(tail) % 64 == 0:
        assert hasher.state().length == length + len(tail)


def test_oracle_agrees_with_hashlib() -> None:
    for size in (0, 1, 55, 56, 64, 119, 128, 1000):
        data = random.Random(size).randbytes(size)
        for algorithm in ("sha256", "sha1"):
            whole = size - size % 64
            state = absorb(algorithm, IV[algorithm], data[:whole])
            expected = HASHLIB[algorithm](data).digest()
            assert finalize(algorithm, state, size, data[whole:]) == expected


@ALGORITHMS
def test_from_state_validation(algorithm: str) -> None:
    other = "sha1" if algorithm == "sha256" else "sha256"
    with pytest.raises(ValueError, match="algorithm"):
        HASHERS[algorithm].from_state(HashState.initial(other))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="HashState"):
        as_dict = {"algorithm": algorithm, "words": IV[algorithm], "length": 0}
        HASHERS[algorithm].from_state(as_dict)
    with pytest.raises(TypeError, match="HashState"):
        HASHERS[algorithm].from_state(IV[algorithm])


def test_from_state_round_trip_through_iteration_ctx() -> None:
    data = bytes(i % 251 for i in range(64 * 100 + 17))
    state = sha256(data[:6400]).state()
    resumed = sha256.from_state(HashState.from_iteration_ctx(state.to_iteration_ctx()))
    resumed.update(data[6400:])
    assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()


def test_kernels() -> None:
    active = kernels()
    assert set(active) == {"sha256", "sha1"}
    assert all(name in kernel_names for name in active.values())
    assert koodrive_fast.backend == active["sha256"]


@ALGORITHMS
def test_two_threads_hash_different_objects(algorithm: str) -> None:
    inputs = [random.Random(n).randbytes(3_000_000 + n) for n in range(2)]
    results: dict[int, bytes] = {}
    barrier = threading.Barrier(2, timeout=30)

    def work(index: int) -> None:
        hasher = HASHERS[algorithm]()
        barrier.wait()
        view = memoryview(inputs[index])
        for start in range(0, len(view), 65536):
            hasher.update(view[start : start + 65536])
        for start in range(0, 5000):  # small, buffered updates
            hasher.update(b"%d" % start)
        results[index] = hasher.digest()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    tail = b"".join(b"%d" % n for n in range(5000))
    for index in range(2):
        assert results[index] == HASHLIB[algorithm](inputs[index] + tail).digest()


@pytest.mark.parametrize("chunk", [100, 3000, 70000])
def test_concurrent_updates_on_one_object_are_atomic(chunk: int) -> None:
    # every thread feeds identical chunks, so any interleaving of whole
    # updates gives the same digest; a torn update would not
    piece = bytes(range(251)) * (chunk // 251) + bytes(chunk % 251)
    threads_count, rounds = 4, 200
    hasher = sha256()

    def work() -> None:
        for _ in range(rounds):
            hasher.update(piece)

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert hasher.digest() == hashlib.sha256(piece * (threads_count * rounds)).digest()
