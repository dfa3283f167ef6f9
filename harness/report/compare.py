"""``harness compare A B``: per-cell deltas between two invocations with a noise-aware verdict.

A cell is task × architecture, aggregated over seeds. The verdict comes from the seed spread,
not a fixed percentage: Welch's t-test on the seed values of A and B (Holm-corrected over the
cells, α = 0.05) — significant
and better → improved, significant and worse → regressed, else unchanged. With fewer than two
seeds on either side the spread is unknown: the verdict is "unknown (n=1)" unless the user
states a minimum relative effect (``--min-effect 0.05`` = 5 %), which is then used instead.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.records import RunRecord, latest_by_run
from harness.report.analysis import normalize_cost
from harness.report.stats import ALPHA, holm, welch

#: main costs compared besides the primary metric: (key, higher is better)
COST_KEYS = (("train_samples_per_s", True), ("latency_p50_ms", False), ("peak_memory_mb", False))
ENV_KEYS = ("torch", "python", "harness", "pytorch_lightning", "cuda")


@dataclass
class Delta:
    task: str
    arch: str
    metric: str
    direction: str
    a: list[float]
    b: list[float]
    pvalue: float | None
    verdict: str  # improved | regressed | unchanged | unknown (n=1) | missing

    @property
    def mean_a(self) -> float | None:
        return statistics.fmean(self.a) if self.a else None

    @property
    def mean_b(self) -> float | None:
        return statistics.fmean(self.b) if self.b else None

    @property
    def delta(self) -> float | None:
        return None if self.mean_a is None or self.mean_b is None else self.mean_b - self.mean_a


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
    diff = statistics.fmean(b) - statistics.fmean(a)
    better = diff > 0 if higher_is_better else diff < 0
    p = adjusted if adjusted is not None else welch(a, b)
    if p is None:
        if min_effect is None:
            return "unknown (n=1)", None
        scale = abs(statistics.fmean(a)) or 1.0
        significant = abs(diff) / scale > min_effect
    else:
        significant = p < alpha
    if not significant or diff == 0:
        return "unchanged", p
    return ("improved" if better else "regressed"), p


def _values(records: Sequence[RunRecord]) -> dict[tuple[str, str], dict[str, Any]]:
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in latest_by_run(records):
        if not r.finished:
            continue
        key = (r.spec.task_label, r.spec.arch_label)
        primary = r.spec.primary_metric
        cell = cells.setdefault(key, {"primary": primary, "direction": r.spec.direction, "values": {}})
        value = r.metrics.get(f"test_{primary}")
        if value is not None:
            cell["values"].setdefault(primary, []).append(value)
        for cost, value in normalize_cost(r.cost).items():
            cell["values"].setdefault(cost, []).append(value)
    return cells


def compare(
    a: Sequence[RunRecord], b: Sequence[RunRecord], min_effect: float | None = None, costs: bool = True
) -> list[Delta]:
    """Deltas of the primary metric (and main costs) for every cell in A or B.

    p values are Holm-corrected per metric over the cells, so a suite with many cells does not
    raise false alarms at α per cell.
    """
    cells_a, cells_b = _values(a), _values(b)
    out: list[Delta] = []
    for key in dict.fromkeys([*cells_a, *cells_b]):
        ca, cb = cells_a.get(key, {}), cells_b.get(key, {})
        info = ca or cb
        metrics = [(info["primary"], info["direction"] == "max")]
        if costs:
            metrics += list(COST_KEYS)
        for metric, higher in metrics:
            va, vb = ca.get("values", {}).get(metric, []), cb.get("values", {}).get(metric, [])
            if not va and not vb:
                continue
            out.append(Delta(key[0], key[1], metric, "max" if higher else "min", va, vb, None, "missing"))
    families: dict[str, dict[int, float | None]] = {}
    for i, d in enumerate(out):
        families.setdefault(d.metric if d.metric in dict(COST_KEYS) else "primary", {})[i] = (
            welch(d.a, d.b) if d.a and d.b else None
        )
    for family in families.values():
        for index, p in holm({str(i): p for i, p in family.items()}).items():
            d = out[int(index)]
            d.verdict, d.pvalue = verdict(d.a, d.b, d.direction == "max", min_effect, adjusted=p)
    return out


def environment_warnings(a: Sequence[RunRecord], b: Sequence[RunRecord]) -> list[str]:
    """Differences in library or plugin versions, data versions, device or host between two invocations."""

    def env(records: Sequence[RunRecord]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in records:
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


__all__ = ["COST_KEYS", "Delta", "compare", "environment_warnings", "verdict"]
