"""Analysis → one self-contained HTML page: inline CSS and SVG, no scripts, no external links.

No JavaScript at all: the page works offline, from a CI artifact or an e-mail attachment, and
cannot raise console errors.
"""

from __future__ import annotations

from html import escape

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

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1em}.scroll table{margin:0}
.verdict{border-left:4px solid #2c7a2c;background:#f6fbf6;padding:.4em 1em;margin:.6em 0}
.verdict h3{margin:.2em 0}.verdict ul{margin:.2em 0;padding-left:1.2em}
td.noisy{color:#999;font-style:italic}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
td.best{font-weight:bold;background:#eef7ee}td.tied{background:#f6fbf6}td.muted{color:#999}
.note{color:#555;font-size:.9em;max-width:60em}
figure{display:inline-block;margin:.5em 1em 1em 0;vertical-align:top;max-width:100%}
figcaption{font-size:.85em;color:#444;max-width:36em}figure svg{max-width:100%;height:auto}
table.kv td{text-align:left}th,td{overflow-wrap:normal}td{white-space:nowrap}table.kv td{white-space:normal}
th{min-width:4em}code{background:#f5f5f5;padding:0 .2em}
"""


def _table(table: Table, cls: str = "") -> str:
    header, rows = table
    out = [f'<table class="{cls}">' if cls else "<table>", "<thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append(
            "<tr>"
            + "".join(
                f'<td class="{style}">{escape(text)}</td>' if style else f"<td>{escape(text)}</td>"
                for text, style in row
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    # a wide table scrolls inside its own box; the page itself never scrolls sideways
    return '<div class="scroll">' + "".join(out) + "</div>"


def _figures(figures: list[tuple[str, str]]) -> str:
    return "".join(
        f"<figure>{svg}<figcaption>{escape(title)}</figcaption></figure>" for title, svg in figures
    )


def _tuning(tuning: TuningAnalysis, figures: list[tuple[str, str]]) -> list[str]:
    """The tuning section of a tuned suite: accounting and tuned vs default, configurations, plots."""
    parts = ['<h2 id="tuning">Tuning</h2>', f'<p class="note">{escape(NOTE)}</p>']
    parts.append(f"<p>{escape(tuning.totals())}</p>")
    if not tuning.has_default:
        parts.append(f'<p class="note">{escape(NO_DEFAULT)}</p>')
    for task in tuning.tasks:
        parts.append(f"<h3>{escape(task_heading(tuning.of_task(task)[0]))}</h3>")
        parts.append(_table(accounting_table(tuning, task)))
        configs = config_table(tuning, task)
        if configs:
            parts.append("<p>Chosen configuration (the tuned runs'):</p>" + _table(configs))
    parts.append(_figures(figures))
    return parts


def render_html(analysis: Analysis, figures: dict[str, list[tuple[str, str]]] | None = None) -> str:
    figures = figures or {}
    ctx = analysis.context
    trials = f" (and {analysis.tuning.trials} tuning trials: see Tuning)" if analysis.tuning else ""
    parts = [
        f"<h1>{escape(ctx.suite)} — benchmark report</h1>",
        (
            f'<p class="note">Invocation <code>{escape(ctx.invocation)}</code>, '
            f"generated {escape(ctx.generated_at)}. {len(analysis.records)} runs{escape(trials)}.</p>"
        ),
    ]
    parts.append('<h2 id="verdict">Verdict</h2>')
    if not analysis.verdicts:
        parts.append("<p>No results.</p>")
    for verdict in analysis.verdicts:
        items = "".join(f"<li>{escape(line)}</li>" for line in verdict.lines)
        parts.append(
            f'<div class="verdict"><h3>{escape(verdict.task)} <small>(test {escape(verdict.metric)}, '
            f"{'higher' if verdict.direction == 'max' else 'lower'} is better)</small></h3>"
            f"<ul>{items}</ul></div>"
        )
    parts.append("<h2>Results per task</h2>")
    parts.append(f'<p class="note">{escape(analysis.test_note)}</p>')
    if not analysis.tables:
        parts.append("<p>No results.</p>")
    for table in analysis.tables:
        parts.append(
            f"<h3>{escape(table.task)} <small>(primary: test {escape(table.primary)}, "
            f"{'higher' if table.direction == 'max' else 'lower'} is better)</small></h3>"
        )
        parts.append(_table(task_table(table)))
    parts.append("<h2>Across tasks</h2>")
    parts.append(f'<p class="note">{escape(analysis.ranking.note)}</p>')
    ranks = ranking_table(analysis)
    if ranks:
        parts.append(_table(ranks))
    parts.append(_figures(figures.get("ranks", [])))
    sections = [
        ("learning", "Learning curves"),
        ("pareto", "Quality vs cost (Pareto front in red)"),
        ("gradient_flow", "Gradient flow"),
        ("profiles", "Efficiency vs sequence length"),
    ]
    for key, title in sections:
        if figures.get(key):
            parts.append(f"<h2>{title}</h2>{_figures(figures[key])}")
    if analysis.tuning is not None:
        parts += _tuning(analysis.tuning, figures.get("tuning", []))
    parts.append("<h2>Failed and skipped cells</h2>")
    problems = problems_table(analysis)
    parts.append(_table(problems) if problems else "<p>None: every cell finished.</p>")
    parts.append("<h2>Provenance</h2>")
    parts.append(
        _table((["item", "value"], [[(k, ""), (v, "")] for k, v in provenance_rows(analysis)]), "kv")
    )
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(ctx.suite)} report</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


__all__ = ["render_html"]
