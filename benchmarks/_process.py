"""The benchmarks that time whole ``harness run`` processes (``python -m benchmarks``):

* :func:`whole_process`: ``harness run benchmarks/single_run.yaml --executor local`` against the same
  run written by hand (``benchmarks/plain_adding.py``), paired and interleaved: wall seconds and
  peak RSS of each process.
* :func:`parallel_efficiency`: N equal ``cpus: 1`` runs through real Ray against the ideal
  (the run alone × N / the runs the cores hold at once): the whole invocation's ratio (fixed
  costs included) and the runs' span's (the scheduling alone).
* :func:`packing_curve`: N small LSTM runs sharing one GPU (``gpus: 1/N``) through real Ray, for
  several N: the throughput and the speed-up over one run alone; optionally under CUDA MPS.

Every ``harness run`` runs in a fresh folder of its own (its MLflow sqlite store, results file and
reports there), with ``HARNESS_CACHE_DIR`` set as each function says; nothing is asserted.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
#: the harness CLI of this interpreter (``python -m harness.cli`` is what ``harness`` runs)
HARNESS = (sys.executable, "-m", "harness.cli")
PLAIN_SCRIPT = REPO / "benchmarks" / "plain_adding.py"
SINGLE_RUN = REPO / "benchmarks" / "single_run.yaml"
PARALLEL = REPO / "benchmarks" / "parallel.yaml"
#: one process may take this long before it is stopped (seconds)
PROCESS_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Proc:
    """A finished child process: its wall seconds, peak RSS (MiB; the largest of it and the
    descendants it waited for), exit status and output (stdout and stderr together)."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    output: str
    #: ``time.time()`` when it started and ended
    started: float
    ended: float
    #: CPU seconds of the process: with ``run_process(session_cpu=True)`` every process of its
    #: session (Ray's daemons and workers too), sampled twice a second; else the process and the
    #: descendants it waited for (``wait4``)
    cpu_s: float = math.nan
    #: CPU seconds every other process of the machine used meanwhile (``/proc/stat``, less the
    #: benchmark's own process; NaN elsewhere): ``busy_s - cpu_s`` is what other work took
    busy_s: float = math.nan

    def check(self, what: str) -> Proc:
        if self.returncode != 0:
            tail = "\n".join(self.output.splitlines()[-25:])
            raise RuntimeError(f"{what} exited with {self.returncode}:\n{tail}")
        return self


def run_process(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = PROCESS_TIMEOUT_S,
    session_cpu: bool = False,
) -> Proc:
    """Run ``cmd`` and measure it: wall time, and peak RSS from ``wait4`` (this child's own
    rusage, not every child this process ever had). Output goes to a file, not a pipe, so that a
    daemon that inherits it (Ray's) cannot keep the wait open. Stopped (its whole process group)
    after ``timeout`` seconds. ``session_cpu``: the CPU of every process of the child's session
    (it is started in a new one), sampled every 0.5 s: Ray's workers are not the child's children."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        busy, own = machine_busy_s(), time.process_time()
        session: dict[int, float] = {}
        sampled = 0.0
        started = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, 9)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            if session_cpu and time.perf_counter() - sampled > 0.5:
                session.update(session_cpu_s(proc.pid))
                sampled = time.perf_counter()
            time.sleep(0.005)
        wall = time.perf_counter() - start
        ended = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting
        log.seek(0)
        output = log.read()
    cpu = sum(session.values()) if session_cpu else usage.ru_utime + usage.ru_stime
    others = machine_busy_s() - busy - (time.process_time() - own)
    return Proc(wall, usage.ru_maxrss / 1024, proc.returncode, output, started, ended, cpu, others)


def session_cpu_s(sid: int) -> dict[int, float]:
    """pid → CPU seconds (user + system) of the processes of session ``sid`` (``/proc``; empty
    elsewhere)."""
    found: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[3]) == sid:
                found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return found


def machine_busy_s() -> float:
    """CPU seconds the machine's cores have been busy since boot (``/proc/stat``: all but idle and
    iowait); NaN where there is no ``/proc/stat``."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return math.nan
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a benchmark child: the caller's MLflow URI and plugin
    switches dropped (every run gets its own store), ``extra`` set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS", "RAY_ADDRESS")
    }
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("COLUMNS", "120")  # the tables the harness prints, as a terminal shows them
    return env


