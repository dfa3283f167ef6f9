"""The tuning section's figures (inline SVG, like :mod:`harness.report.plots`).

- search curves: the best-so-far validation score against the trials run, and against the
  compute they held (CPU-seconds; GPU-seconds for a task whose trials used GPUs), one line per
  architecture and one panel per task: how fast each architecture's search found its best, and
  whether the budget was enough (a curve still climbing at its end was not);
- the chosen learning rate per architecture and task on a log axis, among the ones tried.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from harness.report.plots import Figure, _legend_outside, _svg, _use_agg
from harness.report.tuning import Contender, TuningAnalysis, lr_of

if TYPE_CHECKING:
    import matplotlib.figure


def _panels(count: int, width: float = 3.6, height: float = 2.8) -> tuple[Any, list[Any]]:
    """A figure with ``count`` panels, three a row; the unused ones hidden."""
    _use_agg()
    import matplotlib.pyplot as plt

    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.2, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _curve(contender: Contender, by: Literal["trials", "compute"], gpu: bool) -> list[tuple[float, float]]:
    if by == "trials":
        points = [(float(i + 1), best) for i, best in enumerate(contender.best_so_far())]
    else:
        points = list(contender.compute_curve(gpu))
    return [(x, y) for x, y in points if y is not None]


def search_curves_figure(
    tuning: TuningAnalysis, by: Literal["trials", "compute"] = "trials"
) -> tuple[str, matplotlib.figure.Figure] | None:
    """Best-so-far validation score per architecture, against trials or compute; one panel a task."""
    tasks = [t for t in tuning.tasks if any(_curve(c, by, c.uses_gpus) for c in tuning.of_task(t))]
    if not tasks:
        return None
    fig, axes = _panels(len(tasks))
    units = set()
    for ax, task in zip(axes, tasks):
        contenders = tuning.of_task(task)
        gpu = any(c.uses_gpus for c in contenders)
        for contender in contenders:
            points = _curve(contender, by, gpu)
            if points:
                ax.step(
                    [x for x, _ in points],
                    [y for _, y in points],
                    where="post",
                    marker="o",
                    markersize=2.5,
                    label=contender.arch,
                )
        first = contenders[0]
        unit = "GPU-s" if gpu else "CPU-s"
        units.add(unit)
        ax.set_xlabel("trials run" if by == "trials" else f"cumulative {unit} of the trials")
        ax.set_ylabel(f"best val {first.primary} so far ({'↑' if first.direction == 'max' else '↓'})")
        ax.set_title(task, fontsize=9)
        if by == "trials":
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_outside(axes[-1])
    against = "trials run" if by == "trials" else f"compute ({', '.join(sorted(units))})"
    title = f"Search curves: best-so-far validation score against {against}, per architecture (trial order)"
    return (title, fig)


def chosen_lr_figure(tuning: TuningAnalysis) -> tuple[str, matplotlib.figure.Figure] | None:
    """Per task, each architecture's chosen ``trainer.lr`` (a star) among the ones its trials tried
    (grey dots), on a log axis. None when the learning rate was not tuned."""
    tasks = [t for t in tuning.tasks if any(lr_of(c.config) for c in tuning.of_task(t))]
    if not tasks:
        return None
    fig, axes = _panels(len(tasks), width=max(3.0, 0.2 + 0.6 * max(len(tuning.of_task(t)) for t in tasks)))
    for ax, task in zip(axes, tasks):
        contenders = tuning.of_task(task)
        for x, contender in enumerate(contenders):
            configs = [r.spec.tuning.config for r in contender.trials if r.spec.tuning is not None]
            tried = [lr for config in configs if (lr := lr_of(config)) is not None]
            ax.scatter([x] * len(tried), tried, s=8, color="#999999", zorder=2)
            chosen = lr_of(contender.config)
            if chosen is not None:
                ax.scatter([x], [chosen], s=70, marker="*", color="#d62728", zorder=3)
        ax.set_yscale("log")
        ax.set_xticks(range(len(contenders)), [c.arch for c in contenders], rotation=30, ha="right")
        ax.set_xlim(-0.5, len(contenders) - 0.5)
        ax.set_ylabel("learning rate")
        ax.set_title(task, fontsize=9)
    title = "Chosen learning rate per architecture (red star) among the ones tried (grey), log scale"
    return (title, fig)


def tuning_figures(tuning: TuningAnalysis | None) -> list[Figure]:
    """The tuning section's figures, in order (none without a tuning)."""
    if tuning is None:
        return []
    made = [
        search_curves_figure(tuning, "trials"),
        search_curves_figure(tuning, "compute"),
        chosen_lr_figure(tuning),
    ]
    return [(title, _svg(fig)) for title, fig in (m for m in made if m is not None)]


__all__ = ["chosen_lr_figure", "search_curves_figure", "tuning_figures"]
