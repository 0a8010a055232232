"""poisonguard: find poisoned rows in training data, and evaluate models where poisoning hides."""

import os as _os

# OpenMP threads that spin while they wait make boosting crawl when other processes share the CPU (CI runners,
# parallel test workers); a short spin keeps the idle-machine speed. Set before numpy and scikit-learn load.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

from .errors import ConfigError, DetectorError, InputError, NotFittedError, PoisonguardError
from .evaluate import EvaluationResult, evaluate
from .io import Dataset, load_dataset
from .result import ScanResult
from .scanner import scan
from .triggers import Trigger

__all__ = [
    "ConfigError",
    "Dataset",
    "DetectorError",
    "EvaluationResult",
    "InputError",
    "NotFittedError",
    "PoisonguardError",
    "ScanResult",
    "Trigger",
    "__version__",
    "evaluate",
    "load_dataset",
    "scan",
]
