"""The statistics behind the reports, each a small function tested against known values.

Why these tests: a benchmark has few seeds (often 3–5) and few tasks, so the report uses
small-sample methods and says what it cannot conclude instead of printing bare means:

- confidence intervals are Student-t intervals over seeds (n=1 → no interval);
- "not significantly different from the best" is a paired t-test over seeds (runs paired by
  seed: same data split, same seed), Holm-corrected over the architectures compared with the
  best. Tasks do not store per-example predictions, so no per-example bootstrap is possible;
- across tasks, architectures are ranked per task and compared with the Friedman test and the
  Nemenyi critical difference (Demšar 2006, JMLR 7:1–30);
- between two invocations (`harness compare`) a cell's seed values are compared with Welch's
  t-test, which does not assume the two invocations have the same spread.

scipy is imported inside the functions (it is heavy and the CLI imports this module lazily).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

ALPHA = 0.05
#: what every "±" of the console and the reports means (one vocabulary: see :func:`mean_ci`)
INTERVAL_LABEL = "mean ± 95 % CI"
#: what paired values are paired by (a run's seed)
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with a two-sided t confidence interval (``half`` None when n < 2)."""

    mean: float
    n: int
    half: float | None
    std: float | None

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half


def number(value: float | None, digits: int = 4) -> str:
    """A figure as every report and the console print it (— for missing or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if 1e3 <= abs(value) < 1e9:
        return f"{value:,.0f}"
    if abs(value) >= 1e9 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.{max(digits - 1, 1)}e}"
    return f"{value:.{digits}g}"


def interval_text(interval: Interval) -> str:
    """``mean ± half (n=k)``: the half-width of the 95 % CI (:data:`INTERVAL_LABEL`), never a std."""
    if interval.half is None:
        return f"{number(interval.mean)} (n=1)"
    return f"{number(interval.mean)} ± {number(interval.half, 2)} (n={interval.n})"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval: mean ± t_{(1+c)/2, n-1} · s / √n.

    The quantile comes from ``scipy.special.stdtrit``, the function ``scipy.stats.t.ppf`` calls:
    the same figures, without importing ``scipy.stats`` (~0.5 s), which a report of one
    architecture (no tests between architectures) never needs.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_ci needs at least one value")
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return Interval(mean, 1, None, None)
    from scipy.special import stdtrit

    std = statistics.stdev(vals)
    half = float(stdtrit(len(vals) - 1, (1 + confidence) / 2)) * std / math.sqrt(len(vals))
    return Interval(mean, len(vals), half, std)


def paired_t(a: Mapping[Key, float], b: Mapping[Key, float]) -> tuple[float | None, int]:
    """Two-sided paired t-test on the seeds both have: (p value or None when < 2 pairs, pairs).

    A zero spread of the differences gives p = 1 for equal values and p = 0 for a constant,
    non-zero difference (scipy would return NaN there).
    """
    from scipy.stats import ttest_rel

    seeds = sorted(set(a) & set(b), key=repr)
    if len(seeds) < 2:
        return None, len(seeds)
    diffs = [a[s] - b[s] for s in seeds]
    if statistics.pstdev(diffs) == 0.0:
        return (1.0 if diffs[0] == 0 else 0.0), len(seeds)
    return float(ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue), len(seeds)


def holm(pvalues: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm–Bonferroni adjusted p values (None stays None; monotone; capped at 1)."""
    known = sorted(((p, k) for k, p in pvalues.items() if p is not None), key=lambda item: item[0])
    m, running = len(known), 0.0
    out: dict[str, float | None] = {k: None for k, p in pvalues.items() if p is None}
    for i, (p, key) in enumerate(known):
        running = max(running, min(1.0, (m - i) * p))
        out[key] = running
    return out


