"""Analysis → Markdown that fits a pull request or a README (tables only; plots are in index.html)."""

from __future__ import annotations

from harness.report.analysis import Analysis
from harness.report.tables import Table, problems_table, provenance_rows, ranking_table, task_table
from harness.report.tuning import (
    NO_DEFAULT,
    NOTE,
    TuningAnalysis,
    accounting_table,
    config_table,
    task_heading,
)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    header, rows = table
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            f"**{_escape(t)}**" if style == "best" else f"_{_escape(t)}_" if style == "noisy" else _escape(t)
            for t, style in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _tuning(tuning: TuningAnalysis) -> list[str]:
    """The tuning section of a tuned suite (its plots are in index.html)."""
    lines = ["## Tuning", "", NOTE, "", tuning.totals(), ""]
    if not tuning.has_default:
        lines += [NO_DEFAULT, ""]
    for task in tuning.tasks:
        lines += [f"### {task_heading(tuning.of_task(task)[0])}", ""]
        lines += _table(accounting_table(tuning, task))
        configs = config_table(tuning, task)
        if configs:
            lines += ["Chosen configuration (the tuned runs'):", ""] + _table(configs)
    return lines


def render_markdown(analysis: Analysis) -> str:
    ctx = analysis.context
    counts = {s: sum(1 for r in analysis.records if r.status == s) for s in ("finished", "failed", "skipped")}
    other = len(analysis.records) - sum(counts.values())
    lines = [
        f"# {ctx.suite} — benchmark report",
        "",
        f"Invocation `{ctx.invocation}`, generated {ctx.generated_at}. "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + (f", {other} other" if other else "")
        + (f"; and {analysis.tuning.trials} tuning trials (see Tuning)" if analysis.tuning else "")
        + ".",
        "",
        "## Verdict",
        "",
    ]
    for verdict in analysis.verdicts:
        arrow = "higher" if verdict.direction == "max" else "lower"
        lines += [f"**{verdict.task}** (test {verdict.metric}, {arrow} is better)", ""]
        lines += [f"- {line}" for line in verdict.lines] + [""]
    if not analysis.verdicts:
        lines += ["No results.", ""]
    lines += ["## Results per task", "", f"_{analysis.test_note}_", ""]
    for table in analysis.tables:
        lines += [
            (
                f"### {table.task} (primary: test {table.primary}, "
                f"{'higher' if table.direction == 'max' else 'lower'} is better)"
            ),
            "",
        ]
        lines += _table(task_table(table))
    lines += ["## Across tasks", "", analysis.ranking.note, ""]
    ranks = ranking_table(analysis)
    if ranks:
        lines += _table(ranks)
    if analysis.tuning is not None:
        lines += _tuning(analysis.tuning)
    lines += ["## Failed and skipped cells", ""]
    problems = problems_table(analysis)
    lines += _table(problems) if problems else ["None: every cell finished.", ""]
    lines += ["## Provenance", ""]
    lines += _table((["item", "value"], [[(k, ""), (v, "")] for k, v in provenance_rows(analysis)]))
    tuned = ", tuning search curves and chosen learning rates" if analysis.tuning else ""
    lines += [
        f"Plots (learning curves, Pareto fronts, critical-difference diagram, gradient flow{tuned}) "
        "are in `index.html`."
    ]
    return "\n".join(lines) + "\n"


__all__ = ["render_markdown"]
