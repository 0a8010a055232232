"""poisonguard: find poisoned rows in training data."""

import os as _os

# OpenMP threads that spin while waiting make boosting crawl when other processes share the CPU (CI runners,
# parallel test workers). Passive waiting costs little when the machine is idle. Set before numpy/sklearn load.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from .errors import ConfigError, DetectorError, InputError, NotFittedError, PoisonguardError
from .io import Dataset, load_dataset
from .result import ScanResult
from .scanner import scan

__all__ = [
    "ConfigError",
    "Dataset",
    "DetectorError",
    "InputError",
    "NotFittedError",
    "PoisonguardError",
    "ScanResult",
    "__version__",
    "load_dataset",
    "scan",
]
