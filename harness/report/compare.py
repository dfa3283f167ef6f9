"""``harness compare A B``: per-cell deltas between two invocations with a noise-aware verdict.

A cell is task × architecture, aggregated over seeds. The verdict comes from the seed spread,
not a fixed percentage: Welch's t-test on the seed values of A and B, or with ``paired=True`` a
paired t-test over the seeds both sides ran (each seed's B value against the same seed's A value:
same data split, same initialisation), Holm-corrected over the cells (α = 0.05) — significant
and better → improved, significant and worse → regressed, else unchanged. With fewer than two
seeds (pairs) the spread is unknown: the verdict is "unknown (n=1)" ("unknown (<2 pairs)") unless
the user states a minimum relative effect (``--min-effect 0.05`` = 5 %), which is then used instead.

Two sides that cannot be compared are bad input (:class:`HarnessError`): a side without finished
runs, the same runs on both sides, no cell in common, or (paired) no seed in common.

Only final runs are compared (:func:`~harness.report.records.final_records`): a tuned suite's
tuning trials (never tested) and its untuned ``default`` runs are left out on both sides.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.records import RunRecord, latest_by_run
from harness.report.analysis import normalize_cost
from harness.report.records import final_records
from harness.report.stats import ALPHA, holm, paired_t, welch

#: main costs compared besides the primary metric: (key, higher is better)
COST_KEYS = (("train_samples_per_s", True), ("latency_p50_ms", False), ("peak_memory_mb", False))
ENV_KEYS = ("torch", "python", "harness", "pytorch_lightning", "cuda")
#: the verdict of a paired comparison with fewer than two seeds in common
UNKNOWN_PAIRS = "unknown (<2 pairs)"


@dataclass
class Delta:
    task: str
    arch: str
    metric: str
    direction: str
    a: list[float]
    b: list[float]
    pvalue: float | None
    verdict: str  # improved | regressed | unchanged | unknown (n=1) | unknown (<2 pairs) | missing
    #: the seed of each value of ``a`` / ``b``
    seeds_a: list[int] = field(default_factory=list)
    seeds_b: list[int] = field(default_factory=list)
    #: "welch", or "paired" (then ``pairs`` is the number of seeds both sides ran)
    test: str = "welch"
    pairs: int = 0

    @property
    def mean_a(self) -> float | None:
        return statistics.fmean(self.a) if self.a else None

    @property
    def mean_b(self) -> float | None:
        return statistics.fmean(self.b) if self.b else None

    @property
    def delta(self) -> float | None:
        return None if self.mean_a is None or self.mean_b is None else self.mean_b - self.mean_a

    def by_seed(self) -> tuple[dict[int, float], dict[int, float]]:
        """Each side's value per seed (a seed recorded twice on one side: their mean)."""

        def per_seed(seeds: list[int], values: list[float]) -> dict[int, float]:
            grouped: dict[int, list[float]] = {}
            for seed, value in zip(seeds, values, strict=True):
                grouped.setdefault(seed, []).append(value)
            return {seed: statistics.fmean(vals) for seed, vals in grouped.items()}

        return per_seed(self.seeds_a, self.a), per_seed(self.seeds_b, self.b)

    def test_pvalue(self) -> float | None:
        """The uncorrected p value of this delta's test (None when it cannot be computed)."""
        if not self.a or not self.b:
            return None
        if self.test == "paired":
            by_a, by_b = self.by_seed()
            return paired_t(by_a, by_b)[0]
        return welch(self.a, self.b)


def _judge(
    diff: float,
    scale: float,
    p: float | None,
    higher_is_better: bool,
    min_effect: float | None,
    alpha: float,
    unknown: str,
) -> tuple[str, float | None]:
    better = diff > 0 if higher_is_better else diff < 0
    if p is None:
        if min_effect is None:
            return unknown, None
        significant = abs(diff) / (abs(scale) or 1.0) > min_effect
    else:
        significant = p < alpha
    if not significant or diff == 0:
        return "unchanged", p
    return ("improved" if better else "regressed"), p


def verdict(
    a: Sequence[float],
    b: Sequence[float],
    higher_is_better: bool,
    min_effect: float | None = None,
    alpha: float = ALPHA,
    adjusted: float | None = None,
) -> tuple[str, float | None]:
    """(verdict, Welch p value or None) for B relative to A (``adjusted``: a corrected p to use instead)."""
    if not a or not b:
        return "missing", None
    p = adjusted if adjusted is not None else welch(a, b)
    diff = statistics.fmean(b) - statistics.fmean(a)
    return _judge(diff, statistics.fmean(a), p, higher_is_better, min_effect, alpha, "unknown (n=1)")


