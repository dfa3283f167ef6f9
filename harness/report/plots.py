"""Report figures as inline SVG text (matplotlib, Agg backend, imported lazily).

SVG keeps ``index.html`` self-contained and searchable; each function returns ``(title, svg)``
pairs and draws nothing when the data it needs is missing.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.records import RunRecord
from harness.report.analysis import Analysis, Ranking, TaskTable
from harness.report.stats import pareto_front

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


def learning_curves(table: TaskTable) -> list[Figure]:
    """Validation primary metric per epoch: mean over seeds, band = min..max over seeds."""
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
        return []
    _use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for arch, points in series:
        epochs = [e for e, _ in points]
        mean = [statistics.fmean(v) for _, v in points]
        (line,) = ax.plot(epochs, mean, marker="o", markersize=2.5, label=arch)
        ax.fill_between(
            epochs,
            [min(v) for _, v in points],
            [max(v) for _, v in points],
            color=line.get_color(),
            alpha=0.18,
            linewidth=0,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} ({'↑' if table.direction == 'max' else '↓'})")
    ax.legend(fontsize=7, frameon=False)
    return [(f"{table.task}: learning curves (mean, band = min–max over seeds)", _svg(fig))]


def pareto(table: TaskTable) -> list[Figure]:
    """Quality vs throughput (higher is cheaper) and vs parameters, non-dominated points joined."""
    figures = []
    for cost, cost_label, lower in (
        ("train_samples_per_s", "train samples/s", False),
        ("num_params", "parameters", True),
    ):
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
        ax.scatter([p[0] for p in points], [p[1] for p in points], color="#888", zorder=2)
        for r, (x, y) in zip(rows, points):
            ax.annotate(r.arch, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        line = sorted(points[i] for i in front)
        ax.plot(
            [p[0] for p in line],
            [p[1] for p in line],
            color="#d62728",
            marker="o",
            zorder=3,
            label="Pareto front",
        )
        ax.set_xscale("log")
        ax.set_xlabel(f"{cost_label} ({'↓' if lower else '↑'} is better)")
        ax.set_ylabel(f"test {table.primary} ({'↑' if table.direction == 'max' else '↓'})")
        ax.legend(fontsize=7, frameon=False)
        figures.append((f"{table.task}: {table.primary} vs {cost_label}", _svg(fig)))
    return figures


def cd_diagram(ranking: Ranking) -> list[Figure]:
    """Average ranks on a line, with the Nemenyi critical difference drawn as a bar."""
    result = ranking.friedman
    if result is None:
        return []
    _use_agg()
    import matplotlib.pyplot as plt

    k = result.k
    order = sorted(zip(result.avg_ranks, ranking.archs))
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.22 * k))
    ax.set_xlim(k + 0.3, 0.7)  # rank 1 (best) on the right, as in Demšar's figures
    ax.set_ylim(-1.0 - 0.5 * k, 1.6)
    ax.axhline(0, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.15], color="black", linewidth=0.8)
        ax.text(r, 0.3, str(r), ha="center", fontsize=8)
    for i, (rank, arch) in enumerate(order):
        y = -0.5 - 0.5 * i
        ax.plot([rank, rank], [0, y], color="#1f77b4", linewidth=0.8)
        ax.text(
            rank,
            y - 0.05,
            f" {arch} ({rank:.2f})",
            fontsize=8,
            va="top",
            ha="left" if rank < (k + 1) / 2 else "right",
        )
    if math.isfinite(result.cd):
        ax.plot([1, 1 + result.cd], [1.1, 1.1], color="#d62728", linewidth=2)
        ax.text(1 + result.cd / 2, 1.25, f"CD = {result.cd:.2f}", ha="center", fontsize=8, color="#d62728")
    ax.axis("off")
    return [(f"Critical difference (Nemenyi, α=0.05) over {result.n} tasks", _svg(fig))]


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
    """Section name → figures, in report order."""
    return {
        "learning": [f for t in analysis.tables for f in learning_curves(t)],
        "pareto": [f for t in analysis.tables for f in pareto(t)],
        "ranks": cd_diagram(analysis.ranking),
        "gradient_flow": gradient_flow(analysis.records),
        "profiles": profiles(analysis.context.profiles),
    }


__all__ = ["all_figures", "cd_diagram", "gradient_flow", "learning_curves", "pareto", "profiles"]
