"""Result records → the numbers a report shows: per-task tables, ranks, failures, provenance.

Renderers (HTML, Markdown, CSV) only format an :class:`Analysis`; every statistical decision is
made here, once, so the three formats can never disagree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.measure import NOISY_RATIO, noisy
from harness.records import RunRecord, latest_by_run
from harness.report.context import ReportContext
from harness.report.records import final_records
from harness.report.stats import (
    ALPHA,
    INTERVAL_LABEL,
    Friedman,
    Interval,
    cliques,
    friedman,
    holm,
    mean_ci,
    paired_t,
)
from harness.report.tuning import TuningAnalysis, tuning_analysis
from harness.report.verdict import Verdict, verdict

#: the critical-difference diagram needs at least this many tasks (data sets) to have power
MIN_CD_TASKS = 5

#: cost columns in table order: (key, column label); absent keys are not shown
COSTS: list[tuple[str, str]] = [
    ("num_params", "params"),
    ("flops_per_sample", "FLOPs/sample"),
    ("train_samples_per_s", "train samples/s"),
    ("infer_samples_per_s", "infer samples/s"),
    ("latency_p50_ms", "latency p50 ms"),
    ("peak_memory_mb", "peak memory MB"),
    ("activation_memory_mb", "activations MB"),
    ("train_time_s", "train time s"),
]
#: old cost names → the agreed ones (records written before the measurement work landed)
ALIASES = {"train_throughput": "train_samples_per_s", "inference_throughput": "infer_samples_per_s"}
_HIGHER = ("acc", "f1", "auroc", "precision", "recall", "bleu", "chrf", "exact", "r2", "score")


def normalize_cost(cost: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (cost or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.setdefault(ALIASES.get(key, key), float(value))
    return out


def metric_direction(
    metric: str, primary: str, primary_direction: str, recorded: Mapping[str, str] | None = None
) -> str:
    """The primary metric's direction comes from the task; the others as the runs recorded them.

    Records written before runs recorded directions take it from the metric registry; a metric
    whose plugin is not installed where the report is made falls back to its name.
    """
    if metric == primary:
        return primary_direction
    if recorded and metric in recorded:
        return recorded[metric]
    from harness.plugins import get_registry

    metrics = get_registry().metrics
    if metric in metrics:
        return str(metrics.get(metric).obj.direction)
    return "max" if any(word in metric.lower() for word in _HIGHER) else "min"


def label(record: RunRecord, kind: str) -> str:
    """The record's task or architecture label (``kind``: ``task`` or ``arch``)."""
    return record.spec.task_label if kind == "task" else record.spec.arch_label


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class ArchRow:
    arch: str
    values: dict[str, dict[Any, float]] = field(default_factory=dict)  # metric → seed → value
    intervals: dict[str, Interval] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)  # mean over finished runs
    ttt_reached: int = 0
    ttt_runs: int = 0
    ttt_steps: float | None = None
    best: set[str] = field(default_factory=set)  # metrics on which it is the best
    tied: dict[str, float] = field(default_factory=dict)  # metric → Holm p vs best, where not significant
    pvalues: dict[str, float | None] = field(default_factory=dict)
    failed: int = 0
    #: failure kinds of the failed runs (``diverged``, ``nan``, ``exception``...), one per run
    failed_kinds: list[str] = field(default_factory=list)
    skipped: str | None = None
    #: cost keys whose figure was too noisy to report as data in some run (:func:`harness.measure.noisy`)
    noisy: set[str] = field(default_factory=set)
    history: list[list[Mapping[str, Any]]] = field(default_factory=list)  # one per finished seed

    @property
    def n(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)


@dataclass
class TaskTable:
    task: str
    primary: str
    direction: str
    metrics: list[str]
    rows: list[ArchRow]
    cost_keys: list[str]
    has_ttt: bool
    target: float | None
    #: metric → direction, as the runs recorded them
    directions: dict[str, str] = field(default_factory=dict)

    def direction_of(self, metric: str) -> str:
        return metric_direction(metric, self.primary, self.direction, self.directions)

    def row(self, arch: str) -> ArchRow | None:
        return next((r for r in self.rows if r.arch == arch), None)


@dataclass
class Ranking:
    archs: list[str]
    tasks: list[str]
    friedman: Friedman | None
    note: str
    #: whether the Nemenyi test can separate anything: ≥ MIN_CD_TASKS tasks and CD shorter than
    #: the rank axis (k − 1); only then is the CD diagram drawn and the table marked
    powered: bool = False
    #: groups the Nemenyi test cannot separate (indices into ``archs``), when powered
    cliques: list[list[int]] = field(default_factory=list)
    #: task → "primary metric ↑/↓", for the table header
    metrics: dict[str, str] = field(default_factory=dict)


