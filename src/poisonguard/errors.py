"""The poisonguard exception tree.

Every error a user can cause is a ``PoisonguardError`` whose message names the file, column or row and says
what to do. The CLI catches the root once, prints ``error: <message>`` and exits 2.

    PoisonguardError
    ├── InputError (also ValueError)      unreadable file, bad column, bad labels
    ├── ConfigError (also ValueError)     a bad parameter or option
    ├── NotFittedError (also RuntimeError) a detector used before ``fit``
    ├── DetectorError (also RuntimeError) a detector failed while scanning
    └── LedgerError (also RuntimeError)   the ledger database cannot be opened, or a version is unknown
"""

from __future__ import annotations


class PoisonguardError(Exception):
    """Root of every error poisonguard raises on purpose."""

    def __init__(self, message: str) -> None:
        if not message:
            raise ValueError("PoisonguardError needs a message")
        super().__init__(message)


class InputError(PoisonguardError, ValueError):
    """The data cannot be scanned as given."""


class ConfigError(PoisonguardError, ValueError):
    """A parameter or option is invalid."""


class NotFittedError(PoisonguardError, RuntimeError):
    """A detector was asked to score before it was fitted."""


class DetectorError(PoisonguardError, RuntimeError):
    """A detector failed; the scan reports it instead of pretending the data is clean."""


class LedgerError(PoisonguardError, RuntimeError):
    """The provenance ledger cannot do what was asked (database unreachable, unknown version, changed file)."""


__all__ = ["ConfigError", "DetectorError", "InputError", "LedgerError", "NotFittedError", "PoisonguardError"]
