"""Figures appear exactly where their data exist: gradient flow, profiles, Pareto, CD diagram."""

from __future__ import annotations

from harness.records import RunRecord
from harness.report.analysis import analyze
from harness.report.context import ReportContext
from harness.report.html import render_html
from harness.report.plots import all_figures
from tests.helpers import make_record


def _record(task: str, arch: str, seed: int, value: float, params: float, flow: bool = False) -> RunRecord:
    gradient_flow = None
    if flow:
        gradient_flow = {
            "probes": [
                {"step": s, "per_step_norm": [10.0**-t for t in range(8)], "layer_norms": {}} for s in (0, 10)
            ],
            "ratio": 1e-7,
            "vanishing": True,
            "exploding": False,
        }
    return make_record(
        task,
        arch,
        seed,
        value,
        run_id=f"{task}{arch}{seed}",
        suite="p",
        cost={"num_params": params, "train_throughput": 1e4 / params},
        history=[{"epoch": e, "val_accuracy": value * (e + 1) / 3} for e in range(3)],
        gradient_flow=gradient_flow,
    )


def test_each_figure_kind_is_drawn_from_its_data() -> None:
    records = [
        _record(t, a, s, v + 0.01 * s, p, flow=(a == "rnn" and t == "x"))
        for t in ("x", "y", "z")
        for a, v, p in (("rnn", 0.6, 100.0), ("gru", 0.8, 300.0), ("big", 0.7, 900.0))
        for s in (0, 1)
    ]
    profiles = {
        "x": [
            {"architecture": a, "length": n, "train_timesteps_per_s": 1e5 / n, "latency_p50_ms": n / 10}
            for a in ("rnn", "gru")
            for n in (10, 100, 1000)
        ]
    }
    analysis = analyze(records, ReportContext(suite="p", invocation="i", profiles=profiles))
    figures = all_figures(analysis)
    assert len(figures["learning"]) == 3 and len(figures["ranks"]) == 1
    assert len(figures["pareto"]) == 6  # vs throughput and vs params, per task
    assert len(figures["gradient_flow"]) == 1 and "vanishing" in figures["gradient_flow"][0][0]
    assert len(figures["profiles"]) == 1
    assert all(svg.startswith("<svg") for section in figures.values() for _, svg in section)
    html = render_html(analysis, figures)
    assert html.count("<svg") == 12 and "<script" not in html
    # big is dominated (worse and bigger than gru): the Pareto front is rnn–gru, and the table bolds gru
    assert analysis.tables[0].row("gru").best == {"accuracy"}


def test_no_data_no_figures() -> None:
    figures = all_figures(analyze([_record("x", "rnn", 0, 0.5, 10.0)]))
    assert figures["ranks"] == [] and figures["gradient_flow"] == [] and figures["profiles"] == []
    assert figures["pareto"] == []  # one architecture: no front to draw
