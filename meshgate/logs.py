"""The one place where structlog is configured: JSON lines when stderr is not
a terminal (production, containers, CI), a readable console otherwise.

Every process calls `configure_logging()` once at start::

    configure_logging(level="info")
    structlog.get_logger().info("registry.started", node="r1", backend="nats-kv")
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    """Send structlog events to stderr at `level` (default env MESHGATE_LOG_LEVEL or info)."""
    chosen = (level or os.environ.get("MESHGATE_LOG_LEVEL", "info")).lower()
    if chosen not in _LEVELS:
        allowed = ", ".join(_LEVELS)
        raise ValueError(f"log level {chosen!r} is not allowed: expected one of {allowed}")
    use_json = (not sys.stderr.isatty()) if json is None else json
    # the console renderer formats exceptions itself, better than format_exc_info
    processors = structlog.processors
    exceptions: structlog.typing.Processor = (
        processors.format_exc_info if use_json else processors.StackInfoRenderer()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, chosen.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
