"""Conformance checks of tasks: data shapes, disjoint splits, determinism, metrics on a dummy prediction."""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.interfaces import (
    CAPABILITIES,
    DataConfig,
    EncoderOutput,
    InputSpec,
    Task,
    TaskInfo,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pytorch_lightning as pl
    import torch


from harness.testing._common import OVERLAP_TOLERANCE, CheckFailed, CheckResult, _preserved_rng, _run
from harness.testing._common import finite_value as _finite

_SPLITS = ("train", "val", "test")
#: {split: {row hash: (batch, row)}}: where each distinct example was first seen
Hashes = dict[str, dict[str, tuple[int, int]]]


def _loaders(data: pl.LightningDataModule) -> dict[str, Iterable[Any]]:
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    return {split: getattr(data, f"{split}_dataloader")() for split in _SPLITS}


def _batch_problem(batch: Any, info: TaskInfo) -> str | None:
    """What is wrong with one batch, measured against ``info`` (None when nothing)."""
    import torch

    if not isinstance(batch, Mapping) or not {"x", "lengths", "y"} <= set(batch):
        keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        return f"a batch must be a dict with x, lengths and y (got {keys})"
    x, lengths, y = batch["x"], batch["lengths"], batch["y"]
    spec = info.input
    if not all(isinstance(t, torch.Tensor) for t in (x, lengths, y)):
        return "x, lengths and y must be tensors"
    if lengths.dim() != 1 or lengths.dtype.is_floating_point:
        return f"lengths must be a 1-D integer tensor [B] (got {tuple(lengths.shape)} {lengths.dtype})"
    size = len(lengths)
    if spec.kind == "continuous":
        if x.dim() != 3 or x.shape[2] != spec.size or not x.dtype.is_floating_point:
            return (
                f"x is {tuple(x.shape)} {x.dtype}; info() says continuous input of size {spec.size}: "
                f"expected float [B, T, {spec.size}]"
            )
    else:
        if x.dim() != 2 or x.dtype.is_floating_point:
            return f"x is {tuple(x.shape)} {x.dtype}; info() says tokens: expected integer ids [B, T]"
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= spec.size):
            return (
                f"token ids in x range {int(x.min())}..{int(x.max())}, "
                f"outside the vocabulary 0..{spec.size - 1}"
            )
    if x.shape[0] != size or y.shape[0] != size:
        return f"x has {x.shape[0]} rows, lengths {size}, y {y.shape[0]}: they must agree"
    steps = x.shape[1]
    if size and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        return (
            f"lengths range {int(lengths.min())}..{int(lengths.max())}, "
            f"outside 1..{steps} (the padded length)"
        )
    if spec.max_length is not None and steps > spec.max_length:
        return f"batches have {steps} steps, more than info().input.max_length={spec.max_length}"
    if not spec.variable_length and bool((lengths != steps).any()):
        return "sequences of different lengths, but info().input.variable_length is False"
    return _target_problem(y, info)


def _target_problem(y: torch.Tensor, info: TaskInfo) -> str | None:
    kind, size = info.output_kind, info.output_size
    floating = y.dtype.is_floating_point
    if kind in ("regression", "forecasting"):
        if not floating or y[0].numel() != size:
            return (
                f"y is {tuple(y.shape)} {y.dtype}; "
                f"a {kind} task with output_size={size} needs float [B, {size}]"
            )
        return None
    if floating:
        return f"y is {y.dtype}; a {kind} task needs integer class ids"
    if kind == "classification":
        if y.dim() > 2 or (y.dim() == 2 and y.shape[1] != 1):
            return f"y is {tuple(y.shape)}; a classification task needs class ids [B]"
    elif y.dim() != 2:
        return f"y is {tuple(y.shape)}; a {kind} task needs integer sequences [B, U]"
    limit = (info.output_vocab_size or size) if kind == "seq2seq" else size
    if y.numel() and int(y.max()) >= limit:
        return f"y holds id {int(y.max())}, but the task has {limit} classes (ids 0..{limit - 1})"
    if kind == "seq2seq" and info.output_max_length and y.shape[1] > info.output_max_length:
        return (
            f"y has {y.shape[1]} output tokens, more than info().output_max_length={info.output_max_length}"
        )
    return None


def _row_hash(x: torch.Tensor, n: int) -> str:
    row = x[:n].detach().cpu().contiguous()
    return hashlib.sha1(
        str(row.dtype).encode() + str(tuple(row.shape)).encode() + row.numpy().tobytes()
    ).hexdigest()