@dataclass
class Analysis:
    context: ReportContext
    tables: list[TaskTable]
    ranking: Ranking
    problems: list[dict[str, Any]]  # failed/skipped/killed cells with their causes
    provenance: dict[str, Any]
    records: list[RunRecord]
    #: one per task, in table order: the answer to "who won", stated first in every report
    verdicts: list[Verdict] = field(default_factory=list)
    #: a tuned suite's tuning (trials, accounting, tuned vs default); None without tuning trials
    tuning: TuningAnalysis | None = None
    test_note: str = (
        f"Cells: {INTERVAL_LABEL} (Student t over seeds; n = finished seeds; n=1: no interval). "
        f"Bold: best mean. ≈: not significantly different from the best (paired t-test over seeds, "
        f"runs paired by seed, Holm-corrected, α={ALPHA}); needs ≥ 2 shared seeds. Costs are means "
        f"over the finished runs; ~: a noisy timing (IQR/median above {NOISY_RATIO:.0%} over its "
        "repetitions), indicative only. Failed runs (diverged ones included) are left out of every "
        "mean, interval, rank and Pareto front and listed under Failed and skipped cells. Tasks do "
        "not store per-example predictions, so no per-example bootstrap is done."
    )


def _table(task: str, recs: list[RunRecord]) -> TaskTable:
    primary, direction = recs[0].spec.primary_metric, recs[0].spec.direction
    archs: dict[str, ArchRow] = {}
    metrics: dict[str, None] = {primary: None} if primary else {}
    directions: dict[str, str] = {}
    target = next((r.spec.target for r in recs if _finite(r.spec.target)), None)
    costs: dict[str, dict[str, list[float]]] = {}
    for r in recs:
        row = archs.setdefault(r.spec.arch_label, ArchRow(r.spec.arch_label))
        if r.status == "skipped":
            row.skipped = r.error or "skipped"
            continue
        if not r.finished:
            row.failed += 1
            row.failed_kinds.append(r.failure.kind if r.failure is not None else r.status)
            continue
        directions.update(r.directions)
        seed: Any = r.spec.seed
        for key, value in r.test_metrics().items():
            metrics.setdefault(key, None)
            per_seed = row.values.setdefault(key, {})
            slot = seed if seed not in per_seed else (seed, len(per_seed))  # a repeated seed is not paired
            per_seed[slot] = value
        cost = normalize_cost(r.cost)
        row.noisy.update(k for k, _ in COSTS if noisy(cost, k))
        for key, value in cost.items():
            if math.isfinite(value):
                costs.setdefault(row.arch, {}).setdefault(key, []).append(value)
        if "ttt_reached" in cost:
            row.ttt_runs += 1
            row.ttt_reached += int(cost["ttt_reached"] >= 0.5)
        row.history.append(list(r.history))
    for arch, keyed in costs.items():
        row = archs[arch]
        row.costs = {k: statistics.fmean(v) for k, v in keyed.items()}
        steps = keyed.get("ttt_steps")
        row.ttt_steps = statistics.fmean(steps) if steps else None
    rows = list(archs.values())
    for row in rows:
        row.intervals = {m: mean_ci(list(v.values())) for m, v in row.values.items() if v}
    table = TaskTable(
        task,
        primary,
        direction,
        list(metrics),
        rows,
        [k for k, _ in COSTS if any(k in r.costs for r in rows)],
        any(r.ttt_runs for r in rows),
        float(target) if target is not None else None,
        directions,
    )
    for metric in table.metrics:
        _mark_best(table, metric)
    return table


def _mark_best(table: TaskTable, metric: str) -> None:
    scored = [r for r in table.rows if metric in r.intervals]
    if not scored:
        return
    sign = 1 if table.direction_of(metric) == "max" else -1
    best = max(scored, key=lambda r: sign * r.intervals[metric].mean)
    best.best.add(metric)
    raw = {r.arch: paired_t(best.values[metric], r.values[metric])[0] for r in scored if r is not best}
    for arch, p in holm(raw).items():
        row = table.row(arch)
        assert row is not None  # arch names come from the table itself
        row.pvalues[metric] = p
        if p is not None and p >= ALPHA:
            row.tied[metric] = p


