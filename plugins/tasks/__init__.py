"""Built-in tasks, registered through the public hook like any plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import hookimpl

from harness_builtins.tasks.adding import AddingTask
from harness_builtins.tasks.digits import DigitsTask
from harness_builtins.tasks.copy_memory import CopyMemoryTask
from harness_builtins.tasks.ucr import UCRTask
from harness_builtins.tasks.language_model import LanguageModelTask
from harness_builtins.tasks.sentiment import SentimentTask
from harness_builtins.tasks.mnist1d import MNIST1DTask
from harness_builtins.tasks.moving_digits import MovingDigitsTask
from harness_builtins.tasks.seq_mnist import SeqMNISTTask
from harness_builtins.tasks.speech import SpeechDigitsTask
from harness_builtins.tasks.spoken_digits import SpokenDigitsTask
from harness_builtins.tasks.scan import ScanTask
from harness_builtins.tasks.number_translation import NumberTranslationTask
from harness_builtins.tasks.forecasting import ForecastingTask


@hookimpl
def register_tasks(register: Callable[[Any], None]) -> None:
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
