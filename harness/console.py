"""Terminal output: live progress while a suite runs, the summary table after."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.report.summary import SummaryTable


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


class Progress:
    """Counts cells done / running / failed, with elapsed time and an ETA."""

    def __init__(self, console: Console, total: int, capacity: int) -> None:
        self.console = console
        self.total = total
        self.capacity = max(1, capacity)
        self.done = 0
        self.failed = 0
        self.running: dict[str, str] = {}
        self.started = time.monotonic()
        self._live = Live(self, console=console, refresh_per_second=2, transient=True)

    def __enter__(self) -> Progress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def start(self, payload: dict[str, Any]) -> None:
        self.running[payload["run_id"]] = f"{payload['task_label']} × {payload['arch_label']} · seed {payload['seed']}"

    def finish(self, result: dict[str, Any]) -> None:
        # labels carry grid points like `ucr[dataset=GunPoint]`, which are not rich markup
        label = escape(self.running.pop(result["run_id"], result.get("run_id", "?")))
        self.done += 1
        wall = result.get("wall_time_s", 0.0)
        if result["status"] == "finished":
            metric = result.get("primary_metric", "")
            value = (result.get("metrics") or {}).get(f"test_{metric}")
            shown = f"{metric} {value:.4g}" if isinstance(value, (int, float)) else "finished"
            self.console.print(f"[green]✓[/] {label}  {shown}  ({wall:.1f} s)")
        else:
            self.failed += 1
            error = str(result.get("error", "")).splitlines()[0][:200] if result.get("error") else "unknown error"
            self.console.print(f"[red]✗[/] {label}  failed: {escape(error)}")

    def status_line(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = "?"
        if self.done:
            eta = _clock(elapsed / self.done * (self.total - self.done))
        return (f"cells {self.done}/{self.total} done · {len(self.running)} running · {self.failed} failed · "
                f"elapsed {_clock(elapsed)} · ETA {eta}")

    def __rich__(self) -> Group:
        lines: list[Any] = [Text(self.status_line(), style="bold")]
        lines += [Text(f"  … {label}", style="dim") for label in list(self.running.values())[: self.capacity]]
        return Group(*lines)


def summary_table(table: SummaryTable, title: str) -> Table:
    out = Table(title=title, show_lines=False)
    out.add_column("task (primary test metric)")
    for arch in table.architectures:
        out.add_column(Text(arch), justify="right")
    for task in table.tasks:
        row = [Text(text, style="bold green" if best else ("red" if failed else "")) for text, best, failed in table.row(task)]
        out.add_row(Text(table.header(task)), *row)
    return out
