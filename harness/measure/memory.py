"""Peak memory of a piece of work.

GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` — the tensors the
work allocated at its peak (the caching allocator's reserve is not counted).
CPU: the highest resident set size seen while the work runs, minus the resident size when it
started. A background thread samples ``/proc/self/statm`` every few milliseconds, so a run in a
reused Ray worker is measured too (the kernel peak ``ru_maxrss`` never goes down, so it would
read 0 after a bigger earlier run). Sampling can miss a peak shorter than the interval, and
memory the allocator keeps after an earlier run is not counted again: treat the CPU figure as an
estimate; :func:`activation_mb` is the exact, device-independent companion.
"""

from __future__ import annotations

import resource
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_PAGE = 4096


def current_rss_mb() -> float:
    """Resident set size now (Linux ``/proc/self/statm``; falls back to the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


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
    return total / 2**20


class _RssSampler(threading.Thread):
    """Keeps the highest resident set size seen until stopped."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(name="harness-rss-sampler", daemon=True)
        self.interval_s = interval_s
        self.highest = current_rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.highest = max(self.highest, current_rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        self.highest = max(self.highest, current_rss_mb())
        return self.highest


class PeakMemory:
    """``start()`` before the work, ``peak_mb()`` after: the peak memory it used (see module doc)."""

    def __init__(self, device: torch.device | str, interval_s: float = 0.005) -> None:
        self.cuda = getattr(device, "type", str(device)).startswith("cuda")
        self.device = device
        self.interval_s = interval_s
        self._base = 0.0
        self._sampler: _RssSampler | None = None

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = 0.0
        else:
            self._base = current_rss_mb()
            self._sampler = _RssSampler(self.interval_s)
            self._sampler.start()

    def peak_mb(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self._sampler is None:
            return 0.0
        highest = self._sampler.stop()
        self._sampler = None
        return max(0.0, highest - self._base)