def _ranking(tables: list[TaskTable]) -> Ranking:
    usable = [t for t in tables if any(t.primary in r.intervals for r in t.rows)]
    archs = [
        a
        for a in dict.fromkeys(r.arch for t in usable for r in t.rows)
        if all((row := t.row(a)) is not None and t.primary in row.intervals for t in usable)
    ]
    dropped = sorted({r.arch for t in usable for r in t.rows} - set(archs))
    note = f" Left out (no result on every task): {', '.join(dropped)}." if dropped else ""
    metrics = {t.task: f"{t.primary} {'↑' if t.direction == 'max' else '↓'}" for t in usable}
    if len(usable) < 2 or len(archs) < 2:
        return Ranking(
            archs,
            [t.task for t in usable],
            None,
            "Average ranks need ≥ 2 tasks and ≥ 2 architectures with results on all of them." + note,
            metrics=metrics,
        )
    rows = [[t.row(a).intervals[t.primary].mean for a in archs] for t in usable]  # type: ignore[union-attr]
    result = friedman(rows, [t.direction == "max" for t in usable])
    differ = "differ significantly" if result.pvalue < ALPHA else "do not differ significantly"
    axis = result.k - 1  # average ranks lie in [1, k]
    powered = result.n >= MIN_CD_TASKS and result.cd < axis
    if powered:
        cd_note = (
            f"Nemenyi critical difference CD={result.cd:.3g} (Demšar 2006): architectures joined by a "
            "bar in the diagram are not significantly different; ≈ in the table: within CD of the best."
        )
    else:
        why = f"only {result.n} tasks (it needs ≥ {MIN_CD_TASKS})" if result.n < MIN_CD_TASKS else ""
        if result.cd >= axis:
            why += (" and " if why else "") + (
                f"its critical difference CD={result.cd:.3g} is at least as wide as the whole rank axis "
                f"(1–{result.k}), so it could not separate any two architectures"
            )
        cd_note = f"No critical-difference diagram: the Nemenyi test has no power here with {why}."
    note = (
        f"Rank of each architecture's mean test primary metric per task (1 = best, ties share the mean "
        f"rank), averaged over {len(usable)} tasks. Friedman χ²={result.chi2:.3g}, "
        f"Iman–Davenport F={result.iman_davenport:.3g}, "
        f"p={result.pvalue:.3g}: the architectures {differ} (α={ALPHA}). {cd_note}" + note
    )
    groups = cliques(result.avg_ranks, result.cd) if powered else []
    return Ranking(archs, [t.task for t in usable], result, note, powered, groups, metrics)


def _problems(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in records:
        if r.finished:
            continue
        kind = (
            r.failure.kind if r.failure is not None else ("skipped" if r.status == "skipped" else "exception")
        )
        cause = r.error.splitlines()
        key = (r.spec.task_label, r.spec.arch_label, r.status, cause[0] if cause else "")
        entry = seen.setdefault(
            key,
            {
                "task": key[0],
                "architecture": key[1],
                "status": r.status,
                "kind": kind,
                "cause": key[3],
                "seeds": [],
                "attempts": r.failure.attempts if r.failure is not None else None,
            },
        )
        entry["seeds"].append(r.spec.seed)
    return list(seen.values())


def _provenance(records: Sequence[RunRecord], context: ReportContext) -> dict[str, Any]:
    """What produced the records: both provenances (plan: plugins, data, harness; runtime: libraries)."""
    versions: dict[str, set[str]] = {}
    plugins: dict[str, set[str]] = {}
    data: dict[str, set[str]] = {}
    commits: set[str] = set()
    for r in records:
        plan = r.spec.provenance
        versions.setdefault("harness", set()).add(plan.harness)
        for role, name, ref in (
            ("task", r.spec.task, plan.task_plugin),
            ("architecture", r.spec.architecture, plan.arch_plugin),
        ):
            plugins.setdefault(f"{role} `{name}`", set()).add(ref.pin)
        data.setdefault(r.spec.task, set()).add(plan.data_version)
        if plan.git_commit:
            commits.add(plan.git_commit)
        for key, value in (r.runtime.versions if r.runtime else {}).items():
            if key != "harness":
                versions.setdefault(key, set()).add(value)
    return {
        "suite": context.suite,
        "invocation": context.invocation,
        "suite_hash": context.suite_hash,
        "command": context.command,
        "source": context.source,
        "generated_at": context.generated_at,
        "versions": {k: sorted(v) for k, v in sorted(versions.items())},
        "plugins": {k: sorted(v) for k, v in sorted(plugins.items())},
        "data_versions": {k: sorted(v) for k, v in sorted(data.items())},
        "git_commits": sorted(commits),
        "devices": sorted({r.runtime.device for r in records if r.runtime and r.runtime.device}),
        "hosts": sorted({r.runtime.host for r in records if r.runtime and r.runtime.host}),
        "invocations": sorted({r.parent_run_id for r in records if r.parent_run_id}),
    }


def analyze(records: Iterable[RunRecord], context: ReportContext | None = None) -> Analysis:
    """The analysis of the final runs (:func:`~harness.report.records.final_records`): a tuned
    suite's trials and default runs (in ``records`` or ``context.tuning_records``) enter only its
    tuning section (``Analysis.tuning``); provenance covers them all."""
    given = latest_by_run(records)
    known = {r.run_id for r in given}
    extra = [r for r in (context.tuning_records if context else []) if r.run_id not in known]
    everything = given + latest_by_run(extra)
    rows = final_records(everything)
    context = context or ReportContext.from_records(everything)
    by_task: dict[str, list[RunRecord]] = {}
    for r in rows:
        by_task.setdefault(r.spec.task_label, []).append(r)
    tables = [_table(task, recs) for task, recs in by_task.items()]
    return Analysis(
        context,
        tables,
        _ranking(tables),
        _problems(rows),
        _provenance(everything, context),
        rows,
        [verdict(t) for t in tables],
        tuning_analysis(everything),
    )


__all__ = [
    "ALIASES",
    "COSTS",
    "MIN_CD_TASKS",
    "Analysis",
    "ArchRow",
    "Ranking",
    "TaskTable",
    "analyze",
    "label",
    "metric_direction",
    "normalize_cost",
]
