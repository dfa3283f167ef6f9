"""Report figures as inline SVG text (matplotlib, Agg backend, imported lazily).

SVG keeps ``index.html`` self-contained and searchable; each function returns ``(title, svg)``
pairs and draws nothing when the data it needs is missing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.records import RunRecord
from harness.report.analysis import Analysis, Ranking, TaskTable
from harness.report.stats import mean_ci, pareto_front, spans_decades

if TYPE_CHECKING:
    import matplotlib.figure

Figure = tuple[str, str]


def _use_agg() -> None:
    """Select the file-only Agg backend and the report's style; call before importing pyplot."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
    )


def _svg(fig: matplotlib.figure.Figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _legend_outside(ax: Any) -> None:
    """Legend right of the axes: it never covers data or tick labels, and names each point."""
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def _short_ticks(axis: Any, log: bool) -> None:
    """Short engineering labels (20k, 1.5M) on major ticks only: log axes' minor labels collide."""
    from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter

    axis.set_major_formatter(EngFormatter(sep=""))
    if log:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(nbins=5))


def _metric_scale(ax: Any, values: Sequence[float]) -> bool:
    """Log y axis where the metric spans ≥ 2 decades (an error metric near 0 for most models)."""
    log = spans_decades(values)
    if log:
        ax.set_yscale("log")
    return log


def learning_curves_figure(table: TaskTable) -> tuple[str, matplotlib.figure.Figure] | None:
    """Validation primary metric per epoch: mean over seeds, band = its 95 % CI where n ≥ 2."""
    key = f"val_{table.primary}"
    series = []
    for row in table.rows:
        per_epoch: dict[int, list[float]] = {}
        for history in row.history:
            for point in history:
                value = point.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    per_epoch.setdefault(int(point.get("epoch", 0)), []).append(float(value))
        if per_epoch:
            series.append((row.arch, sorted(per_epoch.items())))
    if not series:
        return None
    _use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    means: list[float] = []
    for arch, points in series:
        epochs = [e for e, _ in points]
        intervals = [mean_ci(v) for _, v in points]
        mean = [i.mean for i in intervals]
        means += mean
        (line,) = ax.plot(epochs, mean, marker="o", markersize=2.5, label=arch)
        banded = [(e, i) for e, i in zip(epochs, intervals) if i.low is not None and i.high is not None]
        if banded:
            ax.fill_between(
                [e for e, _ in banded],
                [i.low or 0.0 for _, i in banded],
                [i.high or 0.0 for _, i in banded],
                color=line.get_color(),
                alpha=0.18,
                linewidth=0,
            )
    log = _metric_scale(ax, means)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} ({'↑' if table.direction == 'max' else '↓'})")
    _legend_outside(ax)
    scale = ", log scale" if log else ""
    return (f"{table.task}: learning curves (mean over seeds, band = 95 % CI{scale})", fig)


def learning_curves(table: TaskTable) -> list[Figure]:
    made = learning_curves_figure(table)
    return [] if made is None else [(made[0], _svg(made[1]))]


#: the cost axes of the quality-vs-cost plots: (cost key, label, lower is better)
PARETO_AXES = (("train_samples_per_s", "train samples/s", False), ("num_params", "parameters", True))


