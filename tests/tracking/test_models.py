"""tracking.log_model: the worker returns the best-validation network, the driver logs it as an
MLflow PyTorch model on the cell's child run, and the loaded model reproduces the run's test
metrics (real training, a real sqlite MLflow store)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.records import RunRecord, RunSpec
from tests.helpers import failure_details, harness_local, payloads, tiny_suite, write_suite

#: task entry (tiny sizes) of each kind tested: classification and seq2seq with greedy decoding
TASKS: dict[str, dict[str, Any]] = {
    "digits": {"name": "digits"},
    "number_translation": {
        "name": "number_translation",
        "params": {"max_number": 999, "num_train": 128, "num_val": 32, "num_test": 32},
    },
}
TRAINER = {"max_epochs": 1, "batch_size": 32, "lr": 0.003}


def _spec(tmp: Path, task: str, log_model: str) -> RunSpec:
    suite = tiny_suite(name=f"models-{task}", tasks=["digits"], tracking={"log_model": log_model})
    suite.update(tasks=[TASKS[task]], trainer=dict(TRAINER))
    (spec,) = payloads(write_suite(tmp, suite), tmp / "cache")
    return spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], RunRecord]:
    """``trained(task)``: the record of a gru run on ``task`` with ``log_model: best`` (trained once)."""
    from harness.train.trial import run_trial

    tmp = tmp_path_factory.mktemp("models")
    records: dict[str, RunRecord] = {}

    def get(task: str) -> RunRecord:
        if task not in records:
            (tmp / task).mkdir()
            record = run_trial(_spec(tmp / task, task, "best"))
            assert record.status == "finished", failure_details(record)
            records[task] = record
        return records[task]

    return get


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any, str]:
    """(tracking URI, client, experiment id) of a fresh sqlite store; the working directory is an
    empty folder (nothing may land in ./mlruns) and MLFLOW_TRACKING_URI points elsewhere."""
    from mlflow.tracking import MlflowClient

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # as MlflowTracker does
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("models", artifact_location=(tmp_path / "mlruns").as_uri())
    return uri, client, experiment


@pytest.mark.parametrize("task", list(TASKS))
def test_logged_model_reproduces_the_test_metrics(
    trained: Callable[[str], RunRecord],
    store: tuple[str, Any, str],
    task: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking._tracking_service import utils

    from harness.tracking.models import MODEL_NAME, evaluate, load_model, load_spec, log_model

    record = trained(task)
    assert isinstance(record.model, bytes) and len(record.model) > 0
    uri, client, experiment = store
    run = client.create_run(experiment, run_name=record.spec.label)  # RUNNING, never made active
    client.log_dict(run.info.run_id, {"spec": record.spec.model_dump(mode="json")}, "config.json")
    before = (utils._tracking_uri, os.environ["MLFLOW_TRACKING_URI"])
    capfd.readouterr()

    results: list[Any] = []  # the driver logs from its MLflow thread
    thread = threading.Thread(target=lambda: results.append(log_model(uri, run.info.run_id, record)))
    thread.start()
    thread.join()

    (model_uri,) = results
    assert model_uri.startswith("models:/")
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err and "Traceback" not in out + err, out + err
    assert (utils._tracking_uri, os.environ["MLFLOW_TRACKING_URI"]) == before
    assert not Path("mlruns").exists()  # the model's artifacts went to the experiment's store
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    (logged,) = client.search_logged_models(experiment_ids=[experiment])
    assert logged.name == MODEL_NAME and logged.source_run_id == run.info.run_id
    assert logged.status == LoggedModelStatus.READY
    assert logged.tags["harness.run_id"] == record.spec.run_id

    model = load_model(uri, run.info.run_id)
    assert type(model).__name__ == "HarnessModule" and not model.training
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    spec = load_spec(uri, run.info.run_id)  # as a user would, from the child run alone
    assert spec == record.spec
    reproduced = evaluate(model, spec)
    primary = f"test_{record.spec.primary_metric}"
    assert reproduced[primary] == pytest.approx(record.metrics[primary], rel=1e-5, abs=1e-6)
    for key, value in record.metrics.items():
        assert reproduced[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    out, err = capfd.readouterr()
    assert "Downloading artifacts" not in err


def test_the_logged_model_carries_its_example_signature_and_requirements(
    trained: Callable[[str], RunRecord], store: tuple[str, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pytorch
    import torch
    from mlflow.models import Model

    from harness.tracking.models import log_model

    record = trained("digits")
    uri, client, experiment = store
    run = client.create_run(experiment)
    model_uri = log_model(uri, run.info.run_id, record)
    (logged,) = client.search_logged_models(experiment_ids=[experiment])
    folder = Path(logged.artifact_location.removeprefix("file://"))
    meta = Model.load(str(folder))
    assert meta.signature is not None
    assert [s.name for s in meta.signature.inputs.inputs] == ["x", "lengths", "y"]
    assert meta.signature.outputs.inputs[0].shape == (-1, 10)  # ten digit classes
    example = meta.load_input_example(str(folder))
    assert isinstance(example, dict) and len(example["y"]) == 4
    requirements = (folder / "requirements.txt").read_text().split()
    assert any(r.startswith("torch==") for r in requirements)
    assert f"harness=={record.spec.provenance.harness}" in requirements
    # plain MLflow loads it too, by the run's name for it; the example is a batch it predicts on
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    network = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    with torch.inference_mode():
        logits = network({k: torch.from_numpy(v) for k, v in example.items()})
    assert logits.shape == (4, 10)
    assert model_uri == f"models:/{logged.model_id}"


def test_records_carry_data_sizes_and_keep_model_bytes_out_of_the_results_file(
    trained: Callable[[str], RunRecord],
) -> None:
    record = trained("number_translation")
    assert record.data_sizes == {"train": 128, "val": 32, "test": 32}
    assert record.model is not None
    line = json.dumps(record.to_json())
    assert "model" not in json.loads(line)
    assert " model=" not in repr(record)  # a long bytes literal
    back = RunRecord.from_json(json.loads(line))
    assert back.model is None and back.data_sizes == record.data_sizes
    assert pickle.loads(pickle.dumps(record)).model == record.model  # how Ray returns it


def test_no_model_without_log_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.tracking.models import log_model
    from harness.train.trial import run_trial

    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, "digits", "none")
    assert spec.log_model == "none"
    record = run_trial(spec)
    assert record.status == "finished", failure_details(record)
    assert record.model is None
    assert record.data_sizes == {"train": 1257, "val": 180, "test": 360}
    assert log_model("sqlite:///unused.db", "no-run", record) is None
    assert not Path("unused.db").exists()


def test_log_model_is_not_part_of_the_run_id(tmp_path: Path) -> None:
    from harness.runner import plan_suite

    plans = {
        setting: plan_suite(
            str(write_suite(tmp_path, tiny_suite(tracking={"log_model": setting}), name=f"{setting}.yaml"))
        )
        for setting in ("best", "none")
    }
    ids = {setting: [spec.run_id for spec in plan.runnable] for setting, plan in plans.items()}
    assert ids["best"] == ids["none"] and len(ids["best"]) == 2
    assert {spec.log_model for spec in plans["best"].runnable} == {"best"}
    assert {spec.log_model for spec in plans["none"].runnable} == {"none"}
    default = plan_suite(str(write_suite(tmp_path, tiny_suite(), name="default.yaml")))
    assert [spec.run_id for spec in default.runnable] == ids["none"]
    assert {spec.log_model for spec in default.runnable} == {"none"}


def test_a_model_that_cannot_be_unpickled_is_a_harness_error(
    trained: Callable[[str], RunRecord], store: tuple[str, Any, str]
) -> None:
    from harness.errors import HarnessError
    from harness.tracking.models import log_model

    uri, client, experiment = store
    run = client.create_run(experiment)
    broken = trained("digits").model_copy(update={"model": b"not a model"})
    with pytest.raises(HarnessError, match="could not log the model of digits × gru · seed 0"):
        log_model(uri, run.info.run_id, broken)
    assert list(client.search_logged_models(experiment_ids=[experiment])) == []


def test_harness_run_logs_the_best_model_on_the_child_run_and_it_reproduces_the_test_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: `harness run` with `tracking.log_model: best` (the driver's MLflow writer thread
    logs the model on the live child run), then the documented loader gives the network back."""
    from harness.tracking.models import evaluate, load_model, load_spec
    from harness.tracking.results import ResultsFile

    suite = tiny_suite(name="models-e2e", tasks=["digits"], tracking={"log_model": "best"})
    suite["trainer"] = dict(TRAINER)
    path = write_suite(tmp_path, suite)
    out = harness_local(tmp_path, path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in out.stdout.lower(), out.stdout
    (record,) = ResultsFile(tmp_path / "results" / "models-e2e.jsonl").read()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert record.mlflow_run_id and load_spec(uri, record.mlflow_run_id) == record.spec
    model = load_model(uri, record.mlflow_run_id)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    again = evaluate(model, record.spec)
    assert again["test_accuracy"] == pytest.approx(record.metrics["test_accuracy"], rel=1e-5, abs=1e-6)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    child = client.get_run(record.mlflow_run_id)
    assert child.info.status == "FINISHED"
    (logged,) = client.search_logged_models(experiment_ids=[child.info.experiment_id])
    assert logged.source_run_id == child.info.run_id and logged.name == "model"  # the Models column
