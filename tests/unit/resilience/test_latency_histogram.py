"""`LatencyHistogram`: the layout, the error bound, exact merge and export."""

from __future__ import annotations

import math
import tracemalloc
from random import Random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.latency_histogram import (
    BUCKET_COUNT,
    HIGHEST_MS,
    LOWEST_MS,
    RELATIVE_ERROR,
    LatencyHistogram,
    LatencyHistogramExport,
    bucket_bounds,
    bucket_index,
)

# Latencies across the whole range: mostly ordinary ones, and the edges.
in_range = st.floats(min_value=LOWEST_MS, max_value=HIGHEST_MS, exclude_max=True)
latencies = st.one_of(
    st.floats(min_value=0.0, max_value=10_000.0),
    in_range,
    st.sampled_from([0.0, LOWEST_MS, HIGHEST_MS / 2, 1.0, 1000.0]),
    st.integers(min_value=0, max_value=3_600_000),
)
latency_lists = st.lists(latencies, min_size=1, max_size=300)
quantile_levels = st.one_of(
    st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]),
    st.floats(min_value=0.0, max_value=1.0),
)


def histogram_of(values: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    return histogram


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest rank on the sorted values: the definition the histogram approximates."""
    ordered = sorted(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def allowed_error(exact: float) -> float:
    # The documented bound, plus a few ulps for the float arithmetic.
    if exact < LOWEST_MS:
        return LOWEST_MS / 2
    return exact * RELATIVE_ERROR * (1 + 1e-12)


def assert_same_distribution(a: LatencyHistogram, b: LatencyHistogram) -> None:
    exported_a, exported_b = a.export(), b.export()
    assert exported_a.buckets == exported_b.buckets
    assert (a.count, a.min, a.max) == (b.count, b.min, b.max)
    assert math.isclose(a.sum, b.sum, rel_tol=1e-12, abs_tol=1e-9)


# The layout


def test_the_buckets_tile_zero_to_the_highest_value_without_gaps() -> None:
    assert bucket_bounds(0) == (0.0, LOWEST_MS)
    for index in range(BUCKET_COUNT - 1):
        assert bucket_bounds(index)[1] == bucket_bounds(index + 1)[0]
    assert bucket_bounds(BUCKET_COUNT - 1)[1] == HIGHEST_MS


def test_every_bucket_above_the_lowest_is_narrow_enough_for_the_error_bound() -> None:
    for index in range(1, BUCKET_COUNT):
        low, high = bucket_bounds(index)
        assert (high - low) / 2 <= low * RELATIVE_ERROR


def test_the_bound_is_under_one_percent() -> None:
    assert RELATIVE_ERROR <= 0.01


@given(in_range)
def test_a_value_lands_in_the_bucket_whose_bounds_hold_it(value: float) -> None:
    low, high = bucket_bounds(bucket_index(value))
    assert low <= value < high


@pytest.mark.parametrize("index", [-1, BUCKET_COUNT])
def test_bucket_bounds_refuses_an_index_outside_the_layout(index: int) -> None:
    with pytest.raises(ValueError, match=rf"index={index}"):
        bucket_bounds(index)


# Recording and reading


def test_an_empty_histogram_reads_zero_everywhere() -> None:
    histogram = LatencyHistogram()
    assert (histogram.count, histogram.sum, histogram.mean) == (0, 0.0, 0.0)
    assert (histogram.min, histogram.max) == (0.0, 0.0)
    assert histogram.quantiles([0.0, 0.5, 1.0]) == [0.0, 0.0, 0.0]


@given(latency_lists)
def test_count_sum_min_and_max_are_exact(values: list[float]) -> None:
    histogram = histogram_of(values)
    assert histogram.count == len(values)
    assert histogram.min == min(values)
    assert histogram.max == max(values)
    assert histogram.sum == pytest.approx(math.fsum(values), rel=1e-12, abs=1e-9)
    assert histogram.mean == pytest.approx(math.fsum(values) / len(values), rel=1e-12, abs=1e-9)


@given(latency_lists, quantile_levels)
def test_a_quantile_is_within_the_documented_error_of_the_exact_one(
    values: list[float], q: float
) -> None:
    exact = exact_quantile(values, q)
    assert abs(histogram_of(values).quantile(q) - exact) <= allowed_error(exact)


@given(latency_lists, st.lists(quantile_levels, min_size=1, max_size=5))
def test_quantiles_in_one_pass_agree_with_quantile_one_at_a_time(
    values: list[float], qs: list[float]
) -> None:
    histogram = histogram_of(values)
    assert histogram.quantiles(qs) == [histogram.quantile(q) for q in qs]


@given(latency_lists)
def test_quantile_zero_is_the_min_and_quantile_one_the_max_exactly(values: list[float]) -> None:
    histogram = histogram_of(values)
    assert histogram.quantile(0.0) == min(values)
    assert histogram.quantile(1.0) == max(values)


def test_one_hundred_evenly_spread_latencies_give_the_familiar_percentiles() -> None:
    histogram = histogram_of([float(n) for n in range(1, 101)])
    for q, expected in [(0.5, 50), (0.95, 95), (0.99, 99)]:
        assert histogram.quantile(q) == pytest.approx(expected, rel=RELATIVE_ERROR)


def test_values_outside_the_range_land_in_the_edge_buckets_with_exact_min_and_max() -> None:
    histogram = histogram_of([-5.0, 1e-9, 2 * HIGHEST_MS, 1e15])
    assert histogram.export().buckets == {0: 2, BUCKET_COUNT - 1: 2}
    assert (histogram.min, histogram.max, histogram.count) == (-5.0, 1e15, 4)
    assert histogram.sum == pytest.approx(-5.0 + 1e-9 + 2 * HIGHEST_MS + 1e15)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_latency_is_refused_and_changes_nothing(bad: float) -> None:
    histogram = histogram_of([4.0])
    with pytest.raises(ValueError, match="latency_ms="):
        histogram.record(bad)
    assert histogram.export() == histogram_of([4.0]).export()


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_a_quantile_level_outside_zero_to_one_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="q="):
        histogram_of([1.0]).quantile(q)


def test_reset_forgets_every_value() -> None:
    histogram = histogram_of([1.0, 2.0, 300.0])
    histogram.reset()
    assert histogram.export() == LatencyHistogram().export()
    histogram.record(7.0)
    assert (histogram.count, histogram.min, histogram.max) == (1, 7.0, 7.0)


def test_memory_does_not_grow_with_the_number_of_values() -> None:
    values = [0.001 * 1.37**k for k in range(64)]  # spread over every few buckets
    histogram = histogram_of(values * 1_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5_000):
            for value in values:
                histogram.record(value)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert histogram.count == 64_000 + 320_000
    # Anything kept per value would be megabytes by now.
    assert grown < 4_096


# Merging


@given(latency_lists, latency_lists)
def test_merging_equals_recording_every_value_into_one_histogram(
    a: list[float], b: list[float]
) -> None:
    merged = histogram_of(a)
    merged.merge(histogram_of(b))
    assert_same_distribution(merged, histogram_of(a + b))


@given(latency_lists, latency_lists, quantile_levels)
def test_merged_quantiles_are_those_of_all_the_values(
    a: list[float], b: list[float], q: float
) -> None:
    merged = histogram_of(a)
    merged.merge(histogram_of(b))
    assert merged.quantile(q) == histogram_of(a + b).quantile(q)


@given(st.lists(st.lists(latencies, max_size=50), max_size=6), st.randoms())
def test_merged_equals_recording_every_value_whatever_the_order(
    parts: list[list[float]], random: Random
) -> None:
    histograms = [histogram_of(part) for part in parts]
    merged = LatencyHistogram.merged(histograms)
    assert_same_distribution(merged, histogram_of([v for part in parts for v in part]))
    random.shuffle(histograms)
    # Bit for bit, sum included, in any order.
    assert LatencyHistogram.merged(histograms).export() == merged.export()


def test_merged_leaves_its_inputs_alone() -> None:
    a, b = histogram_of([1.0]), histogram_of([2.0, 3.0])
    LatencyHistogram.merged([a, b]).record(500.0)
    assert a.export() == histogram_of([1.0]).export()
    assert b.export() == histogram_of([2.0, 3.0]).export()
    assert LatencyHistogram.merged([]).export() == LatencyHistogram().export()


def test_merging_an_empty_histogram_changes_nothing_and_into_one_copies() -> None:
    histogram = histogram_of([3.0, 9.0])
    histogram.merge(LatencyHistogram())
    assert histogram.export() == histogram_of([3.0, 9.0]).export()
    empty = LatencyHistogram()
    empty.merge(histogram)
    assert empty.export() == histogram.export()


def test_a_copy_is_independent_of_its_original() -> None:
    original = histogram_of([1.0])
    duplicate = original.copy()
    duplicate.record(50.0)
    assert (original.count, original.max) == (1, 1.0)
    assert (duplicate.count, duplicate.max) == (2, 50.0)


# Export


def through_json(exported: LatencyHistogramExport) -> LatencyHistogramExport:
    return msgspec.json.decode(msgspec.json.encode(exported), type=LatencyHistogramExport)


def through_msgpack(exported: LatencyHistogramExport) -> LatencyHistogramExport:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(exported), type=LatencyHistogramExport)


@given(st.lists(latencies, max_size=300))
def test_export_survives_json_and_msgpack_bit_for_bit(values: list[float]) -> None:
    histogram = histogram_of(values)
    exported = histogram.export()
    for transport in (through_json, through_msgpack):
        decoded = transport(exported)
        assert decoded == exported
        rebuilt = LatencyHistogram.from_export(decoded)
        assert rebuilt.export() == exported
        assert rebuilt.sum == histogram.sum
        assert rebuilt.quantiles([0.5, 0.99]) == histogram.quantiles([0.5, 0.99])


def test_export_lists_only_the_buckets_in_use() -> None:
    exported = histogram_of([1.0, 1.0, 100.0]).export()
    assert exported.buckets == {bucket_index(1.0): 2, bucket_index(100.0): 1}
    assert (exported.v, exported.count, exported.sum) == (1, 3, 102.0)


def test_an_empty_export_has_no_infinities_and_round_trips() -> None:
    exported = LatencyHistogram().export()
    assert (exported.min, exported.max, exported.buckets) == (0.0, 0.0, {})
    assert LatencyHistogram.from_export(through_json(exported)).count == 0


def valid_export(**changes: object) -> LatencyHistogramExport:
    exported = histogram_of([2.0, 2.0, 40.0]).export()
    return msgspec.structs.replace(exported, **changes)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"v": 2}, "schema version"),
        ({"buckets": {BUCKET_COUNT: 3}}, "bucket index"),
        ({"buckets": {-1: 3}}, "bucket index"),
        ({"buckets": {bucket_index(2.0): 3, bucket_index(40.0): 0}}, "count 0"),
        ({"count": 4}, "buckets hold 3"),
        ({"sum": math.nan}, "not all finite"),
        ({"max": math.inf}, "not all finite"),
        ({"min": 50.0}, "min=50.0 > max"),
        ({"min": 3.0}, "lowest non-empty bucket"),
        ({"max": 39.0}, "highest non-empty bucket"),
    ],
)
def test_from_export_refuses_what_no_histogram_could_have_exported(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        LatencyHistogram.from_export(valid_export(**changes))


def test_from_export_accepts_the_unchanged_export() -> None:
    assert LatencyHistogram.from_export(valid_export()).export() == valid_export()
