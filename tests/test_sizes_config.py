"""Byte-size parsing, protocol limits and the default part-size rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast import DEFAULT_LIMITS, Limits, default_part_size, parse_size
from koodrive_fast._config import GiB, MiB
from koodrive_fast._sizes import format_size

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        ("8MiB", 8 * 1024**2),
        ("8 MiB", 8 * 1024**2),
        ("8mib", 8 * 1024**2),
        ("5MB", 5_000_000),
        ("5M", 5_000_000),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("2KiB", 2048),
        ("1kB", 1000),
        ("1TiB", 1024**4),
        (12345, 12345),
    ],
)
def test_parse_size_accepts(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MiB", "8 parsecs", "-5", "1.2.3MiB", "0.3B", "8 Mi B"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_parse_size_rejects_negative_int_and_other_types() -> None:
    with pytest.raises(ValueError):
        parse_size(-1)
    with pytest.raises(TypeError):
        parse_size(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_size(True)  # type: ignore[arg-type]


def test_format_size() -> None:
    assert format_size(100) == "100 B"
    assert format_size(8 * MiB) == "8 MiB"
    assert format_size(5 * GiB) == "5 GiB"
    assert format_size(20_000_000 * 1024**4) == "20000000 TiB"
    assert format_size(3 * GiB // 2) == "1.5 GiB"


def test_default_limits_are_the_documented_values() -> None:
    assert DEFAULT_LIMITS.min_part_size == 5_242_880
    assert DEFAULT_LIMITS.max_part_size == 5_368_709_120
    assert DEFAULT_LIMITS.max_parts == 10_000
    assert DEFAULT_LIMITS.part_alignment == 64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_part_size": 0},
        {"max_parts": -1},
        {"part_alignment": 32},
        {"min_part_size": 10, "max_part_size": 5},
        {"default_part_size": 1.5},
    ],
)
def test_limits_reject_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_default_part_size_small_and_exact_cases() -> None:
    assert default_part_size(0) == 8 * MiB
    assert default_part_size(1) == 8 * MiB
    assert default_part_size(80 * 1024**3) == 8_589_952  # 80 GiB / 10000 = 8 589 934.6, up to 64
    # 200 GiB needs the documented 21 474 880-byte minimum (a multiple of 64)
    assert default_part_size(200 * GiB) == 21_474_880


@given(st.integers(min_value=0, max_value=200 * GiB))
def test_default_part_size_rule(size: int) -> None:
    part = default_part_size(size)
    assert part % 64 == 0
    assert part >= 8 * MiB
    assert -(-size // part) <= 10_000
    # minimal: one alignment step smaller would need more parts, or go below 8 MiB
    smaller = part - 64
    assert smaller < 8 * MiB or -(-size // smaller) > 10_000


def test_default_part_size_impossible() -> None:
    with pytest.raises(ValueError):
        default_part_size(10_001 * 5 * GiB)
    with pytest.raises(ValueError):
        default_part_size(-1)


def test_default_part_size_with_test_limits() -> None:
    limits = Limits(min_part_size=64, default_part_size=128)
    assert default_part_size(10, limits) == 128
    assert default_part_size(10_000 * 1024 + 1, limits) == 1088


@pytest.mark.slow
@pytest.mark.timeout(660)  # above the mypy child's own 600 s bound, which then reports
def test_package_type_checks_with_mypy_strict() -> None:
    """The typed public surface is checked like code (mypy --strict over the package)."""
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "src/koodrive_fast"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
