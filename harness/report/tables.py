"""Analysis → plain tables (header + rows of cells) that HTML and Markdown both render.

A cell is ``(text, style)`` with style in {"", "best", "tied", "muted", "noisy"}; the renderers
map the style to bold / a ≈ mark / grey, so both formats show the same decisions. A noisy cost
figure (:func:`harness.measure.noisy`) reads ``~1,234`` and is greyed, never plain data.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from harness.records import RunRecord
from harness.report.analysis import COSTS, Analysis, ArchRow, TaskTable, normalize_cost
from harness.report.records import final_records
from harness.report.stats import interval_text, number

Cell = tuple[str, str]
Table = tuple[list[str], list[list[Cell]]]


def _metric_cell(table: TaskTable, row: ArchRow, metric: str) -> Cell:
    interval = row.intervals.get(metric)
    if interval is None:
        if row.skipped:
            return ("skipped", "muted")
        return (f"{row.failed} failed" if row.failed else "—", "muted")
    text = interval_text(interval)
    if row.failed:
        text += f", {row.failed} failed"
    if metric in row.best:
        return (text, "best")
    if metric in row.tied:
        return (f"≈ {text}", "tied")
    return (text, "")


def _cost_cell(row: ArchRow, key: str) -> Cell:
    if key not in row.costs:
        return ("—", "")
    text = number(row.costs[key], 3)
    return (f"~{text}", "noisy") if key in row.noisy else (text, "")


def target_label(table: TaskTable) -> str:
    """The time-to-target column header, stating the target (``steps to val accuracy ≥ 0.9``)."""
    if table.target is None:
        return "steps to target (target not recorded)"
    bound = "≥" if table.direction == "max" else "≤"
    return f"steps to val {table.primary} {bound} {number(table.target)}"


def task_table(table: TaskTable) -> Table:
    arrows = {m: "↑" if table.direction_of(m) == "max" else "↓" for m in table.metrics}
    header = [
        "architecture",
        *[f"{m} {arrows[m]}" + (" (primary)" if m == table.primary else "") for m in table.metrics],
        *[dict(COSTS)[k] for k in table.cost_keys],
    ]
    if table.has_ttt:
        header.append(target_label(table))
    rows = []
    for row in table.rows:
        cells: list[Cell] = [(row.arch, "")]
        cells += [_metric_cell(table, row, m) for m in table.metrics]
        cells += [_cost_cell(row, k) for k in table.cost_keys]
        if table.has_ttt:
            steps = number(row.ttt_steps, 3) if row.ttt_steps is not None else "—"
            cells.append((f"{steps} (reached {row.ttt_reached}/{row.ttt_runs})", ""))
        rows.append(cells)
    return header, rows


def ranking_table(analysis: Analysis) -> Table | None:
    result = analysis.ranking.friedman
    if result is None:
        return None
    ranking = analysis.ranking
    header = [
        "architecture",
        "average rank",
        *[f"{task}: test {ranking.metrics.get(task, '?')}" for task in ranking.tasks],
    ]
    order = sorted(range(result.k), key=lambda j: result.avg_ranks[j])
    best = result.avg_ranks[order[0]]
    rows = []
    for j in order:
        arch = analysis.ranking.archs[j]
        within = ranking.powered and result.avg_ranks[j] - best < result.cd
        style = "best" if j == order[0] else ("tied" if within else "")
        per_task = []
        for t in analysis.tables:
            if t.task in analysis.ranking.tasks:
                r = t.row(arch)
                per_task.append((number(r.intervals[t.primary].mean) if r else "—", ""))
        rows.append([(arch, ""), (f"{result.avg_ranks[j]:.2f}", style), *per_task])
    return header, rows


def problems_table(analysis: Analysis) -> Table | None:
    if not analysis.problems:
        return None
    header = ["task", "architecture", "status", "kind", "seeds", "cause"]
    rows = [
        [
            (p["task"], ""),
            (p["architecture"], ""),
            (p["status"], ""),
            (p["kind"], ""),
            (", ".join(str(s) for s in p["seeds"]), ""),
            (p["cause"], ""),
        ]
        for p in analysis.problems
    ]
    return header, rows


def provenance_rows(analysis: Analysis) -> list[tuple[str, str]]:
    p = analysis.provenance
    rows = [
        ("suite", str(p["suite"])),
        ("invocation", str(p["invocation"])),
        ("suite hash (sha256 of the suite file)", p["suite_hash"] or "unknown (suite file not available)"),
        ("command", p["command"] or "unknown (not recorded)"),
        ("records from", p["source"] or "—"),
        ("devices", ", ".join(p["devices"]) or "—"),
        ("hosts", ", ".join(p["hosts"]) or "—"),
        ("generated", p["generated_at"]),
    ]
    if len(p["invocations"]) > 1:
        rows.append(("runs from invocations", ", ".join(p["invocations"]) + " (resumed suite)"))
    for key, values in p["plugins"].items():
        rows.append((f"plugin of {key}", _listed(values)))
    for key, values in p["data_versions"].items():
        rows.append((f"data version of `{key}`", _listed(values)))
    rows.append(
        (
            "harness git commit",
            _listed(p["git_commits"]) if p["git_commits"] else "unknown (not a git checkout)",
        )
    )
    for key, values in p["versions"].items():
        rows.append((f"version: {key}", _listed(values)))
    return rows


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values) + (" (differs between runs!)" if len(values) > 1 else "")


def tidy_csv(records: Sequence[RunRecord]) -> str:
    """One row per run: labels, seed, status, failure kind, every metric and cost key, provenance.

    Only the final runs (:func:`~harness.report.records.final_records`): a tuned suite's trials
    and default runs are left out."""
    records = final_records(records)
    metric_keys = sorted({k for r in records for k in r.metrics})
    cost_keys = sorted({k for r in records for k in normalize_cost(r.cost)})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "run_id",
            "suite",
            "task",
            "architecture",
            "seed",
            "status",
            "failure_kind",
            "primary_metric",
            "direction",
            *metric_keys,
            *cost_keys,
            "wall_time_s",
            "device",
            "parent_run_id",
            "task_plugin",
            "arch_plugin",
            "data_version",
            "error",
        ]
    )
    for r in records:
        spec, cost = r.spec, normalize_cost(r.cost)
        kind = r.failure.kind if r.failure is not None else ""
        cause = r.error.splitlines()
        writer.writerow(
            [
                r.run_id,
                spec.suite,
                spec.task_label,
                spec.arch_label,
                spec.seed,
                r.status,
                kind,
                spec.primary_metric,
                spec.direction,
                *[_plain(r.metrics.get(k)) for k in metric_keys],
                *[_plain(cost.get(k)) for k in cost_keys],
                r.wall_time_s,
                r.runtime.device if r.runtime else "",
                r.parent_run_id or "",
                spec.provenance.task_plugin.pin,
                spec.provenance.arch_plugin.pin,
                spec.provenance.data_version,
                cause[0] if cause else "",
            ]
        )
    return out.getvalue()


def _plain(value: float | None) -> float | str:
    return "" if value is None or math.isnan(value) else value


__all__ = [
    "interval_text",
    "number",
    "problems_table",
    "provenance_rows",
    "ranking_table",
    "target_label",
    "task_table",
    "tidy_csv",
]
