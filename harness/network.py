"""The network of one run: an architecture's encoder (and decoder) with a task's head.

One assembly for everything that needs the network a run trains: the Lightning module
(:func:`harness.train.module.build_module`) and the parameter budget (:mod:`harness.budget`),
which counts the parameters of exactly that network at plan time. torch only, no Lightning,
and torch itself only through the components' ``build_*`` methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from harness.interfaces import Architecture, Task


class Network(NamedTuple):
    """The trainable parts of a run: ``decoder`` is None except for seq2seq tasks."""

    encoder: torch.nn.Module
    head: torch.nn.Module
    decoder: torch.nn.Module | None


def output_size(network: torch.nn.Module) -> int:
    """The integer ``output_size`` every encoder and decoder has (the Architecture contract)."""
    size: Any = getattr(network, "output_size")  # noqa: B009 - nn.Module's __getattr__ types it as a Tensor
    return int(size)


def build_network(task: Task[Any], arch: Architecture[Any]) -> Network:
    """The architecture's encoder (and, for seq2seq tasks, its decoder) with the task's head on
    top, built for the task's input and output."""
    info = task.cached_info()
    encoder = arch.build_encoder(info.input)
    decoder = arch.build_decoder(info, output_size(encoder)) if info.output_kind == "seq2seq" else None
    head = task.build_head(output_size(decoder if decoder is not None else encoder))
    return Network(encoder, head, decoder)


def parameter_count(network: Network) -> int:
    """The parameters of ``network``, each shared tensor once (as ``module.parameters()`` counts)."""
    seen: dict[int, int] = {}
    for part in network:
        if part is not None:
            for parameter in part.parameters():
                seen[id(parameter)] = parameter.numel()
    return sum(seen.values())
