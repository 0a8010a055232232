"""Penultimate-layer features of a PyTorch model: the representation the deep k-NN detector and the spectral methods read.

Optional: ``pip install poisonguard[torch]`` (a CPU build: ``pip install torch==2.13.0``). Runs batched, without
gradients, in eval mode (the model's mode is restored afterwards), on a GPU when one is present unless a device
is given.

    feats = penultimate_features(model, dataset)           # (n, k) float32, aligned with the dataset
    result = poisonguard.scan(labels_frame, label="y", embeddings=feats)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import ConfigError, InputError


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ConfigError(
            "PyTorch is not installed; install the extra with 'pip install poisonguard[torch]' (for a CPU-only build: "
            "pip install torch==2.13.0)."
        ) from exc
    return torch


def default_layer(model: Any) -> Any:
    """The last ``nn.Linear`` of the model: its input is the penultimate representation."""
    torch = _torch()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ConfigError(
            "the model has no nn.Linear layer to read the penultimate features from; pass layer=<the module whose "
            "input is the representation>."
        )
    return linears[-1]


def _batches(data: Any, batch_size: int) -> Iterable[Any]:
    torch = _torch()
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i : i + batch_size]
        return
    if isinstance(data, torch.utils.data.DataLoader):
        if isinstance(getattr(data, "sampler", None), torch.utils.data.RandomSampler):
            raise InputError(
                "the DataLoader shuffles its rows, so the features would not line up with the data; pass one with "
                "shuffle=False, or the Dataset itself."
            )
        loader = data
    elif isinstance(data, torch.utils.data.Dataset):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    else:
        raise InputError(
            f"cannot read inputs from a {type(data).__name__}; pass a torch Dataset, a DataLoader without shuffling, "
            "a tensor or a numpy array."
        )
    for batch in loader:
        yield batch[0] if isinstance(batch, list | tuple) else batch


def penultimate_features(
    model: Any,
    data: Any,
    *,
    layer: Any = None,
    batch_size: int = 256,
    device: str | None = None,
    progress: Any = None,
) -> np.ndarray:
    """The input of ``layer`` (default: the model's last linear layer) for every item of ``data``, in order.

    ``data``: a torch ``Dataset`` whose items are inputs or ``(input, label, ...)`` tuples, a ``DataLoader``
    without shuffling, a tensor or a numpy array of inputs. ``progress`` is a poisonguard progress object.
    """
    torch = _torch()
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}.")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    layer = layer if layer is not None else default_layer(model)
    captured: list[Any] = []

    def hook(_module: Any, inputs: tuple[Any, ...]) -> None:
        captured.append(inputs[0].detach().flatten(1).float().cpu())

    was_training = model.training
    model.eval()
    original = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.to(dev)
    handle = layer.register_forward_pre_hook(hook)
    total = len(data) if hasattr(data, "__len__") else None
    try:
        from .context import Progress

        progress = progress or Progress()
        with torch.no_grad(), progress.task("model features", total=total) as advance:
            for x in _batches(data, batch_size):
                model(x.to(dev, non_blocking=True))
                advance(len(x))
    finally:
        handle.remove()
        model.to(original)
        model.train(was_training)
    if not captured:
        raise InputError("the data holds no items; nothing to extract.")
    return torch.cat(captured).numpy().astype(np.float32, copy=False)


__all__ = ["default_layer", "penultimate_features"]
