"""part_contexts: §9.4 vectors, an independent oracle, every source kind, errors."""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import random
from pathlib import Path
from typing import Any

import pytest
from _sha_oracle import IV, absorb
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast import FileContexts, HashState, PartContext, part_contexts, sha1, sha256
from koodrive_fast._contexts import _INLINE_SCAN_BYTES
from koodrive_fast._scanfeed import ScanCancelled, scan_status_error
from koodrive_fast._exceptions import FileChangedError, ValidationError
from koodrive_fast._native import lib

VECTORS = json.loads((Path(__file__).parent / "data" / "koodrive_protocol_9_4.json").read_text())
HASHLIB: dict[str, Any] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
HASHERS: dict[str, Any] = {"sha256": sha256, "sha1": sha1}


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v") / "synthetic-12MiB.bin"
    modulus = VECTORS["modulus"]
    pattern = bytes(i % modulus for i in range(modulus * 4096))
    data = (pattern * (VECTORS["size"] // len(pattern) + 1))[: VECTORS["size"]]
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
def test_protocol_9_4_vectors(vector_file: Path, algorithm: str) -> None:
    result = part_contexts(vector_file, VECTORS["part_size"], algorithm)
    expected = VECTORS[algorithm]
    assert result.size == VECTORS["size"]
    assert result.algorithm == algorithm
    assert result.digest == expected["digest"]
    assert result.pre_hash == VECTORS["pre_hash"]
    assert result.part_size == VECTORS["part_size"]
    assert [part.hash_ctx for part in result.parts] == [
        None if words is None else tuple(words) for words in expected["contexts"]
    ]
    assert [(p.part_number, p.part_offset, p.part_size) for p in result.parts] == [
        (1, 0, 5_242_880),
        (2, 5_242_880, 5_242_880),
        (3, 10_485_760, 2_097_152),
    ]
    multi_parts = result.to_multi_parts()
    assert multi_parts[0] == {"partNumber": 1, "partSize": 5242880, "partOffset": 0}
    assert multi_parts[2] == {
        "partNumber": 3,
        "partSize": 2097152,
        "partOffset": 10485760,
        "hashCtx": expected["contexts"][2],
    }
    document = json.loads(result.to_json())
    assert list(document) == ["size", "algorithm", "digest", "preHash", "partSize", "multiParts"]
    assert document["multiParts"] == multi_parts
    if algorithm == "sha256":
        assert result.part_state(2).to_iteration_ctx() == expected["part2_iteration_ctx"]


def test_part_state(vector_file: Path) -> None:
    result = part_contexts(str(vector_file), VECTORS["part_size"])
    data = vector_file.read_bytes()
    assert result.part_state(1) == HashState.initial()
    for number in (2, 3):
        state = result.part_state(number)
        resumed = sha256.from_state(state)
        resumed.update(data[state.length :])
        assert resumed.hexdigest() == result.digest
    for bad in (0, 4, -1):
        with pytest.raises(ValueError, match="part_number"):
            result.part_state(bad)


def expected_contexts(data: bytes, part_size: int, algorithm: str) -> list[Any]:
    """Chaining words before each part, from the pure-Python oracle."""
    contexts: list[Any] = [None]
    words = IV[algorithm]
    for offset in range(part_size, len(data), part_size):
        words = absorb(algorithm, words, data[offset - part_size : offset])
        contexts.append(words)
    return contexts


@given(
    algorithm=st.sampled_from(["sha256", "sha1"]),
    size=st.integers(0, 2500),
    blocks_per_part=st.integers(1, 12),
    seed=st.integers(0, 2**32),
)
def test_chained_contexts_match_oracle(
    algorithm: str, size: int, blocks_per_part: int, seed: int
) -> None:
    data = random.Random(seed).randbytes(size)
    part_size = blocks_per_part * 64
    result = part_contexts(data, part_size, algorithm)
    expected = expected_contexts(data, part_size, algorithm)
    assert [part.hash_ctx for part in result.parts] == expected
    assert result.digest == HASHLIB[algorithm](data).hexdigest()
    assert result.pre_hash == hashlib.sha256(data[:1024]).hexdigest()
    assert sum(part.part_size for part in result.parts) == size
    assert len(result.parts) == max(1, -(-size // part_size))
    for part in result.parts:
        assert part.part_offset == (part.part_number - 1) * part_size
        assert 0 < part.part_size <= part_size or size == 0


@given(size=st.integers(0, 300_000), part_kib=st.integers(1, 64), seed=st.integers(0, 99))
def test_every_resume_point_gives_the_digest(size: int, part_kib: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    result = part_contexts(bytearray(data), part_kib * 1024, "sha256")
    assert result.digest == hashlib.sha256(data).hexdigest()
    for part in result.parts[1:]:
        resumed = sha256.from_state(result.part_state(part.part_number))
        resumed.update(data[part.part_offset :])
        assert resumed.hexdigest() == result.digest


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    result = part_contexts(path, 64)
    assert result.size == 0
    assert result.parts == (PartContext(1, 0, 0, None),)
    assert result.digest == hashlib.sha256(b"").hexdigest()
    assert result.pre_hash == hashlib.sha256(b"").hexdigest()
    assert result.to_multi_parts() == [{"partNumber": 1, "partSize": 0, "partOffset": 0}]


@pytest.mark.parametrize("size", [64, 128, 640, 1024 * 1024])
def test_size_multiple_of_part_size(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    result = part_contexts(data, 64 if size < 1024 else 65536)
    assert all(part.part_size == result.part_size for part in result.parts)
    assert result.parts[-1].part_offset + result.parts[-1].part_size == size


def make_data(size: int = 5000) -> bytes:
    return random.Random(size).randbytes(size)


def reference(data: bytes, part_size: int = 128) -> FileContexts:
    return part_contexts(bytes(data), part_size)


def test_path_kinds(tmp_path: Path) -> None:
    data = make_data()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    expected = reference(data)
    assert part_contexts(path, 128) == expected
    assert part_contexts(str(path), 128) == expected
    assert expected.digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("buffering", [-1, 0])
def test_file_object_from_current_position(tmp_path: Path, buffering: int) -> None:
    data = make_data()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb", buffering=buffering) as handle:
        handle.read(100)  # a buffered reader has read ahead; tell() is still 100
        result = part_contexts(handle, 128)
        assert handle.tell() == len(data)
        assert handle.read() == b""
    assert result == reference(data[100:])


def test_bytesio_from_current_position() -> None:
    data = make_data()
    stream = io.BytesIO(data)
    stream.seek(64)
    assert part_contexts(stream, 128) == reference(data[64:])
    assert stream.tell() == len(data)
    stream.write(b"still writable")  # the buffer export was released


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffers(kind: Any) -> None:
    data = make_data()
    assert part_contexts(kind(data), 128) == reference(data)


def test_mmap_source(tmp_path: Path) -> None:
    data = make_data()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert part_contexts(m, 128) == reference(data)


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    size = _INLINE_SCAN_BYTES * 2 + 12345  # large enough to run on the worker thread
    path = tmp_path / "big.bin"
    path.write_bytes(make_data(size))
    calls: list[int] = []
    result = part_contexts(path, 1024 * 1024, progress=calls.append)
    assert sum(calls) == size == result.size
    assert calls and all(delta > 0 for delta in calls)
    small: list[int] = []
    part_contexts(b"abc" * 100, 64, progress=small.append)
    assert sum(small) == 300


def test_progress_zero_bytes() -> None:
    calls: list[int] = []
    part_contexts(b"", 64, progress=calls.append)
    assert sum(calls) == 0


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_progress_exception_cancels_scan(tmp_path: Path, error: type[BaseException]) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as handle:  # sparse: costs no disk, still hashed
        handle.truncate(64 * 1024 * 1024)

    def progress(delta: int) -> None:
        raise error("stop")

    with pytest.raises(error):
        part_contexts(path, 1024 * 1024, progress=progress)


def test_file_changed_during_scan(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(make_data(_INLINE_SCAN_BYTES + 4096))

    def grow(delta: int) -> None:
        with path.open("ab") as handle:
            handle.write(b"!")

    with pytest.raises(FileChangedError, match="changed"):
        part_contexts(path, 64 * 1024, progress=grow)


def test_file_truncated_during_scan(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)

    def shrink(delta: int) -> None:
        os.truncate(path, 1024)

    # either the scan hits the early EOF (KD_ESHORT) or the size check after it does
    with pytest.raises(FileChangedError):
        part_contexts(path, 1024 * 1024, progress=shrink)


def test_scan_error_mapping() -> None:
    """One mapping, every outcome a KooDriveError (no OSError/MemoryError/RuntimeError escapes)."""
    from koodrive_fast import KooDriveError, LocalFileError

    assert isinstance(scan_status_error(lib.KD_ESHORT, 0, "f"), FileChangedError)
    error = scan_status_error(lib.KD_EIO, 5, "f")
    assert isinstance(error, LocalFileError) and error.errno == 5
    assert isinstance(scan_status_error(lib.KD_ECANCELLED, 0, "f"), ScanCancelled)
    for status in (lib.KD_ENOMEM, lib.KD_EINVAL):
        assert isinstance(scan_status_error(status, 0, "f"), LocalFileError)
    for status in (lib.KD_ESHORT, lib.KD_EIO, lib.KD_ENOMEM, lib.KD_EINVAL, lib.KD_ECANCELLED):
        assert isinstance(scan_status_error(status, 0, "f"), KooDriveError)


@pytest.mark.parametrize(
    ("part_size", "error"),
    [
        (0, ValueError),
        (-64, ValueError),
        (100, ValueError),
        (5 * 1024 * 1024 + 1, ValueError),
        (64.0, TypeError),
        ("64", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_bad_part_size(part_size: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="part_size"):
        part_contexts(b"abc", part_size)


def test_bad_part_size_is_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        part_contexts(b"abc", 65)
    assert info.value.field == "part_size"


@pytest.mark.parametrize("algorithm", ["md5", "SHA-256", "", None])
def test_bad_algorithm(algorithm: Any) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        part_contexts(b"abc", 64, algorithm)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        part_contexts(tmp_path / "missing", 64)
    with pytest.raises(IsADirectoryError):
        part_contexts(tmp_path, 64)
    for bad in (12, None, 1.5, object()):
        with pytest.raises(TypeError, match="source"):
            part_contexts(bad, 64)
    path = tmp_path / "t.txt"
    path.write_text("text")
    with path.open("r") as handle, pytest.raises(TypeError, match="binary"):
        part_contexts(handle, 64)
    with pytest.raises(TypeError, match="progress"):
        part_contexts(b"", 64, progress=5)  # type: ignore[arg-type]


def test_pipe_is_rejected() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(read_fd, "rb") as reader, pytest.raises(ValueError, match="regular file"):
            part_contexts(reader, 64)
    finally:
        os.close(write_fd)


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
def test_states_match_incremental_hasher(algorithm: str) -> None:
    data = make_data(70_000)
    result = part_contexts(data, 4096, algorithm)
    hasher = HASHERS[algorithm]()
    for part in result.parts:
        if part.hash_ctx is not None:
            expected = HashState(algorithm, part.hash_ctx, part.part_offset)  # type: ignore[arg-type]
            assert hasher.state() == expected
        hasher.update(data[part.part_offset : part.part_offset + part.part_size])
    assert hasher.hexdigest() == result.digest


def test_fifo_path_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="regular file"):
        part_contexts(fifo, 64)


def test_ctrl_c_cancels_a_running_scan(tmp_path: Path) -> None:
    import _thread
    import threading
    import time

    path = tmp_path / "sparse-64GiB.bin"
    with path.open("wb") as handle:  # no disk used; hashing it all takes >= 30 s
        handle.truncate(64 * 1024**3)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            part_contexts(path, 64 * 1024 * 1024)
    finally:
        timer.cancel()
    # a full scan needs >= 30 s even at SHA-NI speed (~2 GB/s); a cancelled one stops
    # within one read, and 8 s leaves room for a heavily throttled machine
    assert time.monotonic() - started < 8


def test_tempfile_and_read_write_files() -> None:
    import tempfile

    data = make_data()
    with tempfile.NamedTemporaryFile() as named:
        named.write(data)  # still in the Python buffer: part_contexts must flush it
        named.seek(0)
        assert part_contexts(named, 128) == reference(data)
    with tempfile.TemporaryFile() as anonymous:
        anonymous.write(data)
        anonymous.seek(10)
        assert part_contexts(anonymous, 128) == reference(data[10:])
        assert anonymous.tell() == len(data)


def test_wrapped_file_objects_are_rejected(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "f.gz"
    with gzip.open(path, "wb") as compressed:
        compressed.write(make_data())
    with gzip.open(path, "rb") as compressed, pytest.raises(TypeError, match="path"):
        part_contexts(compressed, 64)
