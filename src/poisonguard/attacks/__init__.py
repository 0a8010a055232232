"""Seeded poisoning attacks: for red-teaming, canaries and tests. Importing registers them all.

Each attack lives in a module of the same name as its registry key; ``get_attack(name, **params)`` builds one.
Backdoor attacks (``backdoor``, ``inbounds_backdoor``, ``clean_label_backdoor``, ``text_trigger``) put
``target`` and ``apply_trigger(frame) -> frame`` in their result's ``meta``; see ``base``.
"""

from . import (
    adaptive,
    backdoor,
    boundary_flip,
    class_targeted_flip,
    clean_label_backdoor,
    confident_flip,
    duplicate_flood,
    inbounds_backdoor,
    label_flip,
    out_of_distribution,
    segment_targeted_flip,
    text_trigger,
)
from .base import ATTACKS, Attack, Poisoned, get_attack, register_attack

__all__ = [
    "ATTACKS",
    "Attack",
    "Poisoned",
    "adaptive",
    "backdoor",
    "boundary_flip",
    "class_targeted_flip",
    "clean_label_backdoor",
    "confident_flip",
    "duplicate_flood",
    "get_attack",
    "inbounds_backdoor",
    "label_flip",
    "out_of_distribution",
    "register_attack",
    "segment_targeted_flip",
    "text_trigger",
]
