"""A run's best-validation network as an MLflow PyTorch model (``tracking.log_model: best``).

The network travels in three steps:

1. the worker (:func:`harness.train.trial.run_trial`) turns the tested
   :class:`~harness.train.module.HarnessModule` into bytes
   (:func:`harness.train.export.serialize_model`): the module
   itself (on the CPU, in eval mode, holding the best-validation weights), the first samples of
   a test batch as an input example, and the network's output on them;
2. the bytes ride back to the driver in ``RunRecord.model`` (never into the results file);
3. the driver's MLflow logging thread calls :func:`log_model`, which logs them as the PyTorch
   model ``model`` of the cell's child run (an MLflow 3 logged model, linked to the run).

The exported object is the whole ``HarnessModule`` (a LightningModule): ``model(batch)`` is the
task's prediction for a batch dict (``x``, ``lengths``, ``y``... as the task's data loaders give
it), for every kind of task (classification, regression, forecasting, seq2seq, CTC); and
:func:`evaluate` tests it with the very code that produced the run's test metrics. Loading it
needs harness and the plugins that built it (the model's ``requirements.txt`` lists them).

Reading back: :func:`load_model` (or ``mlflow.pytorch.load_model("runs:/<child run id>/model")``)
and :func:`evaluate`. See docs/models.md.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.records import RunRecord, RunSpec

if TYPE_CHECKING:
    import numpy as np
    import torch

#: the name of the logged model (``runs:/<child run id>/model``)
MODEL_NAME = "model"
#: MLflow's global tracking URI is process state: one model is logged at a time
_LOCK = threading.Lock()
#: worker library (``RuntimeInfo.versions`` key) → its distribution, for the requirements
_LIBRARIES = (
    ("torch", "torch"),
    ("pytorch_lightning", "pytorch-lightning"),
    ("torchmetrics", "torchmetrics"),
)
#: what ``mlflow.pytorch.log_model`` warns about for every model harness logs, by design: the
#: pickle format (the network takes a batch dict and packed sequences, which ``pt2`` cannot
#: export), and the pyfunc check of the input example (MLflow's generic pyfunc wrapper takes one
#: array, not a batch dict)
_EXPECTED_WARNINGS = ("Saving pytorch model by Pickle", "Failed to validate serving input example")


@dataclass
class Bundle:
    """What the worker packs (:func:`harness.train.export.serialize_model`): the network, its
    input example and its output on it."""

    network: torch.nn.Module
    #: the first samples of a test batch: tensor entries as numpy arrays (batch dimension first)
    example: dict[str, np.ndarray]
    #: ``network(example)`` when that is one tensor (the signature's output), else None
    output: np.ndarray | None


# -- reading what the worker wrote -------------------------------------------------------------
def deserialize(data: bytes) -> Bundle:
    """The :class:`Bundle` in bytes made by :func:`harness.train.export.serialize_model` (in a
    process with the same plugins installed)."""
    import torch

    from harness.train.export import MODEL_FORMAT

    # cloudpickle writes plain pickle: torch's default unpickler reads it
    loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    if not isinstance(loaded, dict) or loaded.get("format") != MODEL_FORMAT:
        raise HarnessError(
            "RunRecord.model holds bytes of another harness version; "
            "log the model from the harness version that trained it"
        )
    return Bundle(loaded["network"], dict(loaded["example"]), loaded["output"])


# -- driver ------------------------------------------------------------------------------------
def requirements(record: RunRecord) -> list[str]:
    """The model's pip requirements: the worker's torch, Lightning and torchmetrics, harness and
    the plugins that registered the task and the architecture (given, so that MLflow does not
    infer them by loading the model in a subprocess)."""
    from importlib.metadata import version

    versions = record.runtime.versions if record.runtime else {}
    spec = record.spec
    out = [f"{dist}=={versions[key]}" for key, dist in _LIBRARIES if versions.get(key)]
    out.append(f"cloudpickle=={version('cloudpickle')}")  # the model's pickle module
    out.append(f"harness=={spec.provenance.harness}")
    for plugin in (spec.provenance.task_plugin, spec.provenance.arch_plugin):
        if plugin.distribution not in ("unknown", "HARNESS_PLUGINS") and plugin.version != "unknown":
            out.append(plugin.pin)
    return list(dict.fromkeys(out))


def log_model(tracking_uri: str, mlflow_run_id: str, record: RunRecord) -> str | None:
    """Log ``record.model`` as the MLflow PyTorch model ``model`` of the run ``mlflow_run_id``.

    The run must exist, RUNNING or ended; it is not made the active run, so this is safe in a
    background thread of the driver. The model is an MLflow 3 logged model of the run's
    experiment, linked to the run (its params copied, its step-0 metrics, the test metrics,
    linked). Returns its URI, ``models:/<model id>`` (``runs:/<run id>/model`` resolves to it
    too), or None when the record carries no model. Raises :class:`HarnessError` when MLflow
    refuses it.
    """
    if record.model is None:
        return None
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    model_id = None
    try:
        bundle = deserialize(record.model)
        run = client.get_run(mlflow_run_id)
        # created here, in the run's experiment: left to MLflow, a model logged without an active
        # run lands in the fluent API's current experiment (the Default one)
        model_id = client.create_logged_model(
            experiment_id=run.info.experiment_id,
            name=MODEL_NAME,
            source_run_id=mlflow_run_id,
            params=dict(run.data.params),
            tags=_model_tags(record.spec),
        ).model_id
        with _LOCK, _tracking_uri(tracking_uri), _expected_warnings_muted():
            info = mlflow.pytorch.log_model(
                bundle.network,
                name=MODEL_NAME,
                run_id=mlflow_run_id,
                model_id=model_id,
                signature=_signature(bundle),
                input_example=bundle.example,
                pip_requirements=requirements(record),
                serialization_format="pickle",
            )
    except Exception as exc:
        if model_id is not None:
            _mark_failed(client, model_id)
        raise HarnessError(
            f"could not log the model of {record.spec.label} to MLflow run {mlflow_run_id} "
            f"at {tracking_uri} ({type(exc).__name__}: {str(exc)[:300]}); "
            "check the tracking store, or set tracking.log_model: none"
        ) from exc
    return str(info.model_uri)


def _model_tags(spec: RunSpec) -> dict[str, str]:
    return {
        "harness.run_id": spec.run_id,
        "harness.task": spec.task,
        "harness.architecture": spec.architecture,
        "harness.seed": str(spec.seed),
        "harness.weights": "best validation " + spec.primary_metric,
    }


def _signature(bundle: Bundle) -> Any:
    """The model signature: a tensor per batch entry, its batch and (for arrays of two or more
    dimensions) time dimensions variable; the output when it is one tensor. Given to MLflow so
    that it does not infer one by calling the model through its pyfunc wrapper, which takes one
    array, not a batch dict."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(array: np.ndarray, name: str | None, time_from: int) -> TensorSpec:
        shape = [
            -1 if i == 0 or (i == 1 and array.ndim >= time_from) else n for i, n in enumerate(array.shape)
        ]
        return TensorSpec(array.dtype, tuple(shape), name)

    inputs = Schema([spec(array, name, 2) for name, array in bundle.example.items()])
    # an output [batch, time, features] varies in time too; [batch, classes] does not
    outputs = Schema([spec(bundle.output, None, 3)]) if bundle.output is not None else None
    return ModelSignature(inputs=inputs, outputs=outputs)


