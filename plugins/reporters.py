"""Built-in report writers: the summary table as Markdown and as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness import Reporter, hookimpl
from harness.report.summary import summarize


class MarkdownReporter(Reporter):
    """Task × architecture table of the primary test metric (mean ± std over seeds), best in bold."""

    name = "markdown"
    suffix = ".md"

    def render(self, results: Sequence[Mapping[str, Any]]) -> str:
        table = summarize(results)
        lines = ["| task | " + " | ".join(table.architectures) + " |",
                 "|---|" + "---|" * len(table.architectures)]
        for task in table.tasks:
            cells = [f"**{text}**" if best else text for text, best, _ in table.row(task)]
            lines.append(f"| {table.header(task)} | " + " | ".join(cells) + " |")
        counts = table.counts
        lines += ["", f"{counts['finished']} finished, {counts['failed']} failed, {counts['skipped']} skipped."]
        return "\n".join(lines) + "\n"


class CsvReporter(Reporter):
    """One row per run: labels, seed, status, every final metric and cost."""

    name = "csv"
    filename = "runs"
    suffix = ".csv"

    def render(self, results: Sequence[Mapping[str, Any]]) -> str:
        metric_keys = sorted({k for r in results for k in (r.get("metrics") or {})})
        cost_keys = sorted({k for r in results for k in (r.get("cost") or {})})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["run_id", "task", "architecture", "seed", "status", *metric_keys, *cost_keys, "error"])
        for r in results:
            metrics, cost = r.get("metrics") or {}, r.get("cost") or {}
            writer.writerow([
                r.get("run_id"), r.get("task_label", r.get("task")), r.get("arch_label", r.get("architecture")),
                r.get("seed"), r.get("status"), *[metrics.get(k, "") for k in metric_keys],
                *[cost.get(k, "") for k in cost_keys], r.get("error") or r.get("skip_reason") or "",
            ])
        return out.getvalue()


@hookimpl
def register_reporters(register: Callable[[Any], None]) -> None:
    register(MarkdownReporter)
    register(CsvReporter)
