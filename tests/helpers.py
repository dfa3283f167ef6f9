"""Shared test helpers: write suites, build plans and payloads, read MLflow back."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import yaml

TINY_TRAINER = {"max_epochs": 2, "batch_size": 64, "lr": 0.003}
TINY_ADDING = {"length": 12, "num_train": 128, "num_val": 64, "num_test": 64}


def write_suite(directory: Path, data: dict[str, Any] | str, name: str = "suite.yaml") -> Path:
    path = directory / name
    text = textwrap.dedent(data) if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def tiny_suite(name: str = "tiny", archs: list[str] | None = None, tasks: list[str] | None = None, **extra: Any) -> dict[str, Any]:
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


def payloads(suite_path: Path, cache_dir: Path) -> list[dict[str, Any]]:
    from harness.matrix import build_plan
    from harness.plugins import get_registry
    from harness.suite import load_suite

    plan = build_plan(load_suite(suite_path), get_registry())
    return [{**c.payload(), "cache_dir": str(cache_dir)} for c in plan.runnable]


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
BROKEN_TASKS = '''
from harness import hookimpl, Task, TaskInfo, InputSpec, DataConfig

class _Base(Task):
    def info(self):
        return TaskInfo(InputSpec("continuous", 8), "classification", 10, "ce", ("accuracy",), "accuracy", "max")
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

@hookimpl
def register_tasks(register):
    register(NanTask)
    register(CrashTask)
'''


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--enable-logging=stderr", "--v=0"]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Debian chromium with the usual flags (callers skip when ``CHROMIUM`` is None)."""
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """The page's console messages (errors included) from chromium's stderr log."""
    return [line for line in stderr.splitlines() if re.search(r"CONSOLE[(:]", line)]
