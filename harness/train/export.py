"""What leaves the worker besides the metrics: the best network for ``tracking.log_model: best``
(:func:`serialize_model`; the driver logs it with :func:`harness.tracking.models.log_model`) and
the size of each data split (:func:`data_sizes`; the dataset MLflow shows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


#: version of the layout :func:`serialize_model` writes (read by :mod:`harness.tracking.models`)
MODEL_FORMAT = 1
#: samples of the first test batch kept as the model's input example
EXAMPLE_SAMPLES = 4


def serialize_model(module: torch.nn.Module, batch: Mapping[str, Any]) -> bytes:
    """The network (a CPU copy in eval mode) and an input example, the first
    :data:`EXAMPLE_SAMPLES` samples of ``batch``, as bytes for ``RunRecord.model`` (the driver
    logs them to MLflow with :func:`harness.tracking.models.log_model`).

    The module is left as it was (device, mode, weights). Entries of ``batch`` that are not
    tensors are left out of the example; the network's output on the example is kept when it
    is one tensor (the model signature's output). ``batch`` is a CPU batch of the data module.
    """
    import copy
    import io

    import cloudpickle  # type: ignore[import-untyped]
    import torch

    example = _first_samples(batch, EXAMPLE_SAMPLES)
    was_training = module.training
    try:
        module.eval()
        network = copy.deepcopy(module).to("cpu")
    finally:
        module.train(was_training)
    try:  # the output only describes the signature: a network that needs the trainer's input
        # casts (``precision: 64-true``) is logged without one
        with torch.no_grad():
            output = network(example)
    except Exception:  # noqa: BLE001
        output = None
    bundle = {
        "format": MODEL_FORMAT,
        "network": network,
        "example": {k: _numpy(v) for k, v in example.items() if isinstance(v, torch.Tensor)},
        "output": _numpy(output) if isinstance(output, torch.Tensor) else None,
    }
    buffer = io.BytesIO()
    # cloudpickle, as MLflow: a class that cannot be imported by name (__main__) travels by value
    torch.save(bundle, buffer, pickle_module=cloudpickle)
    return buffer.getvalue()


def _first_samples(batch: Mapping[str, Any], n: int) -> dict[str, Any]:
    """The first ``n`` samples of a batch dict: entries with the batch's leading size are cut."""
    import torch

    size = len(batch["y"]) if "y" in batch else None
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and (size is None or value.shape[0] == size):
            value = value[:n].detach().clone()
        elif isinstance(value, list | tuple) and size is not None and len(value) == size:
            value = type(value)(value[:n])
        out[key] = value
    return out


def _numpy(tensor: torch.Tensor) -> Any:
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):  # MLflow's schemas know float32/64
        tensor = tensor.float()
    return tensor.numpy()


def data_sizes(data: Any) -> dict[str, int]:
    """Samples in the ``train``, ``val`` and ``test`` splits of a set-up data module (the sizes of
    its data loaders' datasets); a split that cannot be measured is left out, nothing raises."""
    sizes: dict[str, int] = {}
    for split in ("train", "val", "test"):
        try:
            loaders = getattr(data, f"{split}_dataloader")()
            if isinstance(loaders, Mapping):
                loaders = list(loaders.values())
            if not isinstance(loaders, list | tuple):
                loaders = [loaders]
            sizes[split] = sum(len(loader.dataset) for loader in loaders)
        except Exception:  # noqa: BLE001, S112 - an unsized or unset split is left out, never fatal
            continue
    return sizes
