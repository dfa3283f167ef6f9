"""Fair tuning (a suite's ``tune:`` block): every (task, architecture) gets the same budget of
trials on Ray Tune, selected on validation only; then the best configuration of each runs over
the suite's seeds and is tested (see docs/fair-comparisons.md).

:func:`run_tuning` is the driver's tuning phase: one :func:`~harness.tuning.tuner.tune_contender`
per contender, in plan order, each under its own MLflow tuning run (a child of the invocation,
holding the trials), every trial recorded in the results file the moment it ends (marked
``tuning.role: trial``); it returns the final runs to schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import RunRecord, RunSpec
from harness.tunespec import TuneSpec
from harness.tuning.trials import Contender, best_config, compute_seconds, contenders, final_specs


@dataclass
class Accounting:
    """What the tuning of one contender cost and found (the console and the report show it)."""

    contender: str
    trials: int = 0
    finished: int = 0
    early_stopped: int = 0
    failed: int = 0
    cpu_s: float = 0.0
    gpu_s: float = 0.0
    best: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None


def account(key: str, trials: list[RunRecord]) -> Accounting:
    acc = Accounting(key, trials=len(trials))
    for record in trials:
        acc.finished += record.finished
        acc.early_stopped += record.early_stopped
        acc.failed += record.status in ("failed", "killed")
        cpu_s, gpu_s = compute_seconds(record)
        acc.cpu_s += cpu_s
        acc.gpu_s += gpu_s
    acc.best, acc.best_value = best_config(trials)
    return acc


class TuningHooks:
    """How the tuning phase talks to the runner: where trials are recorded and MLflow's runs."""

    def __init__(
        self,
        open_parent: Callable[[Contender], str | None],
        close_parent: Callable[[str | None, str, Accounting], None],
        sink: Callable[[str | None], Any],
        say: Callable[[str], None],
    ) -> None:
        self.open_parent, self.close_parent, self.sink, self.say = open_parent, close_parent, sink, say


def plan_contenders(cells: list[RunSpec], tune: TuneSpec, registry: Any) -> list[Contender]:
    """The contenders of the plan's runnable cells, with their spaces (the plugins' defaults)."""
    spaces = {}
    for cell in cells:
        if cell.architecture not in spaces:
            spaces[cell.architecture] = registry.architectures.get(cell.architecture).obj.tune_space()
    return contenders(cells, tune, spaces)


def run_tuning(
    cells: list[RunSpec],
    tune: TuneSpec,
    registry: Any,
    previous: list[RunRecord],
    hooks: TuningHooks,
    storage: Path,
    concurrency: int,
) -> list[RunSpec]:
    """Tune every contender of ``cells`` (skipping trials ``previous`` has finished), then return the
    final runs. Interrupted (a stop signal): the running trials are recorded killed and it re-raises."""
    from harness.tuning.tuner import tune_contender

    finals: list[RunSpec] = []
    for contender in plan_contenders(cells, tune, registry):
        earlier = [
            r
            for r in previous
            if r.spec.is_trial and r.spec.tuning is not None and r.spec.tuning.contender == contender.key
        ]
        finished = [r for r in {r.run_id: r for r in earlier if r.finished}.values()]
        params_model = registry.architectures.get(contender.base.architecture).obj.Params
        parent = hooks.open_parent(contender)
        status = "KILLED"
        ran: list[RunRecord] = []
        try:
            outcome = tune_contender(
                contender, tune, finished, hooks.sink(parent), storage, concurrency, params_model
            )
            ran = outcome.records
            status = "FINISHED"
        finally:
            acc = account(contender.key, [*finished, *ran])
            hooks.close_parent(parent, status, acc)
        if finished and not ran:
            hooks.say(f"{contender.key}: its {len(finished)} trial(s) finished before; none left to run")
        finals.extend(final_specs(contender, acc.best, tune.compare_default))
    return finals


__all__ = ["Accounting", "TuningHooks", "account", "plan_contenders", "run_tuning"]
