"""Library logs at warning and above only, for the length of a demo.

The gateway logs every route added, request served and circuit moved at
info level; a demo prints the same facts from the gateway's events, in its
own words and order, so the info lines would only repeat them out of place.
Warnings still show: a demo that goes wrong should say so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog


@contextmanager
def warnings_only() -> Iterator[None]:
    """Filter structlog below WARNING inside the block; the previous
    configuration comes back after it, even on error."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**previous)
