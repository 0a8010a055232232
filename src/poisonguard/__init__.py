"""poisonguard: find poisoned rows in training data, and evaluate models where poisoning hides."""

import os as _os

# OpenMP threads that spin while they wait make boosting crawl when other processes share the CPU (CI runners,
# parallel test workers); a short spin keeps the idle-machine speed. Set before numpy and scikit-learn load.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

from .contracts import Contract, check_contract, infer_contract
from .diff import Diff, diff, row_fingerprints
from .errors import ConfigError, DetectorError, InputError, LedgerError, NotFittedError, PoisonguardError
from .evaluate import EvaluationResult, evaluate
from .incremental import IncrementalResult, Reference, fit_reference, scan_incremental
from .io import Dataset, load_dataset
from .ledger import Ledger, Version
from .result import ScanResult
from .scanner import scan
from .triggers import Trigger

__all__ = [
    "ConfigError",
    "Contract",
    "Dataset",
    "DetectorError",
    "Diff",
    "EvaluationResult",
    "IncrementalResult",
    "InputError",
    "Ledger",
    "LedgerError",
    "NotFittedError",
    "PoisonguardError",
    "Reference",
    "ScanResult",
    "Trigger",
    "Version",
    "__version__",
    "check_contract",
    "diff",
    "evaluate",
    "fit_reference",
    "infer_contract",
    "load_dataset",
    "row_fingerprints",
    "scan",
    "scan_incremental",
]
