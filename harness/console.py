"""Terminal output: live progress while a suite runs, the summary table after."""

from __future__ import annotations

import io
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from harness.records import RunRecord, RunSpec
    from harness.report.summary import SummaryTable
    from harness.timings import Timings

#: a terminal escape sequence (colours, cursor moves): CSI … final byte, or OSC … BEL / ST
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences (Ray colours parts of its error messages)."""
    return ANSI.sub("", text)


class PlainWriter(io.TextIOBase):
    """A text stream that drops terminal escape sequences: the console's file when output is piped
    to a file or a CI log, so that colour codes in anything printed (an error message a library
    coloured, a plugin's warning) never reach it raw."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(plain(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


def _duration(seconds: float) -> str:
    """``12.3 s`` under a minute, ``0:03:25`` above."""
    return f"{max(0.0, seconds):.1f} s" if seconds < 60 else _clock(seconds)


def _shorten(label: str, width: int = 56) -> str:
    """Cut a long label in the middle, so both the task and the `· seed N` end stay visible."""
    if len(label) <= width:
        return label
    tail = width // 3
    return f"{label[: width - tail - 1]}…{label[-tail:]}"


@dataclass
class _Cell:
    """What the display knows of one running cell: its last streamed epoch row."""

    label: str
    max_epochs: int | None
    metric: str
    started: float
    epochs: int = 0  # epochs done (the row's 0-based epoch + 1)
    step: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    val_metric: float | None = None
    milestone: int = 0  # quarter milestones of max_epochs already printed (piped output)

    def epoch_text(self) -> str:
        total = "?" if self.max_epochs is None else str(self.max_epochs)
        text = f"epoch {self.epochs}/{total}"
        return text if self.step is None else f"{text}  step {self.step}"

    def losses_text(self) -> str:
        parts = [
            f"{name} {value:.4g}"
            for name, value in (
                ("train_loss", self.train_loss),
                ("val_loss", self.val_loss),
                (f"val_{self.metric}", self.val_metric),
            )
            if value is not None
        ]
        return "  ".join(parts)

    def eta(self, elapsed: float) -> float | None:
        """Seconds left at the pace so far (an upper bound when early stopping cuts it short)."""
        if self.max_epochs is None or not 0 < self.epochs < self.max_epochs:
            return None
        return elapsed / self.epochs * (self.max_epochs - self.epochs)


class Progress:
    """Live progress: counts done / running / failed, the running cells, recent failures, an ETA.

    Small suites print one line per finished cell. Above ``quiet_above`` cells (hundreds of
    runs) only failures get a line (at most ``max_failure_lines``, then a count), plus a progress
    line every tenth of the suite, so the terminal stays readable; the live block shows at most
    ``max_running`` running cells and the last ``max_recent`` failures.

    Each running cell line shows the epoch row it streamed last (:meth:`update`): epochs done,
    step, losses, its elapsed time and its own ETA. When the console is not a live terminal
    (piped to a file or CI log: rich's ``Live`` shows nothing there), small suites instead print
    a plain line per cell as it passes 25 %, 50 % and 75 % of its ``max_epochs``.
    """

    quiet_above = 50
    max_running = 8
    max_recent = 3
    max_failure_lines = 50

    #: milestones per cell in piped output: a line at each quarter of max_epochs (100 % excluded:
    #: the finish line follows)
    milestones = 4

    def __init__(
        self,
        console: Console,
        total: int,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.clock = clock
        self.total = total
        self.capacity = max(1, capacity)
        self.done = 0
        self.failed = 0
        self.killed = 0
        #: run id → progress of the cells running now
        self.cells: dict[str, _Cell] = {}
        self.recent: deque[str] = deque(maxlen=self.max_recent)
        self.quiet = total > self.quiet_above
        self._failure_lines = 0
        self._next_milestone = 1
        # rich's Live draws only on an interactive terminal (or Jupyter); elsewhere it prints nothing
        self.piped = not (console.is_jupyter or (console.is_terminal and console.is_interactive))
        self.started = clock()
        self._live = Live(self, console=console, refresh_per_second=2, transient=True)

    def __enter__(self) -> Progress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def start(self, spec: RunSpec) -> None:
        """A cell starts (or starts again, on a retry: its progress starts over)."""
        self.cells[spec.run_id] = _Cell(
            label=spec.label,
            max_epochs=spec.trainer.max_epochs,
            metric=spec.primary_metric,
            started=self.clock(),
        )

    def update(self, run_id: str, row: Mapping[str, float]) -> None:
        """A running cell streamed an epoch row (``epoch`` 0-based, ``step``, losses, metrics).

        Cheap (no I/O) except the plain milestone line in piped output; a row for a cell that is
        not running (it finished already) is ignored.
        """
        cell = self.cells.get(run_id)
        if cell is None:
            return
        if "epoch" in row:
            cell.epochs = int(row["epoch"]) + 1
        if "step" in row:
            cell.step = int(row["step"])
        cell.train_loss = row.get("train_loss", cell.train_loss)
        cell.val_loss = row.get("val_loss", cell.val_loss)
        cell.val_metric = row.get(f"val_{cell.metric}", cell.val_metric)
        if self.piped and not self.quiet and cell.max_epochs is not None:
            reached = cell.epochs * self.milestones // cell.max_epochs
            if reached > cell.milestone and cell.epochs < cell.max_epochs:
                cell.milestone = reached
                self.console.print(Text(self._milestone_line(cell)), soft_wrap=True)

    def _milestone_line(self, cell: _Cell) -> str:
        parts = [f"  · {cell.label}", cell.epoch_text(), cell.losses_text()]
        elapsed = _duration(self.clock() - cell.started)
        return "  ".join(part for part in parts if part) + f"  ({elapsed})"

    def _cell_line(self, cell: _Cell, now: float) -> Text:
        elapsed = now - cell.started
        parts = [f"  … {_shorten(cell.label)}", cell.epoch_text()]
        if cell.epochs == 0:
            parts.append("starting")
        eta = cell.eta(elapsed)
        parts.append(_duration(elapsed) + ("" if eta is None else f" · ETA {_duration(eta)}"))
        parts.append(cell.losses_text())
        line = "  ".join(part for part in parts if part)
        return Text(line, style="dim", no_wrap=True, overflow="ellipsis")

    def finish(self, record: RunRecord) -> None:
        cell = self.cells.pop(record.run_id, None)
        # labels carry grid points like `ucr[dataset=GunPoint]`, which are not rich markup
        label = escape(cell.label if cell is not None else record.spec.label)
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
            error = plain(record.error).splitlines()[0][:200] if record.error else "unknown error"
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
        elapsed = self.clock() - self.started
        eta = "?"
        if self.done:
            eta = _clock(elapsed / self.done * (self.total - self.done))
        killed = f" · {self.killed} killed" if self.killed else ""
        ended = self.done - self.killed  # a killed cell is not done: the next run resumes it
        return (
            f"cells {ended}/{self.total} done · {len(self.cells)} running · "
            f"{self.failed} failed{killed} · "
            f"elapsed {_clock(elapsed)} · ETA {eta}"
        )

    def __rich__(self) -> Group:
        lines: list[Any] = [Text(self.status_line(), style="bold")]
        shown = min(self.max_running, self.capacity)
        # a snapshot: Live renders from its refresh thread while the driver updates the cells
        running = list(self.cells.values())
        now = self.clock()
        lines += [self._cell_line(cell, now) for cell in running[:shown]]
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


def tuning_table(records: Iterable[RunRecord]) -> Table | None:
    """A tuned suite's tuning per task × architecture: trials, early-stopped, CPU-seconds, the best
    validation score, and tuned vs default on test (the report's tuning section, in short). None
    when the records hold no tuning trial."""
    from harness.report.stats import interval_text, number
    from harness.report.tuning import tuning_analysis

    tuning = tuning_analysis(records)
    if tuning is None:
        return None
    default = tuning.has_default
    out = Table(
        title="Tuning: the same budget per task × architecture",
        caption=(
            "best val: the best trial's best validation score; tuned / default: test primary metric, "
            "mean ± 95 % CI over seeds; Δ = tuned − default. " + tuning.totals()
        ),
        caption_justify="left",
    )
    for column in ("task", "architecture", "trials", "early-stopped", "CPU-s", "best val", "tuned (test)"):
        out.add_column(column, justify="left" if column in ("task", "architecture") else "right")
    if default:
        out.add_column("default (test)", justify="right")
        out.add_column("Δ", justify="right")
    for c in tuning.contenders:
        arrow = "↑" if c.direction == "max" else "↓"
        cells: list[Text | str] = [
            Text(c.task),
            Text(c.arch),
            str(len(c.trials)) + (f" ({c.failed} failed)" if c.failed else ""),
            str(c.early_stopped),
            number(c.cpu_seconds, 3),
            f"{number(c.best_score)} {c.primary} {arrow}" if c.best_score is not None else "—",
            interval_text(c.tuned_interval) if c.tuned_interval is not None else "—",
        ]
        if default:
            diff = c.difference
            style = ""
            if diff is not None and diff != 0:
                style = "green" if (diff > 0) == (c.direction == "max") else "red"  # tuning helped / hurt
            cells += [
                interval_text(c.default_interval) if c.default_interval is not None else "—",
                Text("—" if diff is None else f"{diff:+.4g}", style=style),
            ]
        out.add_row(*cells)
    return out


def timings_table(timings: Timings) -> Table:
    """``harness run --timings``: where the invocation's wall time went, measured; the top-level
    rows (not indented) add up to the total, a span's parts are indented below it."""
    rows = timings.rows()
    total = rows[-1].seconds or float("nan")
    overlapping = any(r.overlapping for r in rows)
    caption = (
        "Measured spans of this process (time.perf_counter); worker rows are the records' "
        "wall_time_s and cost.train_time_s. Python's exit after this table is not included."
    )
    if overlapping:
        caption += " Parts marked Σ ran in parallel: sums over runs, more than their span."
    out = Table(title="Where the time went", caption=caption, caption_justify="left")
    out.add_column("span")
    out.add_column("s", justify="right")
    out.add_column("% of total", justify="right")
    for i, row in enumerate(rows):
        last = i == len(rows) - 1
        name = "  " * row.depth + row.name + (" (Σ over runs, below)" if row.overlapping else "")
        style = "bold" if last else ("dim" if row.depth else "")
        share = "" if row.depth or last else f"{100 * row.seconds / total:.0f}"
        out.add_row(Text(name, style=style), Text(f"{row.seconds:.2f}", style=style), share)
    for name, seconds in timings.notes.items():
        out.add_row(Text(f"({name})", style="dim"), Text(f"{seconds:.2f}", style="dim"), "")
    return out
