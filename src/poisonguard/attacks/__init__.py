"""Seeded poisoning attacks: for red-teaming, canaries and tests. Importing registers them all."""

from . import backdoor, duplicate_flood, label_flip, out_of_distribution
from .base import ATTACKS, Attack, Poisoned, get_attack, register_attack

__all__ = [
    "ATTACKS",
    "Attack",
    "Poisoned",
    "backdoor",
    "duplicate_flood",
    "get_attack",
    "label_flip",
    "out_of_distribution",
    "register_attack",
]
