"""Detectors: one module each, registered by name. Importing this package registers them all."""

from . import class_outlier, duplicates, isolation, label_consistency, neighbor_disagreement, trigger_pattern
from .base import REGISTRY, Detector, DetectorOutput, get_detector, register

DEFAULT_DETECTORS: tuple[str, ...] = (
    "label_consistency",
    "duplicates",
    "neighbor_disagreement",
    "class_outlier",
    "isolation",
    "trigger_pattern",
)

__all__ = [
    "DEFAULT_DETECTORS",
    "REGISTRY",
    "Detector",
    "DetectorOutput",
    "class_outlier",
    "duplicates",
    "get_detector",
    "isolation",
    "label_consistency",
    "neighbor_disagreement",
    "register",
    "trigger_pattern",
]
