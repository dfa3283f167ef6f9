"""The code the benchmarks time, importable on its own so a default-run test can execute it once
with tiny sizes (no timing asserted) and it cannot rot.

* :func:`arch_step`: one architecture's forward+backward step at fixed shapes.
* :func:`adding_payload` / :func:`quickstart_adding`: the ``RunSpec`` of one adding-problem run,
  built through the real plan (at the quickstart's sizes with the latter).
* :func:`harness_fit` / :func:`plain_fit` / :func:`loop_ratio`: the harness's training (``run_trial``
  exactly as a suite runs it, its ``train_time_s`` and ``steps``) against a hand-written PyTorch
  loop doing the same work (same network, data, optimizer, clipping, per-epoch validation with the
  primary metric, best weights kept in memory, device and precision), interleaved.
* :func:`warm_run_cost`: the per-run fixed cost of a near-empty run on a warm Ray worker.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from harness.records import RunRecord, RunSpec

ARCHS = ("rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer")


def arch_step(arch: str, *, batch: int = 32, length: int = 100, hidden: int = 64) -> Callable[[], None]:
    """A closure doing one forward+backward pass of ``arch`` on adding-problem shapes."""
    import torch

    from harness.interfaces import InputSpec
    from harness.plugins import get_registry
    from harness.train.module import output_size

    torch.manual_seed(0)
    params: dict[str, Any] = {"d_model": hidden} if arch == "transformer" else {"hidden_size": hidden}
    encoder = get_registry().architectures.get(arch).obj(params).build_encoder(InputSpec("continuous", 2))
    head = torch.nn.Linear(output_size(encoder), 1)
    x, lengths, y = torch.randn(batch, length, 2), torch.full((batch,), length), torch.randn(batch, 1)

    def step() -> None:
        encoder.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(head(encoder(x, lengths).summary), y)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated

    return step


#: the quickstart suite: the per-step benchmark trains at its adding-problem sizes
QUICKSTART = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"
#: how :func:`plain_fit` batches: ``loader`` a ``DataLoader`` over a ``TensorDataset`` (the textbook
#: hand-written loop), ``index`` device-resident tensors indexed by a random permutation (the
#: fastest hand-written loop, no per-sample Python), ``harness`` the task's own data loaders (the
#: training loop alone compared, data loading left out of the comparison)
Batching = Literal["loader", "index", "harness"]
BATCHINGS: tuple[Batching, ...] = get_args(Batching)


def quickstart_adding(arch: str) -> dict[str, Any]:
    """:func:`adding_payload` keywords for ``arch`` at the quickstart's adding-problem sizes and
    trainer settings, read from ``suites/quickstart.yaml`` (so the two cannot drift apart); the
    epochs are the caller's."""
    import yaml

    suite = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    params = next(t for t in suite["tasks"] if t["name"] == "adding").get("params", {})
    archs = {a.get("label", a["name"]): a for a in suite["architectures"]}
    if arch not in archs:
        raise ValueError(f"the quickstart has no architecture {arch!r} (it has {', '.join(archs)})")
    trainer = suite.get("trainer", {})
    return {
        "length": params["length"],
        "num_train": params["num_train"],
        "num_val": params["num_val"],
        "num_test": params["num_test"],
        "arch": archs[arch]["name"],
        "arch_params": dict(archs[arch].get("params", {})),
        "batch_size": trainer["batch_size"],
        "optimizer": trainer.get("optimizer", "adam"),
        "lr": trainer["lr"],
        "gradient_clip_val": trainer.get("gradient_clip_val"),
    }


def adding_payload(
    cache_dir: Path,
    *,
    length: int = 50,
    num_train: int = 2048,
    num_val: int = 256,
    num_test: int = 256,
    epochs: int = 2,
    batch_size: int = 64,
    arch: str = "gru",
    arch_params: dict[str, Any] | None = None,
    optimizer: str = "adam",
    lr: float = 2e-3,
    gradient_clip_val: float | None = None,
    accelerator: Literal["cpu", "gpu"] = "cpu",
    precision: str = "32-true",
    measure: bool = False,
    seed: int = 0,
    trainer: dict[str, Any] | None = None,
) -> RunSpec:
    """The RunSpec that run_trial gets, built through the real plan (suite -> matrix -> cell).

    ``accelerator="gpu"`` asks for one whole GPU (``resources.gpus: 1``); ``trainer`` adds or
    overrides trainer settings (e.g. ``{"max_steps": 1}``)."""
    import yaml

    from harness.matrix import build_plan
    from harness.plugins import get_registry
    from harness.suite import load_suite

    trainer_block: dict[str, Any] = {
        "max_epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr,
        "precision": precision,
        "accelerator": accelerator,
    }
    if gradient_clip_val is not None:
        trainer_block["gradient_clip_val"] = gradient_clip_val
    trainer_block.update(trainer or {})
    suite = {
        "name": "bench",
        "seeds": [seed],
        "tasks": [
            {
                "name": "adding",
                "params": {
                    "length": length,
                    "num_train": num_train,
                    "num_val": num_val,
                    "num_test": num_test,
                },
            }
        ],
        "architectures": [{"name": arch, "params": dict(arch_params or {})}],
        "trainer": trainer_block,
        "resources": {"cpus": 1, "gpus": 1 if accelerator == "gpu" else 0},
        "measure": {"latency": measure, "flops": measure, "memory": measure, "rounds": 3, "warmup": 1},
    }
    path = cache_dir / "bench.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    (cell,) = build_plan(load_suite(path), get_registry()).runnable
    return cell.model_copy(update={"cache_dir": str(cache_dir)})


