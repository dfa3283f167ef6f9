"""Memory of a training step.

``peak_memory_mb`` is the tensor memory a run needs at its peak:

- **GPU**: ``torch.cuda.max_memory_allocated`` over the whole fit, after
  ``reset_peak_memory_stats`` — the bytes of tensors the caching allocator handed out at the
  peak (its unused reserve is not counted). :class:`PeakMemory` does this.
- **CPU**: the peak of live tensor bytes during two training steps (forward, loss, backward,
  optimizer step) at the run's batch size, counted by :func:`training_step_peak_mb`: parameters
  and buffers, plus every tensor storage an operator allocates — activations saved for backward,
  temporaries, gradients and optimizer state — each subtracted again when it is freed. It counts
  tensors, not the process: the allocator's cache, the Python heap, library pages and whatever
  an earlier run left in a reused worker are not in it, so the same cell gives the same figure
  first or third in a Ray worker, and the figure grows with the sequence length. Scratch memory a
  kernel allocates without returning it as a tensor (e.g. oneDNN workspaces) is not seen.

:func:`activation_mb` is the exact, device-independent companion ``activation_memory_mb``: the
bytes of tensors autograd saves for backward in one forward pass.

Process RSS is not used: it grows when the allocator, the data loader or an import first touches
pages and rarely shrinks, so in a reused worker it measured warm-up, not the architecture.
"""

from __future__ import annotations

import resource
import sys
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MB = 2**20


def current_rss_mb() -> float:
    """Resident set size now (Linux ``/proc/self/statm``; falls back to the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 2**10


def activation_mb(step: Callable[[], object]) -> float:
    """MB of tensors autograd saves for backward while ``step()`` runs its forward pass."""
    import torch

    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total / MB


def _storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _tensor_tracker() -> Any:
    """A dispatch mode that keeps the live and peak bytes of the storages operators allocate."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class TensorTracker(TorchDispatchMode):  # type: ignore[no-untyped-call]
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.live = 0
            self.peak = 0
            self._tracked: set[int] = set()

        def _free(self, key: int, nbytes: int) -> None:
            self._tracked.discard(key)
            self.live -= nbytes

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            inputs = {
                id(t.untyped_storage())
                for t in tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor) and t.device.type != "meta"
            }
            for t in tree_leaves(out):
                if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                    continue
                storage = t.untyped_storage()
                key = id(storage)
                if key in self._tracked or key in inputs:  # a view or an in-place result: not new
                    continue
                nbytes = storage.nbytes()
                self._tracked.add(key)
                self.live += nbytes
                weakref.finalize(storage, self._free, key, nbytes)
            self.peak = max(self.peak, self.live)
            return out

    return TensorTracker()


def training_step_peak_mb(
    module: torch.nn.Module,
    loss: Callable[[], torch.Tensor],
    optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None,
    *,
    inputs: Iterable[torch.Tensor] = (),
    steps: int = 2,
) -> float:
    """Peak MB of live tensors while ``steps`` training steps run: ``loss()`` forward, backward and a
    step of a fresh ``optimizer(params)`` (its state is allocated in the first step, so the second
    sees it all). Parameters, buffers and ``inputs`` (the batch) count from the start; everything
    else as operators allocate and free it. ``optimizer=None`` (nothing to train): one forward pass.

    The module's weights, gradients and training mode are restored afterwards.
    """
    import torch

    params = [p for p in module.parameters() if p.requires_grad]
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    grads = {p: p.grad for p in params}
    was_training = module.training
    base = _storage_bytes([*module.parameters(), *module.buffers(), *inputs])
    tracker = _tensor_tracker()
    try:
        for p in params:
            p.grad = None
        module.train()
        with torch.enable_grad(), tracker:
            if optimizer is None or not params:
                loss()
            else:
                opt = optimizer(params)
                for _ in range(steps):
                    opt.zero_grad(set_to_none=True)
                    loss().backward()  # type: ignore[no-untyped-call]
                    opt.step()
                opt.zero_grad(set_to_none=True)
                del opt
    finally:
        module.load_state_dict(saved)
        for p, grad in grads.items():
            p.grad = grad
        module.train(was_training)
    return float(base + tracker.peak) / MB


class PeakMemory:
    """CUDA: ``start()`` before the work, ``peak_mb()`` after — the most tensor memory the
    caching allocator handed out in between. On the CPU it measures nothing (``peak_mb()`` is NaN):
    use :func:`training_step_peak_mb` (see the module doc)."""

    def __init__(self, device: torch.device | str) -> None:
        self.cuda = getattr(device, "type", str(device)).startswith("cuda")
        self.device = device

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> float:
        if not self.cuda:
            return float("nan")
        import torch

        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) / MB
