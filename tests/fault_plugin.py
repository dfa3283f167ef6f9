"""A test plugin for the scale-out tests: a trivially fast architecture and a task that misbehaves.

Load it with ``HARNESS_PLUGINS=tests.fault_plugin`` (and the repository root on ``PYTHONPATH``)
so Ray workers load it too. Task ``fault`` params:

- ``mode``: ``ok`` (learns a toy rule), ``nan`` (the loss is NaN), ``sleep`` (every loss call
  sleeps ``sleep_s``), ``sleep_first`` (sleeps only in the first attempt of the run: a marker
  file in ``pid_dir`` says an attempt started), ``crash`` (raises);
- ``no_test``: like ``ok``, but any use of the test split raises "the test split was touched"
  (the tuning tests prove a trial never touches it);
- ``hold``: like ``sleep`` until a file named ``release`` appears in ``pid_dir`` (a test
  interrupts held runs, then releases them so the resumed suite runs them quickly);
- ``pid_dir``: a folder where each worker process writes a file named after its pid on its first
  loss call (tests find the worker to ``kill -9`` there);
- ``num_train``, ``length``: data size (tiny by default).

Architecture ``instant``: one Linear layer over the mean of the steps (microseconds a batch).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from harness import Architecture, DataConfig, EncoderOutput, InputSpec, Params, Task, TaskInfo, hookimpl

FEATURES = 4


class FaultParams(Params):
    mode: Literal["ok", "nan", "sleep", "sleep_first", "hold", "crash", "no_test"] = "ok"
    sleep_s: float = 0.0
    pid_dir: str | None = None
    num_train: int = 64
    length: int = 4


class FaultTask(Task):
    name = "fault"
    description = "Toy binary classification that can sleep, crash or diverge on request (tests only)."
    Params = FaultParams

    def info(self) -> TaskInfo:
        return TaskInfo.classification(InputSpec("continuous", FEATURES), 2, metrics=("accuracy",))

    def datamodule(self, config: DataConfig) -> Any:
        import numpy as np

        from harness.data import arrays_datamodule

        p: Any = self.params
        if p.mode == "crash":
            raise RuntimeError("injected crash")

        def arrays() -> dict[str, Any]:
            rng = np.random.default_rng(config.seed)
            out: dict[str, Any] = {}
            for split, n in (("train", p.num_train), ("val", 32), ("test", 32)):
                x = rng.standard_normal((n, p.length, FEATURES)).astype("float32")
                out[f"{split}_x"], out[f"{split}_y"] = x, (x.sum(axis=(1, 2)) > 0).astype("int64")
            return out

        data = arrays_datamodule(arrays, config)
        if p.mode == "no_test":  # a spy: any use of the test split fails the run, naming it

            def touched(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("the test split was touched")

            data.test_dataloader = touched
        return data

    def loss(self, prediction: Any, target: Any) -> Any:
        p: Any = self.params
        if p.pid_dir:
            folder = Path(p.pid_dir)
            folder.mkdir(parents=True, exist_ok=True)
            mine = folder / str(os.getpid())
            if not mine.exists():
                first = not (folder / "attempted").exists()
                (folder / "attempted").touch()
                mine.write_text("first" if first else "again")
        if p.mode == "nan":
            return prediction.sum() * float("nan")
        held = p.mode == "hold" and not (p.pid_dir and (Path(p.pid_dir) / "release").exists())
        if (
            p.mode == "sleep"
            or held
            or (
                p.mode == "sleep_first"
                and p.pid_dir
                and (Path(p.pid_dir) / str(os.getpid())).read_text() == "first"
            )
        ):
            time.sleep(p.sleep_s)
        return super().loss(prediction, target)


class Instant(Architecture):
    name = "instant"
    description = "One Linear layer over the mean of the steps (tests only)."
    supports: ClassVar[frozenset[str]] = frozenset({"variable_length"})

    def build_encoder(self, input: InputSpec) -> Any:
        import torch

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(input.size, 8)
                self.output_size = 8

            def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
                sequence = torch.tanh(self.linear(x))
                return EncoderOutput(sequence=sequence, summary=sequence.mean(dim=1))

        return Encoder()


@hookimpl
def register_tasks(register: Any) -> None:
    register(FaultTask)


@hookimpl
def register_architectures(register: Any) -> None:
    register(Instant)
