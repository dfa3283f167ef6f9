"""Shared test helpers: write suites, build plans and run specs, synthetic run records, read MLflow back."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from harness.records import Direction, FailureKind, RunRecord, RunSpec, Status

TINY_TRAINER = {"max_epochs": 2, "batch_size": 64, "lr": 0.003}
TINY_ADDING = {"length": 12, "num_train": 128, "num_val": 64, "num_test": 64}


def write_suite(directory: Path, data: dict[str, Any] | str, name: str = "suite.yaml") -> Path:
    path = directory / name
    text = textwrap.dedent(data) if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def tiny_suite(
    name: str = "tiny", archs: list[str] | None = None, tasks: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    task_entries = []
    for task in tasks or ["digits", "adding"]:
        entry: dict[str, Any] = {"name": task}
        if task == "adding":
            entry["params"] = dict(TINY_ADDING)
        task_entries.append(entry)
    suite = {
        "name": name,
        "seeds": [0],
        "tasks": task_entries,
        "architectures": [{"name": a} for a in (archs or ["gru"])],
        "trainer": dict(TINY_TRAINER),
    }
    suite.update(extra)
    return suite


def payloads(suite_path: Path, cache_dir: Path) -> list[RunSpec]:
    """The runnable specs of the suite's plan, with their data cache in ``cache_dir``."""
    from harness.matrix import build_plan
    from harness.plugins import get_registry
    from harness.suite import load_suite

    plan = build_plan(load_suite(suite_path), get_registry())
    return [spec.model_copy(update={"cache_dir": str(cache_dir)}) for spec in plan.runnable]


#: the plugin distribution synthetic records name for their task and architecture
TEST_PLUGIN = "harness==0.0.0"


def make_spec(
    task: str = "digits",
    arch: str = "gru",
    seed: int = 0,
    *,
    suite: str = "s",
    metric: str = "accuracy",
    direction: Direction = "max",
    run_id: str | None = None,
    task_label: str | None = None,
    arch_label: str | None = None,
    grid: dict[str, Any] | None = None,
    skip_reason: str | None = None,
    task_plugin: str = TEST_PLUGIN,
    arch_plugin: str = TEST_PLUGIN,
    data_version: str = "1",
    harness_version: str = "0.0.0",
    git_commit: str | None = None,
) -> RunSpec:
    """A synthetic :class:`RunSpec` (default trainer, one metric) with a plan provenance."""
    from harness.records import PlanProvenance, PluginRef, RunSpec
    from harness.settings import TrainerSpec

    return RunSpec(
        run_id=run_id or f"{suite}-{task_label or task}-{arch_label or arch}-{seed}",
        suite=suite,
        task=task,
        task_label=task_label or task,
        task_params={},
        architecture=arch,
        arch_label=arch_label or arch,
        arch_params={},
        grid=grid or {},
        seed=seed,
        trainer=TrainerSpec(),
        metrics=(metric,),
        primary_metric=metric,
        direction=direction,
        provenance=PlanProvenance(
            harness=harness_version,
            task_plugin=PluginRef.parse(task_plugin),
            arch_plugin=PluginRef.parse(arch_plugin),
            data_version=data_version,
            git_commit=git_commit,
        ),
        skip_reason=skip_reason,
    )


def make_record(
    task: str = "digits",
    arch: str = "gru",
    seed: int = 0,
    value: float | None = None,
    status: Status = "finished",
    *,
    metric: str = "accuracy",
    direction: Direction = "max",
    run_id: str | None = None,
    error: str = "boom",
    kind: FailureKind = "exception",
    cost: dict[str, float] | None = None,
    history: list[dict[str, float]] | None = None,
    gradient_flow: dict[str, Any] | None = None,
    device: str = "",
    host: str = "",
    versions: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    **spec: Any,
) -> RunRecord:
    """A synthetic :class:`RunRecord` of ``task`` × ``arch`` · ``seed``.

    ``value`` is the test value of the primary ``metric`` (none recorded when None); a failed or
    killed record carries a :class:`Failure` of ``kind`` with message ``error``; a skipped one
    takes its reason from ``skip_reason`` (a ``spec`` keyword, see :func:`make_spec`). Finished
    and failed records get a runtime (``device``, ``host``, library ``versions``).
    """
    from harness.records import Failure, RunRecord, RuntimeInfo

    run_spec = make_spec(task, arch, seed, metric=metric, direction=direction, run_id=run_id, **spec)
    failed = status in ("failed", "killed")
    return RunRecord(
        spec=run_spec,
        status=status,
        failure=Failure(kind=kind, message=error) if failed else None,
        metrics={f"test_{metric}": value} if value is not None else {},
        cost=dict(cost or {}),
        history=list(history or []),
        gradient_flow=gradient_flow,
        runtime=None
        if status == "skipped"
        else RuntimeInfo(host=host, device=device, versions=dict(versions or {})),
        parent_run_id=parent_run_id,
    )


def failure_details(record: RunRecord) -> str:
    """What a test shows when a run it expected to finish did not: the failure's traceback, else
    its message."""
    if record.failure is None:
        return f"{record.spec.label}: {record.status}"
    return f"{record.spec.label}: {record.failure.kind}: {record.failure.traceback or record.failure.message}"


