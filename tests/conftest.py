"""Shared fixtures: small synthetic tables written to temporary files, and a CLI runner.

The thread pools of OpenMP and BLAS are limited to one thread before anything loads them: on a small machine
that is busy with other work, OpenMP worker threads that spin while waiting can slow a scan of a few hundred
rows from seconds to minutes. A user's own setting of these variables is left alone.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner, Result  # noqa: E402

from poisonguard.cli import app  # noqa: E402

N_ROWS = 300
N_FLIPPED = 6
N_FLOOD = 40


def make_table(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """A clean two-class table: 6 numeric features, a categorical column ``region`` and a ``label`` column."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n,
        n_features=6,
        n_informative=4,
        n_redundant=0,
        class_sep=2.0,
        flip_y=0.0,
        random_state=seed,
    )
    frame = pd.DataFrame(X.round(5), columns=[f"f{i}" for i in range(X.shape[1])])
    rng = np.random.default_rng(seed)
    frame["region"] = rng.choice(["north", "south", "east", "west"], n)
    frame["label"] = np.where(y == 1, "churn", "stay")
    return frame


def poison_table(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Flip a few labels and append a flood of exact copies of one row carrying the other label."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    flip = rng.choice(len(out), N_FLIPPED, replace=False)
    other = {"churn": "stay", "stay": "churn"}
    out.loc[flip, "label"] = out.loc[flip, "label"].map(other).to_numpy()
    flood = pd.concat([frame.iloc[[5]]] * N_FLOOD, ignore_index=True)
    flood["label"] = other[frame.loc[5, "label"]]
    return pd.concat([out, flood], ignore_index=True)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def clean_frame() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="session")
def clean_csv(data_dir: Path, clean_frame: pd.DataFrame) -> Path:
    path = data_dir / "clean.csv"
    clean_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def poisoned_frame(clean_frame: pd.DataFrame) -> pd.DataFrame:
    return poison_table(clean_frame)


@pytest.fixture(scope="session")
def poisoned_csv(data_dir: Path, poisoned_frame: pd.DataFrame) -> Path:
    path = data_dir / "poisoned.csv"
    poisoned_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def runner() -> CliRunner:
    # a wide virtual terminal, so that rich does not wrap the lines the tests look for
    return CliRunner(env={"COLUMNS": "240"})


@pytest.fixture
def invoke(runner: CliRunner):
    """Run ``poisonguard ARGS...`` in-process; paths are turned into strings."""

    def run(*args: object) -> Result:
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the session (see ``tests/services.py``); skipped when it is not installed."""
    from services import Browser

    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="session")
def postgres_url():
    """The SQLAlchemy URL of a throwaway PostgreSQL server for the session; use ``services.fresh_database``."""
    from services import postgres_server

    with postgres_server() as url:
        yield url