@dataclass(frozen=True)
class Fit:
    """One training run of a loop: fit seconds, optimizer steps, the best validation value of
    the primary metric (the one that picks the weights that are tested)."""

    seconds: float
    steps: int
    best_val: float
    #: ``val_<primary>`` after each epoch
    val_history: tuple[float, ...] = ()
    #: the last epoch's validation loss
    val_loss: float = float("nan")

    @property
    def ms_per_step(self) -> float:
        return 1e3 * self.seconds / max(1, self.steps)


def _finished(record: RunRecord) -> RunRecord:
    if not record.finished:
        raise RuntimeError((record.failure.traceback if record.failure else "") or record.error)
    return record


def harness_fit(payload: RunSpec) -> Fit:
    """``run_trial`` as a suite runs it: its ``train_time_s`` (the fit, data set-up included),
    its optimizer ``steps`` and the best ``val_<primary>`` of its history."""
    from harness.train.trial import run_trial

    record = _finished(run_trial(payload))
    monitor = f"val_{payload.primary_metric}"
    values = [row[monitor] for row in record.history if monitor in row and math.isfinite(row[monitor])]
    best = (min if payload.direction == "min" else max)(values) if values else float("nan")
    loss = record.history[-1].get("val_loss", float("nan")) if record.history else float("nan")
    return Fit(record.cost["train_time_s"], int(record.cost["steps"]), best, tuple(values), loss)


def plain_fit(payload: RunSpec, batching: Batching = "loader") -> Fit:
    """A hand-written PyTorch loop doing the work the harness does in ``train_time_s``.

    The same network (built by the same code, seeded the same way), data (loaded from the same
    cache by the task's data module, inside the timed region as in the harness's fit), optimizer,
    epochs, device and precision (``torch.autocast`` to bfloat16 for ``bf16-mixed``). Per step:
    ``zero_grad``, forward, loss, ``backward``, gradient clipping at ``trainer.gradient_clip_val``,
    ``optimizer.step``. After each epoch: validation under ``inference_mode`` computing the loss
    (batch-size-weighted mean) and the primary metric; the weights are copied (a ``state_dict``
    copy in memory) whenever the metric strictly improves. Batches come as ``batching`` says
    (:data:`Batching`); ``loader`` and ``harness`` visit the samples in the harness's order.
    """
    import torch

    from harness.interfaces import DataConfig
    from harness.network import build_network
    from harness.plugins import get_registry
    from harness.train.module import build_optimizer

    if payload.cache_dir is None:
        raise ValueError("plain_fit needs the payload's cache_dir (adding_payload sets it)")
    spec = payload.trainer
    if spec.precision == "16-mixed":
        raise NotImplementedError("plain_fit has no gradient scaler: use 32-true or bf16-mixed")
    registry = get_registry()
    torch.set_num_threads(max(1, int(payload.resources.cpus)))
    task = registry.tasks.get(payload.task).obj(payload.task_params)
    arch = registry.architectures.get(payload.architecture).obj(payload.arch_params)
    info = task.cached_info()
    gpu = payload.accelerator == "gpu"
    device = torch.device("cuda", torch.cuda.current_device()) if gpu else torch.device("cpu")
    # the flags the harness's trainer sets: deterministic=True on the CPU, "warn" on a GPU
    torch.use_deterministic_algorithms(True, warn_only=gpu)
    if gpu:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # as Lightning sets it
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(payload.seed)  # the harness seeds every RNG right before it builds the network
    parts = build_network(task, arch)
    model = _plain_network(parts.encoder, parts.head, parts.decoder)
    metric = None if payload.primary_metric == "mse" else registry.metrics.get(payload.primary_metric).obj
    lower = payload.direction == "min"

    def better(value: float, best: float) -> bool:
        return value < best if lower else value > best

    def autocast() -> AbstractContextManager[Any]:
        if spec.precision == "bf16-mixed":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    start = time.perf_counter()
    data = task.datamodule(
        DataConfig(batch_size=spec.batch_size, seed=payload.seed, cache_dir=Path(payload.cache_dir))
    )
    data.prepare_data()
    data.setup("fit")
    train_batches, val_batches = _plain_batches(data, batching, spec.batch_size, payload.seed, device)
    model.to(device)
    params = list(model.parameters())
    optimizer = build_optimizer(params, spec)
    clip = spec.gradient_clip_val
    best_val = float("nan")
    best_state: dict[str, Any] | None = None
    history: list[float] = []
    steps = 0
    for _ in range(spec.max_epochs):
        model.train()
        for raw in train_batches():
            batch = _to_device(raw, device)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = task.batch_loss(task.forward(model, batch), batch)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            if clip is not None:
                if spec.gradient_clip_algorithm == "norm":
                    torch.nn.utils.clip_grad_norm_(params, clip)
                else:
                    torch.nn.utils.clip_grad_value_(params, clip)
            optimizer.step()
            steps += 1
        model.eval()
        loss_sum = torch.zeros((), device=device)
        squared = torch.zeros((), device=device)
        count, elements = 0, 0
        scorer = metric.factory(info).to(device) if metric is not None else None
        with torch.inference_mode(), autocast():
            for raw in val_batches():
                batch = _to_device(raw, device)
                prediction = task.forward(model, batch)
                size = len(batch["y"])
                loss_sum += task.batch_loss(prediction, batch).float() * size
                count += size
                if isinstance(prediction, torch.Tensor) and prediction.is_floating_point():
                    prediction = prediction.float()  # metrics in full precision, as in the harness
                inputs = task.evaluate(model, prediction, batch)
                if isinstance(inputs, Mapping):
                    inputs = inputs.get(payload.primary_metric, inputs.get("*", ()))
                if scorer is not None:
                    scorer.update(*inputs)
                else:
                    predicted, target = inputs[0], inputs[1]
                    squared += ((predicted.float() - target.float()) ** 2).sum()
                    elements += target.numel()
        val_loss = float(loss_sum) / max(1, count)
        value = float(scorer.compute()) if scorer is not None else float(squared) / max(1, elements)
        history.append(value)
        if math.isfinite(value) and (best_state is None or better(value, best_val)):
            best_val = value
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if gpu:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if best_state is not None:  # what the harness tests with (not timed there either)
        model.load_state_dict(best_state)
    return Fit(seconds, steps, best_val, tuple(history), val_loss)


