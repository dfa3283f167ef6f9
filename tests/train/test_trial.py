"""run_trial: every built-in architecture trains on every built-in task; failures are recorded."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
from pathlib import Path

import pytest

from harness import __version__
from harness.plugins import clear_cache
from harness.records import RunRecord, RunSpec
from harness.settings import EarlyStopping, TbpttSpec
from harness.train.trial import run_trial
from tests.helpers import BROKEN_TASKS, payloads, tiny_suite, write_suite

ARCHS = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]
Specs = dict[tuple[str, str], RunSpec]


def why(record: RunRecord) -> str:
    """The traceback (or message) of a record that did not finish, for assertion messages."""
    return (record.failure.traceback or record.failure.message) if record.failure else record.error


@pytest.fixture(scope="module")
def all_payloads(tmp_path_factory: pytest.TempPathFactory) -> Specs:
    tmp = tmp_path_factory.mktemp("smoke")
    suite = write_suite(tmp, tiny_suite(archs=ARCHS))
    return {(p.task, p.architecture): p for p in payloads(suite, tmp / "cache")}


@pytest.mark.parametrize("task", ["digits", "adding"])
@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_trains_on_every_task(all_payloads: Specs, task: str, arch: str) -> None:
    result = run_trial(all_payloads[(task, arch)])
    assert result.status == "finished", why(result)
    assert result.failure is None and result.error == ""
    metrics = result.metrics
    primary = f"test_{result.spec.primary_metric}"
    assert math.isfinite(metrics[primary]) and result.primary_value == metrics[primary]
    if task == "digits":
        assert {"test_accuracy", "test_precision", "test_recall", "test_f1", "test_auroc"} <= set(metrics)
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
    else:
        assert {"test_mse", "test_mae"} <= set(metrics)
    assert len(result.history) == 2  # one row per epoch
    assert {"train_loss", "val_loss"} <= set(result.history[0])
    cost = result.cost
    assert cost["num_params"] > 0 and cost["train_samples_per_s"] > 0 and cost["infer_samples_per_s"] > 0
    assert result.runtime is not None
    assert result.runtime.versions["torch"] and result.runtime.device.startswith("cpu")


@pytest.mark.parametrize("task", ["digits", "adding"])
def test_a_finished_record_carries_plan_provenance_runtime_and_directions(
    all_payloads: Specs, task: str
) -> None:
    import torch

    from harness.plugins import get_registry

    spec = all_payloads[(task, "gru")]
    record = run_trial(spec)
    assert record.status == "finished", why(record)
    assert record.spec == spec and record.run_id == spec.run_id
    # the plan's provenance: which distribution (and version) registered the task and the architecture
    registry = get_registry()
    provenance = record.spec.provenance
    for ref, entry in (
        (provenance.task_plugin, registry.tasks.entries[task]),
        (provenance.arch_plugin, registry.architectures.entries["gru"]),
    ):
        assert (ref.distribution, ref.version) == (entry.provenance.distribution, entry.provenance.version)
        assert ref.pin == f"harness=={__version__}"  # the built-in plugins ship with harness
    assert provenance.harness == __version__
    assert provenance.data_version == registry.tasks.get(task).obj(spec.task_params).data_version
    # where and with what it ran (this process: the trial ran in-process)
    runtime = record.runtime
    assert runtime is not None
    assert runtime.versions["torch"] == torch.__version__
    assert runtime.versions["python"] == platform.python_version()
    assert runtime.host == socket.gethostname() and runtime.pid == os.getpid()
    assert runtime.device.startswith("cpu:")
    # every metric of the spec has its direction (the registry's), the loss is minimised
    metrics = {name: registry.metrics.get(name).obj for name in spec.metrics}
    assert set(spec.metrics) <= set(record.directions)
    assert {name: record.directions[name] for name in spec.metrics} == {
        name: metric.direction for name, metric in metrics.items()
    }
    assert (
        record.directions[spec.primary_metric] == spec.direction == record.direction_of(spec.primary_metric)
    )
    assert record.directions["loss"] == "min"
    assert {f"test_{name}" for name in spec.metrics} <= set(record.metrics)
    # all of it survives the results file
    again = RunRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again.spec == record.spec and again.runtime == runtime and again.directions == record.directions


def test_same_seed_gives_same_metrics(all_payloads: Specs) -> None:
    payload = all_payloads[("digits", "gru")]
    first, second = run_trial(payload), run_trial(payload)
    assert first.metrics == second.metrics
    other = run_trial(payload.model_copy(update={"seed": 1}))
    assert other.metrics != first.metrics


def test_data_is_cached_on_disk(all_payloads: Specs) -> None:
    payload = all_payloads[("adding", "gru")]
    run_trial(payload)
    assert payload.cache_dir is not None
    assert list(Path(payload.cache_dir, "adding").glob("*.npz"))


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
    results = {p.task: run_trial(p) for p in payloads(suite, broken_tasks / "cache")}
    nan = results["nan_task"]
    assert nan.status == "failed" and nan.failure is not None and nan.failure.kind == "nan"
    assert "loss became nan" in nan.error and "gradient_clip_val" in nan.error
    crash = results["crash_task"]
    assert crash.status == "failed" and crash.failure is not None and crash.failure.kind == "exception"
    assert crash.error == "RuntimeError: data source unavailable"
    assert "Traceback" in crash.failure.traceback


def test_diverged_runs_are_failed_with_their_cause(broken_tasks: Path) -> None:
    """A run that trains to the end with a test MSE of ~1e26 (or an infinite test loss) is not a
    finished run to rank: it is failed, kind ``diverged``, and the message says why and what to do."""
    suite = write_suite(broken_tasks, tiny_suite(tasks=["huge_test_task", "inf_test_task"]))
    results = {p.task: run_trial(p) for p in payloads(suite, broken_tasks / "cache")}
    huge, inf = results["huge_test_task"], results["inf_test_task"]
    assert huge.status == "failed" and huge.failure is not None and huge.failure.kind == "diverged", why(huge)
    assert "test_mse = " in huge.error and "above the task's divergence bound 16.67" in huge.error
    assert "lower trainer.lr" in huge.error and huge.metrics == {} and huge.history
    assert inf.status == "failed" and inf.failure is not None and inf.failure.kind == "diverged", why(inf)
    assert "test_loss is inf" in inf.error


def test_divergence_bound_follows_the_direction() -> None:
    from harness.interfaces import InputSpec, TaskInfo
    from harness.train.trial import divergence

    def info(direction: str, bound: float | None) -> TaskInfo:
        return TaskInfo(
            InputSpec("continuous", 1),
            "regression",
            1,
            "mse",
            ("m",),
            "m",
            direction,  # type: ignore[arg-type]
            divergence_bound=bound,
        )

    assert divergence(info("min", 10.0), {"test_loss": 1.0, "test_m": 9.0}) is None
    assert "above" in (divergence(info("min", 10.0), {"test_loss": 1.0, "test_m": 11.0}) or "")
    assert divergence(info("max", 0.1), {"test_loss": 1.0, "test_m": 0.5}) is None
    assert "below" in (divergence(info("max", 0.1), {"test_loss": 1.0, "test_m": 0.05}) or "")
    assert divergence(info("min", None), {"test_loss": 1.0, "test_m": 1e30}) is None  # no bound declared
    assert "test_m is nan" in (divergence(info("min", None), {"test_loss": 1.0, "test_m": math.nan}) or "")


def test_early_stopping_follows_the_monitored_metric_direction(all_payloads: Specs) -> None:
    from harness.plugins import get_registry
    from harness.train.trial import monitor_direction

    metrics = {name: get_registry().metrics.get(name).obj for name in ("accuracy", "mse")}
    assert monitor_direction("val_loss", metrics) == "min"
    assert monitor_direction("val_accuracy", metrics) == "max"
    assert monitor_direction("val_mse", metrics) == "min"
    payload = all_payloads[("digits", "gru")]
    trainer = payload.trainer.model_copy(
        update={
            "max_epochs": 4,
            "early_stopping": EarlyStopping(patience=1, min_delta=10.0, monitor="val_f1"),
        }
    )
    result = run_trial(payload.model_copy(update={"trainer": trainer}))
    # no improvement can reach min_delta=10, so training stops after patience + 1 epochs
    assert result.status == "finished", why(result)
    assert len(result.history) == 2


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
    results = {p.task: run_trial(p) for p in payloads(write_suite(tmp_path, suite), tmp_path / "cache")}
    assert [results["adding"].spec.target, results["digits"].spec.target] == [0.6, 0.9999]
    reached, missed = results["adding"].cost, results["digits"].cost
    assert results["adding"].status == results["digits"].status == "finished"
    assert reached["ttt_reached"] == 1.0
    history = results["adding"].history
    first = next(row for row in history if row["val_mse"] <= 0.6)  # the first validation that reaches it
    assert history[0]["val_mse"] > 0.6 and reached["ttt_steps"] == first["step"]
    assert (
        reached["ttt_samples"] == 64 * first["step"] and 0 < reached["ttt_time_s"] <= reached["train_time_s"]
    )
    assert missed["ttt_reached"] == 0.0 and "ttt_steps" not in missed


def test_every_run_has_the_cost_metrics(all_payloads: Specs) -> None:
    result = run_trial(all_payloads[("adding", "lstm")])
    cost = result.cost
    for key in (
        "flops_per_sample",
        "train_samples_per_s",
        "train_timesteps_per_s",
        "infer_samples_per_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "peak_memory_mb",
    ):
        assert math.isfinite(cost[key]) and cost[key] >= 0, key
    assert cost["latency_p50_ms"] <= cost["latency_p95_ms"] <= cost["latency_p99_ms"]
    assert cost["activation_memory_mb"] > 0
    assert cost["train_timesteps_per_s"] == pytest.approx(12 * cost["train_samples_per_s"])  # adding: T = 12
    from harness.measure import analytic

    assert cost["flops_per_sample"] == analytic.recurrent(1, 12, 2, 64, "lstm") + analytic.linear(1, 1, 64, 1)


def test_measurements_can_be_switched_off(all_payloads: Specs) -> None:
    payload = all_payloads[("adding", "gru")]
    measure = payload.measure.model_copy(update={"latency": False, "flops": False, "memory": False})
    cost = run_trial(payload.model_copy(update={"measure": measure})).cost
    assert (
        "latency_p50_ms" not in cost and "flops_per_sample" not in cost and math.isnan(cost["peak_memory_mb"])
    )
    assert "activation_memory_mb" not in cost
    assert cost["infer_samples_per_s"] > 0


def test_tbptt_trains_recurrent_models_and_refuses_others(all_payloads: Specs) -> None:
    payload = all_payloads[("adding", "lstm")]
    trainer = payload.trainer.model_copy(update={"tbptt": TbpttSpec(k1=4, k2=2)})
    result = run_trial(payload.model_copy(update={"trainer": trainer}))
    assert result.status == "finished", why(result)
    assert math.isfinite(result.metrics["test_mse"])
    assert result.metrics != run_trial(payload).metrics  # a different gradient: a different model
    refused = run_trial(all_payloads[("adding", "transformer")].model_copy(update={"trainer": trainer}))
    assert refused.status == "failed" and "cannot carry its state" in refused.error
