"""Truncated backpropagation through time (``trainer.tbptt: {k1, k2}``).

Lightning 2 removed ``truncated_bptt_steps``; the harness does it in the training step. The
sequence is cut into chunks of ``k1`` steps; the encoder's state is carried from chunk to chunk
but *detached*, and within a chunk it is detached once more ``k2`` steps before the chunk's end,
so no gradient travels back through time further than ``k2`` steps. One optimizer step per batch
(the loss is the task's usual loss on the assembled output): for a sequence-level target
(classification/regression) the loss sits at the end, so only the last ``k2`` steps get gradient —
that is the price TBPTT pays, measured rather than hidden. Validation and test always run on full
sequences with full BPTT semantics (no truncation).

The encoder must declare the ``stateful`` capability and implement
``forward_chunk(x, lengths, state) -> (EncoderOutput, state)`` (see
:class:`harness.interfaces.CAPABILITIES`). For sequence-level tasks, segments in which no
sequence ends run without autograd (no graph, no backward): memory and backward time grow with
``k2``, not with the sequence length; only the forward pass still covers every step.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch

from harness.errors import RunFailure
from harness.interfaces import EncoderOutput
from harness.settings import TbpttSpec

SEQUENCE_LEVEL = ("classification", "regression")


def _detach(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(_detach(s) for s in state)
    return state


def cut_points(total: int, k1: int, k2: int) -> list[int]:
    """Segment boundaries: every ``k1`` steps, and ``k2`` steps before each chunk's end."""
    points = set()
    for start in range(0, total, k1):
        end = min(start + k1, total)
        points.update({start, max(start, end - k2)})
    return sorted(points) + [total]


def tbptt_encode(
    encoder: Any, x: torch.Tensor, lengths: torch.Tensor, k1: int, k2: int, keep_sequence_grad: bool
) -> EncoderOutput:
    """Run ``encoder.forward_chunk`` over segments, detaching the carried state at every cut."""
    total = x.shape[1]
    points = cut_points(total, k1, k2)
    lengths = lengths.to(x.device)
    state: Any = None
    pieces: list[torch.Tensor] = []
    summary: torch.Tensor | None = None
    last_step = lengths - 1
    for index, (a, b) in enumerate(itertools.pairwise(points)):
        relative = (lengths - a).clamp(min=1, max=b - a)
        final = index == len(points) - 2
        ends_here = ((last_step >= a) & (last_step < b)).unsqueeze(-1)
        needs_graph = final or keep_sequence_grad or bool(ends_here.any())
        with torch.set_grad_enabled(torch.is_grad_enabled() and needs_graph):  # no graph: no backward cost
            out, state = encoder.forward_chunk(x[:, a:b], relative, state)
        state = _detach(state)
        pieces.append(out.sequence if (final or keep_sequence_grad) else out.sequence.detach())
        if summary is None:
            summary = out.summary if bool(ends_here.any()) else out.summary.detach()
        elif bool(ends_here.any()):  # else leave this chunk out of the graph: backward never enters it
            summary = torch.where(ends_here, out.summary, summary)
    assert summary is not None  # total >= 1: at least one segment
    return EncoderOutput(sequence=torch.cat(pieces, dim=1), summary=summary)


def tbptt_forward(module: Any, batch: Mapping[str, Any], spec: TbpttSpec) -> Any:
    """The task's prediction for ``batch`` with the encoder run under TBPTT."""
    encoder = module.encoder
    if not callable(getattr(encoder, "forward_chunk", None)):
        raise RunFailure(
            f"trainer.tbptt needs an encoder that can carry its state across chunks (the `stateful` "
            f"capability, a forward_chunk method); {type(encoder).__name__} has none: "
            "remove trainer.tbptt or use rnn, lstm or gru"
        )
    k1 = spec.k1
    k2 = spec.k2 or k1
    keep = module.info.output_kind not in SEQUENCE_LEVEL

    def encode(x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        return tbptt_encode(encoder, x, lengths, k1, k2, keep)

    network = SimpleNamespace(encoder=encode, head=module.head, decoder=module.decoder)
    return module.task.forward(network, batch)