def _mark_failed(client: Any, model_id: str) -> None:
    from mlflow.entities import LoggedModelStatus

    try:
        client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
    except Exception:  # noqa: BLE001, S110 - the original error is the one to report
        pass


def load_model(tracking_uri: str, mlflow_run_id: str) -> torch.nn.Module:
    """The network logged on the child run ``mlflow_run_id`` (:func:`log_model`), on the CPU in
    eval mode: a :class:`~harness.train.module.HarnessModule`; ``model(batch)`` predicts for a
    batch of the task's data. A thin wrapper over ``mlflow.pytorch.load_model``.
    """
    import mlflow.pytorch

    uri = f"runs:/{mlflow_run_id}/{MODEL_NAME}"
    with _LOCK, _tracking_uri(tracking_uri), _environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        try:
            return mlflow.pytorch.load_model(uri, map_location="cpu")  # type: ignore[no-any-return]
        except Exception as exc:
            raise HarnessError(
                f"could not load the model `{uri}` from {tracking_uri} ({type(exc).__name__}: "
                f"{str(exc)[:300]}); was the suite run with tracking.log_model: best, and is "
                "this the cell's child run id?"
            ) from exc


def load_spec(tracking_uri: str, mlflow_run_id: str) -> RunSpec:
    """The :class:`~harness.records.RunSpec` of a cell's child run (its ``config.json``)."""
    import mlflow.artifacts

    uri = f"runs:/{mlflow_run_id}/config.json"
    with _LOCK, _tracking_uri(tracking_uri), _environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        try:
            config = mlflow.artifacts.load_dict(uri)
        except Exception as exc:
            raise HarnessError(
                f"could not read `{uri}` from {tracking_uri} ({type(exc).__name__}: {str(exc)[:300]}); "
                "is this a cell's child run id (the parent run has no config.json)?"
            ) from exc
    return RunSpec.model_validate(config["spec"])


