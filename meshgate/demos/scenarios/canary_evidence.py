"""A canary event in words: what the rollout did, on what traffic, and for a
rollback the two tests that proved the canary worse (see
`meshgate.gateway.canary_stats`), recomputed from the event's own counts so
a reader can check the engine's arithmetic."""

from __future__ import annotations

from typing import Any

from meshgate.gateway.canary_stats import (
    CONFIDENCE,
    Proportion,
    binomial_tail,
    two_proportion_z,
    z_for,
)


def _traffic(details: dict[str, Any]) -> str:
    stats = details["stats"]
    canary, stable = stats["canary"], stats["stable"]
    return (
        f"canary {canary['errors']} errors in {canary['requests']} requests, "
        f"stable {stable['errors']} in {stable['requests']}"
    )


def describe_verdict(event: str, details: dict[str, Any], *, was: float) -> list[str]:
    """The event as a line or two; `was` is the canary's weight before it."""
    canary = details["canary_version"]
    weight = details["canary_weight"]
    if event == "canary:step":
        head = f"→ canary:step {was:g}% → {weight:g}%"
    elif event == "canary:promote":
        head = f"→ canary:promote: {canary} takes all traffic, the rollout is promoted"
    elif event == "canary:rollback":
        head = f"→ canary:rollback: {canary} back from {was:g}% to 0%"
    else:
        head = f"→ {event}"
    return [head, f"  judged on {_traffic(details)}: {details['reason']}"]


def evidence_lines(details: dict[str, Any], *, error_threshold: float) -> list[str]:
    """Why a rollback is not noise: the exact binomial test of the canary
    against the threshold, and the z-test of the canary against the stable."""
    stats = details["stats"]
    canary = Proportion(stats["canary"]["errors"], stats["canary"]["requests"])
    stable = Proportion(stats["stable"]["errors"], stats["stable"]["requests"])
    limit = error_threshold / 100
    alpha = 1 - CONFIDENCE
    p_value = binomial_tail(canary.events, canary.trials, limit)
    z = two_proportion_z(canary, stable)
    z_critical = z_for(CONFIDENCE)
    return [
        "the evidence:",
        f"  {details['canary_version']}: {canary.events} of {canary.trials} requests failed "
        f"({canary.rate:.1%}); {details['stable_version']}: {stable.events} of "
        f"{stable.trials} ({stable.rate:.1%})",
        f"  exact binomial test: P(≥ {canary.events} failures in {canary.trials} "
        f"| a true rate of {limit:.0%}) = {p_value:.1e} "
        + ("<" if p_value < alpha else "≥")
        + f" {alpha:g}",
        f"  two-proportion z-test against the stable: z = {z:.2f} "
        + (">" if z > z_critical else "≤")
        + f" {z_critical:.2f}",
        f"  both at {CONFIDENCE:.0%} confidence: the canary is worse than allowed, and worse"
        " than the stable",
    ]
