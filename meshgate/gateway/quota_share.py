"""Shares of a cluster-wide rate limit: how much of a route's `max` each
gateway replica may admit, from the live replicas and the demand each one
reported. Arithmetic only; the caller passes `now`.

The rule (`allocate`), for `n` live replicas and a limit of `limit` per window:

1. Each replica gets a floor of ``floor_fraction * limit / n``, so that a
   quiet replica can admit new traffic before its next report lands.
2. The rest, ``limit - floor_fraction * limit``, goes to unmet demand: a
   replica needs ``max(0, demand - floor)``. When the needs fit in the rest,
   each gets its need and what is left is split equally, as headroom; when
   they do not, the rest is split in proportion to the needs.
3. Shares add up to `limit`, so replicas that agree on the live set and the
   demands admit no more than `limit` together, however the traffic spreads.

A replica that has not reported (or whose last report is older than the
table's `ttl`) counts as demand 0. Demand is in the limit's own unit:
requests per window.

Limits keyed per client (``ip`` or a header) are not shared by demand: a
replica cannot see the other replicas' keys. Each replica takes ``1/n`` of
the per-key allowance (`equal_share`), which holds the cluster-wide limit per
key whatever replica a client reaches, at the price of a client stuck to one
replica getting only its ``1/n``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meshgate.resilience.validation import positive_number


def allocate(
    limit: float, demands: Mapping[str, float], *, floor_fraction: float = 0.1
) -> dict[str, float]:
    """Each replica's share of `limit`, given every live replica's demand.

    >>> allocate(100, {"a": 180.0, "b": 20.0})
    {'a': 87.89..., 'b': 12.10...}
    >>> allocate(100, {"a": 180.0, "b": 3.0})
    {'a': 95.0, 'b': 5.0}
    >>> allocate(100, {"a": 10.0, "b": 0.0})
    {'a': 52.5, 'b': 47.5}
    >>> allocate(100, {"a": 0.0, "b": 0.0})
    {'a': 50.0, 'b': 50.0}
    """
    positive_number("limit", limit)
    if not 0.0 <= floor_fraction <= 1.0:
        raise ValueError(f"floor_fraction={floor_fraction!r} is not allowed: expected 0 to 1")
    if not demands:
        return {}
    count = len(demands)
    floor = floor_fraction * limit / count
    rest = limit - floor * count
    needs = {replica: max(0.0, demand - floor) for replica, demand in demands.items()}
    total_need = sum(needs.values())
    if total_need <= rest:
        headroom = (rest - total_need) / count
        return {replica: floor + need + headroom for replica, need in needs.items()}
    return {replica: floor + rest * need / total_need for replica, need in needs.items()}


def equal_share(limit: float, replicas: int) -> float:
    """Each replica's part of a per-key limit: ``limit / replicas``.

    >>> equal_share(100, 4)
    25.0
    """
    if replicas < 1:
        raise ValueError(f"replicas={replicas!r} is not allowed: expected at least 1")
    return positive_number("limit", limit) / replicas


class DemandTable:
    """The demand each replica last reported per route (in one unit, such as
    requests per second), and when it was heard (the caller's monotonic
    `now`); a report older than `ttl` no longer counts.

    >>> table = DemandTable(ttl=2.0)
    >>> table.heard("orders", "gw-2", 40.0, now=10.0)
    >>> table.demands("orders", ["gw-1", "gw-2"], now=11.0)
    {'gw-1': 0.0, 'gw-2': 40.0}
    >>> table.demands("orders", ["gw-1", "gw-2"], now=12.0)
    {'gw-1': 0.0, 'gw-2': 0.0}
    """

    __slots__ = ("_reports", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = positive_number("ttl", ttl)
        self._reports: dict[str, dict[str, tuple[float, float]]] = {}

    def heard(self, route: str, replica: str, demand: float, now: float) -> None:
        """`replica` reported `demand` (requests per window) on `route` at `now`."""
        self._reports.setdefault(route, {})[replica] = (max(0.0, demand), now)

    def demands(self, route: str, replicas: Iterable[str], now: float) -> dict[str, float]:
        """The demand of each of `replicas` on `route` (0 when not heard within `ttl`)."""
        reports = self._reports.get(route, {})
        found: dict[str, float] = {}
        for replica in replicas:
            report = reports.get(replica)
            found[replica] = report[0] if report is not None and now - report[1] < self.ttl else 0.0
        return found

    def reporters(self, now: float) -> set[str]:
        """The replicas heard on any route within `ttl`.

        >>> table = DemandTable(ttl=2.0)
        >>> table.heard("orders", "gw-2", 0.0, now=10.0)
        >>> table.reporters(now=11.0), table.reporters(now=12.0)
        ({'gw-2'}, set())
        """
        return {
            replica
            for reports in self._reports.values()
            for replica, (_, heard_at) in reports.items()
            if now - heard_at < self.ttl
        }

    def forget(self, replicas_alive: Iterable[str]) -> None:
        """Drop the reports of every replica not in `replicas_alive`."""
        alive = set(replicas_alive)
        for reports in self._reports.values():
            for replica in [r for r in reports if r not in alive]:
                del reports[replica]