def pareto_figures(table: TaskTable) -> list[tuple[str, matplotlib.figure.Figure]]:
    """Quality vs throughput and vs parameters: one marker per architecture (named in the legend,
    not on the point), 95 % CI error bars over seeds, non-dominated points joined in red."""
    figures = []
    for cost, cost_label, lower in PARETO_AXES:
        rows = [
            r for r in table.rows if cost in r.costs and table.primary in r.intervals and r.costs[cost] > 0
        ]
        if len(rows) < 2:
            continue
        points = [(r.costs[cost], r.intervals[table.primary].mean) for r in rows]
        front = pareto_front(points, cost_lower=lower, quality_higher=table.direction == "max")
        _use_agg()
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        line = sorted(points[i] for i in front)
        ax.plot(
            [p[0] for p in line],
            [p[1] for p in line],
            color="#d62728",
            linestyle="--",
            linewidth=1,
            zorder=1,
            label="Pareto front",
        )
        bars = False
        for i, (r, (x, y)) in enumerate(zip(rows, points)):
            half = r.intervals[table.primary].half
            container = ax.errorbar(
                [x],
                [y],
                yerr=None if half is None else [[half], [half]],
                fmt=_MARKERS[i % len(_MARKERS)],
                markersize=5,
                capsize=3,
                zorder=3,
                label=r.arch + (" *" if r.arch in {rows[j].arch for j in front} else ""),
            )
            if half is not None:
                bars = True
                for part in (*container.lines[1], *container.lines[2]):
                    part.set_gid("ci-errorbar")
        log_x = spans_decades([p[0] for p in points], 1.0)
        if log_x:
            ax.set_xscale("log")
        _short_ticks(ax.xaxis, log_x)
        log_y = _metric_scale(ax, [p[1] for p in points])
        ax.set_xlabel(f"{cost_label} ({'↓' if lower else '↑'} is better)")
        ax.set_ylabel(f"test {table.primary} ({'↑' if table.direction == 'max' else '↓'})")
        _legend_outside(ax)
        notes = ["* on the front"]
        if bars:
            notes.append("error bars: 95 % CI over seeds")
        if log_y:
            notes.append("log scale")
        title = f"{table.task}: {table.primary} vs {cost_label} ({'; '.join(notes)})"
        figures.append((title, fig))
    return figures


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def pareto(table: TaskTable) -> list[Figure]:
    return [(title, _svg(fig)) for title, fig in pareto_figures(table)]


def cd_figure(ranking: Ranking) -> tuple[str, matplotlib.figure.Figure] | None:
    """Demšar's critical-difference diagram: average ranks on an axis (1 = best, on the right),
    names in two columns (better half right, worse half left), thick bars joining the groups the
    Nemenyi test cannot separate. None where the test has no power (see :class:`Ranking`)."""
    result = ranking.friedman
    if result is None or not ranking.powered:
        return None
    _use_agg()
    import matplotlib.pyplot as plt

    k = result.k
    order = sorted(range(k), key=lambda j: result.avg_ranks[j])

    def x_of(rank: float) -> float:  # rank k at 0.25, rank 1 at 0.75
        return 0.25 + 0.5 * (k - rank) / (k - 1)

    right = order[: (k + 1) // 2]
    left = list(reversed(order[(k + 1) // 2 :]))
    rows = max(len(right), len(left))
    bottom = -0.75 - 0.45 * rows - 0.2 * len(ranking.cliques)
    fig, ax = plt.subplots(figsize=(7, 0.45 * (1.6 - bottom)))
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom, 1.6)
    ax.plot([x_of(k), x_of(1)], [0, 0], color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.plot([x_of(r)] * 2, [0, 0.12], color="black", linewidth=0.8)
        ax.text(x_of(r), 0.22, str(r), ha="center", va="bottom", fontsize=8)
    top = 0.25 + 0.2 * len(ranking.cliques)
    for c, group in enumerate(ranking.cliques):
        ranks = [result.avg_ranks[j] for j in group]
        y = -0.25 - 0.2 * c
        (bar,) = ax.plot([x_of(max(ranks)), x_of(min(ranks))], [y, y], color="black", linewidth=4)
        bar.set_gid("clique")
    for side, names in (("right", right), ("left", left)):
        for i, j in enumerate(names):
            rank = result.avg_ranks[j]
            y = -top - 0.55 - 0.45 * i
            end = 0.8 if side == "right" else 0.2
            ax.plot([x_of(rank)] * 2 + [end], [0, y, y], color="#1f77b4", linewidth=0.8)
            ax.text(
                end + (0.01 if side == "right" else -0.01),
                y,
                f"{ranking.archs[j]} ({rank:.2f})",
                ha="left" if side == "right" else "right",
                va="center",
                fontsize=8,
            )
    cd_end = x_of(1 + result.cd)
    ax.plot([cd_end, x_of(1)], [1.05, 1.05], color="#d62728", linewidth=2)
    ax.text((cd_end + x_of(1)) / 2, 1.15, f"CD = {result.cd:.2f}", ha="center", fontsize=8, color="#d62728")
    ax.axis("off")
    title = (
        f"Critical difference (Nemenyi, α=0.05) over {result.n} tasks: "
        "architectures joined by a bar are not significantly different"
    )
    return (title, fig)


def cd_diagram(ranking: Ranking) -> list[Figure]:
    made = cd_figure(ranking)
    return [] if made is None else [(made[0], _svg(made[1]))]


def gradient_flow(records: Sequence[RunRecord]) -> list[Figure]:
    """One heatmap per (task, architecture): gradient norm per time step (x) and probe (y), log10."""
    figures, seen = [], set()
    for r in records:
        flow = r.gradient_flow or {}
        probes = [p for p in flow.get("probes") or [] if p.get("per_step_norm")]
        key = (r.spec.task_label, r.spec.arch_label)
        if not probes or key in seen:
            continue
        seen.add(key)
        width = max(len(p["per_step_norm"]) for p in probes)
        grid = [
            [
                math.log10(v) if isinstance(v, (int, float)) and v > 0 else math.nan
                for v in [*p["per_step_norm"], *[math.nan] * (width - len(p["per_step_norm"]))]
            ]
            for p in probes
        ]
        _use_agg()
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 0.8 + 0.25 * len(probes)))
        image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(probes)), [str(p.get("step")) for p in probes])
        ax.set_xlabel("time step")
        ax.set_ylabel("training step")
        fig.colorbar(image, ax=ax, label="log10 ‖∂L/∂h_t‖")
        verdict = (
            "vanishing" if flow.get("vanishing") else "exploding" if flow.get("exploding") else "healthy"
        )
        title = (
            f"{key[0]} × {key[1]} (seed {r.get('seed')}): gradient flow — {verdict}, "
            f"ratio {float(flow.get('ratio') or float('nan')):.3g}"
        )
        figures.append((title, _svg(fig)))
    return figures


