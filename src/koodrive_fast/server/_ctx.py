"""Hash-context codec and the C-core hasher the storage side uses.

``X-Amz-Iteration-Hash-Ctx`` is base64 of compact JSON mirroring OpenSSL's
``SHA256_CTX`` without its block buffer (protocol §9.2).  Encoding and
parsing are :class:`koodrive_fast._hashing.HashState`'s (documented key
order on output; ``Nl``/``Nh`` and any key order accepted on input, §14.8);
:class:`Hasher` drives the C core directly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._hashing import Algorithm, HashState
from .._native import ffi, lib

__all__ = ["IterationCtx", "CtxError", "Hasher", "SHA256_IV", "SHA1_IV", "encode_ctx", "decode_ctx"]

SHA256_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)
SHA1_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
_WORDS = {"sha256": 8, "sha1": 5}
_MD_LEN = {"sha256": 32, "sha1": 20}
_ALG = {"sha256": lib.KD_ALG_SHA256, "sha1": lib.KD_ALG_SHA1}
_MAX_CTX_TEXT = 4096


class CtxError(ValueError):
    """A hash context is malformed or inconsistent."""


@dataclasses.dataclass(frozen=True)
class IterationCtx:
    """Chaining words plus the byte offset they were taken at."""

    hash_type: str
    words: tuple[int, ...]
    offset: int

    @classmethod
    def initial(cls, hash_type: str = "sha256") -> IterationCtx:
        return cls(hash_type, SHA256_IV if hash_type == "sha256" else SHA1_IV, 0)


def encode_ctx(ctx: IterationCtx) -> str:
    """The ``X-Amz-Iteration-Hash-Ctx`` value (via :class:`koodrive_fast._hashing.HashState`)."""
    algorithm: Algorithm = "sha256" if ctx.hash_type == "sha256" else "sha1"
    return HashState(algorithm, ctx.words, ctx.offset).to_iteration_ctx()


def decode_ctx(text: str) -> IterationCtx:
    """Parse an ``X-Amz-Iteration-Hash-Ctx`` value; raises :class:`CtxError`."""
    if len(text) > _MAX_CTX_TEXT:
        raise CtxError("hash context is too long")
    try:
        state = HashState.from_iteration_ctx(text)
    except (TypeError, ValueError) as exc:
        raise CtxError(str(exc)) from None
    return IterationCtx(state.algorithm, state.words, state.length)


class Hasher:
    """Streams bytes through the C core from a given context."""

    def __init__(self, ctx: IterationCtx) -> None:
        self.hash_type = ctx.hash_type
        self._ctx = ffi.new("kd_hash_ctx *")
        words = ffi.new("uint32_t[8]", list(ctx.words))
        if lib.kd_hash_set_state(self._ctx, _ALG[ctx.hash_type], words, ctx.offset) != lib.KD_OK:
            raise CtxError("hash context rejected by the hash core")

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if len(data):
            lib.kd_hash_update(self._ctx, ffi.from_buffer(data), len(data))

    @property
    def native(self) -> Any:
        """The C core's ``kd_hash_ctx *`` (for :class:`koodrive_fast.server._recv.NativeBody`)."""
        return self._ctx

    @property
    def length(self) -> int:
        return int(self._ctx.length)

    def words(self) -> tuple[int, ...]:
        """Chaining words now (meaningful at a 64-byte boundary)."""
        return tuple(int(w) for w in self._ctx.h[0 : _WORDS[self.hash_type]])

    def hexdigest(self) -> str:
        out = ffi.new("uint8_t[32]")
        lib.kd_hash_digest(self._ctx, out)
        return bytes(ffi.buffer(out, _MD_LEN[self.hash_type])).hex()
