"""What `meshgate status` shows, as data, and how it reads as text (pure)."""

from __future__ import annotations

import msgspec

from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import CanaryEvent, CircuitStatus, Presence


class ClusterSnapshot(msgspec.Struct, kw_only=True):
    """Everything heard within one look at the bus. `now` is wall-clock seconds."""

    now: float
    replicas: list[Presence] = []
    instances: dict[str, list[ServiceInstance]] = {}
    circuits: list[CircuitStatus] = []
    canaries: dict[str, CanaryEvent] = {}
    registry_error: str | None = None
    circuits_error: str | None = None


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return ("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    return [line(headers)] + [line(row) for row in rows]


def render(snapshot: ClusterSnapshot) -> str:
    """The snapshot as a few readable tables.

    >>> snapshot = ClusterSnapshot(now=100.0, replicas=[Presence(
    ...     replica_id="gw-1", address="127.0.0.1:8080", started_at=40.0, load=2)])
    >>> print(render(snapshot))  # doctest: +NORMALIZE_WHITESPACE
    gateway replicas (1)
      replica  address         uptime  in flight
      gw-1     127.0.0.1:8080  1m00s   2
    <BLANKLINE>
    services (0)
      none registered
    <BLANKLINE>
    circuits: all closed
    <BLANKLINE>
    canaries: none heard
    """
    lines = [f"gateway replicas ({len(snapshot.replicas)})"]
    if snapshot.replicas:
        lines += _table(
            ["replica", "address", "uptime", "in flight"],
            [
                [p.replica_id, p.address, _duration(snapshot.now - p.started_at), f"{p.load:g}"]
                for p in snapshot.replicas
            ],
        )
    else:
        lines.append("  none heard (is a gateway running on this bus and prefix?)")
    lines += ["", f"services ({len(snapshot.instances)})"]
    if snapshot.registry_error is not None:
        lines.append(f"  registry unavailable: {snapshot.registry_error}")
    elif not snapshot.instances:
        lines.append("  none registered")
    else:
        rows = [
            [
                service,
                instance.id,
                instance.address,
                instance.zone or "-",
                instance.version or "-",
                ",".join(instance.tags) or "-",
                instance.status.value,
            ]
            for service, instances in sorted(snapshot.instances.items())
            for instance in instances
        ]
        lines += _table(
            ["service", "instance", "address", "zone", "version", "tags", "status"], rows
        )
    not_closed = [c for c in snapshot.circuits if c.state != "closed"]
    lines.append("")
    if snapshot.circuits_error is not None:
        lines.append(f"circuits: {snapshot.circuits_error}")
    elif not not_closed:
        lines.append("circuits: all closed")
    else:
        lines.append(f"circuits not closed ({len(not_closed)})")
        lines += _table(
            ["route", "state", "retries in"],
            [
                [
                    c.route,
                    c.state,
                    "-" if c.reset_deadline is None else _duration(c.reset_deadline - snapshot.now),
                ]
                for c in not_closed
            ],
        )
    lines.append("")
    if not snapshot.canaries:
        lines.append("canaries: none heard")
    else:
        lines.append(f"canaries ({len(snapshot.canaries)})")
        rows = []
        for route, event in sorted(snapshot.canaries.items()):
            canary = event.stats.get("canary", {})
            stable = event.stats.get("stable", {})
            rows.append(
                [
                    route,
                    event.state,
                    f"{event.stable_version} {event.stable_weight:g}%",
                    f"{event.canary_version} {event.canary_weight:g}%",
                    str(event.step),
                    f"{stable.get('error_rate', 0.0):.1f}% / {canary.get('error_rate', 0.0):.1f}%",
                ]
            )
        lines += _table(["route", "state", "stable", "canary", "step", "errors s/c"], rows)
    return "\n".join(lines)
