"""Part plans: choose a part size, list the parts, validate any part list.

:func:`validate_parts` enforces KooDrive's multipart rules on a whole plan *or
on a subset of it* (``files/multipart/uploadUrl`` may ask for parts 46-50
only).  Offsets are checked as follows:

* part 1 has offset 0 (or none);
* for two parts ``n`` and ``n+1`` both present, ``offset(n+1) == offset(n) + size(n)``
  (so a list that starts at part 1 and has no gaps gets the full running-sum
  check);
* across a gap of ``k`` missing parts, the offset grows by the earlier part's
  size plus between ``k × min_part_size`` and ``k × max_part_size`` bytes;
* every offset after part 1 is a multiple of the alignment (64) and lies in
  ``(n-1) × [min_part_size, max_part_size]``, since all earlier parts are
  non-last;
* when the caller knows the plan's uniform ``part_size``, every non-last part
  must have exactly that size and ``offset(n) == part_size × (n-1)``.

"Last part" means: the part that ends at ``file_size`` when the file size is
known, otherwise the highest-numbered part in the list (which may or may not
be the plan's last; it gets the lenient last-part size rule).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from ._config import DEFAULT_LIMITS, Limits, default_part_size
from ._exceptions import ValidationError
from ._models import MultiPartInfo
from ._sizes import format_size

if TYPE_CHECKING:  # pragma: no cover
    from ._contexts import FileContexts

__all__ = [
    "PartPlan",
    "plan_parts",
    "plan_with_contexts",
    "validate_parts",
    "validate_file_size",
    "CTX_WORDS",
    "INITIAL_STATE",
]

#: Number of chaining words in ``hashCtx`` per algorithm.
CTX_WORDS = {"sha256": 8, "sha1": 5}
#: The algorithms' initial chaining words (the implicit context of part 1).
INITIAL_STATE = {
    "sha256": (
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
        0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    ),
    "sha1": (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0),
}
_MAX_WORD = 2**32 - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_file_size(size: object, limits: Limits = DEFAULT_LIMITS, field: str = "length") -> int:
    """``size`` as an int in ``[0, limits.max_file_size]``, else :class:`ValidationError`."""
    if not _is_int(size):
        raise ValidationError(field, f"must be an int, got {type(size).__name__}")
    assert isinstance(size, int)
    if size < 0:
        raise ValidationError(field, f"must be >= 0, got {size}")
    if size > limits.max_file_size:
        raise ValidationError(
            field,
            f"must be at most {format_size(limits.max_file_size)} (the multipart maximum), "
            f"got {format_size(size)}",
        )
    return size


def _check_ctx(part: MultiPartInfo, field: str, algorithm: str, require_contexts: bool) -> None:
    n_words = CTX_WORDS[algorithm]
    if part.hash_ctx is None:
        if part.part_number > 1 and require_contexts:
            raise ValidationError(f"{field}.hashCtx", "is required for every part except part 1")
        return
    if len(part.hash_ctx) != n_words:
        raise ValidationError(
            f"{field}.hashCtx",
            f"must have {n_words} words for {algorithm}, got {len(part.hash_ctx)}",
        )
    for i, word in enumerate(part.hash_ctx):
        if not 0 <= word <= _MAX_WORD:
            raise ValidationError(f"{field}.hashCtx[{i}]", f"must be in 0..{_MAX_WORD}, got {word}")
    if part.part_number == 1 and part.hash_ctx != INITIAL_STATE[algorithm]:
        raise ValidationError(
            f"{field}.hashCtx", "must be absent for part 1 (it starts at the initial state)"
        )


def validate_parts(
    parts: Sequence[MultiPartInfo],
    *,
    file_size: Optional[int] = None,
    algorithm: str = "sha256",
    limits: Limits = DEFAULT_LIMITS,
    part_size: Optional[int] = None,
    require_contexts: bool = True,
) -> None:
    """Check a part list against KooDrive's rules; raise :class:`ValidationError`.

    ``parts`` may be a whole plan or any subset of it (see the module
    docstring for how offsets of subsets are checked).  ``require_contexts``
    (default) demands ``partOffset`` and ``hashCtx`` on every part after
    part 1, as concurrent uploads need; pass ``False`` for a bare plan.
    The field names in errors are ``multiParts[i].<jsonName>`` with ``i`` the
    index in ``parts``.
    """
    if algorithm not in CTX_WORDS:
        raise ValidationError("algorithm", f"must be one of {sorted(CTX_WORDS)}, got {algorithm!r}")
    if isinstance(parts, (str, bytes)) or not isinstance(parts, Sequence):
        raise ValidationError("multiParts", "must be a sequence of MultiPartInfo")
    if not parts:
        raise ValidationError("multiParts", "must not be empty")
    if len(parts) > limits.max_parts:
        raise ValidationError(
            "multiParts", f"must have <= {limits.max_parts} parts, got {len(parts)}"
        )
    if file_size is not None:
        validate_file_size(file_size, limits)
    if part_size is not None:
        _check_part_size_choice(part_size, limits)

    seen: dict[int, int] = {}
    for i, part in enumerate(parts):
        field = f"multiParts[{i}]"
        if not isinstance(part, MultiPartInfo):
            raise ValidationError(field, f"must be a MultiPartInfo, got {type(part).__name__}")
        if not 1 <= part.part_number <= limits.max_parts:
            raise ValidationError(
                f"{field}.partNumber", f"must be in 1..{limits.max_parts}, got {part.part_number}"
            )
        if part.part_number in seen:
            raise ValidationError(
                f"{field}.partNumber", f"duplicates multiParts[{seen[part.part_number]}]"
            )
        seen[part.part_number] = i
        if not 0 <= part.part_size <= limits.max_part_size:
            raise ValidationError(
                f"{field}.partSize", f"must be in 0..{limits.max_part_size}, got {part.part_size}"
            )
        if part.part_offset is not None and part.part_offset < 0:
            raise ValidationError(f"{field}.partOffset", f"must be >= 0, got {part.part_offset}")
        if part.part_number > 1 and part.part_offset is None and require_contexts:
            raise ValidationError(f"{field}.partOffset", "is required for every part except part 1")
        if part.part_number == 1 and part.part_offset not in (None, 0):
            raise ValidationError(
                f"{field}.partOffset", f"must be 0 for part 1, got {part.part_offset}"
            )
        _check_ctx(part, field, algorithm, require_contexts)

    order = sorted(range(len(parts)), key=lambda idx: parts[idx].part_number)
    highest = parts[order[-1]].part_number
    if part_size is not None and file_size is not None:
        count = max(1, -(-file_size // part_size))
        if count > limits.max_parts:
            raise ValidationError(
                "partSize", f"{part_size} gives {count} parts, above the {limits.max_parts} maximum"
            )
        if highest > count:
            raise ValidationError(
                f"multiParts[{order[-1]}].partNumber",
                f"must be <= {count} (parts in a {file_size}-byte file of {part_size}-byte parts)",
            )

    prev: Optional[MultiPartInfo] = None
    prev_offset: Optional[int] = None
    for idx in order:
        part = parts[idx]
        field = f"multiParts[{idx}]"
        offset: Optional[int] = 0 if part.part_number == 1 else part.part_offset
        if (
            offset is None
            and prev is not None
            and prev_offset is not None
            and prev.part_number == part.part_number - 1
        ):
            offset = prev_offset + prev.part_size  # implied by a contiguous list
        end = None if offset is None else offset + part.part_size
        if file_size is not None and end is not None:
            if end > file_size:
                raise ValidationError(
                    f"{field}.partSize",
                    f"part ends at byte {end}, beyond the file length {file_size}",
                )
            is_last = end == file_size
            if is_last and part.part_number != highest:
                raise ValidationError(
                    f"{field}.partNumber",
                    f"part {part.part_number} ends the file but part {highest} follows it",
                )
        else:
            is_last = part.part_number == highest
        if not is_last:
            if part.part_size < limits.min_part_size:
                raise ValidationError(
                    f"{field}.partSize",
                    f"must be >= {limits.min_part_size} for all but the last part, "
                    f"got {part.part_size}",
                )
            if part.part_size % limits.part_alignment:
                raise ValidationError(
                    f"{field}.partSize",
                    f"must be a multiple of {limits.part_alignment} for all but the last part, "
                    f"got {part.part_size}",
                )
            if part_size is not None and part.part_size != part_size:
                raise ValidationError(
                    f"{field}.partSize",
                    f"must equal the plan's part size {part_size}, got {part.part_size}",
                )
        elif part_size is not None and part.part_size > part_size:
            raise ValidationError(
                f"{field}.partSize",
                f"the last part must be <= the plan's part size {part_size}, got {part.part_size}",
            )
        if offset is not None and part.part_number > 1:
            low_bound = (part.part_number - 1) * limits.min_part_size
            high_bound = (part.part_number - 1) * limits.max_part_size
            if not low_bound <= offset <= high_bound:
                raise ValidationError(
                    f"{field}.partOffset",
                    f"must be in {low_bound}..{high_bound} for part {part.part_number} "
                    f"(each earlier part has {limits.min_part_size}.."
                    f"{limits.max_part_size} bytes), "
                    f"got {offset}",
                )
            if offset % limits.part_alignment:
                raise ValidationError(
                    f"{field}.partOffset",
                    f"must be a multiple of {limits.part_alignment}, got {offset}",
                )
            if part_size is not None and offset != part_size * (part.part_number - 1):
                raise ValidationError(
                    f"{field}.partOffset",
                    f"must be {part_size * (part.part_number - 1)} "
                    f"(= {part_size} x {part.part_number - 1}), got {offset}",
                )
        if prev is not None and prev_offset is not None and offset is not None:
            gap = part.part_number - prev.part_number - 1
            low = prev_offset + prev.part_size + gap * limits.min_part_size
            high = prev_offset + prev.part_size + gap * limits.max_part_size
            if gap == 0 and offset != low:
                raise ValidationError(
                    f"{field}.partOffset",
                    f"must equal the sum of the previous part sizes ({low}), got {offset}",
                )
            if not low <= offset <= high:
                raise ValidationError(
                    f"{field}.partOffset",
                    f"must be in {low}..{high} given part {prev.part_number}, got {offset}",
                )
        if (
            file_size is not None
            and offset is None
            and part.part_number > 1
            and (part.part_number - 1) * limits.min_part_size > file_size
        ):
            raise ValidationError(
                f"{field}.partNumber",
                f"part {part.part_number} cannot exist in a {file_size}-byte file",
            )
        prev, prev_offset = part, offset


def validate_part_size(
    part_size: object, file_size: int, limits: Limits = DEFAULT_LIMITS, field: str = "part_size"
) -> int:
    """The one rule for a file's part size: a positive multiple of the alignment, at most
    the maximum, at least the minimum unless the file has one part, and at most
    ``limits.max_parts`` parts.  Returns it, or raises :class:`ValidationError`."""
    if not _is_int(part_size):
        raise ValidationError(field, f"must be an int, got {type(part_size).__name__}")
    assert isinstance(part_size, int)
    if part_size <= 0 or part_size % limits.part_alignment:
        raise ValidationError(
            field,
            f"must be a positive multiple of {limits.part_alignment} bytes, got {part_size}",
        )
    if part_size > limits.max_part_size:
        raise ValidationError(
            field,
            f"must be at most {format_size(limits.max_part_size)}, got {format_size(part_size)}",
        )
    n_parts = max(1, -(-file_size // part_size))
    if n_parts > 1 and part_size < limits.min_part_size:
        raise ValidationError(
            field,
            f"must be at least {format_size(limits.min_part_size)} for a file of more than one "
            f"part, got {format_size(part_size)}",
        )
    if n_parts > limits.max_parts:
        raise ValidationError(
            field,
            f"{format_size(part_size)} parts cut {format_size(file_size)} into {n_parts} parts; "
            f"at most {limits.max_parts} are allowed",
        )
    return part_size


def _check_part_size_choice(part_size: object, limits: Limits, field: str = "partSize") -> int:
    if not _is_int(part_size):
        raise ValidationError(field, f"must be an int, got {type(part_size).__name__}")
    assert isinstance(part_size, int)
    if not limits.min_part_size <= part_size <= limits.max_part_size:
        raise ValidationError(
            field,
            f"must be in {limits.min_part_size}..{limits.max_part_size}, got {part_size}",
        )
    if part_size % limits.part_alignment:
        raise ValidationError(
            field, f"must be a multiple of {limits.part_alignment}, got {part_size}"
        )
    return part_size


@dataclasses.dataclass(frozen=True)
class PartPlan:
    """A file's part layout: ``size`` bytes in parts of ``part_size`` (last one shorter).

    ``parts`` carry number, size and offset; ``hash_ctx`` is filled only by
    :func:`plan_with_contexts`.  A zero-byte file has one part of size 0.
    """

    size: int
    part_size: int
    parts: tuple[MultiPartInfo, ...]

    @property
    def part_count(self) -> int:
        return len(self.parts)

    def part(self, number: int) -> MultiPartInfo:
        """The part with ``part_number == number`` (1-based)."""
        if not 1 <= number <= len(self.parts):
            raise IndexError(f"part {number} not in 1..{len(self.parts)}")
        return self.parts[number - 1]

    def __repr__(self) -> str:
        return f"PartPlan(size={self.size}, part_size={self.part_size}, parts=<{len(self.parts)}>)"


def plan_parts(
    size: int, part_size: Optional[int] = None, *, limits: Limits = DEFAULT_LIMITS
) -> PartPlan:
    """Split ``size`` bytes into parts.

    Without ``part_size`` the default rule applies (:func:`default_part_size`:
    ≥ 8 MiB, multiple of 64, large enough for ≤ ``limits.max_parts`` parts).
    A given ``part_size`` must be in ``[min_part_size, max_part_size]``, a
    multiple of 64, and give at most ``max_parts`` parts.
    """
    size = validate_file_size(size, limits, field="size")
    if part_size is None:
        try:
            part_size = default_part_size(size, limits)
        except ValueError as exc:  # pragma: no cover - unreachable with sane limits
            raise ValidationError("partSize", str(exc)) from None
    else:
        _check_part_size_choice(part_size, limits)
    count = max(1, -(-size // part_size))
    if count > limits.max_parts:
        raise ValidationError(
            "partSize",
            f"{part_size}-byte parts split {size} bytes into {count} parts, above the "
            f"{limits.max_parts} maximum; use at least {-(-size // limits.max_parts)}-byte parts",
        )
    parts = tuple(
        MultiPartInfo(
            part_number=n + 1,
            part_size=min(part_size, size - n * part_size),
            part_offset=n * part_size,
        )
        for n in range(count)
    )
    return PartPlan(size=size, part_size=part_size, parts=parts)


PathLike = Union[str, "os.PathLike[str]"]


def plan_with_contexts(
    path: PathLike,
    part_size: Optional[int] = None,
    *,
    algorithm: str = "sha256",
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[PartPlan, FileContexts]:
    """Plan ``path`` and fill every part's ``hash_ctx`` in one read of the file.

    Returns the plan (part 1 without context) and the :class:`FileContexts`
    (whole-file digest, pre-hash, ...) from :func:`koodrive_fast.part_contexts`.
    """
    if algorithm not in CTX_WORDS:
        raise ValidationError("algorithm", f"must be one of {sorted(CTX_WORDS)}, got {algorithm!r}")
    size = os.stat(path).st_size
    plan = plan_parts(size, part_size, limits=limits)
    from ._contexts import part_contexts  # lazy: pulls in the native core

    contexts = part_contexts(path, plan.part_size, algorithm=cast(Any, algorithm))
    if contexts.size != size or len(contexts.parts) != plan.part_count:
        raise RuntimeError(
            f"{os.fspath(path)!r} changed while planning: {contexts.size} bytes in "
            f"{len(contexts.parts)} parts, expected {size} bytes in {plan.part_count}"
        )
    filled = []
    for part, ctx in zip(plan.parts, contexts.parts):
        if (ctx.part_number, ctx.part_offset, ctx.part_size) != (
            part.part_number, part.part_offset, part.part_size,
        ):
            raise RuntimeError(f"context for part {part.part_number} does not match the plan")
        words = None if part.part_number == 1 or ctx.hash_ctx is None else tuple(ctx.hash_ctx)
        filled.append(dataclasses.replace(part, hash_ctx=words))
    return PartPlan(size=size, part_size=plan.part_size, parts=tuple(filled)), contexts
