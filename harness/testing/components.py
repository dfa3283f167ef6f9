"""Conformance checks of metrics and reporters."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any, cast

from harness import __version__
from harness.interfaces import (
    InputSpec,
    MetricSpec,
    OutputKind,
    Reporter,
    TaskInfo,
)
from harness.records import Direction, PlanProvenance, PluginRef, RunRecord, RunSpec
from harness.settings import TrainerSpec
from harness.testing._common import CheckFailed, CheckResult, _run
from harness.testing._common import finite_value as _finite


def _dummy_info(kind: str) -> TaskInfo:
    spec = InputSpec("tokens", 20) if kind in ("seq2seq", "language_modeling") else InputSpec("continuous", 3)
    size = {"regression": 1, "forecasting": 3}.get(kind, 20)
    # `kind` is one the metric declares (MetricSpec.output_kinds holds plain strings)
    return TaskInfo(
        spec,
        cast(OutputKind, kind),
        size,
        "loss",
        ("metric",),
        "metric",
        "max",
        output_vocab_size=size if kind == "seq2seq" else None,
        output_max_length=8 if kind == "seq2seq" else None,
    )


def _dummy_inputs(kind: str) -> list[tuple[Any, ...]]:
    """Candidate update() arguments of a metric for ``kind``, the convention of the built-ins first."""
    import torch

    gen = torch.Generator().manual_seed(7)
    n = 16
    if kind in ("classification", "sequence_labeling", "language_modeling"):
        logits = torch.randn(n, 20, generator=gen)
        targets = torch.arange(n) % 20
        return [(logits, targets), (logits.softmax(-1), targets)]
    if kind == "regression":
        preds, target = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
        return [(preds, target), (preds.unsqueeze(1), target.unsqueeze(1))]
    if kind == "forecasting":
        preds, target = torch.randn(n, 3, generator=gen), torch.randn(n, 3, generator=gen)
        return [(preds, target), (preds, target, torch.ones(n))]
    if kind in ("seq2seq", "transcription"):
        references = ["1 2 3", "4 5", "6 7 8 9", "1 1"]
        return [(["1 2 3", "4 6", "6 7 8", ""], references)]
    return []


def check_metric(spec: MetricSpec) -> list[CheckResult]:
    """Build the metric for a synthetic TaskInfo of every output kind it declares; update it
    with dummy data of that kind and check ``compute()`` is finite; check its direction."""
    component = f"metric {getattr(spec, 'name', spec)}"

    def declaration() -> str:
        if not isinstance(spec, MetricSpec):
            raise CheckFailed(f"{spec!r} is not a harness.MetricSpec")
        if spec.direction not in ("max", "min"):
            raise CheckFailed(f"direction {spec.direction!r}: use 'max' (higher is better) or 'min'")
        if not spec.output_kinds:
            raise CheckFailed("output_kinds is empty: name the output kinds the metric accepts")
        return f"direction {spec.direction}; output kinds: {', '.join(sorted(spec.output_kinds))}"

    results = [_run(component, "declaration", declaration)]
    if not results[0].passed:
        return results

    def computes(kind: str) -> str:
        import torchmetrics

        candidates = _dummy_inputs(kind)
        if not candidates:
            return f"skipped: no synthetic data for output kind {kind!r}"
        info = _dummy_info(kind)
        errors = []
        for args in candidates:
            metric = spec.factory(info)
            if not isinstance(metric, torchmetrics.Metric):
                raise CheckFailed(
                    f"factory(info) returned {type(metric).__name__}, not a torchmetrics.Metric"
                )
            try:
                metric.update(*args)
                value = metric.compute()
            except Exception as exc:  # noqa: BLE001 - try the next argument convention
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            return f"{_finite(value, 'the metric'):.4g} on dummy {kind} data"
        raise CheckFailed(f"update/compute failed on dummy {kind} data: {' | '.join(errors)}")

    for kind in sorted(spec.output_kinds):
        results.append(_run(component, f"computes ({kind})", partial(computes, kind)))
    return results


def _fake_records() -> list[RunRecord]:
    """Two finished runs, a failed one and a skipped one, as a suite's results file holds them."""
    plugin = PluginRef(distribution="harness", version=__version__)
    base = RunSpec(
        run_id="r1",
        suite="conformance",
        task="adding",
        task_label="adding",
        task_params={},
        architecture="gru",
        arch_label="gru",
        arch_params={},
        seed=0,
        trainer=TrainerSpec(max_epochs=1),
        metrics=("mse", "mae"),
        primary_metric="mse",
        direction="min",
        provenance=PlanProvenance(
            harness=__version__, task_plugin=plugin, arch_plugin=plugin, data_version="1"
        ),
    )

    def spec(run_id: str, arch: str, seed: int, skip: str | None = None) -> RunSpec:
        return base.model_copy(
            update={
                "run_id": run_id,
                "architecture": arch,
                "arch_label": arch,
                "seed": seed,
                "skip_reason": skip,
            }
        )

    directions: dict[str, Direction] = {"mse": "min", "mae": "min", "loss": "min"}
    return [
        RunRecord(
            spec=spec("r1", "gru", 0),
            status="finished",
            directions=directions,
            metrics={"test_mse": 0.05, "test_mae": 0.2, "test_loss": 0.05},
            cost={"train_time_s": 1.5, "num_params": 1000.0},
            wall_time_s=2.0,
        ),
        RunRecord(
            spec=spec("r2", "gru", 1),
            status="finished",
            directions=directions,
            metrics={"test_mse": 0.07, "test_mae": 0.25, "test_loss": 0.07},
            cost={"train_time_s": 1.4, "num_params": 1000.0},
            wall_time_s=1.9,
        ),
        RunRecord.failed(
            spec("r3", "lstm", 0),
            "nan",
            "RunFailure: training loss became nan",
            traceback="Traceback ...",
            finished_at=0.0,
        ),
        RunRecord.skipped(spec("r4", "naive", 0, "`naive` runs on forecasting tasks only")),
    ]


def check_reporter(cls: type[Reporter]) -> list[CheckResult]:
    """Render an empty result list and a few fake records (finished, failed, skipped); write a file."""
    component = f"reporter {getattr(cls, 'name', None) or getattr(cls, '__name__', cls)}"
    holder: dict[str, Reporter] = {}

    def declaration() -> str:
        if not (isinstance(cls, type) and issubclass(cls, Reporter)):
            raise CheckFailed(f"{cls!r} is not a subclass of harness.Reporter")
        holder["reporter"] = cls()
        return f"writes {cls.filename}{cls.suffix}"

    def render(records: list[RunRecord]) -> str:
        text = holder["reporter"].render(records)
        if not isinstance(text, str) or not text.strip():
            raise CheckFailed(f"render() returned {text!r}; expected a non-empty string")
        return f"{len(text)} characters"

    def write() -> str:
        with tempfile.TemporaryDirectory() as tmp:
            path = holder["reporter"].write(_fake_records(), Path(tmp) / "report")
            if not isinstance(path, Path) or not path.is_file() or path.stat().st_size == 0:
                raise CheckFailed(
                    f"write() returned {path!r}; expected the Path of a non-empty file it wrote"
                )
            return f"wrote {path.name}"

    results = [_run(component, "declaration", declaration)]
    if results[0].passed:
        results += [
            _run(component, "renders no results", lambda: render([])),
            _run(component, "renders results", lambda: render(_fake_records())),
            _run(component, "writes a file", write),
        ]
    return results
