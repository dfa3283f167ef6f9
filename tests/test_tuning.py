"""Fair tuning (issue 15): the same budget of trials per (task, architecture) on Ray Tune,
validation only, then the best configuration of each over the seeds.

The end-to-end tests (marked ``ray``) run a real ``harness run`` on a local Ray instance with
the ``fault`` test plugin's trivially fast ``instant`` architecture, so what is measured is the
orchestration: trial counts, ASHA, the results file and MLflow, resume after Ctrl-C, and that
the tuning phase never touches the test split.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.records import Tuning
from harness.tracking.results import ResultsFile
from harness.tunespec import Domain, TuneSpec, draw
from harness.tuning.trials import best_config, best_value, contenders, final_specs, trial_spec
from tests.helpers import ctrl_c_able, fault_env, harness_run, make_record, mlflow_runs, write_suite

REPO = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    return fault_env(tmp_path / "cache")


def _suite(tmp_path: Path, name: str, mode: str = "ok", trials: int | None = 4, **tune: Any) -> Path:
    data = {
        "name": name,
        "seeds": [0, 1],
        "tasks": [{"name": "fault", "params": {"mode": mode, "num_train": 128}}],
        "architectures": [
            {"name": "instant"},
            {"name": "instant", "label": "instant2", "trainer": {"lr": 0.02}},
        ],
        "trainer": {"max_epochs": 4, "batch_size": 32, "lr": 0.01},
        "measure": {"latency": False, "flops": False, "memory": False},
        "resources": {"cpus": 1},
        "tune": {
            **({"trials_per_architecture": trials} if trials else {}),
            "asha": {"reduction_factor": 4},
            **tune,
        },
    }
    return write_suite(tmp_path, data)


def _run(tmp_path: Path, suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness_run(tmp_path, suite, *args, timeout=500)


# -- the plan: spaces, trials, the best configuration, the final runs ---------------------------


def test_domains_are_validated_and_draws_are_reproducible() -> None:
    assert Domain.model_validate({"loguniform": [1e-4, 1e-2]}).kind == "loguniform"
    for bad in (
        {"loguniform": [0, 1]},
        {"uniform": [2, 1]},
        {"int": [0.5, 3]},
        {"choice": []},
        {"normal": [0, 1]},
    ):
        with pytest.raises(ValueError):
            Domain.model_validate(bad)
    space = {
        "trainer.lr": Domain.model_validate({"loguniform": [1e-4, 1e-2]}),
        "params.layers": Domain.model_validate({"int": [1, 3]}),
        "trainer.optimizer": Domain.model_validate({"choice": ["adam", "sgd"]}),
    }
    first, again = draw(space, 20, seed=7), draw(space, 20, seed=7)
    assert first == again and first != draw(space, 20, seed=8)
    assert all(1e-4 <= c["trainer.lr"] <= 1e-2 and c["params.layers"] in (1, 2, 3) for c in first)


def test_a_tune_block_needs_a_budget_and_tunable_targets() -> None:
    with pytest.raises(ValueError, match="trials_per_architecture"):
        TuneSpec.model_validate({})
    with pytest.raises(ValueError, match="not a tunable setting"):
        TuneSpec.model_validate({"trials_per_architecture": 2, "space": {"*": {"lr": {"uniform": [0, 1]}}}})
    spec = TuneSpec.model_validate(
        {
            "trials_per_architecture": 2,
            "space": {
                "*": {"trainer.lr": {"uniform": [0.1, 0.2]}},
                "gru": {"params.dropout": {"uniform": [0, 0.3]}},
            },
        }
    )
    assert set(spec.space_for("gru", "gru")) == {"trainer.lr", "params.dropout"}
    assert set(spec.space_for("lstm", "lstm")) == {"trainer.lr"}


def test_bad_tune_blocks_are_exit_2_with_their_place(tmp_path: Path, fault_workdir: Path, cli: Any) -> None:
    suite = _suite(tmp_path, "badtune")
    text = suite.read_text().replace("trials_per_architecture: 4", "trials_per_architecture: 0")
    suite.write_text(text)
    result = cli("validate", str(suite))
    assert result.exit_code == 2 and "tune.trials_per_architecture" in result.output, result.output
    suite.write_text(text.replace("trials_per_architecture: 0", "search: optuna"))
    result = cli("validate", str(suite))
    assert result.exit_code == 2 and "tune" in result.output, result.output


def _plan(tmp_path: Path) -> Any:
    from tests.helpers import payloads

    return payloads(_suite(tmp_path, "plan"), tmp_path / "cache")


def test_trials_validate_only_and_their_ids_follow_their_settings(
    tmp_path: Path, fault_workdir: Path
) -> None:
    cells = _plan(tmp_path)
    tune = TuneSpec.model_validate({"trials_per_architecture": 3, "seed": 5})
    (first, _second) = contenders(cells, tune, {})
    assert first.key == "fault × instant" and [c.seed for c in first.cells] == [0, 1]
    assert set(first.space) == {"trainer.lr"}  # the core's default: the learning rate
    lo, hi = first.space["trainer.lr"].values
    assert math.isclose(lo, 0.001) and math.isclose(hi, 0.1)
    a = trial_spec(first, {"trainer.lr": 0.02}, 0, tune)
    assert a.is_trial and a.seed == 5 and a.trainer.lr == 0.02 and not a.measure.latency
    assert a.run_id == trial_spec(first, {"trainer.lr": 0.02}, 3, tune).run_id  # same settings, same trial
    assert a.run_id != trial_spec(first, {"trainer.lr": 0.03}, 0, tune).run_id
    assert a.run_id not in {c.run_id for c in cells}


def test_the_best_trial_wins_on_validation_and_the_final_runs_are_tuned_and_default(
    tmp_path: Path, fault_workdir: Path
) -> None:
    cells = _plan(tmp_path)
    tune = TuneSpec.model_validate({"trials_per_architecture": 3})
    contender = contenders(cells, tune, {})[0]
    trials = []
    for i, (lr, values) in enumerate(((0.01, [0.5, 0.6]), (0.02, [0.7, 0.65]), (0.03, [0.4, float("nan")]))):
        spec = trial_spec(contender, {"trainer.lr": lr}, i, tune)
        record = make_record(
            run_id=spec.run_id,
            value=0.0,
            history=[{"epoch": e, "val_accuracy": v} for e, v in enumerate(values)],
        )
        record.spec = spec
        trials.append(record)
    assert [best_value(r) for r in trials] == [0.6, 0.7, 0.4]
    best, value = best_config(trials)
    assert best == {"trainer.lr": 0.02} and value == 0.7
    finals = final_specs(contender, best, compare_default=True)
    roles = Counter(s.tuning.role for s in finals if s.tuning)
    assert roles == {"tuned": 2, "default": 2}
    tuned = [s for s in finals if s.tuning and s.tuning.role == "tuned"]
    default = [s for s in finals if s.tuning and s.tuning.role == "default"]
    assert all(s.trainer.lr == 0.02 for s in tuned) and [s.seed for s in tuned] == [0, 1]
    assert [s.run_id for s in default] == [c.run_id for c in contender.cells]  # the plain cells
    assert not {s.run_id for s in tuned} & {c.run_id for c in contender.cells}
    assert final_specs(contender, {}, compare_default=True) == [
        c.model_copy(update={"tuning": Tuning(role="tuned", contender=contender.key)})
        for c in contender.cells
    ]  # no trial scored: the suite's own settings, once


# -- end to end on Ray Tune -----------------------------------------------------------------------


def _records(tmp_path: Path, name: str) -> list[Any]:
    return ResultsFile(tmp_path / "results" / f"{name}.jsonl").read()


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_every_architecture_gets_its_trials_and_the_test_split_is_never_touched_while_tuning(
    tmp_path: Path,
) -> None:
    """The task fails any run that touches its test split: every trial finishes (validation
    only), every final run fails naming the test split (it is tested there, and only there)."""
    suite = _suite(tmp_path, "spy", mode="no_test", trials=4)
    done = _run(tmp_path, suite)
    assert done.returncode == 1, done.stdout + done.stderr  # the final runs fail: they are tested
    records = _records(tmp_path, "spy")
    trials = [r for r in records if r.spec.is_trial]
    assert Counter(r.spec.tuning.contender for r in trials) == {"fault × instant": 4, "fault × instant2": 4}
    assert all(r.status == "finished" and not r.metrics for r in trials), [r.error for r in trials]
    finals = [r for r in records if not r.spec.is_trial]
    assert finals and all(r.status == "failed" and "test split was touched" in r.error for r in finals)
    assert sum(r.early_stopped for r in trials) >= 1  # ASHA stopped some at a rung
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "spy")
    tuning_runs = [c for c in children if c.data.tags.get("harness.phase") == "tune"]
    assert sorted(c.data.tags["harness.tuning_contender"] for c in tuning_runs) == [
        "fault × instant",
        "fault × instant2",
    ]
    per_parent = Counter(
        c.data.tags["mlflow.parentRunId"]
        for c in children
        if c.data.tags.get("harness.tuning_role") == "trial"
    )
    assert sorted(per_parent.values()) == [4, 4] and set(per_parent) == {c.info.run_id for c in tuning_runs}


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_ctrl_c_during_tuning_then_running_again_repeats_no_finished_trial(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "resume", trials=6)
    results = tmp_path / "results" / "resume.jsonl"
    log = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen(
        [*HARNESS, "run", str(suite)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ctrl_c_able,
    )
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            if (
                results.exists()
                and sum(r.spec.is_trial and r.finished for r in ResultsFile(results).read()) >= 2
            ):
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()
        log.close()
    out = (tmp_path / "out.txt").read_text()
    assert "Traceback" not in out, out
    before = {r.run_id for r in ResultsFile(results).read() if r.spec.is_trial and r.finished}
    assert len(before) >= 2
    again = _run(tmp_path, suite)
    assert again.returncode == 0, again.stdout + again.stderr
    records = ResultsFile(results).read()
    finished = Counter(r.run_id for r in records if r.spec.is_trial and r.finished)
    assert set(finished.values()) == {1}, finished  # no finished trial ran twice
    assert len(finished) == 12  # 6 per architecture, over both invocations
    per_contender = Counter(r.spec.tuning.contender for r in records if r.spec.is_trial and r.finished)
    assert per_contender == {"fault × instant": 6, "fault × instant2": 6}
    tuned = [r for r in records if r.spec.tuning and r.spec.tuning.role == "tuned"]
    assert len(tuned) == 4 and all(r.finished for r in tuned)


def test_the_shipped_fair_suites_are_within_budget_and_within_ten_percent_of_it(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness validate suites/fair.yaml` prints each architecture's width and exact parameter
    count per task: all within the budget, and within 10 % of it."""
    import re

    monkeypatch.chdir(tmp_path)
    for suite, budget in (("suites/fair.yaml", 20_000), ("suites/anchors/fair_gpu.yaml", 70_000)):
        result = cli("validate", str(REPO / suite))
        assert result.exit_code == 0, result.output
        counts = [int(n.replace(",", "")) for n in re.findall(rf"([\d,]+) / {budget:,}", result.output)]
        assert len(counts) == 8, result.output  # 2 tasks × 4 architectures
        assert all(0.9 * budget <= n <= budget for n in counts), counts
        assert "tuning (random search, scheduler asha)" in result.output


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_optuna_search_runs_the_same_budget_of_trials(tmp_path: Path) -> None:
    """`search: optuna` (TPE through Ray Tune's OptunaSearch): exactly the budgeted trials, each
    with its own sampled settings, and the final runs use the best."""
    pytest.importorskip("optuna")
    suite = _suite(tmp_path, "tpe", trials=3, search="optuna", scheduler="none")
    done = _run(tmp_path, suite)
    assert done.returncode == 0, done.stdout + done.stderr
    records = _records(tmp_path, "tpe")
    trials = [r for r in records if r.spec.is_trial]
    assert Counter(r.spec.tuning.contender for r in trials) == {"fault × instant": 3, "fault × instant2": 3}
    first = [r.spec.tuning.trial for r in trials if r.spec.tuning.contender == "fault × instant"]
    assert sorted(first) == [0, 1, 2]
    assert len({r.run_id for r in trials}) == 6 and not any(r.early_stopped for r in trials)
    tuned = [r for r in records if r.spec.tuning and r.spec.tuning.role == "tuned"]
    assert len(tuned) == 4 and all(r.finished and r.spec.tuning.config for r in tuned)


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_time_budget_ends_each_architectures_tuning(tmp_path: Path) -> None:
    """`time_per_architecture` alone: each (task, architecture) tunes until its time is up (Ray
    Tune's time budget), with the same budget for every contender; the final runs follow."""
    suite = _suite(tmp_path, "timed", trials=None, time_per_architecture=20)
    done = _run(tmp_path, suite)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "at most 20 s each" in done.stdout, done.stdout
    records = _records(tmp_path, "timed")
    per_contender = Counter(r.spec.tuning.contender for r in records if r.spec.is_trial)
    assert set(per_contender) == {"fault × instant", "fault × instant2"}
    assert all(1 <= n < 1000 for n in per_contender.values()), per_contender  # stopped by time, not count
    tuned = [r for r in records if r.spec.tuning and r.spec.tuning.role == "tuned"]
    assert len(tuned) == 4 and all(r.finished for r in tuned)
