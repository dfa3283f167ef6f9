"""Peak memory of a piece of work.

GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` — the tensors the
work allocated at its peak (the caching allocator's reserve is not counted).
CPU: growth of the process's peak resident set size (``getrusage``'s ``ru_maxrss``) over the
resident size when the work started. The peak RSS of a process never goes down, so on CPU the
figure is only meaningful for the first, largest piece of work in a fresh process (a run in its
own worker); it reads 0 when an earlier piece already pushed the peak higher.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

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


class PeakMemory:
    """``start()`` before the work, ``peak_mb()`` after: the peak memory it used (see module doc)."""

    def __init__(self, device: Any) -> None:
        self.cuda = getattr(device, "type", str(device)).startswith("cuda")
        self.device = device
        self._base = 0.0

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = 0.0
        else:
            self._base = current_rss_mb()

    def peak_mb(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return max(0.0, peak_rss_mb() - self._base)
