"""The answer first: per task, who won, who is within noise of the winner, and what that costs.

A report's reader wants the verdict before the tables. Per task it names the best architecture
(best mean of the primary test metric over seeds), the ones not significantly different from it
(the paired t-test over seeds, Holm-corrected, that marks "≈" in the tables: the same decision,
never a second one), and among those the cheapest on each cost axis with the ratio to the best
("gru is within noise of the best at 3.1× the training throughput of transformer"). With one
seed the spread is unknown and it says so instead of claiming anything. Noisy timings
(:func:`harness.measure.noisy`) are marked "~", and failed runs are named with their cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.report.stats import ALPHA, INTERVAL_LABEL, interval_text, number

if TYPE_CHECKING:
    from harness.report.analysis import ArchRow, TaskTable

#: a cheaper architecture is worth naming from this ratio on (smaller gaps are within timing noise)
MIN_RATIO = 1.1
#: cost key → (higher is cheaper, phrase after "at 3.1× ", with {best} for the best architecture)
PHRASES: dict[str, tuple[bool, str]] = {
    "train_samples_per_s": (True, "the training throughput of {best}"),
    "infer_samples_per_s": (True, "the inference throughput of {best}"),
    "latency_p50_ms": (False, "lower p50 latency than {best}"),
    "num_params": (False, "fewer parameters than {best}"),
    "flops_per_sample": (False, "fewer FLOPs per sample than {best}"),
    "peak_memory_mb": (False, "less peak memory than {best}"),
    "activation_memory_mb": (False, "less activation memory than {best}"),
    "train_time_s": (False, "shorter training time than {best}"),
}
TEST = f"paired t-test over seeds, Holm-corrected, α = {ALPHA}"


@dataclass(frozen=True)
class CostEdge:
    """``arch`` (within noise of the best) is ``ratio``× cheaper than the best on ``key``."""

    arch: str
    key: str
    ratio: float
    noisy: bool

    def text(self, best: str, named: bool = True) -> str:
        """``3.1× the training throughput of gru``; without the best's name when not ``named``."""
        mark = "~" if self.noisy else ""
        note = " (noisy timing)" if self.noisy else ""
        phrase = PHRASES[self.key][1]
        phrase = phrase.format(best=best) if named else phrase.rsplit(" ", 2)[0]
        return f"{mark}{self.ratio:.2g}× {phrase}{note}"


@dataclass
class Verdict:
    task: str
    metric: str
    direction: str
    best: str | None = None
    #: within noise of the best: not significantly different (arch → Holm p)
    tied: dict[str, float] = field(default_factory=dict)
    #: significantly worse than the best
    worse: list[str] = field(default_factory=list)
    #: could not be tested against the best (fewer than two shared seeds)
    untested: list[str] = field(default_factory=list)
    #: among the best and those within noise of it: who is cheaper than the best, and by how much
    cheaper: list[CostEdge] = field(default_factory=list)
    #: the sentences every report prints, in order
    lines: list[str] = field(default_factory=list)

    @property
    def spread_known(self) -> bool:
        return self.best is not None and not self.untested


def _order(table: TaskTable, rows: list[ArchRow]) -> list[ArchRow]:
    sign = -1 if table.direction == "max" else 1
    return sorted(rows, key=lambda r: sign * r.intervals[table.primary].mean)


def _cheaper(table: TaskTable, best: ArchRow, tied: list[ArchRow]) -> list[CostEdge]:
    edges = []
    for key in table.cost_keys:
        if key not in PHRASES or key not in best.costs or best.costs[key] <= 0:
            continue
        higher, _ = PHRASES[key]
        candidates = [r for r in tied if r.costs.get(key, 0.0) > 0]
        if not candidates:
            continue
        pick = max if higher else min
        cheap = pick(candidates, key=lambda r: r.costs[key])
        ratio = cheap.costs[key] / best.costs[key] if higher else best.costs[key] / cheap.costs[key]
        if ratio >= MIN_RATIO:
            edges.append(CostEdge(cheap.arch, key, ratio, key in cheap.noisy or key in best.noisy))
    return edges


def _left_out(table: TaskTable) -> str:
    parts = []
    for row in table.rows:
        kinds = ", ".join(dict.fromkeys(row.failed_kinds))
        runs = row.failed + row.n
        if row.skipped and table.primary not in row.intervals:
            parts.append(f"{row.arch} (skipped: {row.skipped})")
        elif row.failed and table.primary not in row.intervals:
            parts.append(f"{row.arch} (all {row.failed} runs failed: {kinds})")
        elif row.failed:
            parts.append(f"{row.arch} ({row.failed} of {runs} runs failed: {kinds}; judged on the rest)")
    return "Failed or skipped: " + "; ".join(parts) + "." if parts else ""


def verdict(table: TaskTable) -> Verdict:
    """The verdict on one task, from the decisions the analysis already made."""
    out = Verdict(table.task, table.primary, table.direction)
    arrow = "higher" if table.direction == "max" else "lower"
    scored = _order(table, [r for r in table.rows if table.primary in r.intervals])
    left_out = _left_out(table)
    if not scored:
        out.lines = [f"No finished run: no verdict on test {table.primary}.", left_out]
        out.lines = [line for line in out.lines if line]
        return out
    best = next((r for r in scored if table.primary in r.best), scored[0])
    out.best = best.arch
    others = [r for r in scored if r is not best]
    out.untested = [r.arch for r in others if r.pvalues.get(table.primary) is None]
    tied = [r for r in others if table.primary in r.tied]
    out.tied = {r.arch: r.tied[table.primary] for r in tied}
    out.worse = [r.arch for r in others if r.arch not in out.tied and r.arch not in out.untested]
    shown = best.intervals[table.primary]
    label = INTERVAL_LABEL if shown.half is not None else "one seed: no interval"
    lines = [f"Best: {best.arch}, test {table.primary} {interval_text(shown)} ({label}; {arrow} is better)."]
    if not others:
        lines.append("It is the only architecture with a result.")
    if out.untested:
        runner = others[0]
        why = "one seed" if best.n < 2 or runner.n < 2 else "fewer than two shared seeds"
        lines.append(
            f"Spread unknown for {', '.join(out.untested)} ({why}): no difference from the best is "
            f"claimed significant or within noise; run 3–5 seeds to tell. Runner-up by mean: "
            f"{runner.arch}, {interval_text(runner.intervals[table.primary])}."
        )
    if tied:
        named = ", ".join(f"{r.arch} (p = {number(out.tied[r.arch], 2)})" for r in tied)
        lines.append(f"Within noise of {best.arch} ({TEST}): {named}.")
    if out.worse:
        if not tied and not out.untested:
            lines.append(f"{best.arch} is significantly better than every other architecture ({TEST}).")
        else:
            lines.append(f"Significantly worse than {best.arch}: {', '.join(out.worse)}.")
    if tied:
        out.cheaper = _cheaper(table, best, tied)
        for arch in dict.fromkeys(e.arch for e in out.cheaper):
            mine = [e for e in out.cheaper if e.arch == arch]
            edges = ", ".join(e.text(best.arch, named=i == 0) for i, e in enumerate(mine))
            lines.append(f"{arch} is within noise of the best at {edges}.")
        if not out.cheaper:
            lines.append(f"None of those is ≥ {MIN_RATIO}× cheaper than {best.arch} on any cost measured.")
    lines.append(left_out)
    out.lines = [line for line in lines if line]
    return out


__all__ = ["MIN_RATIO", "PHRASES", "CostEdge", "Verdict", "verdict"]
