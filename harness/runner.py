"""The driver: validate, plan, acquire compute, run, record, summarize.

Ordering is what keeps bad input harmless: everything that can be checked is
checked (suite, plugins, plan, resources, tracking store) before the first
record is written.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import __version__
from harness.matrix import Cell, Plan, build_plan
from harness.plugins import get_registry
from harness.suite import load_suite
from harness.tracking.results import ResultsFile, finished_ids, latest_by_run


@dataclass
class RunOptions:
    executor: str = "ray"
    address: str | None = None
    tracking_uri: str | None = None
    results: str | None = None
    rerun: bool = False
    report_dir: str | None = None


@dataclass
class RunOutcome:
    results: list[dict[str, Any]]
    #: the latest record of every run of this suite in the results file, this invocation's included
    records: list[dict[str, Any]]
    skipped_cells: list[Cell]
    resumed: int
    results_path: Path
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    reports: list[Path]
    #: cells never started because the suite deadline stopped it
    unstarted: int = 0

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r["status"] != "finished")


def plan_suite(path: str, only: dict[str, set[str]] | None = None,
               resources: dict[str, float] | None = None) -> Plan:
    """Load, validate and expand a suite; ``resources`` overrides its ``resources:`` (CLI --gpus/--cpus)."""
    registry = get_registry()
    suite = load_suite(path)
    if resources:
        from harness.suite import ResourcesSpec, check_accelerator

        merged = ResourcesSpec(**{**suite.spec.resources.model_dump(), **resources})
        suite.spec = suite.spec.model_copy(update={"resources": merged})
        check_accelerator(suite.spec.trainer.accelerator, merged, "--gpus")
    plan = build_plan(suite, registry)
    return plan.filtered(only) if only else plan


class SuiteInterrupted(KeyboardInterrupt):
    """Ctrl-C during a suite: running cells were cancelled and recorded as killed."""

    def __init__(self, results: list[dict[str, Any]], unscheduled: int) -> None:
        super().__init__()
        self.results = results
        self.unscheduled = unscheduled

    @property
    def killed(self) -> int:
        return sum(1 for r in self.results if r["status"] == "killed")


def _cache_dir() -> str | None:
    """The data cache a worker uses: only forwarded when the user chose one (HARNESS_CACHE_DIR).

    Otherwise each worker uses its own node's default cache: the driver's path may not exist
    on another machine of the cluster.
    """
    chosen = os.environ.get("HARNESS_CACHE_DIR")
    return str(Path(chosen).expanduser().resolve()) if chosen else None


def default_results_path(suite_name: str) -> Path:
    return Path("results") / f"{suite_name}.jsonl"


def run_plan(plan: Plan, options: RunOptions, console: Console) -> RunOutcome:
    from harness.console import Progress
    from harness.scheduler import make_executor
    from harness.tracking.mlflow_store import MlflowTracker, resolve_uri

    spec = plan.suite.spec
    command = shlex.join(["harness", *sys.argv[1:]])
    results_file = ResultsFile(options.results or spec.tracking.results or default_results_path(spec.name))
    previous = results_file.read()
    uri = resolve_uri(options.tracking_uri or spec.tracking.uri)
    executor = make_executor(options.executor, options.address)
    # refuses infeasible requests before anything is recorded
    executor.start(spec.resources.model_dump(), spec.execution.model_dump())
    try:
        tracker = MlflowTracker(uri, spec.tracking.experiment or spec.name)
        tracker.connect()
        # finished in the results file *or* in MLflow: a driver that died between the two is not run twice
        in_mlflow = tracker.finished_children()
        done = set() if options.rerun else finished_ids(previous) | set(in_mlflow)
        todo = [c for c in plan.runnable if c.run_id not in done]
        resumed = len(plan.runnable) - len(todo)
        parent = tracker.start_parent(
            name=f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={
                "harness.suite": spec.name, "harness.suite_file": str(plan.suite.path),
                "harness.version": __version__, "harness.executor": executor.name,
                "harness.command": command, "harness.host": socket.gethostname(),
                "harness.python": platform.python_version(),
            },
            params={"seeds": spec.seeds, "cells": len(plan.cells), "to_run": len(todo),
                    "skipped": len(plan.skipped), "resumed": resumed, "resources": spec.resources.model_dump()},
            suite_text=plan.suite.path.read_text(encoding="utf-8"),
        )
        # a record's "metrics" are values; the cell's metric *names* stay out of it
        skipped = [{**{k: v for k, v in cell.payload().items() if k != "metrics"}, "status": "skipped",
                    "parent_run_id": parent} for cell in plan.skipped]
        for record in skipped:
            results_file.append(record)
        results: list[dict[str, Any]] = []
        payloads = [{**c.payload(), "cache_dir": _cache_dir()} for c in todo]
        if resumed:
            console.print(f"Resuming: {resumed} finished run(s) found in {results_file.path} or MLflow are skipped "
                          "(--rerun to redo).")
        logged_finished: set[str] = set()

        def on_result(result: dict[str, Any]) -> None:
            result["parent_run_id"] = parent
            rid = result["run_id"]
            if result["status"] == "finished" and rid in logged_finished:
                return  # never two FINISHED child runs (or records) for one run id
            try:
                result["mlflow_run_id"] = tracker.log_child(result)
                if result["status"] == "finished":
                    logged_finished.add(rid)
                    if in_mlflow.get(rid):  # --rerun: the new run replaces the earlier ones
                        tracker.supersede(in_mlflow.pop(rid), by=result["mlflow_run_id"])
            except Exception as exc:  # the results file still gets it
                console.print(f"[yellow]warning:[/] could not log run {rid} to MLflow: {exc}")
            results_file.append(result)
            results.append(result)
            progress.finish(result)

        status = "FAILED"
        with Progress(console, len(payloads), executor.capacity) as progress:
            try:
                executor.run(payloads, progress.start, on_result)
                status = "FINISHED" if all(r["status"] == "finished" for r in results) else "FAILED"
                if any(r["status"] == "killed" for r in results) or getattr(executor, "unscheduled", 0):
                    status = "KILLED"
                if getattr(executor, "deadline_hit", False):
                    console.print(f"[yellow]Suite deadline reached:[/] running cells were cancelled, "
                                  f"{executor.unscheduled} cell(s) not started; run the suite again to resume.")
            except KeyboardInterrupt:
                status = "KILLED"
                raise SuiteInterrupted(results, getattr(executor, "unscheduled", 0)) from None
            finally:
                finished = [r for r in results if r["status"] == "finished"]
                tracker.finish_parent(status, {"runs_finished": len(finished), "runs_failed": len(results) - len(finished)})
    finally:
        executor.close()
    records = [r for r in latest_by_run([*previous, *skipped, *results]) if r.get("suite") == spec.name]
    order = {cell.run_id: i for i, cell in enumerate(plan.cells)}  # tables follow the suite, not finishing order
    records.sort(key=lambda r: order.get(r.get("run_id", ""), len(order)))
    reports = write_reports(records, spec.name, options.report_dir, invocation=parent, suite_path=plan.suite.path,
                            command=command, reporters=spec.reporters,
                            profile_dir=results_file.path.parent / "profile")
    return RunOutcome(results, records, plan.skipped, resumed, results_file.path, uri, tracker.experiment_id,
                      parent, reports, getattr(executor, "unscheduled", 0))


def write_reports(records: list[dict[str, Any]], suite_name: str, report_dir: str | None, *,
                  invocation: str | None = None, suite_path: Path | None = None, command: str | None = None,
                  reporters: list[str] | None = None, profile_dir: Path | None = None) -> list[Path]:
    """The suite's reporters (``reporters:``; None = every installed one) write ``records`` into
    ``<report_dir or reports/<suite>>/<invocation>/``, copied to ``.../latest/`` as a stable link target.
    """
    from harness.report.context import ReportContext, load_profiles
    from harness.report.output import write_report_set

    context = ReportContext.from_records(records, source="results file")
    context.suite = suite_name
    if invocation:
        context.invocation = invocation
    if suite_path is not None and Path(suite_path).is_file():
        context.suite_text = Path(suite_path).read_text(encoding="utf-8")
    context.command = command
    if profile_dir is not None:
        context.profiles = load_profiles(profile_dir, [str(r.get("task")) for r in records])
    root = Path(report_dir or Path("reports") / suite_name)
    return write_report_set(records, root, context, reporters)


__all__ = ["RunOptions", "RunOutcome", "SuiteInterrupted", "plan_suite", "run_plan", "write_reports"]
