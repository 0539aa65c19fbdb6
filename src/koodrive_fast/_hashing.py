"""hashlib-shaped SHA-256 / SHA-1 over the native core, with exportable state.

:class:`HashState` is the chaining state at a 64-byte block boundary: the
words KooDrive calls ``hashCtx`` plus the number of bytes hashed.  It maps
1:1 to the ``X-Amz-Iteration-Hash-Ctx`` query value
(:meth:`HashState.to_iteration_ctx` / :meth:`HashState.from_iteration_ctx`).

:class:`sha256` and :class:`sha1` behave like their ``hashlib`` namesakes and
add :meth:`~_Hash.state` and :meth:`~_Hash.from_state`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import threading
from typing import Any, ClassVar, Literal, NoReturn, TypeVar

from ._native import ALGORITHMS, DIGEST_SIZES, WORDS, ffi, lib

__all__ = ["HashState", "sha256", "sha1", "kernels", "Algorithm"]

Algorithm = Literal["sha256", "sha1"]

_WORD_MAX = 0xFFFFFFFF
_LENGTH_LIMIT = 1 << 61  # bytes; the bit length must fit in 64 bits
_CTX_TEXT_LIMIT = 1024  # a real ctx is ~200 characters

_IVS: dict[str, tuple[int, ...]] = {
    "sha256": (
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
        0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    ),
    "sha1": (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0),
}  # fmt: skip


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class HashState:
    """Chaining state after ``length`` bytes (a multiple of 64).

    ``words`` are H0..H7 (SHA-256) or H0..H4 (SHA-1) in canonical order, each
    0..2**32-1 -- exactly KooDrive's ``hashCtx``.  A list is accepted and
    stored as a tuple.  Invalid fields raise ``ValueError`` (``TypeError``
    for a wrong type) naming the field.
    """

    algorithm: Algorithm
    words: tuple[int, ...]
    length: int

    def __post_init__(self) -> None:
        if self.algorithm not in WORDS:
            raise ValueError(
                f"HashState.algorithm must be 'sha256' or 'sha1', got {self.algorithm!r}"
            )
        if isinstance(self.words, list):
            object.__setattr__(self, "words", tuple(self.words))
        if not isinstance(self.words, tuple):
            raise TypeError(
                f"HashState.words must be a tuple of ints, got {type(self.words).__name__}"
            )
        expected = WORDS[self.algorithm]
        if len(self.words) != expected:
            raise ValueError(
                f"HashState.words must hold {expected} words for {self.algorithm}, "
                f"got {len(self.words)}"
            )
        for index, word in enumerate(self.words):
            if not _is_int(word):
                raise TypeError(f"HashState.words[{index}] must be an int, got {word!r}")
            if not 0 <= word <= _WORD_MAX:
                raise ValueError(f"HashState.words[{index}] must be in 0..2**32-1, got {word}")
        if not _is_int(self.length):
            raise TypeError(f"HashState.length must be an int, got {self.length!r}")
        if self.length < 0 or self.length % 64 or self.length >= _LENGTH_LIMIT:
            raise ValueError(
                "HashState.length must be a non-negative multiple of 64 below 2**61, "
                f"got {self.length}"
            )

    @classmethod
    def initial(cls, algorithm: Algorithm = "sha256") -> HashState:
        """The initial value (IV) at length 0."""
        if algorithm not in _IVS:
            raise ValueError(f"algorithm must be 'sha256' or 'sha1', got {algorithm!r}")
        return cls(algorithm, _IVS[algorithm], 0)

    @property
    def bit_length(self) -> int:
        """Message length in bits (``nh << 32 | nl``)."""
        return self.length * 8

    def to_iteration_ctx(self) -> str:
        """The ``X-Amz-Iteration-Hash-Ctx`` value: base64 of compact JSON.

        Keys in KooDrive's order ``md_len, num, h, nh, nl, hash_type``;
        standard alphabet with ``=`` padding (URL-encode it in a query).
        """
        bits = self.bit_length
        document = {
            "md_len": DIGEST_SIZES[self.algorithm],
            "num": 0,
            "h": list(self.words),
            "nh": bits >> 32,
            "nl": bits & _WORD_MAX,
            "hash_type": self.algorithm,
        }
        text = json.dumps(document, separators=(",", ":"))
        return base64.b64encode(text.encode("ascii")).decode("ascii")

    @classmethod
    def from_iteration_ctx(cls, text: str) -> HashState:
        """Parse an ``X-Amz-Iteration-Hash-Ctx`` value (inverse of :meth:`to_iteration_ctx`).

        Accepts ``%3D``-encoded or missing padding, the URL-safe alphabet and
        any key case (``Nl``/``Nh``) and order; unknown keys are ignored.
        ``h``, ``nl`` and ``nh`` are required; ``num`` must be 0 if present;
        ``md_len`` and ``hash_type`` must agree with each other and with the
        word count.  Anything else raises ``ValueError``.
        """
        if not isinstance(text, str):
            raise TypeError(f"iteration ctx must be str, got {type(text).__name__}")
        document = _decode_ctx_document(text)
        return _state_from_document(document)


def _ctx_error(reason: str) -> NoReturn:
    raise ValueError(f"invalid iteration hash ctx: {reason}")


def _decode_ctx_document(text: str) -> dict[str, Any]:
    if len(text) > _CTX_TEXT_LIMIT:
        _ctx_error(f"longer than {_CTX_TEXT_LIMIT} characters")
    cleaned = text.strip()
    if "%" in cleaned:  # URL-encoded padding (%3D)
        import urllib.parse

        cleaned = urllib.parse.unquote(cleaned)
    cleaned = cleaned.translate({ord("-"): "+", ord("_"): "/"})
    cleaned = cleaned.rstrip("=")
    if not cleaned:
        _ctx_error("empty")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        _ctx_error("not base64")

    def reject_constant(name: str) -> NoReturn:
        _ctx_error(f"JSON constant {name} is not allowed")

    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError):
        _ctx_error("base64 does not hold JSON")
    if not isinstance(document, dict):
        _ctx_error("JSON is not an object")
    lowered: dict[str, Any] = {}
    for key, value in document.items():
        if key.lower() in lowered:
            _ctx_error(f"duplicate key {key!r}")
        lowered[key.lower()] = value
    return lowered


def _ctx_u32(document: dict[str, Any], key: str) -> int:
    if key not in document:
        _ctx_error(f"missing {key!r}")
    value = document[key]
    if not _is_int(value) or not 0 <= value <= _WORD_MAX:
        _ctx_error(f"{key!r} must be an integer in 0..2**32-1, got {value!r}")
    return int(value)


def _state_from_document(document: dict[str, Any]) -> HashState:
    words = document.get("h")
    if not isinstance(words, list):
        _ctx_error("'h' must be a list of integers")
    for index, word in enumerate(words):
        if not _is_int(word) or not 0 <= word <= _WORD_MAX:
            _ctx_error(f"h[{index}] must be an integer in 0..2**32-1, got {word!r}")
    nl, nh = _ctx_u32(document, "nl"), _ctx_u32(document, "nh")
    if "num" in document and (not _is_int(document["num"]) or document["num"] != 0):
        _ctx_error(f"'num' must be 0 (no partial block), got {document['num']!r}")

    by_word_count = {count: name for name, count in WORDS.items()}
    by_digest_size = {size: name for name, size in DIGEST_SIZES.items()}
    algorithm = document.get("hash_type")
    if algorithm is not None:
        if not isinstance(algorithm, str) or algorithm.lower() not in WORDS:
            _ctx_error(f"'hash_type' must be 'sha256' or 'sha1', got {algorithm!r}")
        algorithm = algorithm.lower()
    if "md_len" in document:
        md_len = document["md_len"]
        from_md_len = by_digest_size.get(md_len) if _is_int(md_len) else None
        if from_md_len is None:
            _ctx_error(f"'md_len' must be 32 or 20, got {md_len!r}")
        if algorithm is not None and algorithm != from_md_len:
            _ctx_error(f"'md_len' {md_len} does not match hash_type {algorithm!r}")
        algorithm = from_md_len
    if algorithm is None:
        algorithm = by_word_count.get(len(words))
        if algorithm is None:
            _ctx_error(f"'h' must hold 8 or 5 words, got {len(words)}")
    if len(words) != WORDS[algorithm]:
        _ctx_error(f"'h' must hold {WORDS[algorithm]} words for {algorithm}, got {len(words)}")

    bits = nh << 32 | nl
    if bits % 512:
        _ctx_error(f"length {bits} bits is not a whole number of 64-byte blocks")
    checked: Algorithm = "sha256" if algorithm == "sha256" else "sha1"
    return HashState(checked, tuple(words), bits // 8)


# --------------------------------------------------------------------- hashers

_SMALL_UPDATE = 2048  # updates below this are buffered in Python ...
_FLUSH_AT = 16384  # ... and handed to C in one call once this much is pending

_HashT = TypeVar("_HashT", bound="_Hash")


class _Hash:
    """Common implementation of :class:`sha256` and :class:`sha1`.

    Thread safety: every method takes a per-object lock, so concurrent calls
    on one object never corrupt it (the order of concurrent updates is of
    course undefined).  Large updates run in C with the GIL released, so
    threads hashing *different* objects run in parallel.  Updates under
    2 KiB are gathered in Python and passed to C 16 KiB at a time: each C
    call gives up the GIL, which costs up to the 5 ms switch interval when
    another Python thread is busy.
    """

    __slots__ = ("_ctx", "_pending", "_lock")

    name: ClassVar[Algorithm]
    digest_size: ClassVar[int]
    block_size: ClassVar[int] = 64
    _algorithm_id: ClassVar[int]

    def __init__(self, data: Any = b"", /, *, usedforsecurity: bool = True) -> None:
        self._ctx = ffi.new("kd_hash_ctx *")
        lib.kd_hash_init(self._ctx, self._algorithm_id)
        self._pending = bytearray()
        self._lock = threading.Lock()
        if type(data) is not bytes or data:
            self.update(data)

    def update(self, data: Any, /) -> None:
        """Feed any C-contiguous buffer (bytes, bytearray, memoryview, mmap, array)."""
        if isinstance(data, str):
            raise TypeError("Strings must be encoded before hashing")
        kind = type(data)
        size = len(data) if kind is bytes or kind is bytearray else memoryview(data).nbytes
        with self._lock:
            pending = self._pending
            if size < _SMALL_UPDATE:
                pending += data
                if len(pending) >= _FLUSH_AT:
                    self._flush()
                return
            if pending:
                self._flush()
            lib.kd_hash_update(self._ctx, ffi.from_buffer(data), size)

    def _flush(self) -> None:
        # caller holds the lock
        pending = self._pending
        if pending:
            lib.kd_hash_update(self._ctx, ffi.from_buffer(pending), len(pending))
            self._pending = bytearray()

    def digest(self) -> bytes:
        """Digest of everything fed so far; the object stays usable."""
        out = ffi.new("uint8_t[]", self.digest_size)
        with self._lock:
            self._flush()
            lib.kd_hash_digest(self._ctx, out)
        return bytes(ffi.buffer(out))

    def hexdigest(self) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest().hex()

    def copy(self: _HashT) -> _HashT:
        """An independent hasher with the same state."""
        clone = type(self).__new__(type(self))
        clone._ctx = ffi.new("kd_hash_ctx *")
        clone._lock = threading.Lock()
        with self._lock:
            clone._ctx[0] = self._ctx[0]
            clone._pending = bytearray(self._pending)
        return clone

    def __copy__(self: _HashT) -> _HashT:
        return self.copy()

    def __deepcopy__(self: _HashT, memo: object) -> _HashT:
        return self.copy()

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"cannot pickle {self.name!r} object (use state() and from_state())")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        self.__reduce__()

    @property
    def length(self) -> int:
        """Number of bytes fed so far."""
        with self._lock:
            return int(self._ctx.length) + len(self._pending)

    def state(self) -> HashState:
        """The chaining state; ``ValueError`` unless the length is a multiple of 64."""
        with self._lock:
            self._flush()
            length = int(self._ctx.length)
            if length % 64:
                raise ValueError(
                    f"state() needs a length that is a multiple of 64 bytes, got {length} "
                    f"({length % 64} bytes into a block)"
                )
            words = tuple(self._ctx.h[0 : WORDS[self.name]])
        return HashState(self.name, words, length)

    @classmethod
    def from_state(cls: type[_HashT], state: HashState, /) -> _HashT:
        """A hasher resuming from ``state`` (same algorithm as this class)."""
        if not isinstance(state, HashState):
            raise TypeError(f"state must be a HashState, got {type(state).__name__}")
        if state.algorithm != cls.name:
            raise ValueError(
                f"state.algorithm is {state.algorithm!r}; use koodrive_fast.{state.algorithm}"
                f".from_state, not {cls.name}"
            )
        hasher = cls()
        words = ffi.new("uint32_t[]", list(state.words))
        rc = lib.kd_hash_set_state(hasher._ctx, cls._algorithm_id, words, state.length)
        if rc != lib.KD_OK:  # pragma: no cover - HashState already validated
            raise ValueError(f"native core rejected {state!r} (status {rc})")
        return hasher

    def __repr__(self) -> str:
        return f"<koodrive_fast.{self.name} object @ {id(self):#x}>"


class sha256(_Hash):  # noqa: N801 - hashlib's spelling
    """SHA-256 like ``hashlib.sha256``, plus ``state()`` / ``from_state()``."""

    __slots__ = ()
    name: ClassVar[Algorithm] = "sha256"
    digest_size: ClassVar[int] = 32
    _algorithm_id: ClassVar[int] = ALGORITHMS["sha256"]


class sha1(_Hash):  # noqa: N801 - hashlib's spelling
    """SHA-1 like ``hashlib.sha1``, plus ``state()`` / ``from_state()``."""

    __slots__ = ()
    name: ClassVar[Algorithm] = "sha1"
    digest_size: ClassVar[int] = 20
    _algorithm_id: ClassVar[int] = ALGORITHMS["sha1"]


HASHERS: dict[str, type[_Hash]] = {"sha256": sha256, "sha1": sha1}


def kernels() -> dict[str, str]:
    """Active kernel per algorithm, e.g. ``{"sha256": "sha-ni", "sha1": "sha-ni"}``."""
    return {
        name: ffi.string(lib.kd_kernel_name(algorithm_id)).decode("ascii")
        for name, algorithm_id in ALGORITHMS.items()
    }
