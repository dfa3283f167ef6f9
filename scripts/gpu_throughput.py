"""Train/inference throughput of built-in architectures on one device, per precision.

Usage: python scripts/gpu_throughput.py [gpus] — prints one line per (architecture, precision)
with samples/s as measured by harness itself (the run's `cost` block). Same process, same data,
so the precisions compare as ratios against 32-true.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from harness.matrix import build_plan
from harness.plugins import get_registry
from harness.suite import load_suite
from harness.train.trial import run_trial

SUITE = """
name: throughput
tasks:
  - name: adding
    params: {{length: 200, num_train: 8192, num_val: 1024, num_test: 4096}}
architectures:
  - name: lstm
    params: {{hidden_size: 128}}
  - name: gru
    params: {{hidden_size: 128}}
  - name: transformer
    params: {{d_model: 128, num_heads: 4, num_layers: 2, dim_feedforward: 256}}
trainer: {{max_epochs: 2, batch_size: 256, lr: 0.002, precision: "{precision}"}}
resources: {{cpus: 1, gpus: {gpus}}}
"""


def main() -> None:
    gpus = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    precisions = ["32-true", "16-mixed", "bf16-mixed"] if gpus > 0 else ["32-true"]
    with tempfile.TemporaryDirectory() as tmp:
        base: dict[str, float] = {}
        for precision in precisions:
            path = Path(tmp) / f"{precision}.yaml"
            path.write_text(SUITE.format(precision=precision, gpus=gpus))
            for cell in build_plan(load_suite(path), get_registry()).runnable:
                record = run_trial(cell.model_copy(update={"cache_dir": str(Path(tmp) / "cache")}))
                if not record.finished:
                    print(cell.architecture, precision, "FAILED", record.error)
                    continue
                cost = record.cost
                device = record.runtime.device if record.runtime else "?"
                ref = base.setdefault(cell.architecture, cost["train_throughput"])
                print(
                    f"{cell.architecture:12s} {precision:10s} train {cost['train_throughput']:10.0f}/s "
                    f"(x{cost['train_throughput'] / ref:.2f} vs 32-true)  "
                    f"inference {cost['inference_throughput']:10.0f}/s  "
                    f"test_mse {record.metrics['test_mse']:.4f}  {device}"
                )


if __name__ == "__main__":
    main()