def _scan(loaders: Mapping[str, Iterable[Any]], info: TaskInfo) -> tuple[str | None, Hashes, int]:
    """(first shape problem, {split: {row hash: (batch, row)}}, batches) over every batch of every split."""
    hashes: Hashes = {}
    batches = 0
    for split, loader in loaders.items():
        seen = hashes[split] = {}
        for index, batch in enumerate(loader):
            batches += 1
            problem = _batch_problem(batch, info)
            if problem:
                return f"{split} batch {index}: {problem}", hashes, batches
            for row, n in enumerate(batch["lengths"].tolist()):
                seen.setdefault(_row_hash(batch["x"][row], int(n)), (index, row))
    return None, hashes, batches


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and bool(torch.equal(a, b))
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    return bool(a == b)


def _tiny_network(task: Task, info: TaskInfo) -> torch.nn.Module:
    """A tiny real network (per-step projection, masked mean) with the task's head (and a decoder)."""
    import torch
    from torch import nn

    from harness.nn import InputLayer, masked_mean, zero_padding

    class TinyEncoder(nn.Module):
        def __init__(self, spec: InputSpec, size: int) -> None:
            super().__init__()
            self.input = InputLayer(spec, size)
            self.output_size = size

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
            sequence = zero_padding(torch.tanh(self.input(x)), lengths)
            return EncoderOutput(sequence, masked_mean(sequence, lengths))

    class TinyDecoder(nn.Module):
        def __init__(self, vocab: int, memory_size: int, size: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, size)
            self.memory = nn.Linear(memory_size, size)
            self.output_size = size

        def forward(
            self, tokens: torch.Tensor, memory: torch.Tensor, memory_lengths: torch.Tensor
        ) -> torch.Tensor:
            context = self.memory(masked_mean(memory, memory_lengths)).unsqueeze(1)
            return torch.tanh(self.embed(tokens) + context)

    class TinyNetwork(nn.Module):  # what Task.forward reads: encoder, decoder (or None), head
        def __init__(self, encoder: nn.Module, decoder: nn.Module | None, head: nn.Module) -> None:
            super().__init__()
            self.encoder = encoder
            self.decoder = decoder
            self.head = head

    torch.manual_seed(0)
    encoder = TinyEncoder(info.input, 16)
    decoder = (
        TinyDecoder(info.output_vocab_size or info.output_size, 16, 16)
        if info.output_kind == "seq2seq"
        else None
    )
    return TinyNetwork(encoder, decoder, task.build_head(16)).eval()


