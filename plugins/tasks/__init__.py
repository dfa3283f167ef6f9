"""Built-in tasks, registered through the public hook like any plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Task, hookimpl

from .adding import AddingTask
from .copy_memory import CopyMemoryTask
from .digits import DigitsTask
from .forecasting import ForecastingTask
from .language_model import LanguageModelTask
from .mnist1d import MNIST1DTask
from .moving_digits import MovingDigitsTask
from .number_translation import NumberTranslationTask
from .scan import ScanTask
from .sentiment import SentimentTask
from .seq_mnist import SeqMNISTTask
from .speech import SpeechDigitsTask
from .spoken_digits import SpokenDigitsTask
from .ucr import UCRTask


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(AddingTask)
    register(DigitsTask)
    register(CopyMemoryTask)
    register(UCRTask)
    register(SentimentTask)
    register(LanguageModelTask)
    register(SpeechDigitsTask)
    register(SpokenDigitsTask)
    register(ScanTask)
    register(NumberTranslationTask)
    register(ForecastingTask)
    for task in (SeqMNISTTask, MNIST1DTask, MovingDigitsTask):
        register(task)
