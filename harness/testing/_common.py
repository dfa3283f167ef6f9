"""Results, constants and helpers shared by the conformance checks."""

from __future__ import annotations

import contextlib
import random
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: tolerances of the padding-invariance and pickling comparisons (float32 on a CPU)
ATOL, RTOL = 1e-5, 1e-4
#: a sane parameter count is in [1, MAX_PARAMETERS)
MAX_PARAMETERS = 10**9
#: identical inputs two splits may share by coincidence (e.g. short texts after <unk> mapping):
#: at most this share of the smaller split, or one example
OVERLAP_TOLERANCE = 0.01
SKIPPED_BASELINE = "skipped: closed-form baseline (fitted by its task, not trained)"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one conformance check of one component."""

    component: str  # e.g. "architecture mean_pool"
    check: str  # e.g. "padding invariance"
    passed: bool
    detail: str = ""  # why it failed (what was expected, what was seen, how to fix)

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.component}: {self.check}" + (
            f" ({self.detail})" if self.detail else ""
        )


class CheckFailed(Exception):
    """Raised inside a check: the message is the failure's detail."""


def assert_conforms(results: list[CheckResult]) -> None:
    """Raise ``AssertionError`` listing every failed check (nothing when all passed)."""
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "\n".join(f"- {r.component}: {r.check}: {r.detail}" for r in failed)
        raise AssertionError(f"{len(failed)} of {len(results)} conformance checks failed:\n{lines}")


def _run(component: str, check: str, fn: Callable[[], str | None]) -> CheckResult:
    """Run one check; a ``CheckFailed`` or any other exception becomes a failed result."""
    try:
        detail = fn() or ""
    except CheckFailed as exc:
        return CheckResult(component, check, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken component: report where it raised
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        return CheckResult(component, check, False, f"raised {type(exc).__name__}: {exc}{where}")
    return CheckResult(component, check, True, detail)


@contextlib.contextmanager
def _preserved_rng() -> Iterator[None]:
    """Seed as the trainer does inside, and leave the caller's random states as they were."""
    import numpy as np
    import torch

    state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(state)
            np.random.set_state(np_state)


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finite_value(value: Any, what: str) -> float:
    import torch

    if isinstance(value, Mapping):
        raise CheckFailed(f"{what}: compute() returned a mapping; return one value")
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if tensor.numel() != 1 or not bool(torch.isfinite(tensor).all()):
        raise CheckFailed(f"{what}: compute() returned {value!r}; expected one finite number")
    return float(tensor)
