"""Results records → a task × architecture table of the primary metric (the console's summary).

Public API for reporter plugins: :func:`summarize` returns a :class:`SummaryTable`; reporters
only render it. The numbers come from :func:`harness.report.analysis.analyze`, the code the
reports use, so a "±" means the same everywhere: the half-width of the 95 % Student-t interval
over seeds (:data:`LEGEND`), never a standard deviation. Like the reports it counts the final
runs only: a tuned suite's trials and default runs are left out (:func:`analyze` does it).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.records import RunRecord
from harness.report.stats import ALPHA, INTERVAL_LABEL, Interval, interval_text

#: what the cells mean; the console prints it under the table
LEGEND = (
    f"{INTERVAL_LABEL} over seeds (Student t; n = finished seeds; n=1: no interval) — the same "
    f"figures as the report. Bold: best mean; ≈: not significantly different from the best "
    f"(paired t-test over seeds, Holm, α={ALPHA})."
)


@dataclass
class SummaryCell:
    values: list[float] = field(default_factory=list)
    failed: int = 0
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)
    #: the report's interval of the primary metric (None without a finished run)
    interval: Interval | None = None
    #: not significantly different from the best (the report's ≈)
    tied: bool = False

    @property
    def mean(self) -> float | None:
        return self.interval.mean if self.interval is not None else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (for reference; the table shows the 95 % CI)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def text(self) -> str:
        if self.skipped and self.interval is None:
            return "skipped"
        parts = []
        if self.interval is not None:
            parts.append(("≈ " if self.tied else "") + interval_text(self.interval))
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts) or "—"


@dataclass
class SummaryTable:
    tasks: list[str]
    architectures: list[str]
    cells: dict[tuple[str, str], SummaryCell]
    metric: dict[str, tuple[str, str]]  # task → (primary metric, direction)
    #: per task, the report's verdict sentences (best, within noise, cheaper, failures)
    verdicts: dict[str, list[str]] = field(default_factory=dict)
    legend: str = LEGEND

    def best(self, task: str) -> str | None:
        """The architecture with the best mean on ``task`` (None without results)."""
        _, direction = self.metric.get(task, ("", "max"))
        scored = [
            (c.mean, a) for a in self.architectures if (c := self.cells.get((task, a))) and c.mean is not None
        ]
        if not scored:
            return None
        return (max if direction == "max" else min)(scored)[1]

    def row(self, task: str) -> list[tuple[str, bool, bool]]:
        """(text, is best, has failures) for each architecture, in column order."""
        best = self.best(task)
        out = []
        for arch in self.architectures:
            cell = self.cells.get((task, arch))
            out.append((cell.text() if cell else "—", arch == best, bool(cell and cell.failed)))
        return out

    def header(self, task: str) -> str:
        name, direction = self.metric.get(task, ("?", "max"))
        arrow = "↑" if direction == "max" else "↓"
        return f"{task} (test {name} {arrow})"

    @property
    def counts(self) -> dict[str, int]:
        out = {"finished": 0, "failed": 0, "skipped": 0}
        for cell in self.cells.values():
            out["finished"] += len(cell.values)
            out["failed"] += cell.failed
            out["skipped"] += 1 if cell.skipped else 0
        return out


def summarize(records: Iterable[RunRecord]) -> SummaryTable:
    """Aggregate result records (last record per run id wins) over seeds, with the report's analysis."""
    from harness.report.analysis import analyze

    analysis = analyze(records)
    tasks = [t.task for t in analysis.tables]
    archs = list(dict.fromkeys(r.spec.arch_label for r in analysis.records))
    cells: dict[tuple[str, str], SummaryCell] = {}
    for table in analysis.tables:
        for row in table.rows:
            values = row.values.get(table.primary, {})
            cells[(table.task, row.arch)] = SummaryCell(
                values=list(values.values()),
                failed=row.failed,
                skipped=row.skipped,
                interval=row.intervals.get(table.primary),
                tied=table.primary in row.tied,
            )
    for r in analysis.records:
        if not r.finished and r.status != "skipped":
            cells[(r.spec.task_label, r.spec.arch_label)].errors.append(r.error)
    metric = {t.task: (t.primary, t.direction) for t in analysis.tables}
    verdicts = {v.task: v.lines for v in analysis.verdicts}
    return SummaryTable(tasks, archs, cells, metric, verdicts)
