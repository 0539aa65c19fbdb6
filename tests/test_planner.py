"""Part planner and validate_parts: every KooDrive rule, whole plans and subsets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast._config import DEFAULT_LIMITS, GiB, Limits, MiB
from koodrive_fast._exceptions import ValidationError
from koodrive_fast._models import MultiPartInfo
from koodrive_fast._planner import (
    INITIAL_STATE,
    PartPlan,
    plan_parts,
    plan_with_contexts,
    validate_parts,
)

SMALL = Limits(min_part_size=64)
CTX = (7,) * 8
MIN = DEFAULT_LIMITS.min_part_size  # 5 242 880


def with_ctx(plan: PartPlan) -> list[MultiPartInfo]:
    return [p if p.part_number == 1 else dataclasses.replace(p, hash_ctx=CTX) for p in plan.parts]


def field_of(call: object) -> str:
    with pytest.raises(ValidationError) as info:
        call()  # type: ignore[operator]
    return info.value.field


# ---------------------------------------------------------------- plan_parts


def test_plan_zero_bytes_is_one_empty_part() -> None:
    plan = plan_parts(0)
    assert plan.parts == (MultiPartInfo(1, 0, 0),)
    assert plan.part_size == 8 * MiB


def test_plan_default_part_size_and_short_last_part() -> None:
    plan = plan_parts(20 * MiB + 5)
    assert plan.part_size == 8 * MiB
    assert [p.part_size for p in plan.parts] == [8 * MiB, 8 * MiB, 4 * MiB + 5]
    assert [p.part_offset for p in plan.parts] == [0, 8 * MiB, 16 * MiB]


def test_plan_200_gib_fits_in_10000_parts() -> None:
    plan = plan_parts(200 * GiB)
    assert plan.part_count <= 10_000
    assert plan.part_size % 64 == 0 and plan.part_size >= 21_474_880
    assert sum(p.part_size for p in plan.parts) == 200 * GiB


@pytest.mark.parametrize(
    ("size", "part_size", "field"),
    [(-1, None, "size"), (200 * GiB + 1, None, "size"), ("10", None, "size"),
     (100, 100, "partSize"), (100, 32, "partSize"), (MIB := 2**20, 4 * MIB, "partSize"),
     (100 * GiB, 5 * MiB, "partSize"), (10, 6 * GiB, "partSize"), (10, 1.0, "partSize")],
)
def test_plan_rejects(size: object, part_size: object, field: str) -> None:
    assert field_of(lambda: plan_parts(size, part_size)) == field  # type: ignore[arg-type]


@given(size=st.integers(0, 10**7), mult=st.integers(1, 2000))
def test_plan_properties(size: int, mult: int) -> None:
    part_size = 64 * mult
    if max(1, -(-size // part_size)) > SMALL.max_parts:
        with pytest.raises(ValidationError):
            plan_parts(size, part_size, limits=SMALL)
        return
    plan = plan_parts(size, part_size, limits=SMALL)
    assert sum(p.part_size for p in plan.parts) == size
    assert [p.part_number for p in plan.parts] == list(range(1, plan.part_count + 1))
    offset = 0
    for p in plan.parts:
        assert p.part_offset == offset and p.hash_ctx is None
        offset += p.part_size
    assert all(p.part_size == part_size for p in plan.parts[:-1])
    assert 0 <= plan.parts[-1].part_size <= part_size
    validate_parts(
        plan.parts, file_size=size, limits=SMALL, part_size=part_size, require_contexts=False
    )
    validate_parts(with_ctx(plan), file_size=size, limits=SMALL, part_size=part_size)


# ---------------------------------------------------------------- validate_parts rules


def good_plan() -> list[MultiPartInfo]:
    return with_ctx(plan_parts(2 * MIN + 100, MIN))


def replace(parts: list[MultiPartInfo], index: int, **changes: object) -> list[MultiPartInfo]:
    out = list(parts)
    out[index] = dataclasses.replace(out[index], **changes)  # type: ignore[arg-type]
    return out


def test_good_plan_passes() -> None:
    validate_parts(good_plan(), file_size=2 * MIN + 100)
    validate_parts(good_plan())


@pytest.mark.parametrize(
    ("index", "changes", "field", "rule"),
    [
        (0, {"part_number": 0}, "multiParts[0].partNumber", "1..10000"),
        (2, {"part_number": 10_001}, "multiParts[2].partNumber", "1..10000"),
        (1, {"part_number": 1, "hash_ctx": None}, "multiParts[1].partNumber", "duplicates"),
        (0, {"part_size": MIN - 64}, "multiParts[0].partSize", ">= 5242880"),
        (0, {"part_size": MIN + 64}, "multiParts[1].partOffset", "sum of the previous"),
        (1, {"part_size": MIN + 1}, "multiParts[1].partSize", "multiple of 64"),
        (2, {"part_size": 5 * GiB + 1}, "multiParts[2].partSize", "0..5368709120"),
        (1, {"part_offset": MIN + 64}, "multiParts[1].partOffset", "sum of the previous"),
        (1, {"part_offset": None}, "multiParts[1].partOffset", "required"),
        (0, {"part_offset": 64}, "multiParts[0].partOffset", "must be 0"),
        (1, {"hash_ctx": None}, "multiParts[1].hashCtx", "required"),
        (1, {"hash_ctx": (1,) * 7}, "multiParts[1].hashCtx", "8 words"),
        (1, {"hash_ctx": (2**32,) + (1,) * 7}, "multiParts[1].hashCtx[0]", "0..4294967295"),
        (2, {"hash_ctx": (-1,) * 8}, "multiParts[2].hashCtx[0]", "0..4294967295"),
        (0, {"hash_ctx": CTX}, "multiParts[0].hashCtx", "absent for part 1"),
    ],
)
def test_each_rule_names_field(
    index: int, changes: dict[str, object], field: str, rule: str
) -> None:
    parts = replace(good_plan(), index, **changes)
    with pytest.raises(ValidationError) as info:
        validate_parts(parts, file_size=2 * MIN + 100)
    assert info.value.field == field
    assert rule in info.value.rule
    assert isinstance(info.value, ValueError)


def test_part_one_may_carry_the_initial_state() -> None:
    validate_parts(replace(good_plan(), 0, hash_ctx=INITIAL_STATE["sha256"]))


def test_min_part_size_applies_to_non_last_parts_only() -> None:
    parts = with_ctx(plan_parts(3 * 64, 64, limits=SMALL))
    with pytest.raises(ValidationError, match=">= 5242880"):
        validate_parts(parts, file_size=3 * 64)
    validate_parts(parts, file_size=3 * 64, limits=SMALL)
    # a tiny last part is always fine
    validate_parts([MultiPartInfo(1, MIN, 0), MultiPartInfo(2, 1, MIN, CTX)], file_size=MIN + 1)


def test_last_part_may_be_short_and_non_multiple_of_64() -> None:
    validate_parts([MultiPartInfo(1, MIN, 0), MultiPartInfo(2, 1, MIN, CTX)], file_size=MIN + 1)
    # an empty trailing part after the file is already covered is refused
    with pytest.raises(ValidationError, match="ends the file"):
        validate_parts([MultiPartInfo(1, MIN, 0), MultiPartInfo(2, 0, MIN, CTX)], file_size=MIN)
    validate_parts([MultiPartInfo(1, 0, 0)], file_size=0)
    validate_parts([MultiPartInfo(1, 3, 0)], file_size=3)


def test_sha1_contexts_have_five_words() -> None:
    parts = [MultiPartInfo(1, MIN, 0), MultiPartInfo(2, 10, MIN, (1, 2, 3, 4, 5))]
    validate_parts(parts, algorithm="sha1")
    with pytest.raises(ValidationError, match="8 words"):
        validate_parts(parts)
    with pytest.raises(ValidationError) as info:
        validate_parts(parts, algorithm="md5")
    assert info.value.field == "algorithm"


def test_file_length_limit_and_part_count() -> None:
    assert field_of(lambda: validate_parts(good_plan(), file_size=200 * GiB + 1)) == "length"
    tiny = Limits(min_part_size=64, max_parts=3)
    parts = with_ctx(plan_parts(4 * 64, 64, limits=SMALL))
    with pytest.raises(ValidationError, match="<= 3"):
        validate_parts(parts, limits=tiny)


def test_part_beyond_file_end_and_part_after_end() -> None:
    parts = good_plan()
    field = field_of(lambda: validate_parts(parts, file_size=2 * MIN + 50))
    assert field == "multiParts[2].partSize"
    extra = [*parts[:2], dataclasses.replace(parts[2], part_size=64),
             MultiPartInfo(4, 36, 2 * MIN + 64, CTX)]
    with pytest.raises(ValidationError, match="ends the file"):
        validate_parts(extra, file_size=2 * MIN + 64)


def test_empty_or_wrong_types() -> None:
    assert field_of(lambda: validate_parts([])) == "multiParts"
    assert field_of(lambda: validate_parts("parts")) == "multiParts"  # type: ignore[arg-type]
    not_a_part: list[object] = [{"partNumber": 1}]
    assert field_of(lambda: validate_parts(not_a_part)) == "multiParts[0]"  # type: ignore[arg-type]


# ---------------------------------------------------------------- subsets


def window(first: int, last: int, part_size: int = 10 * MiB) -> list[MultiPartInfo]:
    return [MultiPartInfo(n, part_size, (n - 1) * part_size, CTX) for n in range(first, last + 1)]


def test_subset_window_like_the_docs_example() -> None:
    parts = window(46, 50)  # the brief's §4.1 example: parts 46-50 of 10 MiB
    assert parts[0].part_offset == 471_859_200
    validate_parts(parts)
    validate_parts(parts, part_size=10 * MiB)
    validate_parts(parts, file_size=100 * 10 * MiB, part_size=10 * MiB)


def test_subset_offset_checked_against_uniform_part_size() -> None:
    parts = replace(window(46, 50), 0, part_offset=45 * 10 * MiB + 64)
    # alone the window cannot tell part 46's offset is wrong ... but part 47 then is
    with pytest.raises(ValidationError) as info:
        validate_parts(parts)
    assert info.value.field == "multiParts[1].partOffset"
    single = [dataclasses.replace(window(46, 46)[0], part_offset=45 * 10 * MiB + 64)]
    validate_parts(single)  # plausible without more knowledge
    with pytest.raises(ValidationError, match="10485760 x 45"):
        validate_parts(single, part_size=10 * MiB)


def test_subset_gap_bounds() -> None:
    parts = [window(3, 3)[0], window(7, 7)[0]]
    validate_parts(parts)
    too_close = [parts[0], dataclasses.replace(parts[1], part_offset=3 * 10 * MiB + 64)]
    with pytest.raises(ValidationError, match="given part 3"):
        validate_parts(too_close)


def test_lone_part_offset_must_fit_the_earlier_parts() -> None:
    with pytest.raises(ValidationError, match="each earlier part"):
        validate_parts([MultiPartInfo(5, MIN, 3 * MIN, CTX)])
    validate_parts([MultiPartInfo(5, MIN, 4 * MIN, CTX)])


def test_unaligned_offset_of_a_lone_part() -> None:
    with pytest.raises(ValidationError, match="multiple of 64"):
        validate_parts([MultiPartInfo(5, MIN, 4 * MIN + 1, CTX)])


def test_prefix_subset_with_file_size() -> None:
    plan = with_ctx(plan_parts(10 * MIN, MIN))
    validate_parts(plan[:3], file_size=10 * MIN)  # create sends only the first parts
    with pytest.raises(ValidationError, match="all but the last"):
        validate_parts(replace(plan[:3], 2, part_size=MIN - 64), file_size=10 * MIN)


def test_part_number_beyond_plan_count() -> None:
    with pytest.raises(ValidationError, match="must be <= 3"):
        validate_parts(window(4, 4, MIN), file_size=3 * MIN, part_size=MIN)


# ---------------------------------------------------------------- plan_with_contexts

# protocol brief §9.4: 12 MiB where byte i = i mod 251, parts of 5 242 880 B
VECTOR_CTX_2 = (3421553783, 3807075027, 1869373043, 2340992472, 2724404595, 3434595078,
                1034840972, 91544355)
VECTOR_CTX_3 = (1744763919, 1351919588, 2915394129, 3958360420, 846895982, 2808795539,
                1859941231, 608676324)


def test_plan_with_contexts_matches_the_brief_vectors(tmp_path: Path) -> None:
    path = tmp_path / "vector.bin"
    path.write_bytes((bytes(range(251)) * (12 * MiB // 251 + 1))[: 12 * MiB])
    plan, contexts = plan_with_contexts(path, 5_242_880)
    assert [p.hash_ctx for p in plan.parts] == [None, VECTOR_CTX_2, VECTOR_CTX_3]
    assert [p.part_offset for p in plan.parts] == [0, 5_242_880, 10_485_760]
    assert contexts.digest == "b6967a4c54cdab8a16907be0774af71e5db8198045f91933ebed106ddba22dfb"
    validate_parts(plan.parts, file_size=12 * MiB, part_size=5_242_880)


def test_plan_with_contexts_small_file_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"x" * 200)
    plan, _ = plan_with_contexts(path, 64, limits=SMALL)
    assert plan.part_count == 4 and plan.parts[0].hash_ctx is None
    assert all(p.hash_ctx is not None and len(p.hash_ctx) == 8 for p in plan.parts[1:])
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    plan, contexts = plan_with_contexts(empty)
    assert plan.parts == (MultiPartInfo(1, 0, 0),) and contexts.size == 0
