"""The gateway's metrics snapshot as a small table: the aggregated totals,
then each route and each of its versions with calls, failures and the
failure rate."""

from __future__ import annotations

from meshgate.gateway.gateway_metrics import UNVERSIONED, GatewayMetricsSnapshot
from meshgate.resilience.metrics import MetricsSnapshot


def _row(name: str, snapshot: MetricsSnapshot) -> str:
    return (
        f"  {name:<28} {snapshot.total_calls:>5} {snapshot.failure_calls:>6} "
        f"{snapshot.failure_rate:>7.1f}%  {snapshot.p50:>6.1f} {snapshot.p99:>6.1f}"
    )


def print_metrics(snapshot: GatewayMetricsSnapshot) -> None:
    """Print `snapshot` (from ``gateway.get_metrics().get_snapshot()``)."""
    total = snapshot.aggregated
    print(
        f"  aggregated: {total.total_calls} calls, {total.failure_calls} failed "
        f"({total.failure_rate:.1f}%), latency p50 {total.p50:.1f} ms, "
        f"p95 {total.p95:.1f} ms, p99 {total.p99:.1f} ms"
    )
    header = ("route / version", "calls", "failed", "rate", "p50ms", "p99ms")
    print("  {:<28} {:>5} {:>6} {:>8}  {:>6} {:>6}".format(*header))
    for name in sorted(snapshot.routes):
        route = snapshot.routes[name]
        print(_row(name, route.total))
        for version in sorted(route.versions):
            if version != UNVERSIONED:
                print(_row(f"  {version}", route.versions[version]))