def evaluate(model: torch.nn.Module, spec: RunSpec, accelerator: str = "cpu") -> dict[str, float]:
    """The run's test metrics (``test_<metric>`` and ``test_loss``, as in ``RunRecord.metrics``)
    of ``model`` (from :func:`load_model`) on the test split of ``spec``'s task.

    The data are rebuilt as the worker built them (same task params, seed, batch size; cached in
    ``spec.cache_dir``, else the default cache), and the model is tested by Lightning's
    ``trainer.test`` with the module's own metrics: on the device the run was tested on, the
    values equal the run's up to float rounding. ``spec`` is the run's (``RunRecord.spec`` from
    the results file, or :func:`load_spec`); ``spec.model_copy(update={"cache_dir": None})``
    uses this machine's default data cache instead of the worker's.
    """
    import pytorch_lightning as pl

    from harness.train.trial import build_data, evaluation_trainer

    if not isinstance(model, pl.LightningModule):
        raise HarnessError(
            f"evaluate() tests the HarnessModule that load_model() returns, not a {type(model).__name__}; "
            "load the model with harness.tracking.models.load_model"
        )
    data = build_data(spec)
    with tempfile.TemporaryDirectory(prefix="harness-eval-") as root:
        trainer = evaluation_trainer(spec, root, accelerator)
        tested = trainer.test(model, datamodule=data, verbose=False)[0]
    return {k: float(v) for k, v in tested.items()}


# -- MLflow process state ------------------------------------------------------------------------
@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent tracking URI (which ``mlflow.pytorch.log_model`` and ``load_model`` read)
    set to ``uri`` for the block, then put back as it was: unset stays unset, and
    ``MLFLOW_TRACKING_URI`` (which ``set_tracking_uri`` overwrites) keeps its value."""
    from mlflow.tracking._tracking_service import utils

    before = utils._tracking_uri  # None when unset (get_tracking_uri() would give the default)
    if before == uri:
        yield
        return
    with _environ():
        utils.set_tracking_uri(uri)
        try:
            yield
        finally:
            utils.set_tracking_uri(before)  # type: ignore[arg-type] # None: unset again


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """``values`` set in ``os.environ`` for the block; ``MLFLOW_TRACKING_URI`` and ``values``'
    variables put back (or removed) afterwards."""
    names = {"MLFLOW_TRACKING_URI", *values}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_EXPECTED_WARNINGS)


@contextmanager
def _expected_warnings_muted() -> Iterator[None]:
    """MLflow's warnings about choices harness makes on purpose (:data:`_EXPECTED_WARNINGS`) kept
    off the console; any other warning still shows."""
    loggers = [logging.getLogger(name) for name in ("mlflow.pytorch", "mlflow.models.model")]
    muted = _DropExpected()
    for logger in loggers:
        logger.addFilter(muted)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(muted)