def mlflow_runs(db: Path, experiment: str) -> tuple[Any, list[Any], list[Any]]:
    """(client, parent runs, child runs) of ``experiment`` in the sqlite store ``db``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} not found in {db}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


#: a plugin module with two tasks that fail: a NaN loss, and a data source that raises
BROKEN_TASKS = """
from harness import hookimpl, Task, TaskInfo, InputSpec, DataConfig

class _Base(Task):
    def info(self):
        return TaskInfo(
            InputSpec("continuous", 8), "classification", 10, "ce", ("accuracy",), "accuracy", "max"
        )
    def datamodule(self, config: DataConfig):
        from harness_builtins.tasks.digits import DigitsTask
        return DigitsTask().datamodule(config)

class NanTask(_Base):
    name = "nan_task"
    def loss(self, prediction, target):
        return prediction.sum() * float("nan")

class CrashTask(_Base):
    name = "crash_task"
    def datamodule(self, config):
        raise RuntimeError("data source unavailable")

class _Regression(Task):
    # the adding problem, tiny; divergence_bound: 100x the trivial predictor's MSE (1/6)
    def info(self):
        return TaskInfo(
            InputSpec("continuous", 2, max_length=8), "regression", 1, "mse", ("mse",), "mse", "min",
            divergence_bound=100 / 6,
        )
    def datamodule(self, config: DataConfig):
        from harness_builtins.tasks.adding import AddingTask
        return AddingTask({"length": 8, "num_train": 64, "num_val": 32, "num_test": 32}).datamodule(config)

class HugeTestTask(_Regression):
    # trains normally; at evaluation its predictions are scaled by 1e13 (test MSE ~1e26)
    name = "huge_test_task"
    def metric_inputs(self, prediction, target):
        import torch
        if not torch.is_grad_enabled():
            prediction = prediction * 1e13
        return super().metric_inputs(prediction, target)

class InfTestTask(_Regression):
    # trains normally; its evaluation loss is infinite
    name = "inf_test_task"
    def loss(self, prediction, target):
        import torch
        loss = super().loss(prediction, target)
        return loss if torch.is_grad_enabled() else loss * float("inf")

@hookimpl
def register_tasks(register):
    register(NanTask)
    register(CrashTask)
    register(HugeTestTask)
    register(InfTestTask)
"""


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Debian chromium with the usual flags (callers skip when ``CHROMIUM`` is None)."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=120, check=False
    )


def console_messages(stderr: str) -> list[str]:
    """The page's console messages (errors included) from chromium's stderr log."""
    return [line for line in stderr.splitlines() if re.search(r"CONSOLE[(:]", line)]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def harness_local(cwd: Path, suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``harness run SUITE --executor local ARGS`` as a subprocess in ``cwd`` (output piped, the
    default MLflow store of ``cwd``, data cached under ``cwd/cache``)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["HARNESS_CACHE_DIR"] = str(cwd / "cache")
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "--executor", "local", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ctrl_c_able() -> None:
    """``preexec_fn`` of a child process a test will Ctrl-C (SIGINT): Python turns SIGINT into
    KeyboardInterrupt only when the process starts with SIGINT at its default, and a test run
    started in the background (``cmd &`` in a script, as some CI runners do) passes SIGINT on
    ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pip_install_editable(*args: str) -> list[str]:
    """The quiet, offline ``pip install --no-deps --no-build-isolation`` command the plugin tests
    run (``args``: e.g. ``--prefix P -e SOURCE``)."""
    import sys

    return [
        sys.executable,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--no-input",
        "-q",
        "install",
        "--no-deps",
        "--no-build-isolation",
        *args,
    ]


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 that a test can kill (the whole process group, as a
    crash would) and start again on the same port and store."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root, self.port = root, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> str:
        import sys
        import time
        import urllib.request

        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--backend-store-uri", f"sqlite:///{self.root / 'server.db'}"]
        command += ["--artifacts-destination", str(self.root / "server-artifacts"), "--workers", "1"]
        self.proc = subprocess.Popen(
            command,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.3)

    def kill(self, sig: int | None = None) -> None:
        import os
        import signal

        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig or signal.SIGKILL)  # its workers live in its process group
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
        self.proc = None


#: the repository root (the ``tests`` package's parent): on PYTHONPATH, Ray workers load test plugins
REPO = Path(__file__).resolve().parents[1]


def fault_env(cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``harness`` subprocess that loads the ``fault`` test plugin (in Ray
    workers too: the repository root goes on PYTHONPATH), with its data cache in ``cache`` and
    no MLflow URI, Ray address or plugin switches inherited from the test run."""
    import os

    env = {
        **os.environ,
        "HARNESS_PLUGINS": "tests.fault_plugin",
        "HARNESS_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "RAY_AUTH_MODE": "token",
        "COLUMNS": "200",
        **extra,
    }
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "HARNESS_DISABLE_PLUGINS"):
        env.pop(name, None)
    return env


def harness_run(cwd: Path, suite: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """``harness run SUITE ARGS`` as a subprocess in ``cwd`` with :func:`fault_env` (cache ``cwd/cache``)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(suite), *args],
        cwd=cwd,
        env=fault_env(cwd / "cache"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
