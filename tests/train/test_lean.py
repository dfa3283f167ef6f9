"""The lean training loop (``harness.train.lean``) gives the same run as Lightning's loop, bit for
bit: test metrics, every epoch's losses and validation metrics, the lr, the steps, the best epoch,
the gradient-flow probes; across the features the loop reproduces (lr schedules with warm-up and
plateau, early stopping, max_steps, max_time, clipping by norm and by value, dropout, tbptt,
classification metrics). And it is the loop a run uses wherever it applies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.records import RunRecord, RunSpec
from harness.settings import TrainerSpec
from harness.train.lean import lean_unsupported
from harness.train.trial import run_trial
from tests.helpers import TINY_ADDING, payloads, tiny_suite, write_suite

TRAINER = {"max_epochs": 3, "batch_size": 16, "lr": 0.01, "gradient_clip_val": 1.0}

CASES: dict[str, dict[str, Any]] = {
    "gru": {"arch": "gru"},
    "lstm cosine warm-up": {"arch": "lstm", "trainer": {"scheduler": {"name": "cosine", "warmup_steps": 5}}},
    "transformer dropout, clip by value": {
        "arch": "transformer",
        "params": {"d_model": 16, "num_heads": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.2},
        "trainer": {"gradient_clip_algorithm": "value", "gradient_clip_val": 0.5},
    },
    "plateau, early stopping": {
        "arch": "rnn",
        "trainer": {
            "max_epochs": 6,
            "lr": 0.05,
            "scheduler": {"name": "plateau", "patience": 0, "factor": 0.5},
            "early_stopping": {"patience": 1, "min_delta": 0.01},
        },
    },
    "max_steps mid-epoch": {"arch": "gru", "trainer": {"max_steps": 13}},
    "digits (classification metrics), tbptt": {
        "arch": "lstm",
        "task": "digits",
        "trainer": {"tbptt": {"k1": 4, "k2": 4}},
    },
    "gradient flow probe": {
        "arch": "rnn",
        "measure": {"gradient_flow": {"steps": [0], "every_n_steps": 5, "batch_size": 8}},
    },
}


def _spec(case: dict[str, Any], tmp_path: Path) -> RunSpec:
    tmp_path.mkdir(parents=True, exist_ok=True)
    task = case.get("task", "adding")
    suite = tiny_suite(archs=[case["arch"]], tasks=[task], trainer={**TRAINER, **case.get("trainer", {})})
    if "params" in case:
        suite["architectures"] = [{"name": case["arch"], "params": case["params"]}]
    if "measure" in case:
        suite["measure"] = case["measure"]
    (spec,) = payloads(write_suite(tmp_path, suite), tmp_path / "cache")
    return spec


def _with_loop(spec: RunSpec, loop: str) -> RunSpec:
    return spec.model_copy(update={"trainer": spec.trainer.model_copy(update={"loop": loop})})


def _comparable(record: RunRecord) -> dict[str, Any]:
    assert record.finished, record.error
    timing = ("elapsed_s",)
    return {
        "metrics": record.metrics,
        "history": [{k: v for k, v in row.items() if k not in timing} for row in record.history],
        "cost": {k: record.cost[k] for k in ("steps", "epochs", "best_epoch", "num_params")},
        "gradient_flow": record.gradient_flow,
        "samples": record.cost.get("train_samples_per_s", 0) > 0,
    }


@pytest.mark.parametrize("name", list(CASES))
def test_the_lean_loop_gives_the_same_run_as_lightnings(name: str, tmp_path: Path) -> None:
    spec = _spec(CASES[name], tmp_path)
    assert lean_unsupported(spec, None) is None
    lean = _comparable(run_trial(_with_loop(spec, "auto")))
    lightning = _comparable(run_trial(_with_loop(spec, "lightning")))
    assert lean == lightning


def test_early_stopping_and_max_steps_stop_where_lightning_stops(tmp_path: Path) -> None:
    """The cases above are not vacuous: early stopping and max_steps end the runs early."""
    stopped = run_trial(_spec(CASES["plateau, early stopping"], tmp_path / "a"))
    assert len(stopped.history) < 6
    capped = run_trial(_spec(CASES["max_steps mid-epoch"], tmp_path / "b"))
    assert capped.cost["steps"] == 13
    assert TINY_ADDING["num_train"] // 16 < 13  # the cap falls inside the second epoch


def test_max_time_stops_both_loops_after_a_validation(tmp_path: Path) -> None:
    spec = _spec({"arch": "gru", "trainer": {"max_epochs": 1000, "max_time": 1}}, tmp_path)
    for loop in ("auto", "lightning"):
        record = run_trial(_with_loop(spec, loop))
        assert record.finished, record.error
        assert 1 <= len(record.history) < 1000
        assert "val_mse" in record.history[-1]


def test_a_loss_that_becomes_nan_fails_with_the_step_in_the_lean_loop(tmp_path: Path) -> None:
    spec = _spec({"arch": "gru", "trainer": {"lr": 1e30, "gradient_clip_val": None}}, tmp_path)
    record = run_trial(spec)
    assert record.status == "failed"
    # the lean loop's own step (Lightning's module property would say 0 outside Lightning's loop)
    assert re.search(r"training loss became (nan|inf) at step [1-9]", record.error), record.error


def test_runs_the_lean_loop_does_not_cover_train_under_lightning() -> None:
    spec = TrainerSpec()
    assert lean_unsupported(_fake(spec), None) is None
    assert "lightning" in (lean_unsupported(_fake(spec.model_copy(update={"loop": "lightning"})), None) or "")
    assert "precision" in (
        lean_unsupported(_fake(spec.model_copy(update={"precision": "16-mixed"})), None) or ""
    )
    assert "data-parallel" in (lean_unsupported(_fake(spec), {"strategy": object()}) or "")


def _fake(trainer: TrainerSpec) -> RunSpec:
    from tests.helpers import make_spec

    return make_spec().model_copy(update={"trainer": trainer})


def test_the_loop_setting_keeps_run_ids(tmp_path: Path) -> None:
    """``trainer.loop`` changes the speed, not the result: it stays out of the run id."""
    base = tiny_suite(archs=["gru"], tasks=["adding"], trainer=dict(TRAINER))
    (plain,) = payloads(write_suite(tmp_path, base, "a.yaml"), tmp_path)
    (lightning,) = payloads(
        write_suite(tmp_path, {**base, "trainer": {**TRAINER, "loop": "lightning"}}, "b.yaml"), tmp_path
    )
    assert plain.run_id == lightning.run_id
    assert lightning.trainer.loop == "lightning"
