"""Protocol limits in one place, and the default part-size rule.

The local server and the tests build a :class:`Limits` with a smaller
``min_part_size``; everything else uses :data:`DEFAULT_LIMITS`, which holds
KooDrive's documented values.
"""

from __future__ import annotations

import dataclasses

from ._sizes import format_size

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

__all__ = ["Limits", "DEFAULT_LIMITS", "default_part_size", "KiB", "MiB", "GiB"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """KooDrive's multipart limits (defaults are the documented values).

    ``max_file_size`` is read as 200 GiB: the docs say "200 GB" and the
    documented minimum part size for 10000 parts (21 474 880 B) matches GiB.
    """

    min_part_size: int = 5 * MiB
    max_part_size: int = 5 * GiB
    max_parts: int = 10_000
    max_file_size: int = 200 * GiB
    part_alignment: int = 64
    max_parts_per_request: int = 100
    default_part_size: int = 8 * MiB

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{field.name} must be a positive int, got {value!r}")
        if self.part_alignment % 64:
            raise ValueError("Limits.part_alignment must be a multiple of 64")
        if self.min_part_size > self.max_part_size:
            raise ValueError("Limits.min_part_size must not exceed max_part_size")


DEFAULT_LIMITS = Limits()


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def default_part_size(size: int, limits: Limits = DEFAULT_LIMITS) -> int:
    """The part size used when the caller names none.

    At least ``limits.default_part_size`` (8 MiB) and ``limits.min_part_size``,
    a multiple of ``limits.part_alignment`` (64), and large enough that
    ``size`` fits in ``limits.max_parts`` parts.  Raises ``ValueError`` when
    no part size within ``limits.max_part_size`` can do that.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    needed = _round_up(-(-size // limits.max_parts), limits.part_alignment)
    part = max(needed, limits.default_part_size, limits.min_part_size)
    part = _round_up(part, limits.part_alignment)
    if part > limits.max_part_size:
        raise ValueError(
            f"a file of {format_size(size)} needs parts of {format_size(part)}, above the "
            f"{format_size(limits.max_part_size)} maximum part size"
        )
    return part
