"""The public report API, for reporter plugins: the same analysis the built-in reporters render.

``analyze(records, context) -> Analysis`` makes every statistical decision (CIs, paired tests,
ranks, critical difference); ``render_html``, ``render_markdown``, ``tidy_csv`` and
``all_figures`` format it; ``ReportContext`` carries the suite text, command line and profile
records; ``summarize`` is the light task × architecture table the console prints;
``final_records`` keeps the runs a comparison counts (a tuned suite's trials and default runs
left out; ``tuning_analysis`` reads those). Names load lazily, so importing this package costs
nothing until a name is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "ReportContext": "harness.report.context",
    "analyze": "harness.report.analysis",
    "render_html": "harness.report.html",
    "render_markdown": "harness.report.markdown",
    "tidy_csv": "harness.report.tables",
    "all_figures": "harness.report.plots",
    "summarize": "harness.report.summary",
    "SummaryTable": "harness.report.summary",
    "final_records": "harness.report.records",
    "tuning_analysis": "harness.report.tuning",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
    return getattr(import_module(module), name)
