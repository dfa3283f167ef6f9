"""Report statistics against known values: t-intervals, paired tests, Holm, Friedman/Nemenyi, Pareto."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t

from harness.pytest_plugin import harness_registry, register_plugin  # noqa: F401  (the kit's fixtures)
from harness.report.stats import (
    cliques,
    friedman,
    friedman_from_ranks,
    holm,
    mean_ci,
    nemenyi_q,
    paired_t,
    pareto_front,
    rank_rows,
    spans_decades,
    welch,
)


def test_t_interval_on_fixed_numbers_matches_the_formula() -> None:
    values = [0.90, 0.92, 0.94, 0.96]  # mean 0.93, sample sd = 0.0258199
    interval = mean_ci(values)
    sd = math.sqrt(sum((v - 0.93) ** 2 for v in values) / 3)
    assert interval.mean == pytest.approx(0.93)
    assert interval.std == pytest.approx(sd)
    assert interval.half == pytest.approx(t.ppf(0.975, 3) * sd / 2)  # t_{0.975,3} = 3.182446
    assert interval.half == pytest.approx(3.182446 * 0.0258199 / 2, rel=1e-5)
    assert (interval.low, interval.high) == pytest.approx((0.93 - interval.half, 0.93 + interval.half))


def test_one_value_has_no_interval() -> None:
    interval = mean_ci([0.5])
    assert interval.n == 1 and interval.half is None and interval.low is None


def test_paired_t_finds_a_consistent_small_difference_significant() -> None:
    # B is better than A on every seed by ~0.01, while seeds vary by ±0.05: unpaired it would
    # vanish in the seed spread; paired by seed it is clear.
    base = {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.75, 4: 0.88}
    shift = {0: 0.011, 1: 0.009, 2: 0.010, 3: 0.012, 4: 0.008}
    better = {s: v + shift[s] for s, v in base.items()}
    p, pairs = paired_t(better, base)
    assert pairs == 5 and p is not None and p < 0.001
    assert welch(list(better.values()), list(base.values())) > 0.5  # the unpaired view cannot see it


def test_paired_t_does_not_find_noise_significant() -> None:
    a = {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.75}
    b = {0: 0.82, 1: 0.84, 2: 0.88, 3: 0.77}  # differences +.02 -.01 -.02 +.02
    p, pairs = paired_t(b, a)
    assert pairs == 4 and p is not None and p > 0.5


def test_paired_t_pairs_by_seed_and_handles_degenerate_cases() -> None:
    assert paired_t({0: 1.0}, {0: 2.0}) == (None, 1)  # one pair: cannot test
    assert paired_t({0: 1.0, 1: 2.0}, {1: 2.0, 2: 3.0}) == (None, 1)  # only seed 1 is shared
    assert paired_t({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})[0] == 1.0  # identical
    assert paired_t({0: 1.5, 1: 2.5}, {0: 1.0, 1: 2.0})[0] == 0.0  # constant non-zero difference


def test_holm_adjusts_in_order_and_stays_monotone() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert adjusted["a"] == pytest.approx(0.03)  # 3 × 0.01
    assert adjusted["c"] == pytest.approx(0.06)  # 2 × 0.03
    assert adjusted["b"] == pytest.approx(0.06)  # max(1 × 0.04, 0.06): monotone
    assert adjusted["d"] is None


def test_nemenyi_q_matches_demsar_table_5a() -> None:
    for k, q in {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 10: 3.164}.items():
        assert nemenyi_q(k) == pytest.approx(q, abs=1e-3)


def test_friedman_reproduces_demsar_worked_example() -> None:
    # Demšar 2006, section 3.2.2: four C4.5 variants on 14 data sets, average ranks
    # 3.143, 2.000, 2.893, 1.964 → χ²_F = 9.28, F_F = 3.69, CD(α=0.05) = 2.569·√(4·5/(6·14)) = 1.25.
    result = friedman_from_ranks([3.143, 2.000, 2.893, 1.964], 14)
    assert result.chi2 == pytest.approx(9.28, abs=0.01)
    assert result.iman_davenport == pytest.approx(3.69, abs=0.01)
    assert result.pvalue < 0.05  # F(3, 39) critical value 2.85
    assert result.cd == pytest.approx(1.25, abs=0.01)


def test_ranks_average_ties_and_follow_the_direction() -> None:
    ranks = rank_rows([[0.9, 0.8, 0.8], [0.1, 0.3, 0.2]], [True, False])
    assert ranks == [[1.0, 2.5, 2.5], [1.0, 3.0, 2.0]]
    result = friedman([[0.9, 0.8, 0.8], [0.1, 0.3, 0.2]], [True, False])
    assert result.avg_ranks == [1.0, 2.75, 2.25] and result.n == 2 and result.k == 3


def test_friedman_with_two_tasks_in_full_agreement_is_not_significant() -> None:
    # F_F is infinite here; the χ² fallback gives p = P(χ²₁ > 2) = 0.157.
    result = friedman([[0.9, 0.8], [0.2, 0.5]], [True, False])
    assert math.isinf(result.iman_davenport) and result.pvalue == pytest.approx(0.1573, abs=1e-3)


def test_pareto_front_on_fixed_points() -> None:
    # (cost, quality): lower cost and higher quality are better
    points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9), (2.0, 0.4), (4.0, 0.9)]
    assert pareto_front(points) == [0, 1, 3, 5]  # (3, .6) and (2, .4) are dominated; equal points both stay
    assert pareto_front([(1.0, 0.5), (2.0, 0.3)], quality_higher=False) == [0, 1]
    assert pareto_front([(10.0, 0.5), (20.0, 0.6), (5.0, 0.7)], cost_lower=False) == [1, 2]


def test_metric_directions_come_from_the_registry(register_plugin, harness_registry) -> None:  # noqa: F811
    """A lower-is-better metric whose name reads like a score is still ranked as `min`."""
    import types

    import torchmetrics

    import harness
    from harness.report.analysis import metric_direction

    assert metric_direction("brier_score", "accuracy", "max") == "max"  # not installed: guessed from its name

    @harness.hookimpl
    def register_metrics(register):  # type: ignore[no-untyped-def]
        register(
            harness.MetricSpec("brier_score", lambda info: torchmetrics.MeanSquaredError(), direction="min")
        )

    register_plugin(types.SimpleNamespace(register_metrics=register_metrics))
    assert metric_direction("brier_score", "accuracy", "max") == "min"
    assert metric_direction("accuracy", "accuracy", "max") == "max"
    assert metric_direction("wer", "accuracy", "max") == "min"


def test_cliques_are_the_maximal_groups_within_the_critical_difference() -> None:
    # Demšar's ranks 3.143, 2.000, 2.893, 1.964: with his CD 1.25 one group holds all four
    # (3.143 − 1.964 = 1.18); with CD 1.0, {1.964, 2.000, 2.893} and {2.893, 3.143}
    assert cliques([3.143, 2.000, 2.893, 1.964], 1.25) == [[3, 1, 2, 0]]
    assert cliques([3.143, 2.000, 2.893, 1.964], 1.0) == [[3, 1, 2], [2, 0]]
    assert cliques([1.0, 2.5, 2.5, 4.0], 1.05) == [[1, 2]]  # singletons are left out
    assert cliques([1.0, 2.0, 3.0], 5.0) == [[0, 1, 2]]


def test_spans_decades_decides_log_axes() -> None:
    assert spans_decades([1e-4, 1e-3, 0.17])  # an error metric near 0 for most models
    assert not spans_decades([0.90, 0.95, 0.97])
    assert not spans_decades([0.0, 1e-3, 0.2])  # a zero cannot go on a log axis
    assert spans_decades([1000.0, 20000.0], 1.0) and not spans_decades([1000.0, 2000.0], 1.0)
