"""A tuned suite (``tune:``): what the tuning cost and what it bought, per (task, architecture).

Every contender (a task × architecture pair) was tuned with the same budget on the train and
validation splits only; its best configuration then ran over the suite's seeds (role ``tuned``),
and, unless ``tune.compare_default: false``, the suite's untuned configuration too (``default``).
The main comparison counts the ``tuned`` runs only (:func:`harness.report.records.final_records`);
this module gives the tuning section its numbers:

- accounting: trials run, finished (early-stopped ones included), early-stopped (ASHA), failed
  (or killed), and the CPU- and GPU-seconds they held (wall time × the CPUs / GPUs asked for);
- the best configuration and its validation score (a trial's *best validation score* is its best
  ``val_<primary>`` over epochs, in the task's direction);
- the search curves: best-so-far validation score against trials and against compute;
- tuned vs default: the test primary metric over seeds (mean ± 95 % CI) of both, and Δ.

Tables are ``(header, rows of (text, style) cells)``, the shape :mod:`harness.report.tables` uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.records import RunRecord, latest_by_run
from harness.report.stats import INTERVAL_LABEL, Interval, interval_text, mean_ci, number
from harness.tuning.trials import best_value, compute_seconds

Cell = tuple[str, str]
Table = tuple[list[str], list[list[Cell]]]

NOTE = (
    "Every task × architecture was tuned with the same budget, choosing on its primary validation "
    "metric only: the test split played no part in the choice. The best configuration of each then ran "
    "over the suite's seeds; those runs are the ones compared above, and the trials and default runs are "
    "left out of every table, statistic and plot above. Best val: a trial's best validation score over "
    "its epochs (#: the trial's number, from 0). Finished counts the early-stopped trials (stopped by "
    "ASHA, without failing); failed counts failed and killed trials. CPU-s / GPU-s: each trial's wall "
    "time × the CPUs / GPUs it held. "
    f"Tuned and default: the test primary metric, {INTERVAL_LABEL} over seeds; Δ = tuned mean − default "
    "mean, with its 95 % CI over the seeds both ran (paired by seed) where there are ≥ 2."
)
NO_DEFAULT = (
    "No default runs (`tune.compare_default: false`, or none finished): tuned vs default cannot be shown."
)


def _trial_number(record: RunRecord) -> int:
    tuning = record.spec.tuning
    return tuning.trial if tuning is not None and tuning.trial is not None else 0


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


@dataclass
class Contender:
    """One (task, architecture) of a tuned suite: its trials and its final runs."""

    name: str
    task: str
    arch: str
    primary: str
    direction: str
    #: in trial order
    trials: list[RunRecord] = field(default_factory=list)
    tuned: list[RunRecord] = field(default_factory=list)
    default: list[RunRecord] = field(default_factory=list)

    # -- accounting ---------------------------------------------------------------------------
    @property
    def finished(self) -> int:
        return sum(1 for r in self.trials if r.finished)

    @property
    def early_stopped(self) -> int:
        return sum(1 for r in self.trials if r.early_stopped)

    @property
    def failed(self) -> int:
        """Failed or killed trials."""
        return sum(1 for r in self.trials if r.status in ("failed", "killed"))

    @property
    def cpu_seconds(self) -> float:
        return sum(compute_seconds(r)[0] for r in self.trials)

    @property
    def gpu_seconds(self) -> float:
        return sum(compute_seconds(r)[1] for r in self.trials)

    @property
    def uses_gpus(self) -> bool:
        return any(r.spec.resources.gpus > 0 for r in self.trials)

    # -- the search -----------------------------------------------------------------------------
    def scores(self) -> list[float | None]:
        """Each trial's best validation score, in trial order (None: it did not finish or has none)."""
        return [best_value(r) if r.finished else None for r in self.trials]

    def best_so_far(self) -> list[float | None]:
        """After each trial (in trial order), the best validation score found so far."""
        out: list[float | None] = []
        best: float | None = None
        for score in self.scores():
            if score is not None and (best is None or _better(score, best, self.direction)):
                best = score
            out.append(best)
        return out

    def compute_curve(self, gpu: bool = False) -> list[tuple[float, float | None]]:
        """(cumulative CPU- or GPU-seconds after each trial, best so far), in trial order."""
        spent, out = 0.0, []
        for record, best in zip(self.trials, self.best_so_far()):
            spent += compute_seconds(record)[1 if gpu else 0]
            out.append((spent, best))
        return out

    def best_trial(self) -> RunRecord | None:
        """The trial whose configuration the tuned runs used; without tuned runs (or no trial with
        their configuration), the finished trial with the best validation score."""
        config = self.tuned_config
        if config:
            matching = [
                r for r in self.trials if r.spec.tuning is not None and r.spec.tuning.config == config
            ]
            if matching:  # a finished one first: the same settings may have been tried again
                return next((r for r in matching if r.finished), matching[0])
        scored = [(s, r) for s, r in zip(self.scores(), self.trials) if s is not None]
        if not scored:
            return None
        sign = 1.0 if self.direction == "max" else -1.0
        return max(scored, key=lambda item: sign * item[0])[1]

    @property
    def best_score(self) -> float | None:
        best = self.best_trial()
        return best_value(best) if best is not None else None

    @property
    def tuned_config(self) -> dict[str, Any] | None:
        """The configuration the tuned runs used (None: no tuned run)."""
        return next((dict(r.spec.tuning.config) for r in self.tuned if r.spec.tuning is not None), None)

    @property
    def config(self) -> dict[str, Any]:
        """The chosen configuration: the tuned runs', else the best trial's ({}: none)."""
        if self.tuned_config is not None:
            return self.tuned_config
        best = self.best_trial()
        return dict(best.spec.tuning.config) if best is not None and best.spec.tuning is not None else {}

    # -- tuned vs default -------------------------------------------------------------------------
    @staticmethod
    def _by_seed(records: list[RunRecord]) -> dict[int, float]:
        return {r.spec.seed: v for r in records if r.finished and (v := r.primary_value) is not None}

    @property
    def tuned_values(self) -> dict[int, float]:
        """Seed → test primary metric of the finished tuned runs."""
        return self._by_seed(self.tuned)

    @property
    def default_values(self) -> dict[int, float]:
        return self._by_seed(self.default)

    @property
    def tuned_interval(self) -> Interval | None:
        values = list(self.tuned_values.values())
        return mean_ci(values) if values else None

    @property
    def default_interval(self) -> Interval | None:
        values = list(self.default_values.values())
        return mean_ci(values) if values else None

    @property
    def difference(self) -> float | None:
        """Tuned mean − default mean of the test primary metric (None: a side has no result)."""
        tuned, default = self.tuned_interval, self.default_interval
        return None if tuned is None or default is None else tuned.mean - default.mean

    @property
    def paired_difference(self) -> Interval | None:
        """Mean ± 95 % CI of tuned − default over the seeds both ran (None: fewer than 2 such seeds)."""
        tuned, default = self.tuned_values, self.default_values
        diffs = [tuned[s] - default[s] for s in sorted(set(tuned) & set(default))]
        return mean_ci(diffs) if len(diffs) >= 2 else None