def harness_run(
    suite: Path,
    folder: Path,
    cache: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    session_cpu: bool = False,
) -> tuple[Proc, list[dict[str, Any]]]:
    """``harness run SUITE ARGS`` in ``folder`` (created; its own MLflow store, results file and
    reports there) with ``HARNESS_CACHE_DIR=cache``: the process and the records it wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "results.jsonl"
    cmd = [
        *HARNESS, "run", str(suite), "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--results", str(results), "--report-dir", str(folder / "reports"), *args,
    ]  # fmt: skip
    full_env = {**child_env(HARNESS_CACHE_DIR=str(cache)), **(env or {})}
    proc = run_process(cmd, cwd=folder, env=full_env, session_cpu=session_cpu)
    proc.check(" ".join(["harness run", suite.name, *args]))
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    unfinished = [r for r in records if r.get("status") != "finished"]
    if unfinished or not records:
        raise RuntimeError(
            f"harness run {suite.name}: {len(unfinished)} run(s) did not finish:\n{proc.output[-3000:]}"
        )
    return proc, records


def harness_options() -> str:
    """``harness run --help`` (to see which options this harness has)."""
    return run_process([*HARNESS, "run", "--help"], cwd=REPO, env=child_env()).output


def write_suite(path: Path, suite: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(suite), sort_keys=False), encoding="utf-8")
    return path


def load_suite_dict(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


@contextmanager
def scratch(prefix: str, keep: Path | None = None) -> Iterator[Path]:
    """A fresh folder for one benchmark (removed afterwards unless ``keep`` is given: then it is
    ``keep``, made empty first)."""
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        yield keep
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _median_min(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# -- whole process ------------------------------------------------------------------------------
#: --quick: the single run at tiny sizes (same code paths, seconds instead of minutes)
QUICK_SINGLE = {
    "length": 10,
    "num_train": 256,
    "num_val": 64,
    "num_test": 64,
    "hidden_size": 8,
    "max_epochs": 1,
}


def _single_suite(quick: bool) -> dict[str, Any]:
    suite = load_suite_dict(SINGLE_RUN)
    if quick:
        params = suite["tasks"][0]["params"]
        params.update({k: QUICK_SINGLE[k] for k in ("length", "num_train", "num_val", "num_test")})
        suite["architectures"][0]["params"]["hidden_size"] = QUICK_SINGLE["hidden_size"]
        suite["trainer"]["max_epochs"] = QUICK_SINGLE["max_epochs"]
    return suite


def plain_args(suite: Mapping[str, Any]) -> list[str]:
    """``plain_adding.py``'s arguments for the run of ``suite`` (a single_run.yaml-shaped suite)."""
    task, arch, trainer = suite["tasks"][0], suite["architectures"][0], suite["trainer"]
    if (
        task["name"] != "adding"
        or arch["name"] not in ("gru", "lstm")
        or trainer.get("optimizer", "adam") != "adam"
    ):
        raise ValueError("plain_adding.py does the adding problem with a GRU or LSTM and Adam only")
    params = {"length": 50, "num_train": 5000, "num_val": 1000, "num_test": 1000, "data_seed": 1234}
    params.update(task.get("params", {}))
    return [
        "--length", str(params["length"]), "--num-train", str(params["num_train"]),
        "--num-val", str(params["num_val"]), "--num-test", str(params["num_test"]),
        "--data-seed", str(params["data_seed"]), "--cell", arch["name"],
        "--hidden", str(arch.get("params", {}).get("hidden_size", 64)),
        "--batch-size", str(trainer.get("batch_size", 64)), "--epochs", str(trainer.get("max_epochs", 10)),
        "--lr", str(trainer.get("lr", 1e-3)), "--clip", str(trainer.get("gradient_clip_val") or 0),
        "--seed", str(suite.get("seeds", [0])[0]),
        "--threads", str(max(1, int(suite.get("resources", {}).get("cpus", 1)))),
    ]  # fmt: skip


