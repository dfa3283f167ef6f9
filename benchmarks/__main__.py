"""``python -m benchmarks``: the ratios of issue 16, each side measured in the same run, with the
figures behind them and the machine they came from.

* ``per-step``: the harness's training (``run_trial``: ``train_time_s / steps``) against a
  hand-written PyTorch loop doing the same work, for GRU and LSTM at the quickstart's adding sizes
  (3 epochs), interleaved rounds; ratio of the medians and of the minima.
* ``whole``: ``harness run benchmarks/single_run.yaml --executor local`` against
  ``benchmarks/plain_adding.py`` as whole processes: wall time and peak RSS, paired and interleaved.
* ``parallel``: 8 equal ``cpus: 1`` runs through real Ray against the ideal (the run alone × 8 /
  the runs the cores hold at once).
* ``packing``: N small LSTM runs sharing one GPU (``gpus: 1/N``, N = 1, 2, 4, 8, 16) through real
  Ray: throughput and speed-up over N = 1 (on a machine with CUDA; ``--packing-on-cpu`` runs the
  same code path on the CPU with ``cpus: 1/N``).

    .venv/bin/python -m benchmarks                          # everything (~6 min on 2 cores)
    .venv/bin/python -m benchmarks --only per-step,whole    # some of it
    .venv/bin/python -m benchmarks --quick                  # tiny sizes: the code paths, in seconds
    .venv/bin/python -m benchmarks --only per-step --device cuda --precision 32-true,bf16-mixed
    .venv/bin/python -m benchmarks --json figures.json      # keep every figure

Nothing is asserted: the figures are printed (and written with ``--json``). The exit status is 1
when a benchmark could not run (its error is printed and kept in the JSON), else 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

SECTIONS = ("per-step", "whole", "parallel", "packing")
#: --quick sizes of the per-step benchmark
QUICK_STEP = {"length": 8, "num_train": 256, "num_val": 64, "num_test": 64, "batch_size": 32}
NOT_MEASURED_NO_CUDA = "not measured (no CUDA device)"


#: ``--size small``: steps of about 1 ms on a CPU (what a small model's step takes on a GPU)
SMALL_STEP = {"length": 10}
SMALL_HIDDEN = 16


def machine() -> dict[str, Any]:
    """Where the figures come from: CPU model and cores, torch, the CUDA device if any."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.is_available()
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False,
            cwd=Path(__file__).resolve().parents[1], timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpus": torch.cuda.device_count() if cuda else 0,
        "git": commit,
    }


def describe_machine(m: dict[str, Any]) -> str:
    gpu = f"{m['gpu']} (CUDA {m['cuda']}, {m['gpus']} device(s))" if m["gpu"] else "no CUDA device"
    return (
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable); torch {m['torch']}; "
        f"{gpu}; Python {m['python']}; harness checkout {m['git'] or '?'}"
    )


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Print the harness/plain ratios of issue 16, each side measured in this run.",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, one round: the code paths in seconds"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure to PATH (JSON)")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="per-step benchmark's device (auto: cuda when available)",
    )
    parser.add_argument(
        "--precision", default="32-true", help="per-step precisions, comma-separated (32-true, bf16-mixed)"
    )
    parser.add_argument("--archs", default="gru,lstm", help="per-step architectures (quickstart names)")
    parser.add_argument("--epochs", type=int, default=3, help="per-step epochs (default 3)")
    parser.add_argument(
        "--size",
        choices=("quickstart", "small"),
        default="quickstart",
        help=f"per-step sizes: the quickstart's, or small (T={SMALL_STEP['length']}, hidden {SMALL_HIDDEN}: "
        "about 1 ms a step on a CPU, a small model's step on a GPU)",
    )
    parser.add_argument("--rounds", type=int, help="per-step interleaved rounds (default 5; --quick 1)")
    parser.add_argument(
        "--batching",
        choices=("loader", "index", "harness"),
        default="loader",
        help="how the plain loop batches (see benchmarks/_workloads.py; default loader)",
    )
    parser.add_argument(
        "--trainer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a trainer setting for the per-step harness runs (YAML value; repeatable)",
    )
    parser.add_argument("--whole-rounds", type=int, help="whole-process rounds (default 3; --quick 1)")
    parser.add_argument("--runs", type=int, help="parallel: equal runs (default 8; --quick 4)")
    parser.add_argument(
        "--packing-n", help="packing: runs sharing the device (default 1,2,4,8,16; --quick 1,2)"
    )
    parser.add_argument(
        "--packing-seconds", type=float, help="packing: training seconds of each run (default 20; --quick 2)"
    )
    parser.add_argument(
        "--packing-on-cpu",
        action="store_true",
        help="packing without CUDA: the same code path with cpus: 1/N (a dry run)",
    )
    parser.add_argument(
        "--mps",
        action="store_true",
        help="packing: the curve again under CUDA MPS (own daemon, started and stopped here)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the run folders under DIR (its whole/, parallel/, packing/ are replaced)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(_list(args.only)) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)} (choose from {', '.join(SECTIONS)})")
    bad = sorted(set(_list(args.precision)) - {"32-true", "bf16-mixed"})
    if bad:
        parser.error(f"--precision: {', '.join(bad)} (the plain loop does 32-true and bf16-mixed)")
    return args


