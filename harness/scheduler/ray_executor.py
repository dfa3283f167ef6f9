"""Ray executor (the default): each cell is a Ray task with the suite's resources.

Joins ``--address`` / ``RAY_ADDRESS`` when given, otherwise starts a local Ray
instance for the duration of the suite (listening on 127.0.0.1 only); both waits are bounded
(:mod:`harness.scheduler.ray_connect`). Submission is windowed to what the
cluster can run at once, so "running" in the progress display is real.

Faults: a task whose worker process or node dies is resubmitted up to
``execution.max_retries`` times (Ray's own ``max_retries`` stays 0 so the attempt count is
ours to record); a run alive well past ``trainer.max_time`` is cancelled (``timeout``); the
suite's ``execution.deadline`` and Ctrl-C cancel every running cell (``killed``). Epoch rows
stream to a small actor as they happen, so stopped runs keep their partial history. When the Ray
instance itself dies (its raylet or GCS), no retry can run: the suite stops with one message.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from harness import interrupts
from harness.errors import HarnessError, ResourceError, ServiceUnreachable, env_seconds
from harness.records import FailureKind, RunRecord, RunSpec, Status
from harness.scheduler.base import OnProgress, OnResult, OnStart, describe_request
from harness.scheduler.ray_connect import (
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_START_TIMEOUT_S,
    HOW_TO_JOIN,
    START_TIMEOUT_ENV,
    TimeUp,
    child_pids,
    clip,
    dead_local_processes,
    lean_local_instance,
    loopback_node,
    plain_line,
    probe_gcs,
    ray_console,
    time_limit,
    undo_init,
)
from harness.settings import ExecutionSpec, ResourcesSpec
from harness.train.failures import exception_chain, failed_record

FORWARDED_ENV = ("HARNESS_CACHE_DIR", "HARNESS_DISABLE_PLUGINS", "HARNESS_PLUGINS")
#: a run still alive this long after ``trainer.max_time`` (plus half of it) is cancelled as a timeout;
#: Lightning stops training gracefully at max_time, the grace covers data preparation and testing
GRACE_ENV = "HARNESS_RUN_TIMEOUT_GRACE"
DEFAULT_GRACE_S = 120.0
#: ``0``: no warm-up tasks on the local Ray instance (:meth:`RayExecutor._warm_workers`)
WARM_ENV = "HARNESS_RAY_WARM_WORKERS"


def _capacity(nodes: list[dict[str, Any]], cpus: float, gpus: float) -> int:
    total = 0
    for node in nodes:
        res = node.get("Resources", {})
        fits = math.floor(res.get("CPU", 0.0) / cpus + 1e-9) if cpus > 0 else 10**6
        if gpus > 0:
            fits = min(fits, math.floor(res.get("GPU", 0.0) / gpus + 1e-9))
        total += max(0, fits)
    return total


def _check_dashboard_packages() -> None:
    """Refuse ``--dashboard`` before Ray starts when Ray's dashboard packages are missing."""
    try:
        from ray._private.utils import get_dashboard_dependency_error

        missing = get_dashboard_dependency_error()
    except Exception:  # noqa: BLE001 - Ray moved its check: let ray.init tell
        return
    if missing:
        raise HarnessError(
            f"--dashboard needs Ray's dashboard packages ({missing}). Install them with "
            "`pip install 'harness[dashboard]'` (Ray's `ray[default]` extra), or drop --dashboard."
        )


