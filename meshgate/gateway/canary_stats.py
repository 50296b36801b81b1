"""The canary's verdict: is the canary worse than allowed, fine, or unknown yet?

One rule serves both strategies, because each asks the same question of a
proportion. For ``error-rate`` the events are failed requests and the limit
is `error_threshold` percent. For ``latency`` the events are requests slower
than `latency_threshold` ms and the limit is 1%, since "the true p99 is above
L" means exactly "more than 1% of requests take longer than L".

The canary saw ``x_c`` events in ``n_c`` requests, the stable ``x_s`` in
``n_s``; ``T`` is the limit as a fraction; ``α = 1 - CONFIDENCE`` = 0.01 and
``z = 2.326`` its one-sided normal quantile.

**rollback** when all of these hold:

1. ``n_c >= min_requests`` — never judge on a handful of requests;
2. the canary is above the limit by an exact one-sided binomial test: a
   canary whose true rate were exactly ``T`` would show ``x_c`` or more
   events in ``n_c`` requests with probability below α::

       P(X >= x_c) = Σ_{k=x_c..n_c} C(n_c, k) T^k (1-T)^(n_c-k)  <  α

   (equivalently, the one-sided 99% Clopper–Pearson lower bound of the
   canary's rate is above ``T``);
3. the canary is significantly worse than the stable: the pooled one-sided
   two-proportion z-test gives ``Z > z``, with::

       P = (x_c + x_s) / (n_c + n_s)
       Z = (x_c/n_c - x_s/n_s) / sqrt(P(1-P)(1/n_c + 1/n_s))

   so errors that the stable shows too (a shared database down) do not roll
   back the canary. When the stable has fewer than `min_requests` requests
   in the window there is nothing to compare with and rule 2 decides alone
   (at 100% canary weight the stable's traffic runs out).

**promote** when ``n_c >= min_requests`` and the canary's observed rate is
at most the limit (for latency: its nearest-rank p99 is at most L), and it
is not a rollback.

**hold** otherwise: too few requests, or a rate above the limit that is not
yet significant, or a canary as bad as the stable.

Why this rule. Rollback needs proof of harm at 99% and promotion only an
unremarkable sample, so noise delays a step but rarely undoes a healthy
rollout. The exact test keeps its 1% size at every ``n_c`` (at most 0.9997%
for n_c in 10..1000 at T = 5%), where the Wilson score bound, tried first,
lets a canary at exactly the threshold through 2.5% of the time at n_c = 13,
and in simulation rolled back a healthy canary at low traffic. At T = 5% a
canary with 1% errors is rolled back by one evaluation with probability
below 2.2e-5 for every n_c from 10 to 1000 (worst at n_c = 17: four errors),
while one at 20% is caught by one evaluation of 69 canary requests 95% of
the time and of 96 requests 99% of the time (at 10% errors: 425 and 589; at
50%: 13 and 17); the tests check these figures. Evaluating every few seconds
re-tests overlapping windows, which raises the chance of a false rollback
over a whole rollout above the per-evaluation figure;
`benchmarks/canary_decisions.py` measures it by simulation (no healthy
canary rolled back in 3000 seeded rollouts at 7 to 67 requests per
second). Only the stdlib
is needed: the tail is summed in log space from ``x_c`` up, and stops once
the remaining terms cannot matter.

>>> judgement = judge(Proportion(events=30, trials=150), Proportion(events=10, trials=1000),
...                   limit=0.05, min_requests=10)
>>> judgement.decision, f"{judgement.p_value:.1e}", round(judgement.z, 1)
('rollback', '8.0e-11', 11.8)
>>> judge(Proportion(events=1, trials=150), Proportion(events=10, trials=1000),
...       limit=0.05, min_requests=10).decision
'promote'
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

import msgspec

Decision = Literal["promote", "rollback", "hold"]

CONFIDENCE = 0.99
"""How sure a rollback must be, in each of its two tests."""

P99_LIMIT = 0.01
"""The share of requests allowed above `latency_threshold`: the p99's definition."""


class Proportion(msgspec.Struct, frozen=True):
    """`events` out of `trials`: failures among requests, or slow ones.

    >>> Proportion(events=1, trials=4).rate
    0.25
    """

    events: int
    trials: int

    def __post_init__(self) -> None:
        if not 0 <= self.events <= self.trials:
            raise ValueError(
                f"events={self.events!r}, trials={self.trials!r} are not allowed: "
                "expected 0 <= events <= trials"
            )

    @property
    def rate(self) -> float:
        """`events / trials`, or 0.0 when there were no trials."""
        return self.events / self.trials if self.trials else 0.0


class Judgement(msgspec.Struct, frozen=True, kw_only=True):
    """A verdict and the numbers behind it, for logs and events.

    `p_value` is rule 2's ``P(X >= x_c)`` at the limit (1.0 when not judged);
    `z` the two-proportion statistic (0.0 when the stable was not compared).
    """

    decision: Decision
    reason: str
    p_value: float
    z: float


def z_for(confidence: float) -> float:
    """The one-sided standard normal quantile for `confidence`.

    >>> round(z_for(0.99), 3)
    2.326
    """
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence={confidence!r} is not allowed: expected 0.5 <= c < 1")
    return NormalDist().inv_cdf(confidence)