def _verdict_of(delta: Delta, adjusted: float | None, min_effect: float | None) -> tuple[str, float | None]:
    """The verdict of ``delta`` given its corrected p value (None: no test possible)."""
    if delta.test != "paired":
        if not delta.a or not delta.b:
            return "missing", None
        diff = statistics.fmean(delta.b) - statistics.fmean(delta.a)
        return _judge(
            diff,
            statistics.fmean(delta.a),
            adjusted,
            delta.direction == "max",
            min_effect,
            ALPHA,
            "unknown (n=1)",
        )
    by_a, by_b = delta.by_seed()
    shared = sorted(set(by_a) & set(by_b))
    if not shared:
        return "missing", None
    diff = statistics.fmean(by_b[s] - by_a[s] for s in shared)
    scale = statistics.fmean(by_a[s] for s in shared)
    return _judge(diff, scale, adjusted, delta.direction == "max", min_effect, ALPHA, UNKNOWN_PAIRS)


@dataclass
class _Cell:
    primary: str
    direction: str
    #: metric -> (seed, value) of every finished run of the cell
    values: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def add(self, metric: str, seed: int, value: float | None) -> None:
        if value is not None and math.isfinite(value):  # a figure not measured (memory off) is NaN
            self.values.setdefault(metric, []).append((seed, value))


def _values(records: Sequence[RunRecord]) -> dict[tuple[str, str], _Cell]:
    cells: dict[tuple[str, str], _Cell] = {}
    for r in final_records(latest_by_run(records)):
        if not r.finished:
            continue
        key = (r.spec.task_label, r.spec.arch_label)
        primary = r.spec.primary_metric
        cell = cells.setdefault(key, _Cell(primary, r.spec.direction))
        cell.add(primary, r.spec.seed, r.metrics.get(f"test_{primary}"))
        for cost, value in normalize_cost(r.cost).items():
            cell.add(cost, r.spec.seed, value)
    return cells


def _identity(records: Sequence[RunRecord]) -> set[tuple[str, str | None]]:
    """A run's identity whether it was read from a results file or from MLflow: its run id and
    invocation (a results-file record may lack its MLflow child run's id, see ``LiveLogger.close``)."""
    return {(r.run_id, r.parent_run_id) for r in records}


def check_comparable(
    a: Sequence[RunRecord], b: Sequence[RunRecord], paired: bool = False, names: tuple[str, str] = ("A", "B")
) -> None:
    """Raise :class:`HarnessError` when A and B cannot be compared (see the module docstring)."""
    left_out = (len(a) - len(final_records(a)), len(b) - len(final_records(b)))
    a, b = final_records(a), final_records(b)
    cells_a, cells_b = _values(a), _values(b)
    for name, records, cells, tuning in (
        (names[0], a, cells_a, left_out[0]),
        (names[1], b, cells_b, left_out[1]),
    ):
        if not any(cell.values.get(cell.primary) for cell in cells.values()):
            statuses = sorted({r.status for r in records})
            raise HarnessError(
                f"Nothing to compare on side {name}: "
                + (
                    f"its {len(records)} record(s) have no finished run with a test value "
                    f"(status: {', '.join(statuses)})"
                    if records
                    else "it has no records"
                    if not tuning
                    else "it has no final runs"
                )
                + (
                    f", only {tuning} tuning record(s) (trials and default runs), which compare "
                    "leaves out: it compares the final runs of the tuned configurations"
                    if tuning
                    else ""
                )
                + ". Pass the invocation (parent run id), results file or suite that ran the cells."
            )
    if _identity(a) == _identity(b):
        raise HarnessError(
            f"A ({names[0]}) and B ({names[1]}) select the same runs: comparing them with themselves "
            "says nothing. Pass two different invocations (parent run ids; `--results FILE A B` picks "
            "them from one results file) or two results files."
        )
    shared = [key for key in cells_a if key in cells_b]
    if not shared:

        def listing(cells: dict[tuple[str, str], _Cell]) -> str:
            return ", ".join(f"{t}/{arch}" for t, arch in sorted(cells)[:8]) + (
                " …" if len(cells) > 8 else ""
            )

        raise HarnessError(
            f"A ({names[0]}) and B ({names[1]}) have no cell in common: A ran {listing(cells_a)}; "
            f"B ran {listing(cells_b)}. Compare invocations of the same suite (cells are task × "
            "architecture labels)."
        )
    if paired:

        def seeds(cell: _Cell) -> set[int]:
            return {seed for seed, _ in cell.values.get(cell.primary, [])}

        if not any(seeds(cells_a[key]) & seeds(cells_b[key]) for key in shared):
            raise HarnessError(
                f"--paired pairs runs by seed, but A ({names[0]}) and B ({names[1]}) have no seed in "
                "common in any shared cell. Run B with the seeds of A, or leave out --paired (Welch's "
                "test does not pair)."
            )


