"""Checks for constructor options: each raises `ValueError` naming the option,
the value it got and what is allowed, so a wrong setting fails at construction
instead of at the first call."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

T = TypeVar("T")


def _fail(option: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{option}={value!r} is not allowed: expected {allowed}")


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `failure_threshold=True` is a mistake, not 1
    return not isinstance(value, bool) and isinstance(value, int | float)


def positive_int(option: str, value: int) -> int:
    """`value` if it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(option, value, "an integer >= 1")
    return value


def non_negative_int(option: str, value: int) -> int:
    """`value` if it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(option, value, "an integer >= 0")
    return value


def positive_number(option: str, value: float) -> float:
    """`value` as a float if it is a finite number > 0."""
    if not _is_number(value) or not 0 < value < float("inf"):
        raise _fail(option, value, "a number > 0")
    return float(value)


def non_negative_number(option: str, value: float) -> float:
    """`value` as a float if it is a finite number >= 0."""
    if not _is_number(value) or not 0 <= value < float("inf"):
        raise _fail(option, value, "a number >= 0")
    return float(value)


def percentage(option: str, value: float) -> float:
    """`value` as a float if it lies in [0, 100]."""
    if not _is_number(value) or not 0 <= value <= 100:
        raise _fail(option, value, "a percentage between 0 and 100")
    return float(value)


def fraction(option: str, value: float) -> float:
    """`value` as a float if it lies in [0, 1]."""
    if not _is_number(value) or not 0 <= value <= 1:
        raise _fail(option, value, "a number between 0 and 1")
    return float(value)


def one_of(option: str, value: T, allowed: Collection[T]) -> T:
    """`value` if it is one of `allowed`."""
    if value not in allowed:
        raise _fail(option, value, "one of " + ", ".join(repr(a) for a in allowed))
    return value
