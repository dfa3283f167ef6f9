"""The benchmarks' code run at tiny sizes (no timing asserted), so that benchmarks/ and
scripts/gpu-check cannot rot: the workloads, the plain loops doing the harness's work, the figures
``python -m benchmarks`` computes, and the GPU check's command line."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import __main__ as bench_main
from benchmarks._process import (
    PARALLEL,
    SINGLE_RUN,
    Proc,
    _packing_point,
    packing_suite,
    parallel_efficiency,
    parallel_figures,
    plain_args,
    timings_lines,
    whole_process,
)
from benchmarks._workloads import (
    ARCHS,
    BATCHINGS,
    QUICKSTART,
    adding_payload,
    arch_step,
    harness_fit,
    loop_ratio,
    plain_fit,
    quickstart_adding,
    warm_run_cost,
)

REPO = Path(__file__).resolve().parents[2]
GPU_CHECK = REPO / "scripts" / "gpu-check"
TINY = {"length": 6, "num_train": 64, "num_val": 32, "num_test": 32, "batch_size": 16}


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_step_runs(arch: str) -> None:
    arch_step(arch, batch=2, length=5, hidden=8)()


@pytest.mark.parametrize(
    ("arch", "precision"), [("gru", "32-true"), ("lstm", "32-true"), ("lstm", "bf16-mixed")]
)
def test_the_plain_loop_does_the_harness_work(tmp_path: Path, arch: str, precision: str) -> None:
    """Same network, data order, clipping, validation and best-weights rule: the plain loop's
    validation history is the harness's (exactly on one machine; ``index`` batching shuffles with
    its own permutation, so only its step count must match)."""
    payload = adding_payload(
        tmp_path, epochs=2, arch=arch, arch_params={"hidden_size": 8}, gradient_clip_val=1.0,
        precision=precision, **TINY,
    )  # fmt: skip
    harness = harness_fit(payload)
    assert harness.steps == 2 * math.ceil(TINY["num_train"] / TINY["batch_size"]) and harness.seconds > 0
    for batching in BATCHINGS:
        plain = plain_fit(payload, batching)
        assert plain.steps == harness.steps and plain.seconds > 0, batching
        assert len(plain.val_history) == 2 and all(math.isfinite(v) for v in plain.val_history)
        if batching != "index":
            assert plain.val_history == pytest.approx(harness.val_history, rel=1e-5), batching
            assert plain.val_loss == pytest.approx(harness.val_loss, rel=1e-5), batching


def test_loop_ratio_reports_per_step_figures(tmp_path: Path) -> None:
    payload = adding_payload(tmp_path, epochs=1, arch_params={"hidden_size": 8}, **TINY)
    figures = loop_ratio(payload, rounds=1)
    assert figures["harness_steps"] == figures["plain_steps"] == 4
    for key in ("harness_ms_per_step", "plain_ms_per_step", "ratio", "ratio_min"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key


def test_the_per_step_benchmark_trains_at_the_quickstart_sizes(tmp_path: Path) -> None:
    quickstart = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    (adding,) = [t for t in quickstart["tasks"] if t["name"] == "adding"]
    for arch in ("gru", "lstm"):
        payload = adding_payload(tmp_path, epochs=3, **quickstart_adding(arch))
        assert {k: payload.task_params[k] for k in adding["params"]} == adding["params"]
        (entry,) = [a for a in quickstart["architectures"] if a["name"] == arch]
        assert {k: payload.arch_params[k] for k in entry["params"]} == entry["params"]
        for key in ("batch_size", "lr", "gradient_clip_val", "optimizer"):
            assert getattr(payload.trainer, key) == quickstart["trainer"][key], key


def test_main_quick_prints_the_ratios_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "figures.json"
    argv = ["--quick", "--only", "per-step,packing", "--archs", "gru", "--device", "cpu", "--json", str(path)]
    assert bench_main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "machine:" in printed and "ratio" in printed and "not measured" in printed
    figures = json.loads(path.read_text(encoding="utf-8"))
    assert figures["machine"]["torch"] and figures["errors"] == {}
    assert (
        figures["per-step"]["gru/32-true"]["harness_steps"]
        == figures["per-step"]["gru/32-true"]["plain_steps"]
    )
    assert figures["packing"].startswith("not measured")


def test_main_refuses_unknown_sections() -> None:
    with pytest.raises(SystemExit):
        bench_main.main(["--only", "per-step,nothing"])


def test_the_plain_script_does_the_single_run(tmp_path: Path) -> None:
    """``harness run`` and ``plain_adding.py`` as processes (one quick round): the same test MSE."""
    figures = whole_process(rounds=1, quick=True, warm=False, keep=tmp_path / "whole")
    assert figures["harness_steps"] == figures["plain_steps"] > 0
    assert figures["harness_test_mse"] == pytest.approx(figures["plain_test_mse"], rel=1e-4)
    for key in ("ratio", "ratio_min", "harness_peak_rss_mb", "plain_peak_rss_mb", "harness_outside_run_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key


def test_the_plain_script_arguments_are_the_single_run_suite() -> None:
    args = plain_args(yaml.safe_load(SINGLE_RUN.read_text(encoding="utf-8")))
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--length"] == "100" and pairs["--num-train"] == "5000" and pairs["--epochs"] == "4"
    assert pairs["--cell"] == "gru" and pairs["--hidden"] == "64" and pairs["--clip"] == "1.0"


def test_the_committed_suites_plan(tmp_path: Path) -> None:
    from harness.matrix import build_plan
    from harness.plugins import get_registry
    from harness.suite import load_suite

    cases: list[tuple[Path, int]] = [(SINGLE_RUN, 1), (PARALLEL, 8)]
    for device, n in (("cuda", 16), ("cpu", 4)):
        suite = packing_suite(n, 5.0, device)
        path = tmp_path / f"packing-{device}.yaml"
        path.write_text(yaml.safe_dump(suite), encoding="utf-8")
        cases.append((path, n))
    for path, runs in cases:
        plan = build_plan(load_suite(path), get_registry())
        assert len(plan.runnable) == runs, path


def _record(start: float, wall: float, pid: int, steps: int = 10, train: float = 1.0) -> dict[str, Any]:
    return {
        "started_at": start,
        "finished_at": start + wall,
        "wall_time_s": wall,
        "runtime": {"pid": pid, "device": "cpu"},
        "cost": {"steps": steps, "train_time_s": train, "peak_memory_mb": None},
    }


def test_parallel_figures() -> None:
    alone = [_record(0, 9.0, 1), _record(9, 4.0, 1), _record(13, 4.2, 1)]  # the first imports
    # 4 runs on 2 workers: each worker's first run takes 3 s more (its imports)
    runs = [_record(100, 7.0, 7), _record(100, 7.0, 8), _record(107, 4.0, 7), _record(107, 4.0, 8)]
    proc = Proc(wall_s=20.0, peak_rss_mb=1.0, returncode=0, output="", started=95.0, ended=115.0)
    f = parallel_figures(alone, runs, proc, cpus=1.0, cores=2)
    assert f["slots"] == 2 and f["max_concurrent_seen"] == 2
    assert f["alone_wall_time_s"] == pytest.approx(4.1)
    assert f["ideal_s"] == pytest.approx(4.1 * 4 / 2)
    assert f["span_s"] == pytest.approx(11.0) and f["worker_first_run_extra_s"] == pytest.approx(3.0)
    assert f["ratio"] == pytest.approx(20.0 / 8.2) and f["ratio_span_warm"] == pytest.approx(8.0 / 8.2)
    assert f["startup_s"] == pytest.approx(5.0) and f["teardown_s"] == pytest.approx(4.0)


def test_packing_point() -> None:
    records = [_record(0, 10.0, 1, steps=100, train=5.0), _record(1, 10.0, 2, steps=50, train=5.0)]
    proc = Proc(wall_s=20.0, peak_rss_mb=1.0, returncode=0, output="", started=0.0, ended=20.0)
    point = _packing_point(2, records, proc, batch=64)
    assert point["train_samples"] == 150 * 64
    assert point["samples_per_s"] == pytest.approx(150 * 64 / 5.0)
    assert point["samples_per_s_span"] == pytest.approx(150 * 64 / 11.0)


def test_timings_lines() -> None:
    output = "run\n ✓ a · seed 0\n   Where the time went \n│ total │ 7.1 │\n"
    assert timings_lines(output) == ["   Where the time went", "│ total │ 7.1 │"]
    assert timings_lines("no table here\n") == []


@pytest.mark.ray
def test_parallel_efficiency_runs_through_ray(tmp_path: Path) -> None:
    figures = parallel_efficiency(runs=2, alone=2, quick=True, keep=tmp_path / "parallel")
    assert figures["runs"] == 2 and figures["max_concurrent_seen"] >= 1
    for key in ("ideal_s", "ratio", "ratio_span", "invocation_wall_s", "startup_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key


@pytest.mark.ray
def test_warm_run_cost_runs() -> None:
    figures = warm_run_cost(rounds=1)
    assert all(math.isfinite(v) and v > 0 for v in figures.values())


def test_gpu_check_parses_and_answers_help() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(GPU_CHECK)], check=True)
    done = subprocess.run([str(GPU_CHECK), "--help"], capture_output=True, text=True, check=True, timeout=30)
    assert "--dry-run" in done.stdout and "OUT" in done.stdout
    refused = subprocess.run([str(GPU_CHECK), "--nonsense"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
