"""Figures appear exactly where their data exist: gradient flow, profiles, Pareto, CD diagram."""

from __future__ import annotations

from typing import Any

from harness.records import RunRecord
from harness.report.analysis import analyze
from harness.report.context import ReportContext
from harness.report.html import render_html
from harness.report.plots import (
    all_figures,
    cd_diagram,
    cd_figure,
    learning_curves_figure,
    pareto,
    pareto_figures,
)
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
        for t in ("x", "y", "z", "u", "v", "w")  # six tasks: enough for the CD diagram
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
    assert len(figures["learning"]) == 6 and len(figures["ranks"]) == 1
    assert len(figures["pareto"]) == 12  # vs throughput and vs params, per task
    assert len(figures["gradient_flow"]) == 1 and "vanishing" in figures["gradient_flow"][0][0]
    assert len(figures["profiles"]) == 1
    assert all(svg.startswith("<svg") for section in figures.values() for _, svg in section)
    html = render_html(analysis, figures)
    assert html.count("<svg") == 21 and "<script" not in html
    # big is dominated (worse and bigger than gru): the Pareto front is rnn–gru, and the table bolds gru
    assert analysis.tables[0].row("gru").best == {"accuracy"}


def test_no_data_no_figures() -> None:
    figures = all_figures(analyze([_record("x", "rnn", 0, 0.5, 10.0)]))
    assert figures["ranks"] == [] and figures["gradient_flow"] == [] and figures["profiles"] == []
    assert figures["pareto"] == []  # one architecture: no front to draw


def _overlapping_texts(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of a drawn figure whose boxes overlap (tick labels included)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [
        t
        for ax in fig.axes
        for t in (*ax.get_xticklabels(which="both"), *ax.get_yticklabels(which="both"))
        if ax.axison  # an axis switched off draws no tick labels
    ]
    ticks = {id(t) for t in labels}
    shown = [t for t in labels if t.get_visible() and t.get_text().strip()]
    shown += [
        t
        for t in fig.findobj(Text)
        if id(t) not in ticks and t.get_visible() and t.get_text().strip() and t.axes is not None
    ]
    boxes = [(t.get_text(), t.get_window_extent(renderer).shrunk(0.99, 0.9)) for t in shown]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1 :] if box.overlaps(other)]


def _close_points() -> list[RunRecord]:
    """Six architectures whose quality and throughput nearly coincide: point labels would collide."""
    return [
        make_record(
            "adding",
            arch,
            seed,
            value * (1 + 0.05 * seed),
            metric="mse",
            direction="min",
            run_id=f"{arch}{seed}",
            cost={"train_samples_per_s": 1000.0 + 2 * i, "num_params": 5000.0 + 10 * i},
            history=[{"epoch": e, "val_mse": value * 10 ** (2 - e)} for e in range(3)],
        )
        for i, (arch, value) in enumerate(
            (("rnn", 0.17), ("lstm", 1e-3), ("gru", 4e-4), ("birnn", 3e-4), ("cnn_rnn", 1e-4), ("tf", 1.1e-3))
        )
        for seed in (0, 1, 2)
    ]


def test_quality_vs_cost_has_no_overlapping_labels_log_axes_and_ci_error_bars() -> None:
    table = analyze(_close_points()).tables[0]
    figures = pareto_figures(table)
    assert len(figures) == 2
    for title, fig in figures:
        assert _overlapping_texts(fig) == [], title
        assert fig.axes[0].get_yscale() == "log"  # mse spans three decades
        assert "log scale" in title and "error bars: 95 % CI over seeds" in title
    svgs = pareto(table)
    assert all('id="ci-errorbar' in svg for _, svg in svgs)
    made = learning_curves_figure(table)
    assert made is not None and made[1].axes[0].get_yscale() == "log" and "log scale" in made[0]


def test_a_metric_within_one_decade_keeps_a_linear_axis() -> None:
    archs = (("rnn", 0.6, 100.0), ("gru", 0.8, 300.0))
    table = analyze([_record("x", a, s, v + 0.01 * s, p) for a, v, p in archs for s in (0, 1)]).tables[0]
    assert all(fig.axes[0].get_yscale() == "linear" for _, fig in pareto_figures(table))


def _ranking_records(tasks: int) -> list[RunRecord]:
    # a > b ≈ c on every task: with enough tasks, a is separated and {b, c} form one clique
    scores = {"a": 0.9, "b": 0.6, "c": 0.59, "d": 0.3}
    return [
        make_record(f"t{t}", arch, 0, value + (0.02 if (arch == "c" and t % 2) else 0.0), run_id=f"{t}{arch}")
        for t in range(tasks)
        for arch, value in scores.items()
    ]


def test_the_cd_diagram_is_left_out_with_a_reason_when_the_test_has_no_power() -> None:
    analysis = analyze(_ranking_records(2))
    assert analysis.ranking.friedman is not None and analysis.ranking.friedman.cd > 3  # wider than 1..4
    assert not analysis.ranking.powered and all_figures(analysis)["ranks"] == []
    assert "No critical-difference diagram" in analysis.ranking.note
    assert "only 2 tasks" in analysis.ranking.note and "wide as the whole rank axis" in analysis.ranking.note


def test_the_cd_diagram_draws_clique_bars_and_readable_labels() -> None:
    analysis = analyze(_ranking_records(20))
    ranking = analysis.ranking
    assert ranking.powered and ranking.friedman is not None and ranking.friedman.cd < 1.1
    assert [sorted(ranking.archs[j] for j in group) for group in ranking.cliques] == [["b", "c"]]
    made = cd_figure(ranking)
    assert made is not None and _overlapping_texts(made[1]) == []
    (svg,) = [s for _, s in cd_diagram(ranking)]
    assert svg.count('id="clique') == 1
