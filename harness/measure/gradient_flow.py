"""The gradient-flow probe: ‖∂L/∂h_t‖ over time steps t, and per-layer parameter-gradient norms.

At chosen training steps a Lightning callback runs one extra forward/backward pass on a fixed
probe batch (the first ``batch_size`` training samples, taken once at fit start) and records

* ``per_step_norm[t]`` = ‖∂L/∂h_t‖ (Frobenius norm over the batch and the features) where ``h`` is
  the *probe point*: the encoder's ``probe_module`` output if the encoder names one (the
  transformer names its input layer: the per-position input embeddings), else the *input*
  sequence of the last ``nn.RNN/LSTM/GRU`` (any ``nn.RNNBase``, so third-party recurrent
  encoders work unchanged; packed sequences included);
* ``layer_norms[name]`` = ‖∂L/∂θ‖ for every parameter.

Why the recurrent module's input and not its output: the fused kernels hide the hidden states,
and the gradient of the *output* tensor at step t holds only what the head reads there (for a
sequence-level loss: nothing but the last step), not the gradient that flows back through the
recurrence. The gradient at the input x_t does flow through it: ∂L/∂x_t = W_ihᵀ · ∂L/∂a_t where
a_t are the gate pre-activations at step t, so it is ‖∂L/∂h_t‖ seen through the (fixed) input
weights and it vanishes exactly when ∂L/∂h_t does. A zero tensor is added at the probe point
and the gradient is taken with respect to it, so it works when the input is a leaf too.

It does not disturb training: gradients come from ``torch.autograd.grad`` (``.grad`` of the
parameters is never touched), there is no optimizer step, and the RNG state (CPU and CUDA) is
saved and restored around the pass (dropout draws the same masks as without the probe).

The ratio is robust to single noisy steps: mean norm over the first 10 % of the time steps
(at least one) divided by the mean over the last 10 %. Vanishing: ratio < ``vanishing_ratio``.
Exploding: a norm above ``exploding_norm`` or not finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from harness.settings import GradientFlowSpec


def probe_module(encoder: nn.Module) -> nn.Module | None:
    """Where ‖∂L/∂h_t‖ is read: ``encoder.probe_module`` if set, else the last ``nn.RNNBase``."""
    named = getattr(encoder, "probe_module", None)
    if isinstance(named, nn.Module):
        return named
    rnns = [m for m in encoder.modules() if isinstance(m, nn.RNNBase)]
    return rnns[-1] if rnns else None


class _Loss(Protocol):
    def batch_loss(self, prediction: Any, batch: Mapping[str, Any]) -> torch.Tensor: ...


@runtime_checkable
class ProbedModule(Protocol):
    """What the probe uses of the training module (:class:`harness.train.module.HarnessModule`)."""

    @property
    def encoder(self) -> nn.Module: ...

    @property
    def task(self) -> _Loss: ...

    def __call__(self, batch: Mapping[str, Any]) -> Any: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...


class _Perturbation:
    """Adds a zero tensor ``delta`` (requires grad) to the probed sequence; records batch sizes
    when it is packed."""

    def __init__(self) -> None:
        self.delta: torch.Tensor | None = None
        self.batch_sizes: torch.Tensor | None = None

    def add(self, value: torch.Tensor | PackedSequence) -> torch.Tensor | PackedSequence:
        if isinstance(value, PackedSequence):
            self.delta = torch.zeros_like(value.data, requires_grad=True)
            self.batch_sizes = value.batch_sizes
            return value._replace(data=value.data + self.delta)
        self.delta = torch.zeros_like(value, requires_grad=True)
        return value + self.delta

    # forward hooks see whatever the probed module takes and returns: its first input or output
    # is the sequence (a tensor or a PackedSequence), the rest passes through
    def pre_hook(self, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.add(args[0]), *args[1:])

    def hook(self, _module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        if isinstance(output, tuple) and not isinstance(output, PackedSequence):
            return (self.add(output[0]), *output[1:])
        return self.add(output)


def per_step_norms(grad: torch.Tensor, batch_sizes: torch.Tensor | None, batch_first: bool) -> list[float]:
    """‖grad‖ at each time step: ``[B, T, ...]`` (``[T, B, ...]`` if not batch-first), or packed."""
    if batch_sizes is not None:  # packed: rows grouped by time step
        sizes = [int(s) for s in batch_sizes]
        return [float(chunk.norm()) for chunk in torch.split(grad, sizes)]
    steps = grad.transpose(0, 1) if batch_first else grad
    return [float(v) for v in steps.flatten(1).norm(dim=1)]


def flow_ratio(norms: Sequence[float]) -> float:
    """Mean of the first 10 % of the per-step norms over the mean of the last 10 %."""
    if not norms:
        return float("nan")
    window = max(1, len(norms) // 10)
    first, last = sum(norms[:window]) / window, sum(norms[-window:]) / window
    if last == 0.0:
        return float("inf") if first > 0 else float("nan")
    return first / last


def probe(module: ProbedModule, batch: Mapping[str, Any]) -> dict[str, Any] | None:
    """One probe of ``module`` (a HarnessModule) on ``batch``; None without a probe point."""
    point = probe_module(module.encoder)
    if point is None:
        return None
    perturbation = _Perturbation()
    if isinstance(getattr(module.encoder, "probe_module", None), nn.Module):
        handle = point.register_forward_hook(perturbation.hook)
    else:
        handle = point.register_forward_pre_hook(perturbation.pre_hook)
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        with torch.enable_grad():
            loss = module.task.batch_loss(module(batch), batch)
        sequence, batch_sizes = perturbation.delta, perturbation.batch_sizes
        if sequence is None:
            return None  # the probe point did not run for this batch
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [sequence, *[p for _, p in named]], allow_unused=True)
    finally:
        handle.remove()
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    batch_first = bool(getattr(point, "batch_first", True))
    seq_grad = grads[0] if grads[0] is not None else torch.zeros_like(sequence)
    return {
        "per_step_norm": per_step_norms(seq_grad.detach(), batch_sizes, batch_first),
        "layer_norms": {n: float(g.norm()) if g is not None else 0.0 for (n, _), g in zip(named, grads[1:])},
    }


def summarize(probes: list[dict[str, Any]], vanishing_ratio: float, exploding_norm: float) -> dict[str, Any]:
    """``result["gradient_flow"]``: the probes, the last probe's ratio and the flags."""
    ratio = flow_ratio(probes[-1]["per_step_norm"]) if probes else float("nan")
    exploding = False
    for p in probes:
        values = [*p["per_step_norm"], *p["layer_norms"].values()]
        exploding |= any(not math.isfinite(v) or v > exploding_norm for v in values)
    return {
        "probes": probes,
        "ratio": ratio,
        "vanishing": bool(math.isfinite(ratio) and ratio < vanishing_ratio),
        "exploding": bool(exploding),
        "thresholds": {"vanishing_ratio": vanishing_ratio, "exploding_norm": exploding_norm},
    }