def _metrics_on_dummy(task: Task, info: TaskInfo, batch: Mapping[str, Any]) -> str:
    import torch

    from harness.plugins import get_registry

    registry = get_registry(strict=False)
    specs = {name: registry.metrics.get(name, where="info().metrics").obj for name in info.metrics}
    if info.primary_metric not in specs:
        raise CheckFailed(
            f"primary_metric `{info.primary_metric}` is not among info().metrics ({', '.join(specs)})"
        )
    network = _tiny_network(task, info)
    with torch.no_grad():
        prediction = task.forward(network, batch)
        loss = task.batch_loss(prediction, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not bool(torch.isfinite(loss)):
            raise CheckFailed(
                f"batch_loss gave {loss!r} on a tiny network's prediction; expected a finite scalar"
            )
        if isinstance(prediction, torch.Tensor) and prediction.is_floating_point():
            prediction = prediction.float()
        inputs = task.evaluate(network, prediction, batch)
        values = {}
        for name, spec in specs.items():
            metric = spec.factory(info)
            args = inputs.get(name, inputs.get("*")) if isinstance(inputs, Mapping) else inputs
            if args is None:
                raise CheckFailed(
                    f"evaluate() gave no inputs for metric `{name}` (keys: {', '.join(inputs)}); "
                    f"add a '*' entry"
                )
            metric.update(*args)
            values[name] = _finite(metric.compute(), f"metric `{name}`")
    return "; ".join(f"{k}={v:.4g}" for k, v in values.items()) + f"; loss={float(loss):.4g}"


def check_task(
    cls: type[Task], params: Mapping[str, Any] | None = None, cache_dir: Path | None = None
) -> list[CheckResult]:
    """Build ``cls``'s data (in ``cache_dir``, default a temporary folder) and check it against
    ``info()``: batch shapes, disjoint splits, determinism, metrics on a dummy prediction."""
    component = f"task {getattr(cls, 'name', None) or getattr(cls, '__name__', cls)}"
    built: list[tuple[Task[Any], TaskInfo]] = []  # what the declaration check made

    def declaration() -> str:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise CheckFailed(f"{cls!r} is not a subclass of harness.Task")
        task = cls(params)
        info = task.info()
        if not isinstance(info, TaskInfo):
            raise CheckFailed(f"info() returned {type(info).__name__}, not a harness.TaskInfo")
        if info.direction not in ("max", "min"):
            raise CheckFailed(f"direction {info.direction!r}: use 'max' or 'min'")
        if not info.requires <= CAPABILITIES:
            raise CheckFailed(f"requires unknown capabilities {sorted(info.requires - CAPABILITIES)}")
        bound = info.divergence_bound
        if bound is not None and not math.isfinite(bound):
            raise CheckFailed(f"divergence_bound {bound!r}: use a finite value (or None for no bound)")
        if bound is not None and info.target is not None:
            worse = bound > info.target if info.direction == "min" else bound < info.target
            if not worse:
                raise CheckFailed(
                    f"divergence_bound {bound:g} is not worse than the target {info.target:g} "
                    f"(direction {info.direction}): every run that reaches the target would count as diverged"
                )
        if info.output_kind == "seq2seq" and not info.output_vocab_size:
            raise CheckFailed("a seq2seq task must set output_vocab_size")
        built.append((task, info))
        return f"{info.output_kind}, {info.input.kind} input of size {info.input.size}"

    results = [_run(component, "declaration", declaration)]
    if not results[0].passed:
        return results
    ((task, info),) = built
    availability = _run(component, "available", lambda: task.unavailable() and "")
    if not availability.passed:
        return [*results, availability]
    reason = task.unavailable()
    if reason:
        return [
            *results,
            CheckResult(component, "data", True, f"skipped: unavailable on this machine: {reason}"),
        ]
    with contextlib.ExitStack() as stack, _preserved_rng():
        root = (
            Path(cache_dir)
            if cache_dir is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        data: dict[str, pl.LightningDataModule] = {}

        def build(key: str) -> dict[str, Iterable[Any]]:
            config = DataConfig(batch_size=64, seed=0, cache_dir=root / key)
            data[key] = task.datamodule(config)
            return _loaders(data[key])

        scan: dict[str, Hashes] = {}

        def shapes() -> str:
            problem, scan["hashes"], batches = _scan(build("a"), info)
            if problem:
                raise CheckFailed(problem)
            sizes = ", ".join(f"{s} {len(h)}" for s, h in scan["hashes"].items())
            return f"{batches} batches; distinct examples: {sizes}"

        def disjoint() -> str:
            if "hashes" not in scan:
                raise CheckFailed("not run: the data shapes check failed")
            hashes = scan["hashes"]
            notes: list[str] = []
            for i, first in enumerate(_SPLITS):
                for second in _SPLITS[i + 1 :]:
                    shared = hashes[first].keys() & hashes[second].keys()
                    allowed = max(1, int(OVERLAP_TOLERANCE * min(len(hashes[first]), len(hashes[second]))))
                    if len(shared) > allowed:
                        where = hashes[second][next(iter(shared))]
                        raise CheckFailed(
                            f"{len(shared)} example(s) of the {second} split also appear in {first} "
                            f"(e.g. {second} batch {where[0]}, row {where[1]}): "
                            f"models would be scored on data they trained on; "
                            f"split the examples once, after removing duplicates"
                        )
                    if shared:
                        notes.append(f"{len(shared)} input(s) shared by {first} and {second}")
            if notes:
                return (
                    f"{'; '.join(notes)}: within the tolerance for coincidences (at most "
                    f"{OVERLAP_TOLERANCE:.0%} of the smaller split, or one example)"
                )
            return ""

        def deterministic() -> str:
            if "a" not in data:
                raise CheckFailed("not run: the data does not build")
            again, fresh = build("b"), _loaders(data["a"])  # fresh loaders: shuffling starts over
            for split in _SPLITS:
                first, second = next(iter(fresh[split])), next(iter(again[split]))
                if not _same(first, second):
                    keys = (
                        [k for k in first if k not in second or not _same(first[k], second[k])]
                        if isinstance(first, Mapping) and isinstance(second, Mapping)
                        else []
                    )
                    raise CheckFailed(
                        f"two datamodules with the same params and seed give different first {split} batches"
                        f"{' (' + ', '.join(keys) + ')' if keys else ''}: "
                        f"draw all randomness from generators seeded by the params or DataConfig.seed "
                        f"(np.random.default_rng(seed)), never unseeded"
                    )
            return "two data modules built in separate caches agree"

        def metrics() -> str:
            if "a" not in data:
                raise CheckFailed("not run: the data does not build")
            return _metrics_on_dummy(task, info, next(iter(_loaders(data["a"])["val"])))

        results += [
            _run(component, "data shapes", shapes),
            _run(component, "splits disjoint", disjoint),
            _run(component, "deterministic", deterministic),
            _run(component, "metrics on a dummy prediction", metrics),
        ]
    return results
