"""Full stack on the cluster: what `meshgate status` shows (replicas,
instances, circuits, canaries, from the bus), one replica's aggregated
metrics, and a few lines of its Prometheus exposition."""

from __future__ import annotations

from meshgate.cluster_status.gather import gather
from meshgate.cluster_status.snapshot import render
from meshgate.cluster_tour.context import Tour

PROMETHEUS_LINES = 6


async def play(tour: Tour) -> None:
    """Print the snapshot, the totals and a sample of /metrics."""
    for line in render(await gather(tour.bus)).splitlines():
        tour.say(f"  {line}")
    totals = (await tour.admin_get("/admin/metrics"))["aggregated"]
    tour.say(
        f"  {tour.admin} totals: {totals['total_calls']} calls, {totals['failure_calls']} failed"
        f" ({totals['failure_rate']:.1f}%), p50 {totals['p50']:.1f} ms, p99 {totals['p99']:.1f} ms"
    )
    text = (await tour.http.get(f"{tour.admin}/metrics")).text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    tour.say(f"  {tour.admin}/metrics ({len(samples)} samples), the first {PROMETHEUS_LINES}:")
    for line in samples[:PROMETHEUS_LINES]:
        tour.say(f"    {line}")
