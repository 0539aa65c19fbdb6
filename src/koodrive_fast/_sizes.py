"""Human byte sizes: ``parse_size("8MiB") == 8388608``, ``format_size``."""

from __future__ import annotations

import re

__all__ = ["parse_size", "parse_rate", "format_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Parse ``"8MiB"``, ``"5 MB"``, ``"1.5GiB"`` or ``"4096"`` into bytes.

    Decimal units (kB, MB, GB, TB, and bare k/M/G/T) are powers of 1000;
    binary units (KiB, MiB, GiB, TiB) powers of 1024.  Raises ``ValueError``
    for anything else, and for fractions that do not come to whole bytes.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"size must be >= 0, got {text}")
        return text
    if not isinstance(text, str):
        raise TypeError(f"size must be str or int, got {type(text).__name__}")
    match = _PATTERN.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 8MiB, 5MB, 1048576)")
    number, factor = match.group(1), _UNITS[unit]
    if "." in number:
        whole, frac = number.split(".")
        scale: int = 10 ** len(frac)
        scaled = int(whole) * factor + int(frac) * factor // scale
        if int(frac) * factor % scale:
            raise ValueError(f"{text!r} is not a whole number of bytes")
        return scaled
    return int(number) * factor


_BIT_PREFIXES = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_rate(text: str) -> int:
    """Parse a transfer rate into bytes per second.

    Bit rates: ``"2.5Gbit"``, ``"100Mbit"``, ``"1Gbps"`` (decimal prefixes,
    8 bits a byte, rounded down); byte rates are sizes as
    :func:`parse_size` reads them, optionally with ``/s``: ``"300MB"``,
    ``"64MiB/s"``.  Raises ``ValueError`` for anything else and for 0.
    """
    if not isinstance(text, str):
        raise TypeError(f"rate must be str, got {type(text).__name__}")
    match = _PATTERN.match(text.strip().removesuffix("/s"))
    unit = match.group(2).lower() if match else ""
    bits_unit = unit[:-3] if unit.endswith(("bit", "bps")) else None
    rate: int
    if match and bits_unit is not None and bits_unit in _BIT_PREFIXES:
        whole, _, frac = match.group(1).partition(".")
        scale = 10 ** len(frac)
        bits: int = (int(whole) * scale + int(frac or 0)) * _BIT_PREFIXES[bits_unit] // scale
        rate = bits // 8
    else:
        try:
            rate = parse_size(text.strip().removesuffix("/s"))
        except ValueError:
            raise ValueError(f"not a rate: {text!r} (examples: 2.5Gbit, 100Mbps, 300MB, 64MiB/s)") from None
    if rate <= 0:
        raise ValueError(f"rate must be at least 1 byte per second, got {text!r}")
    return rate


def format_size(n: float) -> str:
    """Binary units, whole when exact: ``"5 GiB"``, ``"1.5 GiB"``, ``"100 B"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "B" or value == int(value):
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