def profiles(profiles: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Figure]:
    """Efficiency vs sequence length (``harness profile`` records), one figure per task."""
    figures = []
    for task, rows in profiles.items():
        keys = [
            k
            for k in ("train_timesteps_per_s", "latency_p50_ms", "peak_memory_mb")
            if any(isinstance(r.get(k), (int, float)) for r in rows)
        ]
        if not keys:
            continue
        _use_agg()
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for arch in dict.fromkeys(str(r.get("arch_label", r.get("architecture"))) for r in rows):
                pts = sorted(
                    (r["length"], r[key])
                    for r in rows
                    if str(r.get("arch_label", r.get("architecture"))) == arch
                    and isinstance(r.get(key), (int, float))
                    and isinstance(r.get("length"), (int, float))
                )
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=arch)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("sequence length")
            ax.set_title(key, fontsize=8)
        axes[0][0].legend(fontsize=7, frameon=False)
        figures.append((f"{task}: efficiency vs sequence length", _svg(fig)))
    return figures


def all_figures(analysis: Analysis) -> dict[str, list[Figure]]:
    """Section name → figures, in report order (``tuning``: a tuned suite's search curves)."""
    from harness.report.tuning_plots import tuning_figures

    return {
        "learning": [f for t in analysis.tables for f in learning_curves(t)],
        "pareto": [f for t in analysis.tables for f in pareto(t)],
        "ranks": cd_diagram(analysis.ranking),
        "gradient_flow": gradient_flow(analysis.records),
        "profiles": profiles(analysis.context.profiles),
        "tuning": tuning_figures(analysis.tuning),
    }


__all__ = [
    "all_figures",
    "cd_diagram",
    "cd_figure",
    "gradient_flow",
    "learning_curves",
    "learning_curves_figure",
    "pareto",
    "pareto_figures",
    "profiles",
]