def _plain_network(encoder: Any, head: Any, decoder: Any) -> Any:
    """A module with ``encoder``, ``head`` and ``decoder`` attributes, as ``Task.forward`` expects."""
    import torch

    class Network(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head, self.decoder = encoder, head, decoder

    return Network()


def _to_device(batch: Mapping[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def _split_tensors(data: Any, split: str) -> dict[str, Any]:
    """One split as whole tensors ``{"x", "lengths", "y"}``: the data module's ``datasets[split]``
    collated at once when it has them (sample order kept), else its loader's batches joined."""
    import torch

    datasets, collate = getattr(data, "datasets", None), getattr(data, "collate_for", None)
    if isinstance(datasets, Mapping) and split in datasets and callable(collate):
        dataset = datasets[split]
        whole: dict[str, Any] = collate(split)([dataset[i] for i in range(len(dataset))])
        return {k: whole[k] for k in ("x", "lengths", "y")}
    loader = data.train_dataloader() if split == "train" else data.val_dataloader()
    batches = [{k: b[k].cpu() for k in ("x", "lengths", "y")} for b in loader]
    if len({tuple(b["x"].shape[1:]) for b in batches}) > 1:
        raise ValueError("the batches are padded to different lengths: use batching='harness'")
    return {k: torch.cat([b[k] for b in batches]) for k in ("x", "lengths", "y")}


def _epoch_of(loader: Any) -> Iterable[Any]:
    """The loader's batches of one epoch, without asking for one past the last: the harness's
    loop (like Lightning's) knows the length and stops there, and asking once more would make a
    shuffling sampler draw from its generator (PyTorch's ``RandomSampler`` draws a last, empty
    permutation), so every later epoch would visit the samples in another order than theirs."""
    return itertools.islice(loader, len(loader))


def _plain_batches(
    data: Any, batching: Batching, batch_size: int, seed: int, device: Any
) -> tuple[Callable[[], Iterable[Mapping[str, Any]]], Callable[[], Iterable[Mapping[str, Any]]]]:
    """The training and validation batches of one epoch, as :func:`plain_fit`'s ``batching``."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    if batching == "harness":
        train, val = data.train_dataloader(), data.val_dataloader()
        return (lambda: _epoch_of(train)), (lambda: val)
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}, not {batching!r}")
    splits = {split: _split_tensors(data, split) for split in ("train", "val")}
    keys = ("x", "lengths", "y")
    if batching == "loader":
        generator = torch.Generator().manual_seed(seed)  # as the harness's loader: the same order
        loaders = {
            split: DataLoader(
                TensorDataset(*(tensors[k] for k in keys)),
                batch_size=batch_size,
                shuffle=split == "train",
                generator=generator if split == "train" else None,
            )
            for split, tensors in splits.items()
        }

        def epoch(split: str) -> Iterable[Mapping[str, Any]]:
            return (dict(zip(keys, parts)) for parts in _epoch_of(loaders[split]))

        return (lambda: epoch("train")), (lambda: epoch("val"))
    on_device = {split: {k: v.to(device) for k, v in tensors.items()} for split, tensors in splits.items()}
    generator = torch.Generator().manual_seed(seed)

    def indexed(split: str) -> Iterator[Mapping[str, Any]]:
        tensors = on_device[split]
        n = len(tensors["y"])
        order = torch.randperm(n, generator=generator).to(device) if split == "train" else None
        for i in range(0, n, batch_size):
            if order is None:
                yield {k: v[i : i + batch_size] for k, v in tensors.items()}
            else:
                index = order[i : i + batch_size]
                yield {k: v[index] for k, v in tensors.items()}

    return (lambda: indexed("train")), (lambda: indexed("val"))


def loop_ratio(
    payload: RunSpec, rounds: int = 5, batching: Batching = "loader", warm: bool = True
) -> dict[str, Any]:
    """The harness's and the plain loop's fit, interleaved round by round (which goes first
    alternates), after one warm-up each (data cached, imports done, kernels chosen): seconds,
    optimizer steps, ms per step, and harness/plain per-step ratios from the medians and from
    the minima (the minimum is the figure least disturbed by other processes on a shared machine).
    """
    if warm:
        harness_fit(payload)
        plain_fit(payload, batching)
    harness: list[Fit] = []
    plain: list[Fit] = []
    for i in range(rounds):
        first, second = (harness, plain) if i % 2 == 0 else (plain, harness)
        for side in (first, second):
            side.append(harness_fit(payload) if side is harness else plain_fit(payload, batching))
    h_ms = [f.ms_per_step for f in harness]
    p_ms = [f.ms_per_step for f in plain]
    return {
        "batching": batching,
        "rounds": rounds,
        "harness_steps": harness[0].steps,
        "plain_steps": plain[0].steps,
        "harness_s": statistics.median(f.seconds for f in harness),
        "plain_s": statistics.median(f.seconds for f in plain),
        "harness_ms_per_step": statistics.median(h_ms),
        "plain_ms_per_step": statistics.median(p_ms),
        "harness_ms_per_step_min": min(h_ms),
        "plain_ms_per_step_min": min(p_ms),
        "ratio": statistics.median(h_ms) / statistics.median(p_ms),
        "ratio_min": min(h_ms) / min(p_ms),
        "harness_rounds_ms_per_step": h_ms,
        "plain_rounds_ms_per_step": p_ms,
        "harness_best_val": harness[-1].best_val,
        "plain_best_val": plain[-1].best_val,
    }


def warm_run_cost(rounds: int = 5, num_cpus: int = 1) -> dict[str, float]:
    """Per-run fixed cost on a warm Ray worker: driver-side seconds for a near-empty run
    (one training step on 128 tiny sequences, default measurements on), after a warm-up run.
    Starts and stops its own local Ray instance."""
    import ray

    from harness.tracking.mlflow_store import MlflowTracker
    from harness.train.trial import run_trial

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        payload = adding_payload(Path(tmp), length=12, num_train=128, epochs=1, measure=True)
        payload = payload.model_copy(update={"trainer": payload.trainer.model_copy(update={"max_steps": 1})})
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,  # own instance
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
        )
        try:
            remote = ray.remote(num_cpus=1)(run_trial)
            ray.get(remote.remote(payload))  # warm the worker: imports, plugin load, data cache
            walls: list[float] = []
            inside: list[float] = []
            fits: list[float] = []
            logs: list[float] = []
            tracker = MlflowTracker(f"sqlite:///{tmp}/mlflow.db", "bench")
            tracker.connect()
            tracker.start_parent("bench", {}, {}, "")
            for _ in range(rounds):
                start = time.perf_counter()
                result: RunRecord = _finished(ray.get(remote.remote(payload)))
                walls.append(time.perf_counter() - start)
                inside.append(result.wall_time_s)
                fits.append(result.cost["train_time_s"])
                start = time.perf_counter()
                tracker.log_child(result)  # what the driver does with every result
                logs.append(time.perf_counter() - start)
        finally:
            ray.shutdown()
    return {
        "driver_s": statistics.median(walls),
        "worker_s": statistics.median(inside),
        "fit_s": statistics.median(fits),
        "mlflow_log_s": statistics.median(logs),
        "total_s": statistics.median(walls) + statistics.median(logs),
    }