def binomial_tail(events: int, trials: int, rate: float) -> float:
    """``P(X >= events)`` for X ~ Binomial(`trials`, `rate`).

    >>> binomial_tail(4, 17, 0.05) < 0.01 < binomial_tail(3, 17, 0.05)
    True
    >>> binomial_tail(0, 5, 0.3), binomial_tail(6, 5, 0.3), binomial_tail(1, 5, 0.0)
    (1.0, 0.0, 0.0)
    """
    if events <= 0:
        return 1.0
    if events > trials or rate <= 0:
        return 0.0
    if rate >= 1:
        return 1.0
    if events <= trials * rate:
        # At or below the mean the tail is large and the sum from the top
        # would not stop early: take the complement of the lower part.
        return max(0.0, 1.0 - _lower_tail(events - 1, trials, rate))
    log_rate, log_rest = math.log(rate), math.log1p(-rate)
    term = math.exp(
        math.lgamma(trials + 1)
        - math.lgamma(events + 1)
        - math.lgamma(trials - events + 1)
        + events * log_rate
        + (trials - events) * log_rest
    )
    total = 0.0
    odds = rate / (1 - rate)
    # Above the mean each term is smaller than the last by a shrinking ratio,
    # so once a term adds nothing to the total, the rest add nothing either.
    for k in range(events, trials + 1):
        total += term
        term *= (trials - k) / (k + 1) * odds
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def _lower_tail(events: int, trials: int, rate: float) -> float:
    # P(X <= events), summed from `events` down: below the mean the terms
    # shrink going down, as they do going up above it.
    log_rate, log_rest = math.log(rate), math.log1p(-rate)
    term = math.exp(
        math.lgamma(trials + 1)
        - math.lgamma(events + 1)
        - math.lgamma(trials - events + 1)
        + events * log_rate
        + (trials - events) * log_rest
    )
    total = 0.0
    inverse_odds = (1 - rate) / rate
    for k in range(events, -1, -1):
        total += term
        term *= k / (trials - k + 1) * inverse_odds
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def two_proportion_z(first: Proportion, second: Proportion) -> float:
    """The pooled z statistic of `first.rate - second.rate`; positive when the
    first is higher, 0.0 when either is empty or the pooled rate is 0 or 1.

    >>> round(two_proportion_z(Proportion(events=20, trials=100),
    ...                        Proportion(events=10, trials=1000)), 2)
    11.12
    """
    if not first.trials or not second.trials:
        return 0.0
    pooled = (first.events + second.events) / (first.trials + second.trials)
    variance = pooled * (1 - pooled) * (1 / first.trials + 1 / second.trials)
    if variance <= 0:
        return 0.0
    return (first.rate - second.rate) / math.sqrt(variance)


def judge(
    canary: Proportion,
    stable: Proportion,
    *,
    limit: float,
    min_requests: int,
    confidence: float = CONFIDENCE,
    what: str = "error rate",
) -> Judgement:
    """The verdict of the module docstring's rule; `limit` is a fraction.

    `what` names the proportion in the reason ("error rate", "share slower
    than 250 ms").

    >>> judge(Proportion(events=3, trials=8), Proportion(events=0, trials=100),
    ...       limit=0.05, min_requests=10).reason
    'canary has 8 requests in the window, needs 10'
    """
    if not 0 <= limit <= 1:
        raise ValueError(f"limit={limit!r} is not allowed: expected a fraction in 0..1")
    if canary.trials < min_requests:
        return Judgement(
            decision="hold",
            reason=f"canary has {canary.trials} requests in the window, needs {min_requests}",
            p_value=1.0,
            z=0.0,
        )
    alpha = 1 - confidence
    z_critical = z_for(confidence)
    p_value = binomial_tail(canary.events, canary.trials, limit)
    compares = stable.trials >= max(min_requests, 1)
    z = two_proportion_z(canary, stable) if compares else 0.0
    observed = f"canary {what} {_percent(canary.rate)} of {canary.trials}"
    baseline = (
        f"stable {_percent(stable.rate)} of {stable.trials} (z={z:.2f})"
        if compares
        else f"stable has {stable.trials} requests, not compared"
    )
    above = f"is above {_percent(limit)}"
    if p_value < alpha and (not compares or z > z_critical):
        reason = f"{observed} {above} (p={p_value:.2g}) and worse than {baseline}"
        return Judgement(decision="rollback", reason=reason, p_value=p_value, z=z)
    if canary.rate <= limit:
        reason = f"{observed} is within {_percent(limit)}"
        return Judgement(decision="promote", reason=reason, p_value=p_value, z=z)
    if p_value < alpha:
        reason = f"{observed} {above} (p={p_value:.2g}), but not worse than {baseline}"
    else:
        reason = f"{observed} {above}, not yet significantly (p={p_value:.2g})"
    return Judgement(decision="hold", reason=reason, p_value=p_value, z=z)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


__all__ = [
    "CONFIDENCE",
    "P99_LIMIT",
    "Decision",
    "Judgement",
    "Proportion",
    "binomial_tail",
    "judge",
    "two_proportion_z",
    "z_for",
]
