"""Analysis → Markdown that fits a pull request or a README (tables only; plots are in index.html)."""

from __future__ import annotations

from harness.report.analysis import Analysis
from harness.report.tables import Table, problems_table, provenance_rows, ranking_table, task_table


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
    lines += ["## Failed and skipped cells", ""]
    problems = problems_table(analysis)
    lines += _table(problems) if problems else ["None: every cell finished.", ""]
    lines += ["## Provenance", ""]
    lines += _table((["item", "value"], [[(k, ""), (v, "")] for k, v in provenance_rows(analysis)]))
    lines += [
        "Plots (learning curves, Pareto fronts, critical-difference diagram, gradient flow) "
        "are in `index.html`."
    ]
    return "\n".join(lines) + "\n"


__all__ = ["render_markdown"]