def _trainer_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--trainer {pair!r}: write KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


# -- the sections ---------------------------------------------------------------------------------
def per_step(args: argparse.Namespace, device: str, out: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks._workloads import adding_payload, loop_ratio, quickstart_adding

    rounds = args.rounds or (1 if args.quick else 5)
    accelerator: Literal["cpu", "gpu"] = "gpu" if device == "cuda" else "cpu"
    trainer = _trainer_overrides(args.trainer)
    results: dict[str, Any] = {}
    for precision in _list(args.precision):
        for arch in _list(args.archs):
            settings = quickstart_adding(arch)
            if args.size == "small":  # GPU-sized steps on a CPU: about 1 ms each
                settings.update(SMALL_STEP)
                settings["arch_params"] = {**settings["arch_params"], "hidden_size": SMALL_HIDDEN}
            if args.quick:
                settings.update(QUICK_STEP)
                settings["arch_params"] = {**settings["arch_params"], "hidden_size": 8}
            with tempfile.TemporaryDirectory(prefix="harness-bench-step-") as tmp:
                payload = adding_payload(
                    Path(tmp), epochs=1 if args.quick else args.epochs, accelerator=accelerator,
                    precision=precision, trainer=trainer, **settings,
                )  # fmt: skip
                figures = loop_ratio(payload, rounds=rounds, batching=args.batching)
            figures.update({"arch": arch, "precision": precision, "device": device, "settings": settings})
            results[f"{arch}/{precision}"] = figures
            out(
                f"  {arch:5s} {precision:10s} harness {_fmt(figures['harness_ms_per_step'])} ms/step  "
                f"plain {_fmt(figures['plain_ms_per_step'])} ms/step  ({figures['harness_steps']} / "
                f"{figures['plain_steps']} steps)  ratio {_fmt(figures['ratio'])} (medians), "
                f"{_fmt(figures['ratio_min'])} (minima)  best val {payload.primary_metric} "
                f"{figures['harness_best_val']:.6g} / {figures['plain_best_val']:.6g}"
            )
    return results


def whole(args: argparse.Namespace, out: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks._process import whole_process

    rounds = args.whole_rounds or (1 if args.quick else 3)
    keep = args.keep / "whole" if args.keep else None
    f = whole_process(rounds=rounds, quick=args.quick, warm=not args.quick, keep=keep)
    h, p = f["harness_wall_s"], f["plain_wall_s"]
    out(f"  harness: {f['harness_cmd']}")
    out(f"  plain:   {f['plain_cmd']}")
    out(f"  data: {f['data']}")
    out(
        f"  harness {_fmt(h['median'], 2)} s (min {_fmt(h['min'], 2)}), "
        f"peak RSS {f['harness_peak_rss_mb']:.0f} MiB   plain {_fmt(p['median'], 2)} s "
        f"(min {_fmt(p['min'], 2)}), peak RSS {f['plain_peak_rss_mb']:.0f} MiB"
    )
    out(
        f"  ratio {_fmt(f['ratio'])} (medians), {_fmt(f['ratio_min'])} (minima); "
        f"{rounds} interleaved round(s)"
    )
    out(
        f"  inside: harness {_fmt(f['harness_ms_per_step'], 2)} ms/step ({f['harness_steps']} steps), plain "
        f"{_fmt(f['plain_ms_per_step'], 2)} ms/step ({f['plain_steps']} steps); the harness's run itself "
        f"{_fmt(f['harness_run_wall_s'], 2)} s, outside it {_fmt(f['harness_outside_run_s'], 2)} s"
    )
    out(f"  test mse: harness {f['harness_test_mse']:.6g}, plain {f['plain_test_mse']:.6g}")
    if f["harness_timings"]:
        out("  harness --timings (last round):")
        for line in f["harness_timings"]:
            out(f"    {line}")
    elif not f["timings_flag"]:
        out("  harness --timings: not available (`harness run --help` does not list it)")
    return f


def parallel(args: argparse.Namespace, out: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks._process import parallel_efficiency

    runs = args.runs or (4 if args.quick else 8)
    keep = args.keep / "parallel" if args.keep else None
    f = parallel_efficiency(runs=runs, alone=2 if args.quick else 3, quick=args.quick, keep=keep)
    out(
        f"  {f['runs']} runs × cpus {f['cpus_per_run']:g} on {f['cores']} cores: {f['slots']} at once "
        f"(at most {f['max_concurrent_seen']} seen running together)"
    )
    low, high = f["alone_wall_time_range_s"]
    out(
        f"  alone: {_fmt(f['alone_wall_time_s'], 2)} s a run (median wall_time_s of {f['alone_runs_used']} "
        f"runs, {_fmt(low, 2)}–{_fmt(high, 2)} s, --executor local before and after the Ray run, each "
        f"process's first left out) → ideal {_fmt(f['ideal_s'], 2)} s"
    )
    out(
        f"  whole invocation {_fmt(f['invocation_wall_s'], 2)} s → ratio {_fmt(f['ratio'])} "
        f"(fixed costs included); runs' span (first start → last end) {_fmt(f['span_s'], 2)} s → "
        f"ratio {_fmt(f['ratio_span'])} (scheduling efficiency); span less the workers' first-run "
        f"imports ({_fmt(f['worker_first_run_extra_s'], 2)} s) → ratio {_fmt(f['ratio_span_warm'])}"
    )
    if math.isfinite(f["ratio_total"]):
        out(
            f"  against {f['runs']} one-run invocations, {f['slots']} at a time (one took "
            f"{_fmt(f['single_process_wall_s'], 2)} s, --executor local, its process included): "
            f"ratio {_fmt(f['ratio_total'])}"
        )
    out(
        f"  fixed costs: start-up (process start → first run) {_fmt(f['startup_s'], 2)} s, after the "
        f"last run {_fmt(f['teardown_s'], 2)} s; sum of the runs' wall_time_s "
        f"{_fmt(f['sum_run_wall_s'], 2)} s"
    )
    out(
        f"  a run alongside others takes {_fmt(f['per_run_slowdown'], 2)}× its time alone: fit "
        f"{_fmt(f['median_run_fit_s'], 2)} s vs {_fmt(f['alone_fit_s'], 2)} s "
        f"({_fmt(f['fit_slowdown'], 2)}×), set-up + test + measurements {_fmt(f['median_run_rest_s'], 2)} s "
        f"vs {_fmt(f['alone_rest_s'], 2)} s ({_fmt(f['rest_slowdown'], 2)}×)"
    )
    other = f["other_load_s"]
    if math.isfinite(other):
        busy = "  (a busy machine: take the figures again)" if other > 2.0 else ""
        out(f"  other processes' CPU while the Ray invocation ran: {_fmt(other, 2)} s{busy}")
    if f.get("harness_timings"):
        out("  harness --timings (the Ray invocation):")
        for line in f["harness_timings"]:
            out(f"    {line}")
    return f


def packing(args: argparse.Namespace, device: str, out: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks._process import packing_curve

    ns = (
        [int(n) for n in _list(args.packing_n)]
        if args.packing_n
        else ([1, 2] if args.quick else [1, 2, 4, 8, 16])
    )
    seconds = args.packing_seconds or (2.0 if args.quick else 20.0)
    keep = args.keep / "packing" if args.keep else None
    f = packing_curve(ns=ns, seconds=seconds, device=device, quick=args.quick, mps=args.mps, keep=keep)
    share = "gpus 1/N" if device == "cuda" else "cpus 1/N (one core shared: a dry run of the GPU path)"
    out(f"  N small LSTM runs ({share}), each training {seconds:g} s, through Ray:")
    for name in ("default", "mps"):
        curve = f.get(name)
        if curve is None:
            continue
        if "points" not in curve:
            out(f"  {name}: {curve.get('skipped')}")
            continue
        out(f"  {name}:   N   samples/s  speed-up   (over the span: samples/s  speed-up)   span s   wall s")
        for p in curve["points"]:
            out(
                f"         {p['n']:3d}  {p['samples_per_s']:10.0f}  {p['speedup']:7.2f}×   "
                f"({p['samples_per_s_span']:10.0f}  {p['speedup_span']:6.2f}×)   {p['span_s']:7.1f}  "
                f"{p['invocation_wall_s']:7.1f}   {', '.join(p['devices'])}"
            )
    return f


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    only = _list(args.only)
    started = time.perf_counter()

    def out(line: str) -> None:
        print(line, flush=True)

    info = machine()
    out(describe_machine(info))
    if args.device == "cuda" and not info["gpu"]:
        out("--device cuda: no CUDA device here")
        return 2
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and info["gpu"]) else "cpu"
    figures: dict[str, Any] = {"machine": info, "argv": list(argv if argv is not None else sys.argv[1:])}
    errors: dict[str, str] = {}
    steps: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("per-step", f"per step, harness/plain ({device}; "
         f"{'--quick sizes, 1 epoch' if args.quick else f'{args.size} adding sizes, {args.epochs} epochs'}; "
         f"plain loop batching: {args.batching})",
         lambda: per_step(args, device, out)),
        ("whole", "whole process, harness run --executor local / plain script (benchmarks/single_run.yaml)",
         lambda: whole(args, out)),
        ("parallel", "parallel efficiency, equal cpus: 1 runs through Ray (benchmarks/parallel.yaml)",
         lambda: parallel(args, out)),
    ]  # fmt: skip
    packing_device = (
        "cuda" if info["gpu"] and args.device != "cpu" else ("cpu" if args.packing_on_cpu else None)
    )
    not_measured = NOT_MEASURED_NO_CUDA if not info["gpu"] else "not measured (--device cpu)"
    steps.append(
        ("packing", f"GPU packing curve ({packing_device or 'not measured'})",
         lambda: packing(args, packing_device or "cpu", out))
    )  # fmt: skip
    for name, title, run in steps:
        if name not in only:
            continue
        out("")
        out(title)
        if name == "packing" and packing_device is None:
            out(f"  {not_measured}; --packing-on-cpu runs its code path on the CPU")
            figures[name] = not_measured
            continue
        start = time.perf_counter()
        try:
            figures[name] = run()
        except Exception as exc:  # report, go on with the other benchmarks
            errors[name] = "".join(traceback.format_exception(exc))
            out(f"  FAILED: {type(exc).__name__}: {exc}")
        out(f"  ({time.perf_counter() - start:.1f} s)")
    figures["errors"] = errors
    figures["seconds"] = time.perf_counter() - started
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_clean(figures), indent=1) + "\n", encoding="utf-8")
        out(f"\nfigures: {args.json}")
    ran = len([step for step in steps if step[0] in only])
    out(f"\n{len(errors)} failed of {ran}; {figures['seconds']:.1f} s in all")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
