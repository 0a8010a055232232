"""Detectors: one module each, registered by name. Importing this package registers them all."""

from . import (
    class_outlier,
    deep_knn,
    duplicates,
    isolation,
    label_consistency,
    neighbor_disagreement,
    representation_split,
    trigger_pattern,
)
from .base import REGISTRY, Detector, DetectorOutput, get_detector, register

DEFAULT_DETECTORS: tuple[str, ...] = (
    "label_consistency",
    "duplicates",
    "trigger_pattern",
    "neighbor_disagreement",
    "class_outlier",
    "isolation",
)
# added when the scan has a representation (embeddings, or representation="leaves")
REPRESENTATION_DETECTORS: tuple[str, ...] = ("deep_knn", "representation_split")

__all__ = [
    "DEFAULT_DETECTORS",
    "REGISTRY",
    "REPRESENTATION_DETECTORS",
    "Detector",
    "DetectorOutput",
    "class_outlier",
    "deep_knn",
    "duplicates",
    "get_detector",
    "isolation",
    "label_consistency",
    "neighbor_disagreement",
    "register",
    "representation_split",
    "trigger_pattern",
]