def _token_hint(url: str) -> str:
    """How to sign in to the dashboard at ``url`` when Ray's token authentication guards it."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{url}/api/version", timeout=5).close()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            path = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
            return f"  (Ray token authentication: sign in with the token in {path})"
    except OSError:
        pass
    return ""


def hard_limit(spec: RunSpec) -> float | None:
    """Seconds after which a run is cancelled as a timeout (None: no limit)."""
    max_time = spec.trainer.max_time
    if not max_time:
        return None
    return float(max_time) * 1.5 + float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S))


@dataclass
class _Running:
    spec: RunSpec
    started: float
    wall_started: float
    limit: float | None
    #: (kind, message, status) once the driver cancelled it
    stopped: tuple[FailureKind, str, Status] | None = None


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, dashboard: bool = False) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.dashboard = dashboard
        self.dashboard_url: str | None = None
        self.capacity = 1
        self.unscheduled = 0
        self.deadline_hit = False
        self.execution = ExecutionSpec()
        self.recorder: Any = None
        #: the warm-up tasks submitted by :meth:`start` (never waited on)
        self.warming: list[Any] = []
        self._owned = False

    def start(self, resources: ResourcesSpec, execution: ExecutionSpec) -> None:
        import ray

        self.execution = execution
        if not ray.is_initialized():
            # the dashboard only for a local instance we start: a cluster has its own
            dashboard = self.dashboard and not self.address
            context = self._init(ray, dashboard)
            self._owned = True
            url = getattr(context, "dashboard_url", None) if dashboard else None
            if url:
                self.dashboard_url = f"http://{url}" + _token_hint(f"http://{url}")
        ray_console(False)
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        workers = resources.workers
        slots = _capacity(nodes, resources.cpus, resources.gpus)
        self.capacity = slots // workers
        if self.capacity < 1:
            largest = max(
                nodes,
                key=lambda n: (n["Resources"].get("GPU", 0), n["Resources"].get("CPU", 0)),
                default=None,
            )
            have = largest["Resources"] if largest else {}
            self.close()
            raise ResourceError(
                f"The suite asks for {describe_request(resources)} per run, but "
                + (
                    "no node of the Ray cluster can host that"
                    if workers == 1
                    else f"the Ray cluster can host only {slots} worker(s) of that size"
                )
                + f" (largest node: {have.get('CPU', 0):g} CPUs, "
                f"{have.get('GPU', 0):g} GPUs; {len(nodes)} node(s)). Lower `resources` in the suite, "
                "or join a cluster with more or bigger nodes via --address."
            )
        if self.recorder is None:
            self.recorder = self._make_recorder()  # before the warm-ups: it takes a worker of its own
        self._warm_workers(resources)

    def _warm_workers(self, resources: ResourcesSpec) -> None:
        """On a local instance started here: one warm-up task per run slot, with a run's resources,
        importing what runs need (:func:`~harness.scheduler.ray_tasks.warm_worker`). Not waited on:
        the workers import torch and Lightning while the driver imports MLflow and opens its store,
        and the first runs queue behind them on the same workers (Ray hands a free slot to the
        worker that went idle last). ``HARNESS_RAY_WARM_WORKERS=0`` turns it off; a joined cluster
        and data-parallel runs (their Ray Train workers are actors of their own) are not warmed."""
        if (
            not self._owned
            or self.address
            or resources.workers > 1
            or os.environ.get(WARM_ENV, "1").strip() == "0"
        ):
            return
        import ray

        from harness.scheduler.ray_tasks import warm_worker

        task = ray.remote(warm_worker).options(
            name="harness:warm-up", max_retries=0, num_cpus=resources.cpus, num_gpus=resources.gpus
        )
        self.warming = [task.remote() for _ in range(self.capacity)]

    def _init(self, ray: Any, dashboard: bool) -> Any:
        """``ray.init``, bounded: join ``self.address`` (probed first) within
        ``HARNESS_RAY_CONNECT_TIMEOUT``, or start a private local instance, listening on 127.0.0.1
        only, within ``HARNESS_RAY_START_TIMEOUT``."""
        if dashboard:
            _check_dashboard_packages()
        if self.address:
            limit = env_seconds(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_S)
            probe_gcs(self.address, limit)
        else:
            limit = env_seconds(START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_S)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        local: dict[str, Any] = {} if self.address else {"_node_ip_address": "127.0.0.1"}
        before = None if self.address else child_pids()
        try:
            with (
                time_limit(limit),
                nullcontext() if self.address else loopback_node(),
                lean_local_instance(enabled=not self.address and not dashboard),
            ):
                return ray.init(
                    address=self.address,
                    include_dashboard=dashboard,
                    dashboard_host="127.0.0.1",  # never on other interfaces
                    log_to_driver=False,
                    logging_level=logging.ERROR,  # keep start-up chatter (auth notice) off the console
                    runtime_env={"env_vars": env} if env and self.address else None,
                    **local,
                )
        except TimeUp:
            undo_init(ray, before)
            if self.address:
                raise ServiceUnreachable(
                    f"Cannot join the Ray cluster at `{self.address}`: no answer within {limit:g} s "
                    f"({CONNECT_TIMEOUT_ENV} sets the limit, default {DEFAULT_CONNECT_TIMEOUT_S:g} s). "
                    + HOW_TO_JOIN
                ) from None
            raise ServiceUnreachable(
                f"The local Ray instance did not start within {limit:g} s ({START_TIMEOUT_ENV} sets the "
                f"limit, default {DEFAULT_START_TIMEOUT_S:g} s; a loaded machine may need more). Ray's "
                "logs are under /tmp/ray/session_latest/logs. Or use --executor local, which runs the "
                "cells in this process without Ray."
            ) from None
        except Exception as exc:
            undo_init(ray, before)
            cause = clip(f"{type(exc).__name__}: {plain_line(str(exc))}").rstrip(".")
            if self.address:
                raise ServiceUnreachable(
                    f"Cannot join the Ray cluster at `{self.address}` ({cause}). A cluster with token "
                    "authentication needs RAY_AUTH_MODE=token here too, and the same Ray version. "
                    + HOW_TO_JOIN
                ) from None
            raise ServiceUnreachable(
                f"Could not start a local Ray instance ({cause}). Ray's logs are under "
                "/tmp/ray/session_latest/logs; or use --executor local, which runs the cells in this "
                "process without Ray."
            ) from None

    def _instance_death(self, exc: BaseException | None) -> str | None:
        """Why the Ray instance itself is gone, or None: a dead raylet / GCS of the local instance
        started here (a few ``poll()`` calls), or ``exc`` (a task's error) saying this driver's
        raylet died (``LocalRayletDiedError``). No retry can run then: every cell would fail at once."""
        if self._owned and not self.address:
            dead = dead_local_processes()
            if dead is not None:
                return f"the local Ray instance harness started: {dead}"
        if exc is not None and any(type(e).__name__ == "LocalRayletDiedError" for e in exception_chain(exc)):
            where = "the local Ray instance harness started" if self._owned else "this driver's Ray node"
            return f"{where}: its raylet died"
        return None

    def _stop_on_instance_death(
        self,
        exc: BaseException | None,
        run: _Running | None,
        pending: dict[Any, _Running],
        queue: deque[RunSpec],
        on_result: OnResult,
    ) -> None:
        """When the Ray instance died (see :meth:`_instance_death`), end the suite: ``run`` (the
        cell whose error ``exc`` is, popped from ``pending``) and the other running cells are
        recorded failed (``infrastructure``) with that one cause, the queued ones are left unstarted
        (``unscheduled``), and a :class:`ServiceUnreachable` says what to do. Otherwise return (a
        worker died: the caller retries). Cheap enough to call on every turn with ``exc`` None."""
        cause = self._instance_death(exc)
        if cause is None:
            return
        self.recorder = None  # its actor went with the instance: asking it would wait 10 s a cell
        message = f"the Ray instance this suite runs on died ({cause}); run the suite again to resume"
        running = [*([run] if run is not None else []), *pending.values()]
        pending.clear()
        for each in running:
            on_result(self._stopped_result(each, "infrastructure", message, "failed"))
        self.unscheduled = len(queue)
        queue.clear()
        check = (
            "Ray's logs are in /tmp/ray/session_latest/logs (raylet.out, gcs_server.out); a process "
            "killed by the out-of-memory killer means the cells need more memory than this machine has"
            if self._owned and not self.address
            else "check the cluster (`ray status` on the head node)"
        )
        raise ServiceUnreachable(
            f"The Ray instance this suite runs on died: {cause}. {len(running)} running cell(s) "
            f"recorded as failed (infrastructure), {self.unscheduled} not started; finished cells are "
            f"kept in the results file and MLflow. Run the same command again to resume (finished "
            f"cells are skipped); {check}."
        )

    def _make_recorder(self) -> Any:
        import ray

        from harness.scheduler.ray_tasks import HistoryRecorder

        try:
            return ray.remote(num_cpus=0, max_restarts=0)(HistoryRecorder).remote()
        except Exception:  # without it runs still work; stopped runs just lose their partial history
            return None

    def _leftovers(self, run: _Running) -> dict[str, Any]:
        """The streamed history and placement of a run that did not return normally."""
        if self.recorder is None:
            return {}
        import ray

        try:
            return dict(ray.get(self.recorder.take.remote(run.spec.run_id), timeout=10))
        except Exception:
            return {}

    def _stopped_result(
        self,
        run: _Running,
        kind: FailureKind,
        message: str,
        status: Status | None = None,
        exc: BaseException | None = None,
    ) -> RunRecord:
        left = self._leftovers(run)
        return failed_record(
            run.spec,
            exc,
            kind=kind,
            message=message,
            attempts=run.spec.attempt,
            history=left.get("history") or [],
            started=run.wall_started,
            status=status,
            node_id=left.get("node_id"),
        )

    def _poll(self, poll: Any, on_progress: OnProgress | None) -> Any:
        """Hand the epoch rows the recorder collected to ``on_progress``; the next poll's ref.

        Never waits: a poll still in flight is left for the next turn of the loop.
        """
        if on_progress is None or self.recorder is None:
            return None
        import ray

        if poll is not None:
            ready, _ = ray.wait([poll], timeout=0)
            if not ready:
                return poll
            try:
                for run_id, rows in ray.get(poll).items():
                    on_progress(run_id, rows)
            except Exception:  # noqa: BLE001 - live progress is best effort; records carry the history
                pass
        return self.recorder.drain.remote()

    def run(
        self,
        specs: Sequence[RunSpec],
        on_start: OnStart,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
    ) -> None:
        import ray

        from harness.scheduler.ray_tasks import ray_trial
        from harness.train.failures import classify, one_line, worker_died

        if self.recorder is None:
            self.recorder = self._make_recorder()
        remote = ray.remote(ray_trial)
        queue: deque[RunSpec] = deque(specs)
        pending: dict[Any, _Running] = {}
        max_retries, deadline = self.execution.max_retries, self.execution.deadline
        suite_start = time.monotonic()
        self.unscheduled = 0
        poll: Any = None

        def stop_all(kind: FailureKind, message: str) -> None:
            for ref, run in pending.items():
                run.stopped = (kind, message, "killed")
                ray.cancel(ref, force=True)
            for run in list(pending.values()):
                on_result(self._stopped_result(run, kind, message, "killed"))
            pending.clear()
            self.unscheduled = len(queue)
            queue.clear()

        try:
            while queue or pending:
                # a whole turn or nothing: a stop signal is raised between turns, never while a cell is
                # half-started or half-recorded; a swallowed one is still seen here (interrupts.deferred)
                with interrupts.deferred():
                    # a dead local Ray instance (raylet, GCS) ends the suite now, not when a cell ends
                    self._stop_on_instance_death(None, None, pending, queue, on_result)
                    now = time.monotonic()
                    if deadline and now - suite_start > float(deadline):
                        self.deadline_hit = True
                        message = f"suite deadline of {float(deadline):g} s reached; the run was cancelled"
                        stop_all("timeout", message)
                        return
                    while queue and len(pending) < self.capacity:
                        spec = queue.popleft()
                        # a multi-worker run's task only coordinates Ray Train; its workers hold the
                        # resources
                        res = spec.resources
                        ref = remote.options(
                            name=f"harness:{spec.run_id}",
                            max_retries=0,
                            num_cpus=0 if spec.distributed else res.cpus,
                            num_gpus=0 if spec.distributed else res.gpus,
                        ).remote(spec, self.recorder)
                        pending[ref] = _Running(spec, time.monotonic(), time.time(), hard_limit(spec))
                        on_start(spec)
                    for ref, run in pending.items():
                        if run.limit and run.stopped is None and now - run.started > run.limit:
                            limit = run.spec.trainer.max_time
                            message = (
                                f"run still alive {run.limit:.0f} s after it started "
                                f"(trainer.max_time {limit} s); cancelled"
                            )
                            run.stopped = ("timeout", message, "failed")
                            ray.cancel(ref, force=True)
                    poll = self._poll(poll, on_progress)
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                    for ref in ready:
                        run = pending.pop(ref)
                        if run.stopped is not None:
                            on_result(self._stopped_result(run, *run.stopped))
                            continue
                        try:
                            record: RunRecord = ray.get(ref)
                        except Exception as exc:  # worker died (kill -9, node lost), Ray OOM kill...
                            self._stop_on_instance_death(exc, run, pending, queue, on_result)
                            attempt = run.spec.attempt
                            if worker_died(exc) and attempt <= max_retries:
                                self._leftovers(run)  # drop the dead attempt's rows
                                queue.appendleft(run.spec.model_copy(update={"attempt": attempt + 1}))
                                continue
                            cause = "worker died: " if classify(exc) == "infrastructure" else ""
                            message = f"{cause}{one_line(exc)} (attempt {attempt} of {max_retries + 1})"
                            on_result(self._stopped_result(run, classify(exc), message, exc=exc))
                            continue
                        if self.recorder is not None:
                            self.recorder.take.remote(run.spec.run_id)  # free its rows; no need to wait
                        on_result(record)
        except interrupts.Interrupted as stop:
            interrupts.acknowledge()
            stop_all("killed", f"interrupted ({stop.how}); run the suite again to resume")
            raise

    def close(self) -> None:
        self.warming = []
        if self.recorder is not None:
            import ray

            try:
                ray.kill(self.recorder)
            except Exception:
                pass
            self.recorder = None
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False
        if "ray" in sys.modules:  # after the shutdown: nothing Ray publishes while it ends is printed
            ray_console(True)