def compare(
    a: Sequence[RunRecord],
    b: Sequence[RunRecord],
    min_effect: float | None = None,
    costs: bool = True,
    paired: bool = False,
) -> list[Delta]:
    """Deltas of the primary metric (and main costs) for every cell in A or B.

    p values are Holm-corrected per metric over the cells, so a suite with many cells does not
    raise false alarms at α per cell. ``paired``: a paired t-test over the seeds both sides ran
    instead of Welch's test. Call :func:`check_comparable` first to refuse sides that cannot be
    compared.
    """
    cells_a, cells_b = _values(a), _values(b)
    out: list[Delta] = []
    for key in dict.fromkeys([*cells_a, *cells_b]):
        ca, cb = cells_a.get(key), cells_b.get(key)
        info = ca or cb
        if info is None:  # cannot happen: the key came from one of them
            continue
        metrics = [(info.primary, info.direction == "max")]
        if costs:
            metrics += list(COST_KEYS)
        for metric, higher in metrics:
            va = ca.values.get(metric, []) if ca else []
            vb = cb.values.get(metric, []) if cb else []
            if not va and not vb:
                continue
            delta = Delta(
                key[0],
                key[1],
                metric,
                "max" if higher else "min",
                [v for _, v in va],
                [v for _, v in vb],
                None,
                "missing",
                seeds_a=[s for s, _ in va],
                seeds_b=[s for s, _ in vb],
                test="paired" if paired else "welch",
            )
            if paired:
                by_a, by_b = delta.by_seed()
                delta.pairs = len(set(by_a) & set(by_b))
            out.append(delta)
    families: dict[str, dict[int, float | None]] = {}
    for i, d in enumerate(out):
        families.setdefault(d.metric if d.metric in dict(COST_KEYS) else "primary", {})[i] = d.test_pvalue()
    for family in families.values():
        for index, p in holm({str(i): p for i, p in family.items()}).items():
            d = out[int(index)]
            d.verdict, d.pvalue = _verdict_of(d, p, min_effect)
    return out


def environment_warnings(a: Sequence[RunRecord], b: Sequence[RunRecord]) -> list[str]:
    """Differences in library or plugin versions, data versions, device or host between two invocations."""

    def env(records: Sequence[RunRecord]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in final_records(records):
            if not r.finished:
                continue
            plan = r.spec.provenance
            versions = {**(r.runtime.versions if r.runtime else {}), "harness": plan.harness}
            for key, value in versions.items():
                if key in ENV_KEYS:
                    out.setdefault(f"version {key}", set()).add(value)
            out.setdefault(f"plugin of task `{r.spec.task}`", set()).add(plan.task_plugin.pin)
            out.setdefault(f"plugin of architecture `{r.spec.architecture}`", set()).add(plan.arch_plugin.pin)
            out.setdefault(f"data version of `{r.spec.task}`", set()).add(plan.data_version)
            if r.runtime is not None:
                for key, value in (("device", r.runtime.device), ("host", r.runtime.host)):
                    if value:
                        out.setdefault(key, set()).add(value)
        return out

    ea, eb = env(a), env(b)
    return [
        (
            f"{key} differs: A {', '.join(sorted(ea.get(key, {'—'})))} "
            f"vs B {', '.join(sorted(eb.get(key, {'—'})))}"
        )
        for key in sorted(set(ea) | set(eb))
        if ea.get(key) != eb.get(key)
    ]


__all__ = [
    "COST_KEYS",
    "UNKNOWN_PAIRS",
    "Delta",
    "check_comparable",
    "compare",
    "environment_warnings",
    "verdict",
]
