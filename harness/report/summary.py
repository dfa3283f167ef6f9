"""Results records → a task × architecture table of the primary metric.

Public API for reporter plugins: :func:`summarize` returns a
:class:`SummaryTable`; reporters only render it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.records import RunRecord, latest_by_run


@dataclass
class SummaryCell:
    values: list[float] = field(default_factory=list)
    failed: int = 0
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def text(self, digits: int = 4) -> str:
        if self.skipped and not self.values:
            return "skipped"
        parts = []
        if self.values:
            mean = self.mean
            assert mean is not None
            text = f"{mean:.{digits}g}"
            if self.std is not None:
                text += f" ± {self.std:.2g} (n={len(self.values)})"
            parts.append(text)
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts) or "—"


@dataclass
class SummaryTable:
    tasks: list[str]
    architectures: list[str]
    cells: dict[tuple[str, str], SummaryCell]
    metric: dict[str, tuple[str, str]]  # task → (primary metric, direction)

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


def _order(seen: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(seen))


def summarize(records: Iterable[RunRecord]) -> SummaryTable:
    """Aggregate result records (last record per run id wins) over seeds."""
    rows = latest_by_run(records)
    tasks = _order(r.spec.task_label for r in rows)
    archs = _order(r.spec.arch_label for r in rows)
    cells: dict[tuple[str, str], SummaryCell] = {}
    metric: dict[str, tuple[str, str]] = {}
    for r in rows:
        key = (r.spec.task_label, r.spec.arch_label)
        cell = cells.setdefault(key, SummaryCell())
        metric.setdefault(key[0], (r.spec.primary_metric, r.spec.direction))
        if r.status == "finished":
            if r.primary_value is not None:
                cell.values.append(r.primary_value)
        elif r.status == "failed":
            cell.failed += 1
            cell.errors.append(r.error)
        elif r.status == "skipped":
            cell.skipped = r.error or "skipped"
    return SummaryTable(tasks, archs, cells, metric)