@dataclass
class TuningAnalysis:
    contenders: list[Contender]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task for c in self.contenders))

    def of_task(self, task: str) -> list[Contender]:
        return [c for c in self.contenders if c.task == task]

    @property
    def trials(self) -> int:
        return sum(len(c.trials) for c in self.contenders)

    @property
    def has_default(self) -> bool:
        return any(c.default_values for c in self.contenders)

    @property
    def uses_gpus(self) -> bool:
        return any(c.uses_gpus for c in self.contenders)

    def totals(self) -> str:
        """One line: trials and compute over every contender."""
        gpu = f", {number(sum(c.gpu_seconds for c in self.contenders), 3)} GPU-s" if self.uses_gpus else ""
        return (
            f"In all: {self.trials} trials of {len(self.contenders)} task × architecture pairs, "
            f"{sum(c.early_stopped for c in self.contenders)} early-stopped, "
            f"{number(sum(c.cpu_seconds for c in self.contenders), 3)} CPU-s{gpu}."
        )


def tuning_analysis(records: Iterable[RunRecord]) -> TuningAnalysis | None:
    """The tuning of the records' suite (last record per run id), or None when it has no trial."""
    rows = [r for r in latest_by_run(records) if r.spec.tuning is not None]
    if not any(r.spec.is_trial for r in rows):
        return None
    contenders: dict[str, Contender] = {}
    for r in rows:
        tuning = r.spec.tuning
        assert tuning is not None  # filtered above
        spec = r.spec
        new = Contender(
            tuning.contender, spec.task_label, spec.arch_label, spec.primary_metric, spec.direction
        )
        contender = contenders.setdefault(tuning.contender, new)
        roles = {"trial": contender.trials, "tuned": contender.tuned, "default": contender.default}
        roles[tuning.role].append(r)
    for contender in contenders.values():
        contender.trials.sort(key=_trial_number)
    return TuningAnalysis(list(contenders.values()))


