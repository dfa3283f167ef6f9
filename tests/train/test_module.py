"""HarnessModule helpers: metrics updated by name from a task's evaluate() mapping."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MeanMetric, MetricCollection, SumMetric

from harness.errors import RunFailure
from harness.settings import TrainerSpec
from harness.train.module import build_optimizer, update_by_name
from harness_builtins.tasks.digits import DigitsTask


def test_named_inputs_win_and_star_serves_the_rest() -> None:
    metrics = MetricCollection(
        {"mean": MeanMetric(), "total": SumMetric()}, prefix="val_", compute_groups=False
    )
    update_by_name(
        metrics, {"mean": (torch.tensor([2.0, 4.0]),), "*": (torch.tensor([1.0, 1.0, 1.0]),)}, DigitsTask()
    )
    assert {k: float(v) for k, v in metrics.compute().items()} == {"val_mean": 3.0, "val_total": 3.0}


def test_a_metric_without_inputs_fails_the_run_with_the_names() -> None:
    metrics = MetricCollection(
        {"mean": MeanMetric(), "total": SumMetric()}, prefix="val_", compute_groups=False
    )
    with pytest.raises(RunFailure, match=r"no inputs for metric `total` \(it gave: mean\)"):
        update_by_name(metrics, {"mean": (torch.tensor([2.0]),)}, DigitsTask())


def test_tbptt_cut_points_detach_every_k1_steps_and_k2_before_each_chunk_end() -> None:
    from harness.train.tbptt import cut_points

    assert cut_points(10, 4, 4) == [0, 4, 8, 10]
    assert cut_points(10, 4, 1) == [0, 3, 4, 7, 8, 9, 10]
    assert cut_points(5, 10, 10) == [0, 5]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_tbptt_forward_equals_the_full_forward_and_limits_gradient_to_the_last_k2_steps(cell: str) -> None:
    from harness.interfaces import InputSpec
    from harness.plugins import get_registry
    from harness.train.tbptt import tbptt_encode

    torch.manual_seed(0)
    encoder = (
        get_registry()
        .architectures.get(cell)
        .obj({"hidden_size": 8})
        .build_encoder(InputSpec("continuous", 2))
    )
    x = torch.randn(3, 10, 2, requires_grad=True)
    lengths = torch.tensor([10, 7, 2])
    full = encoder(x, lengths)
    chunked = tbptt_encode(encoder, x, lengths, k1=4, k2=3, keep_sequence_grad=False)
    assert torch.allclose(full.sequence, chunked.sequence, atol=1e-6)
    assert torch.allclose(full.summary, chunked.summary, atol=1e-6)
    chunked.summary[0].sum().backward()  # sample 0 ends at step 9, in the last chunk [8, 10)
    assert (x.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist() == [8, 9]
    x.grad = None
    chunked = tbptt_encode(encoder, x, lengths, k1=4, k2=3, keep_sequence_grad=False)
    chunked.summary[1].sum().backward()  # sample 1 ends at step 6, chunk [4, 8) cut at 5: segment [5, 8)
    assert (x.grad[1].abs().sum(-1) > 0).nonzero().flatten().tolist() == [5, 6]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
    ],
)
def test_the_optimizer_follows_the_trainer_spec(name: str, kind: type) -> None:
    spec = TrainerSpec(optimizer=name, lr=0.01, weight_decay=0.1, momentum=0.5)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(2))], spec)
    group = optimizer.param_groups[0]
    assert type(optimizer) is kind and (group["lr"], group["weight_decay"]) == (0.01, 0.1)
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.5
