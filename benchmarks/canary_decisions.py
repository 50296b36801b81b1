"""How well the canary engine decides: false rollbacks of healthy canaries,
and how long bad canaries last, on seeded simulated traffic.

Run: `.venv/bin/python benchmarks/canary_decisions.py [--runs N] [--rates 10,30,100,300]`

Every run drives a real `CanaryEngine` (`meshgate.gateway.canary_simulation`)
with the reference's rollout: canary at 10%, steps 10/25/50/75/100, a 5%
error threshold, a 30 s evaluation window, 15 s between steps and
min_requests 10, evaluated once per simulated second. The stable errs 1% of
the time. "rate" is the total request rate over both versions; the canary
gets its weight's share. A healthy canary errs 1% of the time; bad ones 10%,
20% or 50%, from the first request. Times are simulated seconds from the
start of the rollout; the same seeds give the same table.

Columns:
- false rb: healthy runs rolled back, out of N;
- promoted at: median time for a healthy canary to be fully promoted;
- for each bad error rate, "median / p95 / max" time to rollback, then how
  many runs were rolled back within one evaluation window (30 s), and how
  many bad canaries got fully promoted ("escaped").
"""

from __future__ import annotations

import argparse
import statistics
import time

import msgspec

from meshgate.gateway.canary_config import CanaryConfig
from meshgate.gateway.canary_simulation import Outcome, Traffic, simulate

CONFIG = msgspec.convert(
    {
        "stable": {"version": "1.0.0", "weight": 90},
        "canary": {"version": "2.0.0", "weight": 10},
        "promotion": {
            "strategy": "error-rate",
            "error_threshold": 5,
            "evaluation_window": "30s",
            "step_interval": "15s",
            "min_requests": 10,
            "steps": [10, 25, 50, 75, 100],
        },
    },
    CanaryConfig,
)
WINDOW = 30.0
DURATION = 600.0
BAD_RATES = (0.10, 0.20, 0.50)


def runs(rate: float, error_rate: float, count: int, seed: int) -> list[Outcome]:
    traffic = Traffic(rate=rate, canary_error_rate=error_rate, stable_error_rate=0.01)
    return [simulate(CONFIG, traffic, seed=seed + i, duration=DURATION) for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def describe_bad(outcomes: list[Outcome]) -> str:
    times = [o.finished_at for o in outcomes if o.state == "rolled-back" and o.finished_at]
    escaped = sum(1 for o in outcomes if o.state == "promoted")
    within = sum(1 for t in times if t <= WINDOW)
    if not times:
        return f"{'never':>22} {within:>3}/{len(outcomes):<3} {escaped:>3}"
    spread = f"{statistics.median(times):5.0f}/{percentile(times, 0.95):4.0f}/{max(times):4.0f}"
    return f"{spread:>22} {within:>3}/{len(outcomes):<3} {escaped:>3}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per cell (default 100)")
    parser.add_argument("--rates", default="7,20,67,200", help="total requests per second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]

    started = time.perf_counter()
    columns = f"{'rate/s':>7} {'canary/window':>13} {'false rb':>9} {'promoted at':>11}"
    groups = " " * len(columns)
    for bad in BAD_RATES:
        columns += f" | {'rollback s med/p95/max':>22} {'≤30s':>7} {'esc':>3}"
        groups += f" | {f'canary at {bad:.0%} errors':<35}"
    print(groups)
    print(columns)
    print("-" * len(columns))
    for rate in rates:
        good = runs(rate, 0.01, args.runs, args.seed)
        false_rollbacks = sum(1 for o in good if o.state == "rolled-back")
        promoted = [o.finished_at for o in good if o.state == "promoted" and o.finished_at]
        promoted_at = f"{statistics.median(promoted):.0f} s" if promoted else "never"
        row = (
            f"{rate:>7.0f} {rate * 0.10 * WINDOW:>13.0f} "
            f"{f'{false_rollbacks}/{args.runs}':>9} {promoted_at:>11}"
        )
        for bad in BAD_RATES:
            row += " | " + describe_bad(runs(rate, bad, args.runs, args.seed))
        print(row, flush=True)
    print(
        f"\n{args.runs} runs per cell, seeds {args.seed}..{args.seed + args.runs - 1}; "
        f"{time.perf_counter() - started:.1f} s wall"
    )


if __name__ == "__main__":
    main()
