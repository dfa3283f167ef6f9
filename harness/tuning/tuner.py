"""Tuning one contender on Ray Tune: its trials through ``ray.tune.Tuner``, reported every epoch.

Each trial is a Tune function trainable that rebuilds its :class:`~harness.records.RunSpec`
(recipes, not objects) and runs :func:`harness.train.trial.run_trial` with the suite's per-run
resources (fractional GPUs included), reporting every epoch's row, so ASHA can stop bad trials at
its rungs. A trial that runs to its end reports its whole record last; one that ASHA stopped is
recorded by the driver from the rows it reported (``early_stopped``). A driver-side callback
hands every trial to a :class:`TrialSink` as it starts, reports and ends: the runner's recorder
writes the results file and MLflow, so a trial is recorded the moment it ends.

Random search draws every trial's settings up front from the tuning seed (reproducible); Optuna's
TPE (``search: optuna``) samples them as it goes and is told the finished trials of an earlier,
interrupted invocation. Either way a finished trial (same contender, settings and seed = same run
id) is never trained again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness import interrupts
from harness.errors import HarnessError
from harness.records import RunRecord, RunSpec, Tuning
from harness.train.failures import failed_record
from harness.tunespec import TuneSpec, draw
from harness.tuning.trials import Contender, best_value, trial_spec

#: the result keys a trial reports besides its metric
ROW_KEY, RECORD_KEY = "harness_row", "harness_record"


class TrialSink(Protocol):
    def start(self, spec: RunSpec) -> None: ...
    def rows(self, run_id: str, rows: list[dict[str, float]]) -> None: ...
    def done(self, record: RunRecord) -> None: ...


def _trainable(config: dict[str, Any], base: dict[str, Any], key: str, tune_json: dict[str, Any]) -> None:
    """One trial, in a Tune worker: rebuild the spec, train, report every epoch, then the record."""
    from ray import tune

    from harness.train.trial import run_trial

    contender = Contender(key, RunSpec.model_validate(base), (), {})
    spec = trial_spec(contender, dict(config["settings"]), -1, TuneSpec.model_validate(tune_json))
    metric = contender.metric
    last: dict[str, float] = {}

    def report(row: dict[str, float]) -> None:
        last.update(row)
        value = row.get(metric, math.nan)
        tune.report({metric: value, ROW_KEY: json.dumps(row)})

    record = run_trial(spec, on_epoch=report)
    value = best_value(record)
    tune.report({metric: last.get(metric, math.nan), RECORD_KEY: json.dumps(record.to_json()), "best": value})


@dataclass
class _Trial:
    spec: RunSpec
    started: float
    rows: list[dict[str, float]] = field(default_factory=list)
    done: bool = False


def _seed(seed: int, key: str) -> int:
    """The random search's seed of one contender: stable across processes (``hash()`` is not)."""
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:8], 16)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "contender"


@dataclass
class ContenderOutcome:
    records: list[RunRecord]
    interrupted: bool = False


