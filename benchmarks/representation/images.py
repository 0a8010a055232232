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


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def proba(model: Any, X: np.ndarray, batch: int = 512) -> np.ndarray:
    """Softmax probabilities for images ``X`` (n, 28, 28), batched on the model's device."""
    import torch

    dev = _device(model)
    with torch.no_grad():
        out = [
            torch.softmax(model(torch.tensor(X[i : i + batch, None], dtype=torch.float32).to(dev)).float(), 1)
            .cpu()
            .numpy()
            for i in range(0, len(X), batch)
        ]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def predict(model: Any, X: np.ndarray) -> np.ndarray:
    return proba(model, X).argmax(1) if len(X) else np.zeros(0, dtype=np.int64)


def asr(model: Any, X_test: np.ndarray, y_test: np.ndarray, attack: str, target: int, seed: int) -> float:
    """Share of test images not of the target class (and not already predicted as it) that the trigger turns into it."""
    keep = y_test != target
    before = predict(model, X_test[keep])
    keep_idx = np.flatnonzero(keep)[before != target]
    after = predict(model, stamp(X_test[keep_idx], attack, seed))
    return float(np.mean(after == target)) if len(after) else float("nan")


def resnet18(n_classes: int) -> Any:
    """ResNet-18 (He et al. 2016) for 28x28 grey images, CIFAR-style: a 3x3 stem without stride or pooling, four
    stages of two basic blocks (64-512 channels), global average pooling into a 512-feature penultimate layer."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.skip = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )
            self.act = nn.ReLU(inplace=True)

        def forward(self, x: Any) -> Any:
            return self.act(self.body(x) + self.skip(x))

    layers: list[Any] = [nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, n_classes)]
    return nn.Sequential(*layers)


def train_resnet(
    X: np.ndarray, y: np.ndarray, *, n_classes: int, seed: int, epochs: int = 6, device: str = "cuda", batch: int = 512
) -> Any:
    """ResNet-18 trained with SGD (Nesterov momentum, one-cycle learning rate), bf16 autocast on a GPU; seeded (GPU
    kernels are not bitwise deterministic). The images stay on the device; no augmentation, so triggers are kept."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    dev = torch.device(device)
    model = resnet18(n_classes).to(dev).to(memory_format=torch.channels_last)
    steps = epochs * -(-len(y) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps, pct_start=0.25)
    Xt = torch.tensor(X[:, None], dtype=torch.float32, device=dev).contiguous(memory_format=torch.channels_last)
    yt = torch.tensor(y, dtype=torch.long, device=dev)
    g = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    amp = dev.type == "cuda"
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(yt), generator=g).to(dev)
        for start in range(0, len(yt), batch):
            b = order[start : start + batch]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(Xt[b]), yt[b])
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model
