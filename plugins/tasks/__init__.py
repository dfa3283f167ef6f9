"""Built-in tasks, registered through the public hook like any plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import hookimpl

from harness_builtins.tasks.adding import AddingTask
from harness_builtins.tasks.digits import DigitsTask


@hookimpl
def register_tasks(register: Callable[[Any], None]) -> None:
    register(AddingTask)
    register(DigitsTask)
