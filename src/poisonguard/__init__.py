"""poisonguard: find poisoned rows in training data."""

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
