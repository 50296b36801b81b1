"""Durations as users write them: seconds as a number, or strings such as
``"500ms"``, ``"15s"``, ``"2m"``, ``"1h"``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_EXPECTED = "expected seconds or '500ms', '15s', '2m', '1h'"


def parse_duration(value: float | str, *, option: str = "duration") -> float:
    """Seconds in `value`.

    >>> parse_duration("500ms"), parse_duration("2m"), parse_duration(1.5)
    (0.5, 120.0, 1.5)
    """
    if isinstance(value, bool):
        raise ValueError(f"{option}={value!r} is not a duration: {_EXPECTED}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{option}={value!r} is not a duration: it must be >= 0")
        return float(value)
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"{option}={value!r} is not a duration: {_EXPECTED}")
    return float(match.group(1)) * _UNITS[match.group(2)]
