"""run_trial: every built-in architecture trains on every built-in task; failures are recorded."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from harness.plugins import clear_cache
from harness.train.trial import run_trial
from tests.helpers import BROKEN_TASKS, payloads, tiny_suite, write_suite

ARCHS = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]


@pytest.fixture(scope="module")
def all_payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    tmp = tmp_path_factory.mktemp("smoke")
    suite = write_suite(tmp, tiny_suite(archs=ARCHS))
    return {(p["task"], p["architecture"]): p for p in payloads(suite, tmp / "cache")}


@pytest.mark.parametrize("task", ["digits", "adding"])
@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_trains_on_every_task(all_payloads: dict, task: str, arch: str) -> None:
    result = run_trial(all_payloads[(task, arch)])
    assert result["status"] == "finished", result.get("traceback")
    metrics = result["metrics"]
    primary = f"test_{result['primary_metric']}"
    assert math.isfinite(metrics[primary])
    if task == "digits":
        assert {"test_accuracy", "test_precision", "test_recall", "test_f1", "test_auroc"} <= set(metrics)
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
    else:
        assert {"test_mse", "test_mae"} <= set(metrics)
    assert len(result["history"]) == 2  # one row per epoch
    assert {"train_loss", "val_loss"} <= set(result["history"][0])
    cost = result["cost"]
    assert cost["num_params"] > 0 and cost["train_samples_per_s"] > 0 and cost["infer_samples_per_s"] > 0
    assert result["versions"]["torch"] and result["device"].startswith("cpu")


def test_same_seed_gives_same_metrics(all_payloads: dict) -> None:
    payload = all_payloads[("digits", "gru")]
    first, second = run_trial(payload), run_trial(payload)
    assert first["metrics"] == second["metrics"]
    other = run_trial({**payload, "seed": 1})
    assert other["metrics"] != first["metrics"]


def test_data_is_cached_on_disk(all_payloads: dict) -> None:
    payload = all_payloads[("adding", "gru")]
    run_trial(payload)
    assert list(Path(payload["cache_dir"], "adding").glob("*.npz"))




@pytest.fixture()
def broken_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "broken_tasks_plugin.py").write_text(BROKEN_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HARNESS_PLUGINS", "broken_tasks_plugin")
    clear_cache()
    yield tmp_path
    sys.modules.pop("broken_tasks_plugin", None)
    clear_cache()


def test_nan_loss_and_exceptions_are_recorded_as_failed(broken_tasks: Path) -> None:
    suite = write_suite(broken_tasks, tiny_suite(tasks=["nan_task", "crash_task"]))
    results = {p["task"]: run_trial(p) for p in payloads(suite, broken_tasks / "cache")}
    nan = results["nan_task"]
    assert nan["status"] == "failed"
    assert "loss became nan" in nan["error"] and "gradient_clip_val" in nan["error"]
    crash = results["crash_task"]
    assert crash["status"] == "failed"
    assert crash["error"] == "RuntimeError: data source unavailable"
    assert "Traceback" in crash["traceback"]


def test_early_stopping_follows_the_monitored_metric_direction(all_payloads: dict) -> None:
    from harness.plugins import get_registry
    from harness.train.trial import monitor_direction

    metrics = {name: get_registry().metrics.get(name).obj for name in ("accuracy", "mse")}
    assert monitor_direction("val_loss", metrics) == "min"
    assert monitor_direction("val_accuracy", metrics) == "max"
    assert monitor_direction("val_mse", metrics) == "min"
    payload = all_payloads[("digits", "gru")]
    trainer = {**payload["trainer"], "max_epochs": 4,
               "early_stopping": {"patience": 1, "min_delta": 10.0, "monitor": "val_f1"}}
    result = run_trial({**payload, "trainer": trainer})
    # no improvement can reach min_delta=10, so training stops after patience + 1 epochs
    assert result["status"] == "finished", result.get("traceback")
    assert len(result["history"]) == 2


def test_task_info_is_computed_once_per_task() -> None:
    from harness_builtins.tasks.digits import DigitsTask

    calls = []

    class Counting(DigitsTask):
        def info(self):  # type: ignore[no-untyped-def]
            calls.append(1)
            return super().info()

    task = Counting()
    for _ in range(3):
        task.cached_info()
    assert len(calls) == 1


def test_time_to_target_is_recorded_where_reached_and_not_elsewhere(tmp_path: Path) -> None:
    suite = tiny_suite(archs=["gru"], tasks=["adding", "digits"])
    suite["tasks"][0]["target"] = 0.6  # tiny adding: val MSE 0.78 after epoch 0, 0.52 after epoch 1
    suite["tasks"][1]["target"] = 0.9999  # not in two tiny epochs
    results = {p["task"]: run_trial(p) for p in payloads(write_suite(tmp_path, suite), tmp_path / "cache")}
    reached, missed = results["adding"]["cost"], results["digits"]["cost"]
    assert results["adding"]["status"] == results["digits"]["status"] == "finished"
    assert reached["ttt_reached"] == 1.0
    history = results["adding"]["history"]
    first = next(row for row in history if row["val_mse"] <= 0.6)  # the first validation that reaches it
    assert history[0]["val_mse"] > 0.6 and reached["ttt_steps"] == first["step"]
    assert reached["ttt_samples"] == 64 * first["step"] and 0 < reached["ttt_time_s"] <= reached["train_time_s"]
    assert missed["ttt_reached"] == 0.0 and "ttt_steps" not in missed


def test_every_run_has_the_cost_metrics(all_payloads: dict) -> None:
    result = run_trial(all_payloads[("adding", "lstm")])
    cost = result["cost"]
    for key in ("flops_per_sample", "train_samples_per_s", "train_timesteps_per_s", "infer_samples_per_s",
                "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "peak_memory_mb"):
        assert math.isfinite(cost[key]) and cost[key] >= 0, key
    assert cost["latency_p50_ms"] <= cost["latency_p95_ms"] <= cost["latency_p99_ms"]
    assert cost["activation_memory_mb"] > 0
    assert cost["train_timesteps_per_s"] == pytest.approx(12 * cost["train_samples_per_s"])  # adding: T = 12
    from harness.measure import analytic

    assert cost["flops_per_sample"] == analytic.recurrent(1, 12, 2, 64, "lstm") + analytic.linear(1, 1, 64, 1)


def test_measurements_can_be_switched_off(all_payloads: dict) -> None:
    payload = all_payloads[("adding", "gru")]
    measure = {**payload["measure"], "latency": False, "flops": False, "memory": False}
    cost = run_trial({**payload, "measure": measure})["cost"]
    assert "latency_p50_ms" not in cost and "flops_per_sample" not in cost and math.isnan(cost["peak_memory_mb"])
    assert "activation_memory_mb" not in cost
    assert cost["infer_samples_per_s"] > 0


def test_tbptt_trains_recurrent_models_and_refuses_others(all_payloads: dict) -> None:
    payload = all_payloads[("adding", "lstm")]
    tbptt = {**payload, "trainer": {**payload["trainer"], "tbptt": {"k1": 4, "k2": 2}}}
    result = run_trial(tbptt)
    assert result["status"] == "finished", result.get("traceback")
    assert math.isfinite(result["metrics"]["test_mse"])
    assert result["metrics"] != run_trial(payload)["metrics"]  # a different gradient: a different model
    refused = run_trial({**all_payloads[("adding", "transformer")], "trainer": tbptt["trainer"]})
    assert refused["status"] == "failed" and "cannot carry its state" in refused["error"]
