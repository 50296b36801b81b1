"""The Prometheus text exposition format (version 0.0.4), written by hand:
a few families, escaped labels, no dependency on a client library.

The tests parse what this writes with prometheus-client's own parser, so
"the Prometheus parser accepts it" is checked, not assumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

MetricType = Literal["counter", "gauge", "summary", "untyped"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Families of samples, rendered in the order they were added.

    >>> text = Exposition()
    >>> text.family("meshgate_requests_total", "counter", "Requests answered.",
    ...             [({"route": "users", "status": "200"}, 3)])
    >>> print(text.render().decode(), end="")
    # HELP meshgate_requests_total Requests answered.
    # TYPE meshgate_requests_total counter
    meshgate_requests_total{route="users",status="200"} 3
    """

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self,
        name: str,
        kind: MetricType,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
        *,
        sample_suffix: str = "",
    ) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        self.samples(name + sample_suffix, samples)

    def samples(self, name: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        for labels, value in samples:
            if labels:
                rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                self._lines.append(f"{name}{{{rendered}}} {_number(value)}")
            else:
                self._lines.append(f"{name} {_number(value)}")

    def render(self) -> bytes:
        return ("\n".join(self._lines) + "\n").encode()
