"""The single-run case of issue 16 written by hand: what `harness run benchmarks/single_run.yaml
--executor local` does, as a plain PyTorch script (imports torch and numpy only).

The adding problem as ``plugins/tasks/adding.py`` generates it (its ``make_adding``, copied; the
same ``data_seed`` and split order: train, val, test), a GRU (or LSTM) with a linear head on its
last output, Adam, gradient clipping by norm, a validation pass after every epoch (loss and MSE),
the best-validation weights kept in memory and tested at the end. Seeded as the harness seeds a
run, and batches visit the samples in the harness's order, so on one machine the figures it
prints are the harness's (the same test MSE).

    .venv/bin/python benchmarks/plain_adding.py            # the issue's sizes; prints one JSON line

Timed by ``python -m benchmarks --only whole`` against the harness. Its own figures are in the
JSON line: ``data_s`` (generating the data), ``fit_s`` (loaders, training and validation: what the
harness's ``train_time_s`` covers, but for reading the data from its cache), ``process_s`` (since
the interpreter started running this file, imports included).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - after the clock starts: the imports are part of the process figure
import itertools  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


def make_adding(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` adding-problem sequences ``[n, length, 2]`` and their targets ``[n, 1]``
    (a copy of ``plugins/tasks/adding.py``'s generator)."""
    values = rng.random((n, length), dtype=np.float64)
    mask = np.zeros((n, length))
    first = rng.integers(0, length, size=n)
    second = (first + rng.integers(1, length, size=n)) % length
    rows = np.arange(n)
    mask[rows, first] = 1.0
    mask[rows, second] = 1.0
    x = np.stack([values, mask], axis=-1).astype(np.float32)
    y = (values * mask).sum(axis=1, keepdims=True).astype(np.float32)
    return x, y


class Model(nn.Module):
    """A one-layer GRU/LSTM over the raw 2 features; a linear layer on the last step's output."""

    def __init__(self, cell: str, hidden: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.rnn: nn.RNNBase = (nn.GRU if cell == "gru" else nn.LSTM)(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        if cell == "lstm":  # the harness's LSTM: forget-gate bias b_ih + b_hh = forget_bias
            with torch.no_grad():
                forget = slice(hidden, 2 * hidden)  # gate order: input, forget, cell, output
                for name, parameter in self.rnn.named_parameters():
                    if name.startswith("bias_ih"):
                        parameter[forget].fill_(forget_bias)
                    elif name.startswith("bias_hh"):
                        parameter[forget].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        prediction: torch.Tensor = self.head(out[:, -1])
        return prediction


def evaluate(model: nn.Module, loader: DataLoader[Any]) -> tuple[float, float]:
    """(mean loss, MSE) over a split: equal here, as the loss is the MSE."""
    model.eval()
    loss_sum = torch.zeros(())
    squared = torch.zeros(())
    count = 0
    with torch.inference_mode():
        for x, y in loader:
            prediction = model(x)
            loss_sum += nn.functional.mse_loss(prediction, y) * len(y)
            squared += ((prediction.float() - y) ** 2).sum()
            count += len(y)
    return float(loss_sum) / count, float(squared) / count


def epoch_of(loader: DataLoader[Any]) -> Any:
    """One epoch's batches, not asking for one past the last (as the harness's loop, so that the
    shuffle of every later epoch is the harness's: see benchmarks/_workloads.py ``_epoch_of``)."""
    return itertools.islice(loader, len(loader))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--num-train", type=int, default=5000)
    parser.add_argument("--num-val", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--data-seed", type=int, default=1234)
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    data_start = time.perf_counter()
    rng = np.random.default_rng(args.data_seed)
    arrays = {}
    for split, n in (("train", args.num_train), ("val", args.num_val), ("test", args.num_test)):
        arrays[split] = make_adding(n, args.length, rng)
    data_s = time.perf_counter() - data_start

    torch.manual_seed(args.seed)
    model = Model(args.cell, args.hidden)
    # made before the clock starts, as the harness builds its network before its fit; the first
    # optimizer of a process also imports torch._dynamo (~1.5 s), which the harness does at import
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    fit_start = time.perf_counter()
    splits = {k: TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) for k, (x, y) in arrays.items()}
    generator = torch.Generator().manual_seed(args.seed)
    train = DataLoader(splits["train"], batch_size=args.batch_size, shuffle=True, generator=generator)
    val = DataLoader(splits["val"], batch_size=args.batch_size)
    test = DataLoader(splits["test"], batch_size=args.batch_size)
    best_mse, best_state, best_epoch, steps = float("inf"), None, -1, 0
    for epoch in range(args.epochs):
        model.train()
        for x, y in epoch_of(train):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            if args.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            steps += 1
        _, val_mse = evaluate(model, val)
        if val_mse < best_mse:  # strictly better: the weights stay in memory
            best_mse, best_epoch = val_mse, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fit_s = time.perf_counter() - fit_start
    if best_state is not None:
        model.load_state_dict(best_state)
    test_loss, test_mse = evaluate(model, test)
    figures = {
        "data_s": data_s,
        "fit_s": fit_s,
        "steps": steps,
        "ms_per_step": 1e3 * fit_s / max(1, steps),
        "best_epoch": best_epoch,
        "best_val_mse": best_mse,
        "test_mse": test_mse,
        "test_loss": test_loss,
        "num_params": sum(p.numel() for p in model.parameters()),
        "process_s": time.perf_counter() - STARTED,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
