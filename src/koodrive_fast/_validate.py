"""Validators of names and ids shared by the API client and the upload engine (one per rule)."""

from __future__ import annotations

import math

import re

from ._exceptions import ValidationError

__all__ = [
    "check_str", "check_seconds", "check_file_id", "check_file_name", "FORBIDDEN_NAME_CHARS",
    "MAX_NAME",
]

FORBIDDEN_NAME_CHARS = frozenset('<>|:"*?/\\')
MAX_NAME = 250


def check_str(value: object, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValidationError(field, "must not be empty")
    return value


def check_seconds(value: object, field: str, *, positive: bool = False) -> float:
    """A finite number of seconds, ``>= 0`` (``> 0`` when ``positive``), as a float."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        rule = "> 0" if positive else ">= 0"
        raise ValidationError(field, f"must be a finite number of seconds {rule}, got {value!r}")
    return float(value)


def check_file_id(file_id: object, field: str = "fileId") -> str:
    text = check_str(file_id, field)
    if text in (".", "..") or any(c in text for c in "/\\?#") or any(ord(c) < 32 for c in text):
        raise ValidationError(field, "must not contain '/', '\\', '?', '#' or control characters")
    return text


def check_file_name(name: object) -> str:
    text = check_str(name, "fileName")
    if text in (".", ".."):
        raise ValidationError("fileName", "must not be '.' or '..'")
    bad = sorted(set(text) & FORBIDDEN_NAME_CHARS)
    if bad or any(ord(c) < 32 for c in text):
        raise ValidationError(
            "fileName",
            f"must not contain any of < > | : \" * ? / \\ or control characters (found {bad})",
        )
    if len(text) > MAX_NAME:
        raise ValidationError(
            "fileName", f"must be at most {MAX_NAME} characters, got {len(text)}"
        )
    return text


_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def check_hex64(value: object, field: str) -> str:
    """A SHA-256 digest as 64 hex characters, lowercased."""
    text = check_str(value, field)
    if not _HEX64.match(text):
        raise ValidationError(field, "must be 64 hexadecimal characters (a SHA-256 digest)")
    return text.lower()
