"""The driver: validate, plan, acquire compute, run, record, summarize.

Ordering is what keeps bad input harmless: everything that can be checked is
checked (suite, plugins, plan, resources, tracking store) before the first
record is written.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import signal
import socket
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from harness import __version__, interrupts
from harness.errors import HarnessError, ServiceUnreachable
from harness.heap import GcWindow, gc_window
from harness.matrix import Plan, build_plan
from harness.plan_status import plan_status
from harness.plugins import get_registry
from harness.provenance import git_commit
from harness.records import RunRecord, RunSpec, latest_by_run
from harness.settings import ResourcesSpec
from harness.suite import check_accelerator, load_suite
from harness.timings import Timings
from harness.tracking.live import LiveLogger, per_child
from harness.tracking.results import ResultsFile, default_results_path

if TYPE_CHECKING:
    from harness.scheduler.base import Executor
    from harness.tracking.base import Tracker
    from harness.tracking.reconcile import SyncOutcome


#: how long the end of a suite waits for MLflow to take what was queued for it
FLUSH_TIMEOUT_S = 300.0


@dataclass
class RunOptions:
    executor: str = "ray"
    address: str | None = None
    tracking_uri: str | None = None
    results: str | None = None
    rerun: bool = False
    report_dir: str | None = None
    #: start the local Ray instance with its dashboard (on 127.0.0.1) and print its URL
    dashboard: bool = False
    #: where the invocation's wall time goes (``harness run --timings`` prints it)
    timings: Timings = field(default_factory=Timings)


@dataclass
class RunOutcome:
    results: list[RunRecord]
    #: the latest record of every run of this suite in the results file, this invocation's included
    records: list[RunRecord]
    skipped_cells: list[RunSpec]
    resumed: int
    results_path: Path
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    reports: list[Path]
    #: cells never started because the suite deadline stopped it
    unstarted: int = 0
    #: what the start of the run back-filled (results file ↔ MLflow)
    synced: SyncOutcome | None = None
    #: child runs of this invocation whose logging did not all reach MLflow (the store failed)
    incomplete: int = 0

    @property
    def finals(self) -> list[RunRecord]:
        """This invocation's records of cells (a tuned suite's trials left out)."""
        return [r for r in self.results if not r.spec.is_trial]

    @property
    def trials(self) -> int:
        """Tuning trials recorded by this invocation (a trial that fails is part of tuning, not a
        failed cell: a learning rate that diverges is what tuning is there to find)."""
        return len(self.results) - len(self.finals)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.finals if not r.finished)


def plan_suite(
    path: str, only: dict[str, set[str]] | None = None, resources: dict[str, float] | None = None
) -> Plan:
    """Load, validate and expand a suite; ``resources`` overrides its ``resources:`` (CLI --gpus/--cpus)."""
    registry = get_registry()
    suite = load_suite(path)
    if resources:
        merged = ResourcesSpec.model_validate({**suite.spec.resources.model_dump(), **resources})
        suite.spec = suite.spec.model_copy(update={"resources": merged})
        check_accelerator(suite.spec.trainer.accelerator, merged, "--gpus")
    plan = build_plan(suite, registry)
    return plan.filtered(only) if only else plan


class SuiteInterrupted(interrupts.Interrupted):
    """A stop signal during a suite (Ctrl-C, SIGTERM, SIGHUP): running cells were cancelled and
    recorded as killed."""

    def __init__(self, results: list[RunRecord], unscheduled: int, signum: int) -> None:
        super().__init__(signum)
        self.results = results
        self.unscheduled = unscheduled

    @property
    def killed(self) -> int:
        return sum(1 for r in self.results if r.status == "killed")


def _cache_dir() -> str | None:
    """The data cache a worker uses: only forwarded when the user chose one (HARNESS_CACHE_DIR).

    Otherwise each worker uses its own node's default cache: the driver's path may not exist
    on another machine of the cluster.
    """
    chosen = os.environ.get("HARNESS_CACHE_DIR")
    return str(Path(chosen).expanduser().resolve()) if chosen else None


class _Recorder:
    """Records each cell once: its MLflow child run opens when it starts and grows while it trains
    (:class:`~harness.tracking.live.LiveLogger`, best effort); its record goes to the results file
    when it ends."""

    def __init__(
        self,
        live: LiveLogger,
        results_file: ResultsFile,
        parent: str,
        in_mlflow: dict[str, list[str]],
    ) -> None:
        self.live, self.results_file, self.parent = live, results_file, parent
        self.in_mlflow = in_mlflow
        self.results: list[RunRecord] = []
        self._logged_finished: set[str] = set()

    def start(self, spec: RunSpec) -> None:
        self.live.open(spec)

    def rows(self, run_id: str, rows: list[dict[str, float]]) -> None:
        self.live.rows(run_id, rows)

    def __call__(self, record: RunRecord, parent: str | None = None) -> bool:
        """Record ``record`` (under ``parent``: a tuning trial's MLflow parent, else the
        invocation's); False when it was a second finished record of a run id (dropped)."""
        record.parent_run_id = parent or self.parent
        rid = record.run_id
        if record.finished and rid in self._logged_finished:
            self.live.discard(rid, "a second finished result of this run id was dropped")
            return False  # never two FINISHED child runs (or records) for one run id
        # --rerun: the new run supersedes (tags) the earlier finished ones
        supersede = self.in_mlflow.pop(rid, None) if record.finished else None
        record.mlflow_run_id = self.live.close(record, supersede)
        if record.finished:
            self._logged_finished.add(rid)
        self.results_file.append(record)
        self.results.append(record)
        return True


#: the parts of the ``runs`` span (see :func:`_time_worker`)
WORKER_SETUP = "worker: setup (imports, build, data)"
WORKER_FIT = "worker: fit (train_time_s)"
WORKER_REST = "worker: test, measurements"
WORKER_UNSPLIT = "worker: setup, test, measurements"


def _time_worker(timings: Timings, span: str, record: RunRecord) -> None:
    """Add a record's worker-side figures to the ``span`` of the runs: its fit (``train_time_s``)
    and the rest of its ``wall_time_s`` (split off as setup where the record has ``setup_time_s``)."""
    wall, cost = max(0.0, record.wall_time_s), record.cost
    fit = cost.get("train_time_s", float("nan"))
    fit = min(fit, wall) if fit == fit else 0.0  # NaN: failed before training
    setup = cost.get("setup_time_s", float("nan"))
    if setup == setup:
        setup = min(max(0.0, setup), wall - fit)
        timings.add((span, WORKER_SETUP), setup)
        timings.add((span, WORKER_FIT), fit)
        timings.add((span, WORKER_REST), wall - fit - setup)
    else:
        timings.add((span, WORKER_FIT), fit)
        timings.add((span, WORKER_UNSPLIT), wall - fit)


def runs_span(executor: str, runs: int) -> str:
    return f"runs: {runs} on the {executor} executor"


def _execute(
    executor: Executor,
    todo: list[RunSpec],
    recorder: _Recorder,
    console: Console,
    timings: Timings,
    heap: GcWindow,
) -> str:
    """Run ``todo`` with a live progress display; the parent run's final MLflow status."""
    from harness.console import Progress

    span = runs_span(executor.name, len(todo))
    preload = getattr(executor, "preload", None)  # runs that train in this process: their imports
    if preload is not None and todo:
        with timings.span(span), timings.span(PRELOAD_SPAN):
            preload()
    heap.settle()  # set-up done: what exists stays out of the collector's passes from here
    with timings.span(span), Progress(console, len(todo), executor.capacity) as progress:

        def on_start(spec: RunSpec) -> None:
            with timings.span("driver: run starts (MLflow queue, display)"):
                recorder.start(spec)
                progress.start(spec)

        def on_progress(run_id: str, rows: list[dict[str, float]]) -> None:
            recorder.rows(run_id, rows)
            for row in rows:
                progress.update(run_id, row)

        def on_result(record: RunRecord) -> None:
            with timings.span("driver: records (results file, MLflow queue, display)"):
                if recorder(record):
                    progress.finish(record)
            _time_worker(timings, span, record)

        try:
            executor.run(todo, on_start, on_result, on_progress)
            interrupts.check()  # a signal that came as the last cell was recorded
        except interrupts.Interrupted as stop:
            interrupts.acknowledge()
            raise SuiteInterrupted(recorder.results, executor.unscheduled, stop.signum) from None
    if executor.deadline_hit:
        console.print(
            f"[yellow]Suite deadline reached:[/] running cells were cancelled, "
            f"{executor.unscheduled} cell(s) not started; run the suite again to resume."
        )
    if any(r.status == "killed" for r in recorder.results) or executor.unscheduled:
        return "KILLED"
    return "FINISHED" if all(r.finished for r in recorder.results) else "FAILED"


class _TrialSink:
    """Where the tuning phase records a contender's trials: the results file and MLflow (under the
    contender's tuning run), one line on the console per trial that ends."""

    def __init__(self, recorder: _Recorder, parent: str | None, console: Console) -> None:
        self.recorder, self.parent, self.console = recorder, parent, console

    def start(self, spec: RunSpec) -> None:
        self.recorder.live.open(spec, parent=self.parent)

    def rows(self, run_id: str, rows: list[dict[str, float]]) -> None:
        self.recorder.rows(run_id, rows)

    def done(self, record: RunRecord) -> None:
        from harness.tuning.trials import best_value

        self.recorder(record, parent=self.parent)
        tuning, value = record.spec.tuning, best_value(record)
        number = f"trial {tuning.trial}" if tuning is not None else "trial"
        key = f"val_{record.spec.primary_metric}"
        how = (
            f"early-stopped after {len(record.history)}/{record.spec.trainer.max_epochs} epochs"
            if record.early_stopped
            else record.status
        )
        score = f"best {key} {value:.4g}" if value is not None else f"no {key}"
        contender = tuning.contender if tuning is not None else record.spec.label
        self.console.print(
            f"  tune {escape(contender)} · {number}: {score} ({how}, {record.wall_time_s:.1f} s)"
        )


def _tune_phase(
    plan: Plan,
    options: RunOptions,
    tracker: Tracker,
    recorder: _Recorder,
    executor: Executor,
    previous: list[RunRecord],
    console: Console,
) -> list[RunSpec]:
    """Tune every (task, architecture) on Ray Tune; the final runs (tuned and default) to schedule."""
    from harness.scheduler import make_executor
    from harness.tuning import Accounting, TuningHooks, run_tuning
    from harness.tuning.trials import Contender

    spec = plan.suite.spec
    assert spec.tune is not None
    tune = spec.tune
    ray_executor = executor
    if executor.name != "ray":  # tuning runs on Ray Tune: a local instance for this phase
        ray_executor = make_executor("ray", options.address)
        with interrupts.deferred():
            ray_executor.start(spec.resources, spec.execution)
        interrupts.install()

    def open_parent(contender: Contender) -> str | None:
        try:
            return tracker.start_tuning(
                contender.key,
                spec.name,
                {
                    "search": tune.search,
                    "scheduler": tune.scheduler,
                    "trials_per_architecture": tune.trials_per_architecture,
                    "time_per_architecture": tune.time_per_architecture,
                    "seed": tune.seed,
                    "space": {k: v.describe() for k, v in contender.space.items()},
                },
            )
        except Exception as exc:  # noqa: BLE001 - MLflow is best effort; the results file has the trials
            console.print(
                f"[yellow]warning:[/] could not open the MLflow tuning run of {contender.key}: {exc}"
            )
            return None

    def close_parent(run_id: str | None, status: str, acc: Accounting) -> None:
        if run_id is None:
            return
        summary = {
            "trials": acc.trials,
            "early_stopped": acc.early_stopped,
            "failed": acc.failed,
            "cpu_s": acc.cpu_s,
            "gpu_s": acc.gpu_s,
            **({"best_value": acc.best_value} if acc.best_value is not None else {}),
            "best": acc.best,
        }
        try:
            tracker.finish_tuning(run_id, status, summary)
        except Exception as exc:  # noqa: BLE001
            console.print(f"[yellow]warning:[/] could not close the MLflow tuning run {run_id}: {exc}")

    hooks = TuningHooks(
        open_parent, close_parent, lambda parent: _TrialSink(recorder, parent, console), console.print
    )
    storage = (Path(options.results or spec.tracking.results or default_results_path(spec.name))).parent
    console.print(
        f"Tuning: {tune.trials_per_architecture or 'as many as fit'} trial(s) per (task, architecture)"
        + (f", at most {tune.time_per_architecture:g} s each" if tune.time_per_architecture else "")
        + f", {tune.search} search, "
        + ("ASHA early stopping; " if tune.scheduler == "asha" else "no early stopping; ")
        + "validation only, then the best configuration of each over the seeds."
    )
    try:
        finals = run_tuning(
            plan.runnable,
            tune,
            get_registry(),
            previous,
            hooks,
            storage / f"{spec.name}.tune",
            ray_executor.capacity,
        )
    except interrupts.Interrupted as stop:
        interrupts.acknowledge()
        raise SuiteInterrupted(recorder.results, 0, stop.signum) from None
    finally:
        if ray_executor is not executor:
            ray_executor.close()
    return finals


def _log_model(uri: str, run_id: str, record: RunRecord) -> None:
    from harness.tracking.models import log_model

    log_model(uri, run_id, record)


def _stop_logging(live: LiveLogger, console: Console) -> dict[str, float]:
    """Wait for MLflow to have everything queued; the driver's logging cost per child run."""
    if not live.stop(timeout=FLUSH_TIMEOUT_S):
        console.print(
            f"[yellow]warning:[/] MLflow logging did not finish within {FLUSH_TIMEOUT_S:g} s; "
            "the results file has every record (see `harness report`)."
        )
    return {
        "driver_logging_s_per_child": per_child(live.caller_s, live.closed),
        "mlflow_thread_s_per_child": per_child(live.busy_s, live.closed),
    }


#: the span of the results file (lock, read)
RESULTS_SPAN = "results file: lock, read"


def run_plan(plan: Plan, options: RunOptions, console: Console) -> RunOutcome:
    """Run ``plan``: one invocation, holding its results file, stopped cleanly by any stop signal."""
    spec = plan.suite.spec
    results_file = ResultsFile(options.results or spec.tracking.results or default_results_path(spec.name))
    # the collector paused while the driver sets up, then the set-up's heap frozen (harness.heap)
    with interrupts.handled(), gc_window() as heap, ExitStack() as stack:
        with options.timings.span(RESULTS_SPAN):
            stack.enter_context(results_file.locked())
        return _run_locked(plan, options, console, results_file, heap)


def _run_locked(
    plan: Plan, options: RunOptions, console: Console, results_file: ResultsFile, heap: GcWindow
) -> RunOutcome:
    from harness.scheduler import make_executor
    from harness.tracking.mlflow_store import resolve_uri
    from harness.tracking.sidecar import TrackingProcess

    spec, timings = plan.suite.spec, options.timings
    command = shlex.join(["harness", *sys.argv[1:]])
    uri = resolve_uri(options.tracking_uri or spec.tracking.uri)
    executor = make_executor(options.executor, options.address, dashboard=options.dashboard)
    joins = " (or join the cluster)" if executor.name == "ray" else ""
    starting = f"{executor.name} executor: start{joins}"
    with timings.span(TRACKING_START_SPAN):  # it imports MLflow while the executor starts
        tracker: Tracker = TrackingProcess(uri, spec.tracking.experiment or spec.name)
    try:
        try:
            # a signal while Ray starts stops the suite once it has started
            with interrupts.deferred(), timings.span(starting):
                executor.start(spec.resources, spec.execution)  # refuses infeasible requests up front
        except SystemExit as exc:  # SIGTERM while ray.init ran: Ray's own handler calls sys.exit(15)
            if exc.code == signal.SIGTERM:
                raise interrupts.Interrupted(signal.SIGTERM) from None
            raise
        interrupts.install()  # ray.init set a SIGTERM handler of its own
        if executor.dashboard_url:
            console.print(f"Ray dashboard: {executor.dashboard_url}")
        # after Ray: a cluster that cannot be joined leaves no trace (a sqlite store is created here);
        # the tracking process opens the store while this one imports what its runs need
        tracker.begin_connect()
        early: list[RunRecord] | None = None  # read once; again only if MLflow adds to it
        with timings.span(RESULTS_SPAN), contextlib.suppress(OSError):  # reported where it is read
            early = results_file.read()
        preload = getattr(executor, "preload", None)
        if preload is not None and _has_work(plan, early, options.rerun):
            with timings.span(PRELOAD_SPAN):
                preload()
        with timings.span(TRACKING_WAIT_SPAN):
            tracker = _connect(tracker, console)
        try:
            # the results file is the local source of truth; MLflow may lag it (a server that died)
            # or lead it (a driver that died between the two): make them agree, then decide what is done
            with timings.span("MLflow: reconcile with the results file"):
                synced = _reconcile(tracker, results_file, plan, console)
            with timings.span(RESULTS_SPAN):
                # MLflow's finished runs the file lacked were appended to it (synced.to_file)
                previous = early if early is not None and not synced.to_file else results_file.read()
                unreadable = results_file.describe_unreadable()
            if unreadable:
                console.print(f"[yellow]warning:[/] {escape(unreadable)}")
            # finished in the results file *or* in MLflow: a driver that died between the two is not
            # run twice
            with timings.span("MLflow: finished runs (resume), parent run"):
                in_mlflow = tracker.finished_children()
                done = plan_status(plan, previous, in_mlflow, options.rerun).done_ids  # as `validate` shows
                cache_dir = _cache_dir()
                todo = [
                    c.model_copy(update={"cache_dir": cache_dir})
                    for c in plan.runnable
                    if c.run_id not in done
                ]
                resumed = len(plan.runnable) - len(todo)
                parent = _start_parent(tracker, plan, executor.name, command, todo, resumed)
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store went away between connecting and starting
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise ServiceUnreachable(
                f"The MLflow tracking store `{uri}` stopped answering while the suite was starting "
                f"({type(exc).__name__}: {first}); nothing was run. Check that it is up, then run the "
                "same command again."
            ) from None
        skipped = [RunRecord.skipped(cell, parent) for cell in plan.skipped]
        for record in skipped:
            results_file.append(record)
        if resumed:
            console.print(
                f"Resuming: {resumed} finished run(s) found in {results_file.path} or MLflow are skipped "
                "(--rerun to redo)."
            )
        live = LiveLogger(
            tracker,
            lambda message: console.print(f"[yellow]warning:[/] {escape(message)}"),
            source=str(plan.suite.path),
            model_logger=_log_model if spec.tracking.log_model == "best" else None,
        )
        recorder = _Recorder(live, results_file, parent, in_mlflow)
        status = "FAILED"
        try:
            if spec.tune is not None:  # tune first (validation only), then run the best of each
                heap.settle()
                with timings.span("tuning (Ray Tune)"):
                    finals = _tune_phase(plan, options, tracker, recorder, executor, previous, console)
                done_ids = plan_status(plan, previous, in_mlflow, options.rerun).done_ids | (
                    set() if options.rerun else {r.run_id for r in previous if r.finished} | set(in_mlflow)
                )
                todo = [
                    c.model_copy(update={"cache_dir": cache_dir}) for c in finals if c.run_id not in done_ids
                ]
                resumed = len(finals) - len(todo)
            status = _execute(executor, todo, recorder, console, timings, heap)
        except SuiteInterrupted:
            status = "KILLED"
            raise
        finally:
            with timings.span("MLflow: wait for the logging queue, close the parent run"):
                costs = _stop_logging(live, console)
                finished = sum(1 for r in recorder.results if r.finished)
                failed = len(recorder.results) - finished
                summary = {"runs_finished": finished, "runs_failed": failed, **costs}
                _finish_parent(tracker, status, summary, live.incomplete, spec.name, console)
            timings.note("MLflow: child runs logged (a background thread, overlapping the rows)", live.busy_s)
    finally:
        with timings.span(f"{executor.name} executor: close"):
            executor.close()
        with timings.span("MLflow: close the tracking process"):
            tracker.close()
    records = [
        r for r in latest_by_run([*previous, *skipped, *recorder.results]) if r.spec.suite == spec.name
    ]
    order = {
        cell.run_id: i for i, cell in enumerate(plan.cells)
    }  # tables follow the suite, not finishing order
    records.sort(key=lambda r: order.get(r.run_id, len(order)))
    with timings.span("report: HTML, Markdown, CSV, plots"):
        reports = write_reports(
            records,
            spec.name,
            options.report_dir,
            invocation=parent,
            suite_path=plan.suite.path,
            command=command,
            reporters=spec.reporters,
            profile_dir=results_file.path.parent / "profile",
        )
    return RunOutcome(
        recorder.results,
        records,
        plan.skipped,
        resumed,
        results_file.path,
        uri,
        tracker.experiment_id,
        parent,
        reports,
        executor.unscheduled,
        synced,
        live.incomplete,
    )


#: the spans of the tracking process (:mod:`harness.tracking.sidecar`) in ``--timings``
TRACKING_START_SPAN = "MLflow: start the tracking process"
TRACKING_WAIT_SPAN = "MLflow: wait for the tracking process (its imports, open the store)"
#: an executor that trains in this process imports its runs' stack meanwhile
PRELOAD_SPAN = "driver: imports for the runs in this process"


def _has_work(plan: Plan, records: list[RunRecord] | None, rerun: bool) -> bool:
    """Whether some cell of ``plan`` is not finished in ``records`` (the results file as read
    before MLflow is asked, None if it could not be: a guess, to import the runs' stack early only
    when something will run)."""
    if rerun or records is None or plan.suite.spec.tune is not None:
        return bool(plan.runnable)
    finished = {r.run_id for r in records if r.finished}
    return any(cell.run_id not in finished for cell in plan.runnable)


def _connect(tracker: Tracker, console: Console) -> Tracker:
    """``tracker`` with its store open; if the tracking process died before it could open it (it
    could not start: a broken environment), MLflow's client in this process instead."""
    from harness.tracking.mlflow_store import MlflowTracker
    from harness.tracking.sidecar import TrackingProcessError

    try:
        try:
            tracker.connect()
        except TrackingProcessError as exc:
            tracker.close()
            console.print(
                f"[yellow]warning:[/] {escape(str(exc))}; MLflow is used from this process instead."
            )
            tracker = MlflowTracker(tracker.uri, tracker.experiment)
            tracker.connect()
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow itself failed to load (an incomplete install)
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise HarnessError(
            f"MLflow could not open the tracking store `{tracker.uri}`: {type(exc).__name__}: {first}. "
            "MLflow's installation looks incomplete: reinstall harness with its dependencies "
            "(the README's install command), or install the missing package; nothing was run."
        ) from None
    return tracker


def _reconcile(tracker: Tracker, results_file: ResultsFile, plan: Plan, console: Console) -> SyncOutcome:
    from harness.tracking.reconcile import reconcile

    # in the tracking process (it reads MLflow's client); it may append to the results file, which
    # this process holds (the lock) and does not write meanwhile
    results = ResultsFile(results_file.path.resolve())
    synced = tracker.call(reconcile, results, plan.suite.spec.name, plan.cells)
    if synced.describe():
        console.print(f"Synced with MLflow: {synced.describe()}.")
    return synced


def _finish_parent(
    tracker: Tracker,
    status: str,
    summary: dict[str, float],
    incomplete: int,
    suite: str,
    console: Console,
) -> None:
    """Close the invocation's parent run; a store that is gone by now is a warning, not a crash."""
    try:
        tracker.finish_parent(status, summary)
    except Exception as exc:  # noqa: BLE001 - the results file has every record; sync repairs MLflow
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        console.print(
            f"[yellow]warning:[/] could not close this invocation's MLflow run ({type(exc).__name__}: "
            f"{escape(first)}); it stays RUNNING until the store is back and `harness sync {suite}` "
            "(or the next `harness run`) closes it."
        )
    if incomplete:
        console.print(
            f"[yellow]warning:[/] {incomplete} run(s) did not fully reach MLflow; the results file has "
            f"them: `harness sync {suite}` (or the next `harness run`) back-fills MLflow."
        )


def _start_parent(
    tracker: Tracker, plan: Plan, executor: str, command: str, todo: list[RunSpec], resumed: int
) -> str:
    from harness.tracking.mlflow_store import system_tags

    spec = plan.suite.spec
    commit = git_commit()
    return tracker.start_parent(
        name=f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={
            "harness.suite": spec.name,
            "harness.suite_file": str(plan.suite.path),
            "harness.version": __version__,
            "harness.executor": executor,
            "harness.command": command,
            "harness.host": socket.gethostname(),
            "harness.driver_pid": str(os.getpid()),
            "harness.python": platform.python_version(),
            **({"harness.git_commit": commit} if commit else {}),
            **system_tags(str(plan.suite.path), commit),
        },
        params={
            "seeds": spec.seeds,
            "cells": len(plan.cells),
            "to_run": len(todo),
            "skipped": len(plan.skipped),
            "resumed": resumed,
            "resources": spec.resources.model_dump(),
        },
        suite_text=plan.suite.path.read_text(encoding="utf-8"),
    )


def write_reports(
    records: list[RunRecord],
    suite_name: str,
    report_dir: str | None,
    *,
    invocation: str | None = None,
    suite_path: Path | None = None,
    command: str | None = None,
    reporters: list[str] | None = None,
    profile_dir: Path | None = None,
) -> list[Path]:
    """The suite's reporters (``reporters:``; None = every installed one) write ``records`` into
    ``<report_dir or reports/<suite>>/<invocation>/``, copied to ``.../latest/`` as a stable link target.
    """
    from harness.report.context import ReportContext
    from harness.report.output import write_report_set

    context = ReportContext.from_records(records, source="results file")
    context.suite = suite_name
    if invocation:
        context.invocation = invocation
    if suite_path is not None and Path(suite_path).is_file():
        context.suite_text = Path(suite_path).read_text(encoding="utf-8")
    context.command = command
    if profile_dir is not None:
        context.load_profiles(profile_dir, [r.spec.task for r in records])
    root = Path(report_dir or Path("reports") / suite_name)
    return write_report_set(records, root, context, reporters)


__all__ = [
    "RunOptions",
    "RunOutcome",
    "SuiteInterrupted",
    "default_results_path",
    "plan_suite",
    "run_plan",
    "write_reports",
]
