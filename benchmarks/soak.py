"""Soak: the fault drill's faults at random times over a long suite, until it is done (issue 17).

An N-cell suite (default 1,000) of the trivially fast ``instant`` architecture runs on a local
Ray instance with a real ``mlflow server`` on 127.0.0.1. While it runs, faults arrive at random
moments: the tracking server is killed and started again, a Ray worker is killed (kill -9), the
results file's last line is cut, the driver gets SIGTERM, SIGINT or kill -9. A driver that ended
is started again (as a user would: the same command), until one exits 0. Then it counts, in the
results file and in MLflow: cells with no finished record or child run (lost), cells with more
than one (duplicates), runs left RUNNING.

    .venv/bin/python benchmarks/soak.py                      # 1,000 cells (~25 min on 2 cores)
    .venv/bin/python benchmarks/soak.py --cells 60 --seed 1  # a quick version
    .venv/bin/python benchmarks/soak.py --keep /tmp/soak     # keep the folder to look at

Needs the repository root as working directory (it loads ``tests/fault_plugin.py`` and
``tests/helpers.py``). Prints one JSON object with the figures; exit code 1 if anything was lost
or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: the faults and how often each is drawn
FAULTS = {
    "restart_server": 3,
    "kill_worker": 3,
    "cut_results": 2,
    "sigterm_driver": 2,
    "sigint_driver": 1,
    "kill9_driver": 1,
}


def write_suite(folder: Path, cells: int) -> Path:
    import yaml

    suite = {
        "name": "soak",
        "seeds": list(range(cells)),
        "tasks": [{"name": "fault", "params": {"num_train": 32, "length": 4}}],
        "architectures": [{"name": "instant"}],
        "trainer": {"max_epochs": 1, "batch_size": 32},
        "measure": {"latency": False, "flops": False, "memory": False},
        "resources": {"cpus": 1},
        "execution": {"max_retries": 3},
    }
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def env_for(folder: Path) -> dict[str, str]:
    from tests.helpers import fault_env

    return fault_env(folder / "cache", COLUMNS="160")


def running_workers(folder: Path) -> list[int]:
    """Pids of this soak's Ray worker processes (their environment names its data cache: never
    another suite's on the same machine), busy ones first: a process title ``ray::harness:<run
    id>`` (running a cell) or else ``ray::IDLE`` (read from /proc: Linux). With cells of a
    fraction of a second most workers are idle at any moment; killing one still tests retries."""
    mine = f"HARNESS_CACHE_DIR={folder / 'cache'}".encode()
    busy, idle = [], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("ray::") or mine not in (entry / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        if title.startswith("ray::harness:"):
            busy.append(int(entry.name))
        elif title.startswith("ray::IDLE"):
            idle.append(int(entry.name))
    return busy or idle


def check(folder: Path, url: str, cells: int) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from harness.tracking.results import ResultsFile

    results = ResultsFile(folder / "results" / "soak.jsonl")
    records = results.read()
    in_file = Counter(r.run_id for r in records if r.finished)
    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("soak")
    if experiment is None:
        raise SystemExit("no experiment `soak` in the store: the driver never reached it")
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    in_mlflow = Counter(
        c.data.tags["harness.run_id"]
        for c in children
        if c.info.status == "FINISHED" and "harness.superseded_by" not in c.data.tags
    )
    ids = {r.run_id for r in records}
    return {
        "cells_in_file": len(ids),
        "lost_in_file": cells - len(in_file),
        "duplicates_in_file": sum(1 for n in in_file.values() if n > 1),
        "lost_in_mlflow": cells - len(in_mlflow),
        "duplicates_in_mlflow": sum(1 for n in in_mlflow.values() if n > 1),
        "running_left": sum(1 for r in runs if r.info.status == "RUNNING"),
        "unreadable_lines": len(results.unreadable),
        "invocations": sum(1 for r in runs if "mlflow.parentRunId" not in r.data.tags),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="random seed of the fault schedule")
    parser.add_argument("--mean-gap", type=float, default=25.0, help="mean seconds between faults")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()

    from tests.helpers import MlflowServer

    rng = random.Random(args.seed)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="harness-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    suite = write_suite(folder, args.cells)
    env = env_for(folder)
    results = folder / "results" / "soak.jsonl"
    server = MlflowServer(folder)
    url = server.start()
    command = [sys.executable, "-m", "harness.cli", "run", str(suite), "--tracking-uri", url]
    injected: Counter[str] = Counter()
    exits: Counter[int] = Counter()
    started = time.monotonic()
    log = (folder / "driver.log").open("a")
    try:
        while True:
            driver = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
            while driver.poll() is None:
                gap = rng.expovariate(1.0 / args.mean_gap)
                end = time.monotonic() + gap
                while time.monotonic() < end and driver.poll() is None:
                    time.sleep(0.2)
                if driver.poll() is not None:
                    break
                fault = rng.choices(list(FAULTS), weights=list(FAULTS.values()))[0]
                if fault == "restart_server":
                    server.kill()
                    time.sleep(rng.uniform(0.5, 10.0))
                    server.start()
                elif fault == "kill_worker":
                    workers = running_workers(folder)
                    if not workers:
                        continue
                    try:
                        os.kill(rng.choice(workers), signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                elif fault == "cut_results":
                    if not results.exists() or results.stat().st_size < 200:
                        continue
                    data = results.read_bytes()
                    results.write_bytes(data[: -rng.randint(10, 150)])
                else:
                    sig = {
                        "sigterm_driver": signal.SIGTERM,
                        "sigint_driver": signal.SIGINT,
                        "kill9_driver": signal.SIGKILL,
                    }[fault]
                    driver.send_signal(sig)
                    driver.wait(timeout=300)
                injected[fault] += 1
            exits[driver.returncode] += 1
            if driver.returncode == 0:
                break
            if driver.returncode == 2:  # refused (the server is down): wait a little, as a user would
                time.sleep(3.0)
            if sum(exits.values()) > 200:
                raise SystemExit("the driver never finished the suite: see driver.log")
        wall = time.monotonic() - started
        sync = subprocess.run(
            [sys.executable, "-m", "harness.cli", "sync", str(suite), "--tracking-uri", url],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        figures = {
            "cells": args.cells,
            "faults_injected": sum(injected.values()),
            "faults": dict(injected),
            "driver_exit_codes": {str(k): v for k, v in exits.items()},
            "wall_s": round(wall, 1),
            "sync_after": sync.stdout.strip(),
            **check(folder, url, args.cells),
            "folder": str(folder),
        }
    finally:
        log.close()
        server.kill()
    print(json.dumps(figures, indent=2))
    bad = figures["lost_in_file"] + figures["lost_in_mlflow"] + figures["duplicates_in_file"]
    return 1 if bad + figures["duplicates_in_mlflow"] + figures["running_left"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
