"""A logger that prints the library's log events as indented lines of a
demo's account, so a reader sees what an operator would see in the logs
(``registry.reregistered``, ``service_client.retrying``) where it happens."""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection, MutableMapping
from typing import Any, cast

import structlog
from structlog.typing import FilteringBoundLogger


class _Renderer:
    """One event as ``log: name key=value ...``, without the keys in `hidden`."""

    def __init__(self, hidden: Collection[str]) -> None:
        self._hidden = frozenset(hidden)

    def __call__(self, _logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        event = event_dict.pop("event", "")
        shown = (f"{k}={_shown(v)}" for k, v in event_dict.items() if k not in self._hidden)
        return f"      log: {event} {' '.join(shown)}".rstrip()


def _shown(value: object) -> object:
    # 3 × 0.2 is 0.6000000000000001 in binary floating point; a reader wants 0.6.
    return round(value, 6) if isinstance(value, float) else value


def printed_logger(
    level: int = logging.INFO, *, hidden: Collection[str] = ("service",)
) -> FilteringBoundLogger:
    """A structlog logger that prints events at `level` and above to stdout,
    leaving out the keys in `hidden` (names the account already gives).

    Demos pass it to the classes they show instead of configuring structlog
    for the whole process, which would change every other logger too.
    """
    return cast(
        FilteringBoundLogger,
        structlog.wrap_logger(
            # sys.stdout is read now, not at import: a test's captured stdout counts.
            structlog.PrintLogger(sys.stdout),
            processors=[_Renderer(hidden)],
            wrapper_class=structlog.make_filtering_bound_logger(level),
        ),
    )


def quiet_logger() -> FilteringBoundLogger:
    """Prints warnings only: for demos whose account already says what
    changed, where the library's info lines would repeat it."""
    return printed_logger(logging.WARNING)