# -- tables ---------------------------------------------------------------------------------------
def _arrow(direction: str) -> str:
    return "↑" if direction == "max" else "↓"


def _interval(interval: Interval | None, missing: str) -> Cell:
    return (interval_text(interval), "") if interval is not None else (missing, "muted")


def _difference(contender: Contender) -> Cell:
    diff = contender.difference
    if diff is None:
        return ("—", "muted")
    paired = contender.paired_difference
    if paired is not None and paired.half is not None:
        return (f"{diff:+.4g} ± {number(paired.half, 2)} (paired, n={paired.n})", "")
    return (f"{diff:+.4g}", "")


def accounting_table(analysis: TuningAnalysis, task: str) -> Table:
    """Per architecture of ``task``: trials, compute, best val score, and tuned vs default on test."""
    contenders = analysis.of_task(task)
    primary, direction = contenders[0].primary, contenders[0].direction
    gpus = any(c.uses_gpus for c in contenders)
    default = analysis.has_default
    arrow = _arrow(direction)
    header = [
        "architecture",
        "trials",
        "finished",
        "early-stopped",
        "failed",
        "CPU-s",
        *(["GPU-s"] if gpus else []),
        f"best val {primary} {arrow} (trial)",
        f"tuned: test {primary} {arrow}",
        *([f"default: test {primary} {arrow}", "Δ tuned − default"] if default else []),
    ]
    rows = []
    for c in contenders:
        best = c.best_trial()
        status = "" if best is None or best.finished else f", {best.status}"
        score = (
            (f"{number(best_value(best))} (#{_trial_number(best)}{status})", "")
            if best is not None
            else ("—", "muted")
        )
        cells: list[Cell] = [
            (c.arch, ""),
            (str(len(c.trials)), ""),
            (str(c.finished), ""),
            (str(c.early_stopped), ""),
            (str(c.failed), "muted" if not c.failed else ""),
            (number(c.cpu_seconds, 3), ""),
            *([(number(c.gpu_seconds, 3), "")] if gpus else []),
            score,
            _interval(c.tuned_interval, "no tuned run"),
        ]
        if default:
            cells += [_interval(c.default_interval, "no default run"), _difference(c)]
        rows.append(cells)
    return header, rows


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return number(value, 3)
    return str(value)


def config_table(analysis: TuningAnalysis, task: str) -> Table | None:
    """Per architecture of ``task``: the chosen configuration, one column per tuned setting."""
    contenders = analysis.of_task(task)
    keys = sorted({k for c in contenders for k in c.config})
    if not keys:
        return None
    header = ["architecture", *keys]
    rows = [
        [(c.arch, ""), *[(_value(c.config[k]), "") if k in c.config else ("—", "muted") for k in keys]]
        for c in contenders
    ]
    return header, rows


def task_heading(contender: Contender) -> str:
    arrow = _arrow(contender.direction)
    return (
        f"{contender.task} (chosen on val {contender.primary} {arrow}, "
        f"compared on test {contender.primary} {arrow})"
    )


def lr_of(config: Mapping[str, Any]) -> float | None:
    """The configuration's learning rate (``trainer.lr``), when tuned and positive."""
    value = config.get("trainer.lr")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


__all__ = [
    "NOTE",
    "NO_DEFAULT",
    "Contender",
    "TuningAnalysis",
    "accounting_table",
    "compute_seconds",
    "config_table",
    "lr_of",
    "task_heading",
    "tuning_analysis",
]
