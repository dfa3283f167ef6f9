"""Built-in architectures, registered through the same hook a third-party plugin uses.

Importing this package must not import torch: it runs in every process. The ``torch`` networks
live in the private modules ``_recurrent`` and ``_transformer``, loaded by ``build_encoder``. The
classical forecasting baselines (``naive``, ``seasonal_naive``, ``arima``; forecasting tasks only,
fitted without gradients) live in ``baselines`` / ``_baselines``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Architecture, hookimpl

from .baselines import Arima, Naive, SeasonalNaive
from .recurrent import CNNRNN, GRU, LSTM, RNN, BiRNN
from .transformer import Transformer

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "BiRNN",
    "CNNRNN",
    "Transformer",
    "Naive",
    "SeasonalNaive",
    "Arima",
    "register_architectures",
]


@hookimpl
def register_architectures(register: Callable[[type[Architecture[Any]]], None]) -> None:
    for architecture in (RNN, LSTM, GRU, BiRNN, CNNRNN, Transformer, Naive, SeasonalNaive, Arima):
        register(architecture)
