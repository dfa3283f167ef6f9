"""The gradient-flow probe: vanilla RNN gradients vanish across time, LSTM/GRU keep them; the probe
does not disturb training; the result has the agreed shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from harness.measure.gradient_flow import flow_ratio, per_step_norms, probe, summarize
from harness.records import RunSpec
from harness.settings import GradientFlowSpec
from harness.train.trial import run_trial
from tests.helpers import payloads, tiny_suite, write_suite


def _suite(tmp: Path, archs: list[str], gradient_flow: dict | None, **trainer: object) -> list[RunSpec]:
    suite = tiny_suite(archs=archs, tasks=["adding"])
    suite["tasks"][0]["params"] = {"length": 20, "num_train": 1024, "num_val": 128, "num_test": 128}
    suite["trainer"].update({"max_epochs": 6, "lr": 2e-3, "gradient_clip_val": 1.0, **trainer})
    if gradient_flow is not None:
        suite["measure"] = {"gradient_flow": gradient_flow}
    return payloads(write_suite(tmp, suite), tmp / "cache")


def test_rnn_gradient_vanishes_across_time_while_lstm_and_gru_keep_it(tmp_path: Path) -> None:
    flow = {"steps": [0], "every_n_steps": 48, "batch_size": 64}
    specs = _suite(tmp_path, ["rnn", "lstm", "gru"], flow)
    assert all(
        s.measure.gradient_flow == GradientFlowSpec(steps=[0], every_n_steps=48, batch_size=64) for s in specs
    )
    results = {p.architecture: run_trial(p) for p in specs}
    ratio = {}
    flows = {}
    for arch, result in results.items():
        assert result.status == "finished", result.failure
        gf = result.gradient_flow
        assert gf is not None
        assert [p["step"] for p in gf["probes"]] == [0, 48, 96]  # 96: the end of training
        assert all(len(p["per_step_norm"]) == 20 for p in gf["probes"])
        assert gf["probes"][0]["layer_norms"] and all(
            math.isfinite(v) for v in gf["probes"][0]["layer_norms"].values()
        )
        assert result.cost["gradflow_ratio"] == gf["ratio"]
        ratio[arch], flows[arch] = gf["ratio"], gf
    assert flows["rnn"]["vanishing"] and results["rnn"].cost["gradflow_vanishing"] == 1.0
    assert not flows["lstm"]["vanishing"] and not flows["gru"]["vanishing"]
    assert ratio["rnn"] * 100 < min(ratio["lstm"], ratio["gru"])


def test_transformer_is_probed_at_its_input_embeddings(tmp_path: Path) -> None:
    (payload,) = _suite(tmp_path, ["transformer"], {"steps": [0], "batch_size": 16}, max_epochs=1)
    result = run_trial(payload)
    assert result.status == "finished", result.failure
    assert result.gradient_flow is not None
    first, final = result.gradient_flow["probes"]  # step 0 and the end of training
    assert first["step"] == 0 and final["step"] == 16
    assert len(first["per_step_norm"]) == 20 and min(first["per_step_norm"]) > 0
    assert not result.gradient_flow["vanishing"]
    from harness.tracking.mlflow_store import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "probe")
    tracker.connect()
    tracker.start_parent("probe", {}, {}, "")
    run_id = tracker.log_child(result)
    stored = tracker.client.download_artifacts(run_id, "gradient_flow.json", str(tmp_path))
    assert json.loads(Path(stored).read_text())["probes"][0]["per_step_norm"] == first["per_step_norm"]
    assert tracker.client.get_run(run_id).data.metrics["cost/gradflow_ratio"] == pytest.approx(
        result.gradient_flow["ratio"]
    )


def test_probe_does_not_change_training(tmp_path: Path) -> None:
    (plain,) = _suite(tmp_path, ["gru"], None, max_epochs=1)
    probe_spec = GradientFlowSpec(
        steps=[0, 3, 7], batch_size=8, vanishing_ratio=1e-3, exploding_norm=1e3, every_n_steps=None
    )
    probed = plain.model_copy(
        update={"measure": plain.measure.model_copy(update={"gradient_flow": probe_spec})}
    )
    a, b = run_trial(plain), run_trial(probed)
    assert a.status == b.status == "finished", b.failure
    assert a.metrics == b.metrics
    assert a.gradient_flow is None and "gradflow_ratio" not in a.cost
    assert b.gradient_flow is not None and [p["step"] for p in b.gradient_flow["probes"]] == [0, 3, 7, 16]


def test_per_step_norms_of_padded_and_packed_gradients() -> None:
    grad = torch.zeros(2, 3, 4)
    grad[:, 0] = 1.0  # step 0: norm sqrt(8)
    assert per_step_norms(grad, None, batch_first=True) == pytest.approx([math.sqrt(8), 0.0, 0.0])
    packed = torch.ones(5, 2)  # batch sizes [2, 2, 1]: rows grouped by step
    assert per_step_norms(packed, torch.tensor([2, 2, 1]), batch_first=True) == pytest.approx(
        [2.0, 2.0, math.sqrt(2)]
    )


def test_ratio_and_flags() -> None:
    norms = [1e-6] * 10 + [1.0] * 10
    assert flow_ratio(norms) == pytest.approx(1e-6)
    probes = [{"step": 0, "per_step_norm": norms, "layer_norms": {"w": float("inf")}}]
    summary = summarize(probes, vanishing_ratio=1e-3, exploding_norm=1e3)
    assert summary["vanishing"] and summary["exploding"]
    assert summary["thresholds"] == {"vanishing_ratio": 1e-3, "exploding_norm": 1e3}


def test_an_encoder_without_a_probe_point_gives_none() -> None:
    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Linear(2, 2)

    assert probe(Flat(), {}) is None
