"""Built-in report writers: a self-contained HTML page, Markdown and a tidy CSV.

They use only the public report API (``harness.report``): the statistics and plots
live in the core, so a third-party reporter can render the same analysis its own way.
``write`` accepts an optional ``context`` (suite text, command, profile records); without it
the context is read from the records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import Params, Reporter, RunRecord, hookimpl
from harness import report as api


class _ContextReporter(Reporter[Params]):
    """Reporters that also accept a ``context`` (suite text, command, profile records)."""

    def text(self, results: Sequence[RunRecord], context: Any = None) -> str:
        raise NotImplementedError

    def render(self, results: Sequence[RunRecord]) -> str:
        return self.text(results)

    def write(self, results: Sequence[RunRecord], out_dir: Path, context: Any = None) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.filename}{self.suffix}"
        path.write_text(self.text(results, context), encoding="utf-8")
        return path


class HtmlReporter(_ContextReporter):
    """
    index.html: tables with 95 % CIs and significance marks, ranks, plots, failures, provenance; offline.
    """

    name = "html"
    filename = "index"
    suffix = ".html"

    def text(self, results: Sequence[RunRecord], context: Any = None) -> str:
        analysis = api.analyze(results, context)
        return api.render_html(analysis, api.all_figures(analysis))


class MarkdownReporter(_ContextReporter):
    """report.md: the same tables as the HTML page, for a pull request or a README."""

    name = "markdown"
    filename = "report"
    suffix = ".md"

    def text(self, results: Sequence[RunRecord], context: Any = None) -> str:
        return api.render_markdown(api.analyze(results, context))


class CsvReporter(_ContextReporter):
    """results.csv: one tidy row per run (labels, seed, status, failure kind, every metric and cost)."""

    name = "csv"
    filename = "results"
    suffix = ".csv"

    def text(self, results: Sequence[RunRecord], context: Any = None) -> str:
        return api.tidy_csv(results)


@hookimpl
def register_reporters(register: Callable[[type[Reporter[Any]]], None]) -> None:
    register(HtmlReporter)
    register(MarkdownReporter)
    register(CsvReporter)
