"""The ``mean_pool`` network (imports torch: loaded by ``MeanPool.build_encoder``)."""

from __future__ import annotations

import torch
from torch import nn

from harness import EncoderOutput, InputSpec
from harness.nn import InputLayer, masked_mean, zero_padding


class MeanPoolEncoder(nn.Module):
    """Each step on its own (so padding cannot leak into valid steps), then a masked mean."""

    def __init__(self, spec: InputSpec, hidden_size: int) -> None:
        super().__init__()
        self.input = InputLayer(spec, hidden_size)  # Linear for continuous inputs, Embedding for tokens
        self.output_size: int = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        lengths = lengths.to(x.device)
        sequence = zero_padding(torch.tanh(self.input(x)), lengths)
        return EncoderOutput(sequence=sequence, summary=masked_mean(sequence, lengths))
