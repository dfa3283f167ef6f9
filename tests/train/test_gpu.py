"""CUDA paths: training on a GPU, mixed precision. Skipped cleanly without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.train.trial import run_trial  # noqa: E402
from tests.helpers import payloads, tiny_suite, write_suite  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

ARCHS = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]


@pytest.mark.parametrize("precision", ["32-true", "16-mixed", "bf16-mixed"])
def test_every_architecture_trains_on_cuda(tmp_path: Path, precision: str) -> None:
    suite = tiny_suite(name="gpu", archs=ARCHS, resources={"cpus": 1, "gpus": 1})
    suite["trainer"].update(precision=precision, max_epochs=3)
    for payload in payloads(write_suite(tmp_path, suite), tmp_path / "cache"):
        assert payload.accelerator == "gpu" and payload.trainer.precision == precision
        result = run_trial(payload)
        assert result.status == "finished", (payload.architecture, result.failure)
        assert result.runtime is not None and result.runtime.device.startswith("cuda:"), result.runtime
        if payload.task == "digits":
            assert result.metrics["test_accuracy"] > 0.5, (payload.architecture, precision)


def test_fractional_gpu_request_trains_on_the_gpu(tmp_path: Path) -> None:
    suite = tiny_suite(name="gpu-half", archs=["gru"], tasks=["digits"], resources={"cpus": 1, "gpus": 0.5})
    (payload,) = payloads(write_suite(tmp_path, suite), tmp_path / "cache")
    assert payload.resources.gpus == 0.5 and payload.accelerator == "gpu"
    result = run_trial(payload)
    assert result.status == "finished", result.failure
    assert result.runtime is not None and result.runtime.device.startswith("cuda:"), result.runtime


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_lean_loop_trains_like_lightnings_on_cuda(tmp_path: Path, precision: str) -> None:
    """cuDNN kernels are not bit-reproducible, so the loops agree in steps and closely in metrics."""
    suite = tiny_suite(name="gpu-lean", archs=["lstm"], tasks=["adding"], resources={"cpus": 1, "gpus": 1})
    suite["trainer"].update(precision=precision, max_epochs=3)
    (payload,) = payloads(write_suite(tmp_path, suite), tmp_path / "cache")
    records = {}
    for loop in ("auto", "lightning"):
        spec = payload.model_copy(update={"trainer": payload.trainer.model_copy(update={"loop": loop})})
        records[loop] = run_trial(spec)
        assert records[loop].finished, records[loop].failure
    lean, lightning = records["auto"], records["lightning"]
    assert lean.cost["steps"] == lightning.cost["steps"]
    assert lean.metrics["test_mse"] == pytest.approx(lightning.metrics["test_mse"], rel=0.1)


def test_a_diverging_run_on_cuda_fails_with_its_step(tmp_path: Path) -> None:
    suite = tiny_suite(name="gpu-nan", archs=["gru"], tasks=["adding"], resources={"cpus": 1, "gpus": 1})
    suite["trainer"].update(lr=1e30, gradient_clip_val=None)
    (payload,) = payloads(write_suite(tmp_path, suite), tmp_path / "cache")
    result = run_trial(payload)
    assert result.status == "failed"
    assert "training loss became" in result.error, result.error
