"""What `harness run` will do with each cell of a plan: run it, skip it, or count it as done.

One function, :func:`plan_status`, answers it for both ``harness validate`` (which shows the
answer) and ``harness run`` (which acts on it), so the two cannot disagree. A cell is

- ``skip``: the plan skips it (its architecture cannot run its task, or its task's data are
  unavailable), whatever was recorded before;
- ``done``: a run with its run id finished before, in the results file or in MLflow (a driver
  that died between logging to MLflow and appending to the file must not run it twice), and
  ``--rerun`` was not given. Failed, killed and skipped records never make a cell done;
- ``run``: everything else.

A run id hashes the resolved cell and the plugins' versions, plus their source digest where the
version does not identify the code (see :mod:`harness.provenance`): a cell whose plugin code
changed has a new id, so it is not done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.matrix import Plan
from harness.records import RunRecord, RunSpec, finished_ids
from harness.tracking.results import ResultsFile, default_results_path

Action = Literal["run", "done", "skip"]


@dataclass(frozen=True)
class CellStatus:
    """One cell and what `harness run` does with it, with the reason in words."""

    cell: RunSpec
    action: Action
    reason: str


@dataclass(frozen=True)
class PlanStatus:
    """Every cell of a plan with its :class:`CellStatus`, in plan order."""

    cells: tuple[CellStatus, ...]

    def _of(self, action: Action) -> list[RunSpec]:
        return [s.cell for s in self.cells if s.action == action]

    @property
    def to_run(self) -> list[RunSpec]:
        return self._of("run")

    @property
    def done(self) -> list[RunSpec]:
        return self._of("done")

    @property
    def skipped(self) -> list[RunSpec]:
        return self._of("skip")

    @property
    def done_ids(self) -> set[str]:
        """Run ids that `harness run` does not run again (finished before, no ``--rerun``)."""
        return {cell.run_id for cell in self.done}


def plan_status(
    plan: Plan, records: Iterable[RunRecord], in_mlflow: Iterable[str], rerun: bool
) -> PlanStatus:
    """What `harness run` does with each cell of ``plan``.

    ``records``: the results file's records; ``in_mlflow``: run ids with a FINISHED child run
    in the suite's MLflow experiment; ``rerun``: ``--rerun`` (every runnable cell runs again).
    """
    in_file = finished_ids(records)
    in_store = set(in_mlflow)
    out: list[CellStatus] = []
    for cell in plan.cells:
        if cell.skip_reason is not None:
            out.append(CellStatus(cell, "skip", cell.skip_reason))
        elif rerun:
            out.append(CellStatus(cell, "run", "--rerun"))
        elif cell.run_id in in_file or cell.run_id in in_store:
            where = "the results file" if cell.run_id in in_file else "MLflow"
            out.append(CellStatus(cell, "done", f"finished before (in {where})"))
        else:
            out.append(CellStatus(cell, "run", ""))
    return PlanStatus(tuple(out))


def results_path(plan: Plan, results: str | None) -> Path:
    """The results file `harness run` would use: ``--results``, ``tracking.results`` or the default."""
    spec = plan.suite.spec
    return Path(results or spec.tracking.results or default_results_path(spec.name))


def previous_records(plan: Plan, results: str | None) -> list[RunRecord]:
    """The records of the results file `harness run` would read (none if it does not exist)."""
    return ResultsFile(results_path(plan, results)).read()


def finished_in_mlflow(plan: Plan, tracking_uri: str | None) -> tuple[set[str], str | None]:
    """Run ids with a FINISHED child run in the suite's experiment, read without writing anything
    (no experiment or database is created); and a warning when the store could not be read.

    A sqlite (or file) store that does not exist yet holds nothing: mlflow is not even imported.
    """
    from harness.tracking.mlflow_store import resolve_uri

    spec = plan.suite.spec
    uri = resolve_uri(tracking_uri or spec.tracking.uri)
    for prefix in ("sqlite:///", "file://"):
        if uri.startswith(prefix) and not Path(uri[len(prefix) :]).exists():
            return set(), None
    if "://" not in uri and not Path(uri).exists():  # a plain folder path
        return set(), None
    try:
        from harness.tracking.mlflow_store import MlflowTracker

        tracker = MlflowTracker(uri, spec.tracking.experiment or spec.name)
        found = tracker.client.get_experiment_by_name(tracker.experiment)
        if found is None or found.lifecycle_stage == "deleted":
            return set(), None
        tracker.experiment_id = found.experiment_id
        return set(tracker.finished_children()), None
    except Exception as exc:  # validate still answers from the results file
        return set(), (
            f"could not read the MLflow store `{uri}` ({type(exc).__name__}: {str(exc)[:200]}); "
            "cells finished only there are counted as to run. Check --tracking-uri / "
            "MLFLOW_TRACKING_URI / tracking.uri."
        )


__all__ = [
    "CellStatus",
    "PlanStatus",
    "finished_in_mlflow",
    "plan_status",
    "previous_records",
    "results_path",
]
