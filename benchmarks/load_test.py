"""Load test: an N-cell suite (default 1000) of a trivially fast architecture on a local 2-node Ray cluster.

Checks that MLflow ends with exactly N FINISHED child runs (none lost, no run id twice) and
reports the driver's peak memory (RSS), the wall time per cell, and how much of it the driver
spends logging one child run to MLflow (the single writer of the sqlite store).

    .venv/bin/python benchmarks/load_test.py --cells 1000 [--out /tmp/load]   # ~20 min on 2 cores
    .venv/bin/python benchmarks/load_test.py --cells 100                       # the CI-sized version
    .venv/bin/python benchmarks/load_test.py --ray-train-cost                  # workers: 2 vs a plain task

Needs the repository root as working directory (it loads ``tests/fault_plugin.py`` and starts the
cluster with ``tests/scheduler/cluster.py``). Prints one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: runs ``harness run`` and reports its own peak RSS on exit (it is the driver process)
DRIVER = (
    "import atexit, resource, runpy, sys\n"
    "atexit.register(lambda: print('DRIVER_PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
    " file=sys.stderr))\n"
    "sys.argv = ['harness', *sys.argv[1:]]\n"
    "runpy.run_module('harness.cli', run_name='__main__')\n"
)


def write_suite(folder: Path, cells: int) -> Path:
    import yaml

    suite = {
        "name": "load",
        "seeds": list(range(cells)),
        "tasks": [{"name": "fault", "params": {"num_train": 32, "length": 4}}],
        "architectures": [{"name": "instant"}],
        "trainer": {"max_epochs": 1, "batch_size": 32},
        "measure": {"latency": False, "flops": False, "memory": False},
    }
    path = folder / "load.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def check_mlflow(db: Path, cells: int) -> dict[str, Any]:
    """Counts of child runs in the store: all FINISHED, each run id once."""
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("load")
    if experiment is None:
        raise RuntimeError(f"no experiment `load` in the store {db}: the suite logged nothing")
    runs: list[Run] = []
    token = None
    while True:  # page through: a single search returns at most 1000 runs
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    per_id = Counter(c.data.tags["harness.run_id"] for c in children if c.info.status == "FINISHED")
    # the driver's own account (parent run metrics): seconds per child run spent by the scheduling
    # loop on MLflow (queueing, waiting for a child's id) and by the background writer thread
    driver = {
        key: round(parents[-1].data.metrics.get(f"suite/{key}", float("nan")), 5)
        for key in ("driver_logging_s_per_child", "mlflow_thread_s_per_child")
    }
    return {
        "children": len(children),
        "running_children": sum(1 for c in children if c.info.status == "RUNNING"),
        "finished_run_ids": len(per_id),
        "duplicated_run_ids": sum(1 for n in per_id.values() if n > 1),
        "lost": cells - len(per_id),
        "parents": len(parents),
        **driver,
    }


def logging_cost(results: Path, samples: int = 50) -> float:
    """Seconds one child run's MLflow logging takes, done synchronously (a scratch sqlite store):
    what the driver's scheduling loop paid per child before logging moved to a writer thread."""
    from harness.tracking.mlflow_store import MlflowTracker
    from harness.tracking.results import ResultsFile

    records = ResultsFile(results).read()[:samples]
    with tempfile.TemporaryDirectory() as scratch:
        tracker = MlflowTracker(f"sqlite:///{scratch}/m.db", "scratch")
        tracker.connect()
        tracker.start_parent("p", {}, {}, "")
        tracker.log_child(records[0])  # warm up
        start = time.perf_counter()
        for record in records:
            tracker.log_child(record)
        return (time.perf_counter() - start) / len(records)


def run_load(cells: int, out: Path, address: str | None = None) -> dict[str, Any]:
    from harness.tracking.results import ResultsFile
    from tests.scheduler.cluster import ray_cluster

    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HARNESS_PLUGINS": "tests.fault_plugin",
        "HARNESS_CACHE_DIR": str(out / "cache"),
        "PYTHONPATH": str(REPO),
        "RAY_AUTH_MODE": "token",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    suite = write_suite(out, cells)

    def drive(addr: str) -> tuple[float, int, str]:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER, "run", str(suite), "--address", addr],
            cwd=out,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        rss = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("DRIVER_PEAK_RSS_KB")]
        if proc.returncode != 0:
            raise SystemExit(
                f"harness run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return wall, int(rss[0]) if rss else -1, proc.stdout

    if address:
        wall, rss, stdout = drive(address)
    else:
        with ray_cluster(env, nodes=2, cpus=2) as addr:
            wall, rss, stdout = drive(addr)
    counts = check_mlflow(out / "mlflow.db", cells)
    records = ResultsFile(out / "results" / "load.jsonl").read()
    per_log = logging_cost(out / "results" / "load.jsonl")
    run_wall = [r.wall_time_s for r in records]
    figures = {
        "cells": cells,
        "wall_s": round(wall, 1),
        "wall_per_cell_s": round(wall / cells, 3),
        "driver_peak_rss_mb": round(rss / 1024, 1),
        "records": len(records),
        "finished_records": sum(r.finished for r in records),
        "mean_run_wall_s": round(sum(run_wall) / len(run_wall), 3),
        "mlflow_log_child_s": round(per_log, 4),
        "nodes_used": len({r.runtime.node_id if r.runtime else None for r in records}),
        **counts,
        "last_line": stdout.strip().splitlines()[-3] if stdout.strip() else "",
    }
    return figures


def ray_train_cost(out: Path) -> dict[str, Any]:
    """Wall time of one tiny run as a plain Ray task (workers: 1) and through Ray Train (workers: 2)."""
    import yaml

    from tests.scheduler.cluster import ray_cluster

    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HARNESS_PLUGINS": "tests.fault_plugin",
        "HARNESS_CACHE_DIR": str(out / "cache"),
        "PYTHONPATH": str(REPO),
        "RAY_AUTH_MODE": "token",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    figures: dict[str, Any] = {}
    with ray_cluster(env, nodes=2, cpus=2) as address:
        for workers in (1, 2, 1, 2):  # twice each: the first plain run also pays the workers' imports
            suite = {
                "name": f"cost{workers}",
                "seeds": [0],
                "tasks": [{"name": "fault", "params": {"num_train": 256}}],
                "architectures": [{"name": "instant"}],
                "trainer": {"max_epochs": 2, "batch_size": 32},
                "resources": {"cpus": 1, "workers": workers},
                "measure": {"latency": False, "flops": False, "memory": False},
            }
            path = out / f"cost{workers}.yaml"
            path.write_text(yaml.safe_dump(suite), encoding="utf-8")
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "harness.cli", "run", str(path), "--address", address, "--rerun"],
                cwd=out,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            figures[f"workers{workers}_wall_s"] = round(
                time.perf_counter() - start, 1
            )  # the second run of each counts
    figures["ray_train_fixed_cost_s"] = round(figures["workers2_wall_s"] - figures["workers1_wall_s"], 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument(
        "--address", default=None, help="use this Ray cluster instead of starting a 2-node one"
    )
    parser.add_argument(
        "--ray-train-cost",
        action="store_true",
        help="instead: measure Ray Train's fixed cost (a 2-worker tiny run vs a plain Ray task)",
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="harness-load-"))
    if args.ray_train_cost:
        print(json.dumps(ray_train_cost(out), indent=2))
        return
    print(json.dumps(run_load(args.cells, out, args.address), indent=2))


if __name__ == "__main__":
    main()