def timings_lines(output: str) -> list[str]:
    """``harness run --timings``' breakdown in ``output``: from its title ("Where the time went",
    or the first line that mentions timings) on, at most 40 lines; or nothing."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        lowered = line.lower()
        if "where the time went" in lowered or "timing" in lowered:
            return [row.rstrip() for row in lines[i : i + 40]]
    return []


def whole_process(
    rounds: int = 3, quick: bool = False, warm: bool = True, keep: Path | None = None
) -> dict[str, Any]:
    """``harness run benchmarks/single_run.yaml --executor local`` against
    ``benchmarks/plain_adding.py`` (the same run by hand), paired and interleaved (which goes first
    alternates), after one untimed warm-up each (``warm``; it fills the OS's file cache).

    Both start cold on the data: the plain script generates its data in every run, and every
    harness run gets a fresh empty ``HARNESS_CACHE_DIR`` (so it generates and caches it), a fresh
    MLflow store, results file and report folder. Peak RSS from ``wait4`` per child. The harness's
    own ``--timings`` breakdown is passed and kept when ``harness run --help`` lists it."""
    suite = _single_suite(quick)
    args = plain_args(suite)
    timings = "--timings" in harness_options()
    extra = ["--executor", "local", *(["--timings"] if timings else [])]
    with scratch("harness-bench-whole-", keep) as root:
        suite_path = write_suite(root / "single_run.yaml", suite)
        plain_cmd = [sys.executable, str(PLAIN_SCRIPT), *args]
        harness: list[tuple[Proc, dict[str, Any]]] = []
        plain: list[tuple[Proc, dict[str, Any]]] = []

        def run_harness(i: int) -> tuple[Proc, dict[str, Any]]:
            folder = root / f"harness-{i}"
            proc, records = harness_run(suite_path, folder, folder / "cache", *extra)
            return proc, records[-1]

        def run_plain(i: int) -> tuple[Proc, dict[str, Any]]:
            proc = run_process(plain_cmd, cwd=root, env=child_env()).check("plain_adding.py")
            return proc, json.loads(proc.output.strip().splitlines()[-1])

        if warm:
            run_harness(-1)
            run_plain(-1)
        for i in range(rounds):
            order = (True, False) if i % 2 == 0 else (False, True)
            for is_harness in order:
                if is_harness:
                    harness.append(run_harness(i))
                else:
                    plain.append(run_plain(i))
    h_wall = [p.wall_s for p, _ in harness]
    p_wall = [p.wall_s for p, _ in plain]
    h_rss = [p.peak_rss_mb for p, _ in harness]
    p_rss = [p.peak_rss_mb for p, _ in plain]
    h_step = [1e3 * r["cost"]["train_time_s"] / max(1.0, r["cost"]["steps"]) for _, r in harness]
    p_step = [r["ms_per_step"] for _, r in plain]
    outside = [p.wall_s - r["wall_time_s"] for p, r in harness]
    last_proc, last = harness[-1]
    return {
        "rounds": rounds,
        "data": "cold for both: the plain script generates its data every run; each harness run gets a "
        "fresh empty HARNESS_CACHE_DIR (and a fresh MLflow store, results file and report folder)",
        "suite": suite,
        "harness_cmd": " ".join(["harness", "run", "single_run.yaml", *extra]),
        "plain_cmd": " ".join(["python", "benchmarks/plain_adding.py", *args]),
        "harness_wall_s": _median_min(h_wall),
        "plain_wall_s": _median_min(p_wall),
        "ratio": statistics.median(h_wall) / statistics.median(p_wall),
        "ratio_min": min(h_wall) / min(p_wall),
        "harness_peak_rss_mb": statistics.median(h_rss),
        "plain_peak_rss_mb": statistics.median(p_rss),
        "harness_ms_per_step": statistics.median(h_step),
        "plain_ms_per_step": statistics.median(p_step),
        "harness_steps": int(last["cost"]["steps"]),
        "plain_steps": int(plain[-1][1]["steps"]),
        "harness_run_wall_s": statistics.median(r["wall_time_s"] for _, r in harness),
        "harness_outside_run_s": statistics.median(outside),
        "harness_test_mse": last["metrics"].get("test_mse"),
        "plain_test_mse": plain[-1][1]["test_mse"],
        "harness_rounds_s": h_wall,
        "plain_rounds_s": p_wall,
        "timings_flag": timings,
        "harness_timings": timings_lines(last_proc.output),
    }


# -- parallel efficiency ------------------------------------------------------------------------
#: --quick: the parallel benchmark at tiny sizes, 4 runs
QUICK_PARALLEL = {
    "length": 6,
    "num_train": 64,
    "num_val": 32,
    "num_test": 32,
    "hidden_size": 8,
    "max_epochs": 1,
}


def _parallel_suite(runs: int, quick: bool) -> dict[str, Any]:
    suite = load_suite_dict(PARALLEL)
    suite["seeds"] = list(range(runs))
    if quick:
        params = suite["tasks"][0]["params"]
        params.update({k: QUICK_PARALLEL[k] for k in ("length", "num_train", "num_val", "num_test")})
        suite["architectures"][0]["params"]["hidden_size"] = QUICK_PARALLEL["hidden_size"]
        suite["trainer"]["max_epochs"] = QUICK_PARALLEL["max_epochs"]
        suite["measure"] = {"latency": False, "flops": False, "memory": False}
    return suite


def _first_run_extra(records: Sequence[Mapping[str, Any]]) -> float:
    """How much longer the first run of each Ray worker process took than the worker's later
    runs (median): the worker's one-time imports and plugin discovery. 0 when no worker ran twice."""
    by_worker: dict[Any, list[Mapping[str, Any]]] = {}
    for record in records:
        by_worker.setdefault((record.get("runtime") or {}).get("pid"), []).append(record)
    extras = []
    for runs in by_worker.values():
        runs = sorted(runs, key=lambda r: r["started_at"])
        if len(runs) > 1:
            extras.append(runs[0]["wall_time_s"] - statistics.median(r["wall_time_s"] for r in runs[1:]))
    return statistics.mean(extras) if extras else 0.0


def parallel_efficiency(
    runs: int = 8, alone: int = 3, quick: bool = False, keep: Path | None = None
) -> dict[str, Any]:
    """``runs`` equal runs (``benchmarks/parallel.yaml``, seeds 0..runs-1, ``cpus: 1``) in one
    ``harness run`` through real Ray (a local instance: one CPU slot per core), against the ideal
    of :func:`parallel_figures`. The cell alone: ``alone`` seeds one after another in one
    ``harness run --executor local``, once before the Ray run and once after it (a machine whose
    speed drifts between the two moves both sides alike); and one seed in a ``harness run`` of its
    own (``ratio_total``). The data cache is shared, and warm for the Ray run. The Ray
    invocation's ``--timings`` breakdown is kept when ``harness run --help``
    lists the flag."""
    suite = _parallel_suite(runs, quick)
    timings = "--timings" in harness_options()
    extra = ["--timings"] if timings else []
    with scratch("harness-bench-parallel-", keep) as root:
        cache = root / "cache"
        single = write_suite(root / "alone.yaml", {**suite, "seeds": list(range(alone))})
        _, before = harness_run(single, root / "alone-before", cache, "--executor", "local")
        one = write_suite(root / "one.yaml", {**suite, "seeds": [0]})
        one_proc, _ = harness_run(one, root / "one", cache, "--executor", "local")
        many = write_suite(root / "parallel.yaml", suite)
        proc, records = harness_run(many, root / "ray", cache, *extra, session_cpu=True)
        _, after = harness_run(single, root / "alone-after", cache, "--executor", "local")
        alone_records = [*before, *after]
    figures = parallel_figures(
        alone_records, records, proc, cpus=float(suite.get("resources", {}).get("cpus", 1)),
        cores=os.cpu_count() or 1, single_process_s=one_proc.wall_s,
    )  # fmt: skip
    return {
        **figures,
        "suite": suite,
        "cmd": " ".join(
            ["harness run parallel.yaml", *extra, "(alone: harness run alone.yaml --executor local)"]
        ),
        "timings_flag": timings,
        "harness_timings": timings_lines(proc.output),
    }


def parallel_figures(
    alone_records: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    proc: Proc,
    *,
    cpus: float,
    cores: int,
    single_process_s: float | None = None,
) -> dict[str, Any]:
    """The parallel-efficiency figures of ``records`` (the runs of one invocation ``proc``):

    * ``ideal_s = alone × runs / slots``: ``alone`` is the median ``wall_time_s`` of
      ``alone_records`` less each process's first (it may also pay imports and plugin
      discovery), ``slots`` how many runs the cores hold at once (``cores // cpus``, at most
      ``runs``);
    * ``ratio``: the invocation's wall time over the ideal (Ray start-up, imports, MLflow and the
      report included: what a user waits for); ``ratio_span``: from the first run's start to the
      last one's end (the scheduling efficiency: runs slowed by their neighbours, gaps between
      runs, an unbalanced last round); ``ratio_span_warm``: that span less the workers' first-run
      extra (their one-time imports, :func:`_first_run_extra`; ~0 when the executor warms its
      workers before the first run);
    * ``ratio_total``: the invocation's wall time over ``single_process_s`` (a whole ``harness run``
      of one run: its process, imports, MLflow and report included) × runs / slots: one invocation
      of the runs against as many one-run invocations, ``slots`` at a time;
    * ``startup_s`` (process start → first run's start) and ``teardown_s`` (last run's end →
      process end): the fixed costs, ``invocation = startup + span + teardown``;
    * ``per_run_slowdown``: a run's median ``wall_time_s`` next to others over its time alone, split
      into its fit (``fit_slowdown``, ``cost.train_time_s``) and the rest (``rest_slowdown``:
      set-up, test, measurements);
    * ``other_load_s``: CPU seconds that processes outside the invocation (and this one) took
      from the cores while it ran (:attr:`Proc.busy_s` − :attr:`Proc.cpu_s`, the invocation's
      whole session): more than a second or two means a busy machine, and figures to take again.
    """
    runs = len(records)
    slots = max(1, min(runs, math.floor(cores / cpus + 1e-9)))
    warm = _after_first(alone_records)
    alone_s = statistics.median(r["wall_time_s"] for r in warm)
    ideal = alone_s * runs / slots
    first = min(r["started_at"] for r in records)
    last = max(r["finished_at"] for r in records)
    span = last - first
    extra = _first_run_extra(records)
    walls = [r["wall_time_s"] for r in records]
    fit_alone = statistics.median(r["cost"]["train_time_s"] for r in warm)
    fit = statistics.median(r["cost"]["train_time_s"] for r in records)
    rest_alone = statistics.median(r["wall_time_s"] - r["cost"]["train_time_s"] for r in warm)
    rest = statistics.median(r["wall_time_s"] - r["cost"]["train_time_s"] for r in records)
    events = sorted([(r["started_at"], 1) for r in records] + [(r["finished_at"], -1) for r in records])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return {
        "runs": runs,
        "cores": cores,
        "cpus_per_run": cpus,
        "slots": slots,
        "max_concurrent_seen": most,
        "alone_runs": len(alone_records),
        "alone_runs_used": len(warm),
        "alone_wall_time_s": alone_s,
        "alone_wall_time_range_s": [min(r["wall_time_s"] for r in warm), max(r["wall_time_s"] for r in warm)],
        "ideal_s": ideal,
        "invocation_wall_s": proc.wall_s,
        "sum_run_wall_s": sum(walls),
        "median_run_wall_s": statistics.median(walls),
        "per_run_slowdown": statistics.median(walls) / alone_s,
        "alone_fit_s": fit_alone,
        "median_run_fit_s": fit,
        "fit_slowdown": fit / fit_alone if fit_alone > 0 else float("nan"),
        "alone_rest_s": rest_alone,
        "median_run_rest_s": rest,
        "rest_slowdown": rest / rest_alone if rest_alone > 0 else float("nan"),
        "startup_s": first - proc.started,
        "span_s": span,
        "teardown_s": proc.ended - last,
        "worker_first_run_extra_s": extra,
        "ratio": proc.wall_s / ideal,
        "ratio_span": span / ideal,
        "ratio_span_warm": (span - extra) / ideal,
        "single_process_wall_s": single_process_s if single_process_s is not None else float("nan"),
        "ratio_total": (
            proc.wall_s / (single_process_s * runs / slots) if single_process_s else float("nan")
        ),
        "other_load_s": proc.busy_s - proc.cpu_s,
    }


def _after_first(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``records`` less the first run of each process (``runtime.pid``), or all of them when no
    process ran more than one."""
    by_process: dict[Any, list[Mapping[str, Any]]] = {}
    for record in records:
        by_process.setdefault((record.get("runtime") or {}).get("pid"), []).append(record)
    later = [r for runs in by_process.values() for r in sorted(runs, key=lambda r: r["started_at"])[1:]]
    return later or list(records)


# -- GPU packing curve --------------------------------------------------------------------------
#: the packing benchmark's run: a small LSTM on the adding problem, trained for a fixed time
PACKING_SUITE: dict[str, Any] = {
    "name": "packing",
    "description": "N small LSTM runs sharing one device (python -m benchmarks --only packing).",
    "tasks": [
        {"name": "adding", "params": {"length": 100, "num_train": 4096, "num_val": 256, "num_test": 256}}
    ],
    "architectures": [{"name": "lstm", "params": {"hidden_size": 64}}],
    "trainer": {"max_epochs": 10000, "batch_size": 64, "lr": 0.002, "gradient_clip_val": 1.0},
    "measure": {"latency": False, "flops": False, "memory": False},
}
QUICK_PACKING = {"length": 8, "num_train": 256, "num_val": 32, "num_test": 32}


def packing_suite(
    n: int, seconds: float, device: str, quick: bool = False, cpus: float | None = None
) -> dict[str, Any]:
    """``n`` runs of the packing run (seeds 0..n-1), each training for ``seconds``
    (``trainer.max_time``), sharing one device: ``gpus: 1/n`` (``cpus`` each, default 1) on
    ``cuda``; on ``cpu`` (a dry run of the same code path) ``cpus: 1/n``, i.e. one core shared."""
    suite: dict[str, Any] = json.loads(json.dumps(PACKING_SUITE))
    suite["seeds"] = list(range(n))
    suite["trainer"]["max_time"] = float(seconds)
    if quick:
        suite["tasks"][0]["params"].update(QUICK_PACKING)
        suite["architectures"][0]["params"]["hidden_size"] = 8
    if device == "cuda":
        suite["resources"] = {"gpus": 1.0 / n, "cpus": 1.0 if cpus is None else cpus}
    else:
        suite["resources"] = {"gpus": 0, "cpus": 1.0 / n if cpus is None else cpus}
    return suite


def _packing_point(n: int, records: Sequence[Mapping[str, Any]], proc: Proc, batch: int) -> dict[str, Any]:
    samples = [r["cost"]["steps"] * batch for r in records]
    rates = [s / r["cost"]["train_time_s"] for s, r in zip(samples, records) if r["cost"]["train_time_s"] > 0]
    span = max(r["finished_at"] for r in records) - min(r["started_at"] for r in records)
    devices = sorted({(r.get("runtime") or {}).get("device", "?") for r in records})
    memory = [r["cost"].get("peak_memory_mb") for r in records]
    return {
        "n": n,
        "runs_finished": len(records),
        "train_samples": sum(samples),
        #: the runs' training rates added up: the device's throughput while they all train
        "samples_per_s": sum(rates),
        "per_run_samples_per_s": statistics.median(rates),
        #: all the training samples over the span from the first run's start to the last one's end
        "samples_per_s_span": sum(samples) / span if span > 0 else float("nan"),
        "span_s": span,
        "invocation_wall_s": proc.wall_s,
        "devices": devices,
        "peak_memory_mb": max((m for m in memory if m is not None and math.isfinite(m)), default=None),
    }


def packing_curve(
    ns: Sequence[int] = (1, 2, 4, 8, 16),
    seconds: float = 20.0,
    device: str = "cuda",
    quick: bool = False,
    mps: bool = False,
    keep: Path | None = None,
) -> dict[str, Any]:
    """For each N: ``harness run`` (real Ray) of N packing runs sharing the device
    (:func:`packing_suite`), each training for ``seconds``; the throughput (training samples per
    second, the runs' rates added up, and over the whole span) and the speed-up over N=1.
    ``mps``: the curve again under CUDA MPS (:func:`mps_daemon`) when its control program exists."""
    with scratch("harness-bench-packing-", keep) as root:
        cache = root / "cache"
        curves = {"default": _curve(root / "default", cache, ns, seconds, device, quick)}
        if mps:
            if shutil.which("nvidia-cuda-mps-control") is None or device != "cuda":
                curves["mps"] = {"skipped": "nvidia-cuda-mps-control not found (or not on CUDA)"}
            else:
                with mps_daemon(root / "mps") as env:
                    curves["mps"] = _curve(root / "with-mps", cache, ns, seconds, device, quick, env)
    return {
        "device": device,
        "seconds_per_run": seconds,
        "suite": packing_suite(ns[0], seconds, device, quick),
        **curves,
    }


def _curve(
    root: Path,
    cache: Path,
    ns: Sequence[int],
    seconds: float,
    device: str,
    quick: bool,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    points = []
    for n in ns:
        suite = packing_suite(n, seconds, device, quick)
        path = write_suite(root / f"n{n}.yaml", suite)
        proc, records = harness_run(path, root / f"n{n}", cache, env=env)
        points.append(_packing_point(n, records, proc, int(suite["trainer"]["batch_size"])))
    base = points[0]
    for point in points:
        point["speedup"] = point["samples_per_s"] / base["samples_per_s"]
        point["speedup_span"] = point["samples_per_s_span"] / base["samples_per_s_span"]
    return {"points": points}


@contextmanager
def mps_daemon(folder: Path) -> Iterator[dict[str, str]]:
    """CUDA MPS for the processes given the yielded environment: ``nvidia-cuda-mps-control -d``
    with its pipe and log folders under ``folder`` (so it is this benchmark's own daemon, not a
    machine-wide one), stopped with ``echo quit | nvidia-cuda-mps-control`` afterwards."""
    env = {
        "CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(folder / "log"),
    }
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **env}
    subprocess.run(["nvidia-cuda-mps-control", "-d"], env=full, check=True, timeout=30)
    try:
        yield env
    finally:
        subprocess.run(
            ["nvidia-cuda-mps-control"], input="quit\n", text=True, env=full, check=False, timeout=30
        )
