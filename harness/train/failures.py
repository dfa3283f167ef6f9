"""Why a run failed, in one word: the ``failure`` block of a result.

Kinds (``RunRecord.failure.kind``): ``exception`` (the run's code raised), ``nan`` (the training
loss became NaN or infinite), ``diverged`` (training ended, but the test loss or primary metric is
non-finite or worse than the task's ``divergence_bound``), ``oom`` (torch / Python / Ray's memory
monitor ran out of memory), ``timeout`` (the run outlived its hard limit, or the suite's
deadline), ``infrastructure`` (the worker process or node died, or the worker lacks the plugin the
driver planned with) and ``killed`` (Ctrl-C).

``timeout`` is never read off an exception: the executor that cancelled the run names it (see
:func:`failed_record`). Classification goes by exception class *names*
along the cause chain, so this module imports neither torch nor ray and can run on the driver
for errors a worker never returned.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence

from harness.records import FAILURE_KINDS, FailureKind, RunRecord, RunSpec, RuntimeInfo, Status

KINDS = FAILURE_KINDS

#: Ray errors that mean "the process or node running the task went away" (retried by the executor)
WORKER_DIED = {
    "WorkerCrashedError",
    "NodeDiedError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectReconstructionFailedError",
    "RaySystemError",
    "LocalRayletDiedError",
    "ObjectFetchTimedOutError",
    "ReferenceCountingAssertionError",
}
OOM_NAMES = {"OutOfMemoryError", "MemoryError"}
OOM_TEXT = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "killed due to memory pressure",
)
NAN_TEXT = ("loss became nan", "loss became inf", "loss became -inf")
#: frames kept at the end of a trimmed traceback (the raise site and its callers)
TRACE_FRAMES = 12
TRACE_CHARS = 8000


class PluginMismatch(Exception):
    """The worker's plugin registry differs from the driver's for this run."""


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes / contexts, each once (a cycle ends the walk)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(exc: BaseException) -> FailureKind:
    """The failure kind of an exception raised by (or for) a run."""
    chain = list(exception_chain(exc))
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if "TaskCancelledError" in names or isinstance(exc, KeyboardInterrupt):
        return "killed"
    if "PluginMismatch" in names:
        return "infrastructure"
    if "Diverged" in names:
        return "diverged"
    if names & OOM_NAMES or any(t in text for t in OOM_TEXT):
        return "oom"
    if names & WORKER_DIED:
        return "infrastructure"
    if any(t in text for t in NAN_TEXT):
        return "nan"
    return "exception"


def worker_died(exc: BaseException) -> bool:
    """True when Ray lost the process running the task (a retry may succeed)."""
    return classify(exc) == "infrastructure" and "PluginMismatch" not in {
        type(e).__name__ for e in exception_chain(exc)
    }


#: a terminal colour code (Ray's task errors start with a coloured process title)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of ``exc``, without colour codes; for a Ray task error, the line that
    says what went wrong, not the worker's process title (``ray::harness:… (pid=…, ip=…)``)."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("ray::"):
        lines = lines[1:]
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first[:500]}".rstrip(": ")


def trimmed_traceback(exc: BaseException) -> str:
    """The traceback without the framework's middle: the last frames and the exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    kept = frames[-TRACE_FRAMES:]
    lines = ["Traceback (most recent call last, trimmed):\n"]
    if len(frames) > len(kept):
        lines.append(f"  ... {len(frames) - len(kept)} earlier frame(s) omitted ...\n")
    lines += traceback.format_list(kept)
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines)
    return text if len(text) <= TRACE_CHARS else "...\n" + text[-TRACE_CHARS:]


def failed_record(
    spec: RunSpec,
    exc: BaseException | None,
    *,
    kind: FailureKind | None = None,
    message: str | None = None,
    cause: str = "",
    attempts: int | None = None,
    history: Sequence[Mapping[str, float]] = (),
    started: float | None = None,
    status: Status | None = None,
    node_id: str | None = None,
    runtime: RuntimeInfo | None = None,
) -> RunRecord:
    """The record of a run that failed: in the worker (``run_trial``, Ray Train), or outside it
    (its worker died, the driver stopped it).

    ``kind`` overrides the classification of ``exc`` (e.g. ``killed`` for Ctrl-C, ``timeout``);
    ``message`` the one line of ``exc`` (``cause`` goes before it); ``status`` overrides the status
    (``killed`` for cells the suite deadline cancelled); ``history`` holds the epoch rows the run
    reached (partial metrics); ``attempts`` defaults to the spec's attempt.
    """
    kind = kind or (classify(exc) if exc is not None else "exception")
    text = cause + (message or (one_line(exc) if exc is not None else kind))
    if runtime is None and node_id:
        runtime = RuntimeInfo(node_id=node_id)
    return RunRecord.failed(
        spec,
        kind,
        text,
        traceback=trimmed_traceback(exc) if exc is not None else "",
        attempts=spec.attempt if attempts is None else attempts,
        history=history,
        started_at=started,
        finished_at=time.time(),
        status=status,
        runtime=runtime,
    )
