"""Built-in metrics, registered through the public hook like any plugin.

Each module lists its :class:`harness.MetricSpec` s; the torch code of metrics written here
(where no library has them) lives in private modules imported inside the factories.
"""

from __future__ import annotations

from collections.abc import Callable

from harness import MetricSpec, hookimpl

from . import basic, forecasting, sequence, video

MODULES = (basic, sequence, video, forecasting)


@hookimpl
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    for module in MODULES:
        for spec in module.METRICS:
            register(spec)