def welch(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test p value; None when either side has < 2 values."""
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pstdev(a) == 0.0 and statistics.pstdev(b) == 0.0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    return float(ttest_ind(list(a), list(b), equal_var=False).pvalue)


def rank_rows(rows: Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> list[list[float]]:
    """Per row (task) the rank of each column (architecture): 1 = best, ties get the mean rank."""
    from scipy.stats import rankdata

    return [
        list(map(float, rankdata([-v if hib else v for v in row])))
        for row, hib in zip(rows, higher_is_better)
    ]


@dataclass(frozen=True)
class Friedman:
    avg_ranks: list[float]
    n: int  # tasks (data sets)
    k: int  # architectures
    chi2: float
    iman_davenport: float  # F_F, the less conservative statistic Demšar recommends
    pvalue: float  # of F_F with (k-1, (k-1)(n-1)) degrees of freedom
    cd: float  # Nemenyi critical difference at ALPHA


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """q_α of the Nemenyi test: the studentized range quantile (∞ dof) divided by √2."""
    from scipy.stats import studentized_range

    return float(studentized_range.ppf(1 - alpha, k, math.inf)) / math.sqrt(2)


def friedman_from_ranks(avg_ranks: Sequence[float], n: int, alpha: float = ALPHA) -> Friedman:
    """Friedman χ², Iman–Davenport F and the Nemenyi CD from average ranks over ``n`` tasks."""
    from scipy.stats import f as f_dist

    k = len(avg_ranks)
    chi2 = 12 * n / (k * (k + 1)) * (sum(r * r for r in avg_ranks) - k * (k + 1) ** 2 / 4)
    denom = n * (k - 1) - chi2
    ff = (n - 1) * chi2 / denom if denom > 0 else math.inf
    dof2 = (k - 1) * (n - 1)
    if dof2 > 0 and math.isfinite(ff):
        pvalue = float(f_dist.sf(ff, k - 1, dof2))
    else:  # every task ranks alike (F_F is infinite) or one task: fall back on χ² with k-1 dof
        from scipy.stats import chi2 as chi2_dist

        pvalue = float(chi2_dist.sf(chi2, k - 1)) if n > 1 else 1.0
    cd = nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n)) if k >= 2 else math.nan
    return Friedman(list(avg_ranks), n, k, chi2, ff, pvalue, cd)


def friedman(
    rows: Sequence[Sequence[float]], higher_is_better: Sequence[bool], alpha: float = ALPHA
) -> Friedman:
    """Friedman/Nemenyi over a tasks × architectures table of (mean) scores; needs ≥ 2 × 2."""
    ranks = rank_rows(rows, higher_is_better)
    k = len(ranks[0])
    avg = [statistics.fmean(r[j] for r in ranks) for j in range(k)]
    return friedman_from_ranks(avg, len(ranks), alpha)


def cliques(avg_ranks: Sequence[float], cd: float) -> list[list[int]]:
    """Groups the Nemenyi test cannot separate: maximal runs of architectures (in rank order)
    whose average ranks all lie within ``cd`` of each other, as indices into ``avg_ranks``.

    These are the thick bars of Demšar's critical-difference diagram; groups of one are left
    out (an architecture alone is significantly different from every other one).
    """
    order = sorted(range(len(avg_ranks)), key=lambda j: avg_ranks[j])
    spans: list[tuple[int, int]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and avg_ranks[order[j + 1]] - avg_ranks[order[i]] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return [order[a : b + 1] for a, b in spans]


def spans_decades(values: Sequence[float], decades: float = 2.0) -> bool:
    """Whether the positive finite ``values`` span at least ``decades`` orders of magnitude
    (and none is zero or negative): the case for a log axis."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2 or min(finite) <= 0:
        return False
    return math.log10(max(finite) / min(finite)) >= decades


def pareto_front(
    points: Sequence[tuple[float, float]], cost_lower: bool = True, quality_higher: bool = True
) -> list[int]:
    """Indices of the points (cost, quality) that no other point dominates.

    Dominated = another point is at least as good on both axes and better on one.
    """

    def better_eq(p: tuple[float, float], q: tuple[float, float]) -> tuple[bool, bool]:
        c = p[0] <= q[0] if cost_lower else p[0] >= q[0]
        v = p[1] >= q[1] if quality_higher else p[1] <= q[1]
        return c and v, p != q

    front: list[int] = []
    for i, p in enumerate(points):
        if not any(all(better_eq(q, p)) for j, q in enumerate(points) if j != i):
            front.append(i)
    return front


__all__ = [
    "ALPHA",
    "INTERVAL_LABEL",
    "Friedman",
    "Interval",
    "cliques",
    "friedman",
    "friedman_from_ranks",
    "holm",
    "interval_text",
    "mean_ci",
    "nemenyi_q",
    "number",
    "paired_t",
    "pareto_front",
    "rank_rows",
    "spans_decades",
    "welch",
]
