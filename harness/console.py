"""Terminal output: live progress while a suite runs, the summary table after."""

from __future__ import annotations

import time
from collections import deque
from datetime import timedelta
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.records import RunRecord, RunSpec
from harness.report.summary import SummaryTable


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


class Progress:
    """Live progress: counts done / running / failed, the running cells, recent failures, an ETA.

    Small suites print one line per finished cell. Above ``quiet_above`` cells (hundreds of
    runs) only failures get a line (at most ``max_failure_lines``, then a count), plus a progress
    line every tenth of the suite, so the terminal stays readable; the live block shows at most
    ``max_running`` running cells and the last ``max_recent`` failures.
    """

    quiet_above = 50
    max_running = 8
    max_recent = 3
    max_failure_lines = 50

    def __init__(self, console: Console, total: int, capacity: int) -> None:
        self.console = console
        self.total = total
        self.capacity = max(1, capacity)
        self.done = 0
        self.failed = 0
        self.killed = 0
        self.running: dict[str, str] = {}
        self.recent: deque[str] = deque(maxlen=self.max_recent)
        self.quiet = total > self.quiet_above
        self._failure_lines = 0
        self._next_milestone = 1
        self.started = time.monotonic()
        self._live = Live(self, console=console, refresh_per_second=2, transient=True)

    def __enter__(self) -> Progress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def start(self, spec: RunSpec) -> None:
        self.running[spec.run_id] = spec.label

    def finish(self, record: RunRecord) -> None:
        # labels carry grid points like `ucr[dataset=GunPoint]`, which are not rich markup
        label = escape(self.running.pop(record.run_id, record.spec.label))
        self.done += 1
        wall = record.wall_time_s
        if record.finished:
            if not self.quiet:
                metric = record.spec.primary_metric
                value = record.metrics.get(f"test_{metric}")
                shown = f"{metric} {value:.4g}" if value is not None else "finished"
                self.console.print(f"[green]✓[/] {label}  {shown}  ({wall:.1f} s)")
        else:
            killed = record.status == "killed"
            self.killed += killed
            self.failed += not killed
            kind = record.failure.kind if record.failure else "exception"
            error = record.error.splitlines()[0][:200] if record.error else "unknown error"
            mark = "[yellow]■[/]" if killed else "[red]✗[/]"
            status = "killed" if killed else "failed"
            line = f"{mark} {label}  {status} ({kind}): {escape(error)}"
            self.recent.append(line)
            if not self.quiet or self._failure_lines < self.max_failure_lines:
                self.console.print(line)
                self._failure_lines += 1
            elif self._failure_lines == self.max_failure_lines:
                self.console.print(
                    "[red]… more failures are not printed one by one[/] (see the results file)"
                )
                self._failure_lines += 1
        if self.quiet and self.done * 10 >= self._next_milestone * self.total:
            self._next_milestone = self.done * 10 // self.total + 1
            self.console.print(self.status_line())

    def status_line(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = "?"
        if self.done:
            eta = _clock(elapsed / self.done * (self.total - self.done))
        killed = f" · {self.killed} killed" if self.killed else ""
        return (
            f"cells {self.done}/{self.total} done · {len(self.running)} running · "
            f"{self.failed} failed{killed} · "
            f"elapsed {_clock(elapsed)} · ETA {eta}"
        )

    def __rich__(self) -> Group:
        lines: list[Any] = [Text(self.status_line(), style="bold")]
        shown = min(self.max_running, self.capacity)
        running = list(self.running.values())
        lines += [Text(f"  … {label}", style="dim") for label in running[:shown]]
        if len(running) > shown:
            lines.append(Text(f"  … and {len(running) - shown} more running", style="dim"))
        if self.quiet and self.recent:
            lines.append(Text("  recent failures:", style="red"))
            lines += [Text.from_markup(f"    {line}") for line in self.recent]
        return Group(*lines)


def summary_table(table: SummaryTable, title: str) -> Table:
    """The primary metric per task × architecture, as the report computes it, with its legend
    (``mean ± 95 % CI``) as the caption: a "±" on the console means what it means in the report."""
    out = Table(title=title, show_lines=False, caption=table.legend, caption_justify="left")
    out.add_column("task (primary test metric)")
    for arch in table.architectures:
        out.add_column(Text(arch), justify="right")
    for task in table.tasks:
        row = [
            Text(text, style="bold green" if best else ("red" if failed else ""))
            for text, best, failed in table.row(task)
        ]
        out.add_row(Text(table.header(task)), *row)
    return out


def verdict_lines(table: SummaryTable) -> Group:
    """Per task, the report's verdict sentences (best, within noise, cheaper, failures)."""
    lines: list[Any] = []
    for task in table.tasks:
        for i, sentence in enumerate(table.verdicts.get(task, [])):
            lead = f"{task}: " if i == 0 else " " * (len(task) + 2)
            lines.append(Text(lead, style="bold") + Text(sentence))
    return Group(*lines)
