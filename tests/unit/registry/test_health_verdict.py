"""HealthVerdict: consecutive probe results → status transitions, exactly."""

from __future__ import annotations

import pytest

from meshgate.bus.instance import InstanceStatus
from registry_node.health_verdict import HealthVerdict

UP, DOWN = InstanceStatus.UP, InstanceStatus.DOWN


def feed(verdict: HealthVerdict, results: str) -> list[InstanceStatus | None]:
    """Probe results as a string: ``+`` healthy, ``-`` failed."""
    return [verdict.on_probe(char == "+") for char in results]


def test_an_up_instance_goes_down_on_exactly_the_unhealthy_thresholdth_failure() -> None:
    verdict = HealthVerdict(unhealthy_threshold=3, healthy_threshold=2)
    assert feed(verdict, "---") == [None, None, DOWN]
    assert verdict.status == DOWN


def test_a_down_instance_comes_up_on_exactly_the_healthy_thresholdth_success() -> None:
    verdict = HealthVerdict(unhealthy_threshold=1, healthy_threshold=2, status=DOWN)
    assert feed(verdict, "++") == [None, UP]


def test_a_change_is_returned_once_and_further_results_of_the_same_kind_return_none() -> None:
    verdict = HealthVerdict(unhealthy_threshold=2)
    assert feed(verdict, "------") == [None, DOWN, None, None, None, None]


def test_one_contrary_result_restarts_the_streak() -> None:
    verdict = HealthVerdict(unhealthy_threshold=3, healthy_threshold=2)
    assert feed(verdict, "--+--+--+") == [None] * 9
    assert verdict.status == UP
    assert feed(verdict, "---") == [None, None, DOWN]


def test_a_flapping_down_instance_stays_down() -> None:
    verdict = HealthVerdict(healthy_threshold=3, status=DOWN)
    assert feed(verdict, "++-++-++-") == [None] * 9
    assert verdict.status == DOWN


def test_successes_while_up_and_failures_while_down_change_nothing() -> None:
    verdict = HealthVerdict(unhealthy_threshold=1, healthy_threshold=1)
    assert feed(verdict, "+++") == [None, None, None]
    assert feed(verdict, "---") == [DOWN, None, None]
    assert feed(verdict, "+") == [UP]


@pytest.mark.parametrize("start", [InstanceStatus.UNKNOWN, InstanceStatus.STARTING])
def test_an_unknown_or_starting_instance_becomes_up_after_healthy_threshold_successes(
    start: InstanceStatus,
) -> None:
    verdict = HealthVerdict(healthy_threshold=2, status=start)
    assert verdict.status == start
    assert feed(verdict, "++") == [None, UP]


@pytest.mark.parametrize("start", [InstanceStatus.UNKNOWN, InstanceStatus.STARTING])
def test_an_unknown_or_starting_instance_becomes_down_after_unhealthy_threshold_failures(
    start: InstanceStatus,
) -> None:
    verdict = HealthVerdict(unhealthy_threshold=2, status=start)
    assert feed(verdict, "--") == [None, DOWN]


def test_the_counters_show_the_current_streak() -> None:
    verdict = HealthVerdict()
    feed(verdict, "+--")
    assert (verdict.consecutive_failures, verdict.consecutive_successes) == (2, 0)
    feed(verdict, "+")
    assert (verdict.consecutive_failures, verdict.consecutive_successes) == (0, 1)


def test_adopting_a_different_status_restarts_both_streaks() -> None:
    verdict = HealthVerdict(unhealthy_threshold=3)
    feed(verdict, "--")
    verdict.adopt(InstanceStatus.STARTING)
    assert verdict.status == InstanceStatus.STARTING
    assert feed(verdict, "--") == [None, None]
    assert feed(verdict, "-") == [DOWN]


def test_adopting_the_same_status_keeps_the_streak() -> None:
    verdict = HealthVerdict(unhealthy_threshold=3)
    feed(verdict, "--")
    verdict.adopt(UP)
    assert feed(verdict, "-") == [DOWN]


def test_defaults_are_three_failures_and_two_successes() -> None:
    verdict = HealthVerdict()
    assert feed(verdict, "---++") == [None, None, DOWN, None, UP]


@pytest.mark.parametrize(
    ("unhealthy", "healthy", "named"),
    [(0, 2, "unhealthy_threshold"), (3, 0, "healthy_threshold"), (-1, 2, "unhealthy")],
)
def test_thresholds_below_one_are_rejected_naming_the_option(
    unhealthy: int, healthy: int, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        HealthVerdict(unhealthy_threshold=unhealthy, healthy_threshold=healthy)