def _probe_batch(data: pl.LightningDataModule, size: int) -> dict[str, Any]:
    """The first ``size`` training samples (the training loader's order at fit start)."""
    rows: list[dict[str, Any]] = []
    taken = 0
    for batch in data.train_dataloader():
        rows.append(batch)
        taken += len(batch["y"])
        if taken >= size:
            break
    if not rows:
        return {}
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if (
            isinstance(values[0], torch.Tensor)
            and values[0].dim() > 0
            and len({v.shape[1:] for v in values}) == 1
        ):
            out[key] = torch.cat(values)[:size]
        else:
            out[key] = values[0]
    return out


class GradientFlowCallback(pl.Callback):
    """Runs :func:`probe` at ``steps`` (optimizer steps done so far; 0 = before the first update),
    every ``every_n_steps``, and once at the end of training (the trained model); rank 0 only."""

    def __init__(self, spec: GradientFlowSpec) -> None:
        self.steps = set(spec.steps)
        self.every = spec.every_n_steps
        self.batch_size = spec.batch_size
        self.vanishing_ratio = spec.vanishing_ratio
        self.exploding_norm = spec.exploding_norm
        self.probes: list[dict[str, Any]] = []
        self._batch: dict[str, Any] | None = None
        self._done: set[int] = set()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generator_state = torch.get_rng_state()
        # set by Lightning's fit(datamodule=...); not declared on Trainer
        data: pl.LightningDataModule | None = getattr(trainer, "datamodule", None)
        self._batch = _probe_batch(data, self.batch_size) if data else None
        torch.set_rng_state(generator_state)  # the loader's shuffle must not shift training's RNG

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        wanted = step in self.steps or (self.every and step % int(self.every) == 0)
        if not wanted or step in self._done or not self._batch or trainer.global_rank != 0:
            return
        if not isinstance(pl_module, ProbedModule):
            return
        self._done.add(step)
        moved = {k: v.to(pl_module.device) if hasattr(v, "to") else v for k, v in self._batch.items()}
        result = probe(pl_module, moved)
        if result is not None:
            self.probes.append({"step": step, **result})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A last probe of the trained model (the ratio and flags describe it)."""
        step = trainer.global_step
        if step in self._done or not self._batch or trainer.global_rank != 0:
            return
        if not isinstance(pl_module, ProbedModule):
            return
        self._done.add(step)
        was_training = pl_module.training
        pl_module.train()  # cuDNN RNNs have no backward in eval mode
        moved = {k: v.to(pl_module.device) if hasattr(v, "to") else v for k, v in self._batch.items()}
        try:
            result = probe(pl_module, moved)
        finally:
            pl_module.train(was_training)
        if result is not None:
            self.probes.append({"step": step, **result})

    def result(self) -> dict[str, Any] | None:
        if not self.probes:
            return None
        return summarize(self.probes, self.vanishing_ratio, self.exploding_norm)