def _callback_class() -> type:
    from ray import tune

    class Recorder(tune.Callback):
        """Driver-side: each trial to the sink as it starts, reports and ends."""

        def __init__(self, build: Callable[[Any], RunSpec], sink: TrialSink, max_epochs: int) -> None:
            self.build, self.sink, self.max_epochs = build, sink, max_epochs
            self.trials: dict[str, _Trial] = {}
            self.records: list[RunRecord] = []

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its callbacks with the experiment state; the sink (files, MLflow's
            # writer thread, the console) stays in this process: resume is by content hash, not
            # by Tune's restore
            return {"max_epochs": self.max_epochs}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.__dict__.update(state)

        def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
            interrupts.check()  # a stop signal noted while a trial was being recorded

        def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            spec = self.build(trial)
            self.trials[trial.trial_id] = _Trial(spec, time.time())
            with interrupts.deferred(check_at_end=False):
                self.sink.start(spec)

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            state = self.trials.get(trial.trial_id)
            if state is None or ROW_KEY not in result:
                return
            row = {k: float(v) for k, v in json.loads(result[ROW_KEY]).items()}
            state.rows.append(row)
            with interrupts.deferred(check_at_end=False):
                self.sink.rows(state.spec.run_id, [row])

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            state = self.trials.get(trial.trial_id)
            if state is None or state.done:
                return
            last = trial.last_result or {}
            if RECORD_KEY in last:
                record = RunRecord.from_json(json.loads(last[RECORD_KEY]))
                record.spec = state.spec  # the driver's spec: the trial's number is the driver's
            else:  # ASHA stopped it at a rung: the record is what it reported
                record = self._stopped(state, early=True)
            self._finish(state, record)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            state = self.trials.get(trial.trial_id)
            if state is None or state.done:
                return
            error = getattr(trial, "error_msg", None) or "the trial failed (see Ray's logs)"
            message = str(error).strip().splitlines()[-1][:500] if str(error).strip() else str(error)
            self._finish(
                state,
                failed_record(state.spec, None, message=message, history=state.rows, started=state.started),
            )

        def cut_short(self) -> None:
            """After the time budget: the trials still running end here; with epochs reported they
            count as early-stopped (the budget stopped them), without any as killed."""
            for state in list(self.trials.values()):
                if state.done:
                    continue
                if state.rows:
                    self._finish(state, self._stopped(state, early=True))
                else:
                    why = "the tuning time budget ran out before its first epoch ended"
                    cut = failed_record(state.spec, None, kind="killed", message=why, started=state.started)
                    self._finish(state, cut)

        def stop_running(self, how: str) -> None:
            """Record the trials still running as killed (a stop signal)."""
            for state in list(self.trials.values()):
                if not state.done:
                    message = f"interrupted ({how}); run the suite again to resume the tuning"
                    record = failed_record(
                        state.spec,
                        None,
                        kind="killed",
                        message=message,
                        history=state.rows,
                        started=state.started,
                        status="killed",
                    )
                    self._finish(state, record)

        def _stopped(self, state: _Trial, early: bool) -> RunRecord:
            finished = time.time()
            return RunRecord(
                spec=state.spec,
                status="finished",
                history=list(state.rows),
                directions={state.spec.primary_metric: state.spec.direction},
                cost={"epochs": float(len(state.rows)), "train_time_s": finished - state.started},
                started_at=state.started,
                finished_at=finished,
                wall_time_s=finished - state.started,
                early_stopped=early and len(state.rows) < self.max_epochs,
            )

        def _finish(self, state: _Trial, record: RunRecord) -> None:
            state.done = True
            self.records.append(record)
            with interrupts.deferred(check_at_end=False):
                self.sink.done(record)

    return Recorder


def _searcher(tune_spec: TuneSpec, contender: Contender, finished: list[RunRecord]) -> Any:
    if tune_spec.search != "optuna":
        return None
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise HarnessError(
            "tune.search is `optuna`, but Optuna is not installed here. Install it "
            "(`pip install 'harness[tune]'`), or use `search: random`."
        ) from None
    points = [{"settings": dict(r.spec.tuning.config)} for r in finished if r.spec.tuning is not None]
    rewards = [best_value(r) for r in finished]
    known = [(p, v) for p, v in zip(points, rewards, strict=True) if v is not None]
    return OptunaSearch(
        metric=contender.metric,
        mode=contender.mode,
        seed=tune_spec.seed,
        points_to_evaluate=[p for p, _ in known] or None,
        evaluated_rewards=[v for _, v in known] or None,
    )


def tune_contender(
    contender: Contender,
    tune_spec: TuneSpec,
    finished: list[RunRecord],
    sink: TrialSink,
    storage: Path,
    concurrency: int,
    params_model: type[Any] | None,
) -> ContenderOutcome:
    """Run the trials of ``contender`` that ``finished`` (its trials already recorded finished) does
    not cover; every trial goes to ``sink`` as it starts and ends. Returns this invocation's records."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard / CSV files
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # harness.interrupts handles signals
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    total = tune_spec.trials_per_architecture or 1000
    done_ids = {r.run_id for r in finished}
    indices: dict[str, int] = {}
    if tune_spec.search == "random":
        drawn = draw(contender.space, total, _seed(tune_spec.seed, contender.key))
        todo = []
        for index, settings in enumerate(drawn):
            try:
                spec = trial_spec(contender, settings, index, tune_spec, params_model)
            except ValueError as exc:
                raise HarnessError(
                    f"Tuning `{contender.key}`: a drawn setting does not fit ({exc}). Narrow that "
                    "target's domain in the suite's tune.space."
                ) from None
            indices[spec.run_id] = index
            if spec.run_id not in done_ids:
                todo.append({"settings": settings})
        if not todo:
            return ContenderOutcome([])
        space: dict[str, Any] = {"settings": tune.grid_search([t["settings"] for t in todo])}
        samples = 1
    else:
        space = {"settings": {target: domain.to_ray() for target, domain in contender.space.items()}}
        samples = max(total - len(finished), 0)
        if samples == 0:
            return ContenderOutcome([])
    counter = iter(range(len(finished), 10**6))

    def build(trial: Any) -> RunSpec:
        settings = dict(trial.config["settings"])
        spec = trial_spec(contender, settings, 0, tune_spec)
        index = indices.get(spec.run_id)
        index = next(counter) if index is None else index
        return spec.model_copy(
            update={"tuning": Tuning(role="trial", contender=contender.key, trial=index, config=settings)}
        )

    resources = contender.base.resources
    trainable = tune.with_resources(
        tune.with_parameters(
            _trainable,
            base=contender.base.model_dump(mode="json"),
            key=contender.key,
            tune_json=tune_spec.model_dump(mode="json"),
        ),
        {"cpu": resources.cpus, "gpu": resources.gpus},
    )
    scheduler = None
    if tune_spec.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=contender.base.trainer.max_epochs,
            grace_period=min(tune_spec.asha.grace_period, contender.base.trainer.max_epochs),
            reduction_factor=tune_spec.asha.reduction_factor,
        )
    recorder = _callback_class()(build, sink, contender.base.trainer.max_epochs)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=contender.metric,
            mode=contender.mode,
            num_samples=samples,
            search_alg=_searcher(tune_spec, contender, finished),
            scheduler=scheduler,
            max_concurrent_trials=max(1, concurrency),
            reuse_actors=True,  # a trial's worker keeps torch and Lightning imported for the next
            time_budget_s=float(tune_spec.time_per_architecture) if tune_spec.time_per_architecture else None,
        ),
        run_config=tune.RunConfig(
            name=_slug(contender.key) + f"-{int(time.time())}",
            storage_path=str(storage.resolve()),
            callbacks=[recorder],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    try:
        tuner.fit()
    except interrupts.Interrupted as stop:
        interrupts.acknowledge()
        recorder.stop_running(stop.how)
        raise
    recorder.cut_short()  # trials the time budget ended without telling the callback
    return ContenderOutcome(recorder.records)


__all__ = ["ContenderOutcome", "TrialSink", "tune_contender"]
