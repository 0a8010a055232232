"""Image backdoors and a small CNN, for the representation benchmark (needs the ``torch`` extra).

Attacks on 28x28 grey images in [0, 1], seeded, as in the literature:
- ``badnets``: a 3x3 white patch in the bottom-right corner, label set to the target (Gu et al. 2017);
- ``blend``: a fixed random pattern blended in at 20%, label set to the target (Chen et al. 2017);
- ``clean_label``: the patch stamped on target-class images only, labels untouched (the naive clean-label
  attack, without the adversarial perturbation of Turner et al. 2019: its ASR is reported as measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PATCH = 3
BLEND_ALPHA = 0.2


def stamp(X: np.ndarray, attack: str, seed: int) -> np.ndarray:
    """A copy of images ``X`` (n, 28, 28) carrying the attack's trigger."""
    out = X.copy()
    if attack in ("badnets", "clean_label"):
        out[:, -PATCH - 1 : -1, -PATCH - 1 : -1] = 1.0
    elif attack == "blend":
        pattern = np.random.default_rng(10_000 + seed).random(X.shape[1:]).astype(X.dtype)
        out = (1 - BLEND_ALPHA) * out + BLEND_ALPHA * pattern
    else:
        raise ValueError(f"unknown image attack {attack!r}")
    return out


@dataclass(frozen=True)
class PoisonedImages:
    X: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    target: int


def poison(X: np.ndarray, y: np.ndarray, attack: str, rate: float, target: int, seed: int) -> PoisonedImages:
    rng = np.random.default_rng(seed)
    n = len(y)
    k = max(1, round(rate * n))
    pool = np.flatnonzero(y == target) if attack == "clean_label" else np.flatnonzero(y != target)
    rows = np.sort(rng.choice(pool, min(k, len(pool)), replace=False))
    Xp, yp = X.copy(), y.copy()
    Xp[rows] = stamp(X[rows], attack, seed)
    if attack != "clean_label":
        yp[rows] = target
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return PoisonedImages(Xp, yp, mask, target)


def train_cnn(X: np.ndarray, y: np.ndarray, *, n_classes: int, seed: int, epochs: int = 4, device: str = "cpu") -> Any:
    """A small CNN (two conv blocks, a 64-unit penultimate layer) trained with Adam; deterministic per seed."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    Xt = torch.tensor(X[:, None], dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(yt), generator=g)
        for start in range(0, len(yt), 128):
            b = order[start : start + 128]
            opt.zero_grad()
            loss = loss_fn(model(Xt[b].to(device)), yt[b].to(device))
            loss.backward()
            opt.step()
    model.eval()
    return model


def predict(model: Any, X: np.ndarray, device: str = "cpu") -> np.ndarray:
    import torch

    with torch.no_grad():
        out = [
            model(torch.tensor(X[i : i + 512, None], dtype=torch.float32).to(device)).argmax(1).cpu().numpy()
            for i in range(0, len(X), 512)
        ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def asr(model: Any, X_test: np.ndarray, y_test: np.ndarray, attack: str, target: int, seed: int) -> float:
    """Share of test images not of the target class (and not already predicted as it) that the trigger turns into it."""
    keep = y_test != target
    before = predict(model, X_test[keep])
    keep_idx = np.flatnonzero(keep)[before != target]
    after = predict(model, stamp(X_test[keep_idx], attack, seed))
    return float(np.mean(after == target)) if len(after) else float("nan")
