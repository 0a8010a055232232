"""Penultimate features of a PyTorch model: in row order, batched, the model's mode restored."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.errors import ConfigError, InputError

torch = pytest.importorskip("torch")

from poisonguard.torch_features import penultimate_features  # noqa: E402


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))


def test_features_are_the_input_of_the_last_linear_layer_in_order() -> None:
    model = small_model()
    X = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    feats = penultimate_features(model, X, batch_size=8, device="cpu")
    with torch.no_grad():
        expected = model[1](model[0](torch.from_numpy(X))).numpy()
    assert feats.shape == (50, 7)
    assert np.allclose(feats, expected, atol=1e-6)


def test_dataset_of_pairs_and_mode_restored() -> None:
    model = small_model()
    model.train()
    X = torch.randn(20, 5)
    y = torch.zeros(20, dtype=torch.long)
    feats = penultimate_features(model, torch.utils.data.TensorDataset(X, y), batch_size=6, device="cpu")
    assert feats.shape == (20, 7)
    assert model.training


def test_shuffled_loader_and_models_without_linear_layers_are_refused() -> None:
    X = torch.randn(10, 5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=4, shuffle=True)
    with pytest.raises(InputError, match="shuffle=False"):
        penultimate_features(small_model(), loader, device="cpu")
    with pytest.raises(ConfigError, match=r"no nn\.Linear"):
        penultimate_features(torch.nn.Sequential(torch.nn.ReLU()), X, device="cpu")
