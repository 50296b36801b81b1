"""From config Structs to constructor keyword arguments.

The Structs that map onto a constructor (a breaker, a retry policy, ...)
leave a field the user did not write as `msgspec.UNSET`. Two things follow:
the options passed on hold only what the user wrote, so the constructor's own
defaults apply to the rest; and a route's options can be laid over the
gateway's defaults field by field, so that a route that says only
``failure_threshold = 3`` keeps the default ``reset_timeout``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

import msgspec

from meshgate.durations import parse_duration

S = TypeVar("S", bound=msgspec.Struct)


def written_fields(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields of `struct` that are not UNSET, as they are.

    >>> class Example(msgspec.Struct):
    ...     a: int | msgspec.UnsetType = msgspec.UNSET
    ...     b: int | msgspec.UnsetType = msgspec.UNSET
    >>> written_fields(Example(b=2))
    {'b': 2}
    """
    return {
        name: value
        for name in struct.__struct_fields__
        if (value := getattr(struct, name)) is not msgspec.UNSET
    }


def constructor_options(struct: msgspec.Struct, durations: Collection[str] = ()) -> dict[str, Any]:
    """`written_fields(struct)` with each field named in `durations` in seconds."""
    options = written_fields(struct)
    for name in durations:
        value = options.get(name)
        if value is not None:
            options[name] = parse_duration(value, option=name)
    return options


def overlaid(base: S | None, top: S | None) -> S | None:
    """`top`'s written fields over `base`: the route's options over the defaults.

    Either may be None (nothing configured there). The result is checked
    again, since two valid halves can make an invalid whole.
    """
    if top is None:
        return base
    if base is None:
        return top
    return msgspec.structs.replace(base, **written_fields(top))


def positive_duration(value: float | str | None, option: str) -> float | None:
    """`value` in seconds, which must be above zero; None stays None.

    >>> positive_duration("250ms", "timeout")
    0.25
    >>> positive_duration(0, "timeout")
    Traceback (most recent call last):
    ...
    ValueError: timeout=0 is not allowed: expected a duration above zero
    """
    if value is None:
        return None
    seconds = parse_duration(value, option=option)
    if seconds <= 0:
        raise ValueError(f"{option}={value!r} is not allowed: expected a duration above zero")
    return seconds
