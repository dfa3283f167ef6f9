"""FLOPs per sample with ``torch.utils.flop_counter.FlopCounterMode``.

What the counter counts: matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``: 2·M·N·K),
convolutions (2 · output elements · in-channels/groups · kernel size) and scaled-dot-product
attention (2 matmuls, 4·T_q·T_k·d per batch item). Element-wise work (activations, gates, biases,
norms, softmax) is not counted: the figure is the matmul/conv/attention FLOPs, which dominate.

Two pitfalls are handled here (see ANCHORS.md):

* on CPU, ``nn.LSTM`` (and bidirectional RNNs) dispatch to a oneDNN kernel the counter does not
  know, so they count 0; on GPU the cuDNN RNN kernel is uncounted too. We count with oneDNN and
  cuDNN disabled, which makes PyTorch run the native implementation (one input matmul for the
  whole sequence plus one hidden matmul per step), counted exactly.
* the CPU attention kernel ``_scaled_dot_product_flash_attention_for_cpu`` is not in the
  counter's registry (attention would count 0); we register it with torch's own SDPA formula.

Counting runs the forward pass in eval mode *with* autograd enabled, so that
``nn.TransformerEncoderLayer`` does not take its inference fast path (a fused op the counter
does not see) and the count describes the computation that training performs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _custom_mapping() -> dict[Any, Callable[..., int]]:
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {}
    cpu_fwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_fwd is not None and cpu_fwd not in flop_counter.flop_registry:
        mapping[cpu_fwd] = _raw(flop_counter.sdpa_flop)
    cpu_bwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if cpu_bwd is not None and cpu_bwd not in flop_counter.flop_registry:
        mapping[cpu_bwd] = _raw(flop_counter.sdpa_backward_flop)
    return mapping


def _raw(formula: Callable[..., int]) -> Callable[..., int]:
    """The shape formula behind a registered one (FlopCounterMode wraps custom formulas itself)."""
    return getattr(formula, "__wrapped__", formula)


@contextlib.contextmanager
def native_kernels() -> Iterator[None]:
    """Disable oneDNN and cuDNN so recurrent layers run as countable matmuls."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TF32 acceleration.*")  # noise from mkldnn.flags
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
            yield


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs counted while running ``fn()`` (forward, and backward if ``fn`` does one)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping())
    with native_kernels(), torch.enable_grad(), counter:
        fn()
    return int(counter.get_total_flops())


def flops_by_operator(fn: Callable[[], object]) -> dict[str, int]:
    """The same count split by aten operator (for tests and debugging)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping())
    with native_kernels(), torch.enable_grad(), counter:
        fn()
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def forward_flops_per_sample(module: torch.nn.Module, batch: Mapping[str, Any]) -> float:
    """FLOPs of one forward pass of ``module`` (a HarnessModule) over ``batch``, divided by its size.

    The module is put in eval mode (no dropout) and restored; parameters are not touched.
    """
    was_training = module.training
    module.eval()
    try:
        total = count_flops(lambda: module(batch))
    finally:
        module.train(was_training)
    return total / max(1, batch_size(batch))


def batch_size(batch: Mapping[str, Any]) -> int:
    """Samples in a batch dict (``lengths`` first, else ``y``)."""
    for key in ("lengths", "y", "x"):
        value = batch.get(key)
        if value is not None and hasattr(value, "shape") and len(value.shape) > 0:
            return int(value.shape[0])
    return 1
