"""Adaptive attack: an attacker who knows poisonguard keeps only the poison its scan finds least suspicious.

Why it matters: a detector evaluated only on attacks that ignore it overstates its strength. This attacker makes
``candidates_factor`` times more poison than it needs with a base attack, runs the scan itself and keeps the
candidates with the lowest suspicion scores, over a few rounds. How much recall survives this selection is the
honest measure of the scan against someone who has read its source.

Parameters: ``base`` (registry name of the attack that makes candidates; default 'label_flip'),
``base_params`` (its keyword parameters), ``candidates_factor`` (default 4), ``rounds`` (default 2),
``detectors`` (the scan's detectors; default: the scan's defaults). Round ``r`` scans the table holding the
poison still kept (all candidates in round 1) and keeps the ``k * f ** ((rounds - r) / rounds)`` least
suspicious candidates (``k = rate * n`` poison rows, ``f`` = the factor), so the last round leaves exactly ``k``
(fewer only when the base attack cannot make ``k``). One scan per round; the scan seed is drawn from the attack's
seed (an attacker does not know the defender's seed). Dropped candidates are undone: an in-place candidate gets
its original row back, an added row is removed.

``meta``: ``base``, ``candidates``, ``kept_per_round``, ``mean_score_per_round`` (mean scan score of the poison
kept after each round, as the attacker saw it), plus the base attack's ``trigger``, ``target``, ``token``,
``column`` and ``apply_trigger`` when it has them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import Dataset, load_dataset
from .base import Attack, Poisoned, count_for, get_attack, register_attack

_PASSED_ON = ("trigger", "target", "token", "column", "in_bounds", "apply_trigger")


@register_attack("adaptive")
class AdaptiveAttack(Attack):
    description = "a base attack's candidates filtered by poisonguard's own scan: the least suspicious are kept"

    def __init__(
        self,
        *,
        base: str = "label_flip",
        base_params: dict[str, Any] | None = None,
        candidates_factor: float = 4,
        rounds: int = 2,
        detectors: Any = None,
    ) -> None:
        if base == "adaptive":
            raise ConfigError("attack 'adaptive': the base attack cannot be 'adaptive' itself.")
        if not candidates_factor >= 1:
            raise ConfigError(f"attack 'adaptive': candidates_factor must be at least 1; got {candidates_factor!r}.")
        if not (isinstance(rounds, int) and rounds >= 1):
            raise ConfigError(f"attack 'adaptive': rounds must be a positive integer; got {rounds!r}.")
        self.base = get_attack(base, **(base_params or {}))
        self.candidates_factor = float(candidates_factor)
        self.rounds = rounds
        self.detectors = detectors

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        from ..scanner import scan_dataset  # the scanner imports the attacks (canaries): import late

        n = data.n_rows
        k = count_for(n, rate)
        base_seed, scan_seed = (int(s) for s in rng.integers(2**31 - 1, size=2))
        cand_rate = min(self.candidates_factor * k / n, max(k / n, 0.5))  # at most half the rows as candidates
        if cand_rate >= 1:
            cand_rate = rate
        out = self.base.apply(data, rate=cand_rate, seed=base_seed)
        cand = np.flatnonzero(out.mask)  # candidate positions in the base attack's frame
        k = min(k, len(cand))
        kept = np.arange(len(cand))  # indices into cand
        exclude = [c for c, why in data.ignored.items() if why not in ("label", "source", "id")]
        kept_per_round: list[int] = []
        mean_scores: list[float] = []
        for r in range(1, self.rounds + 1):
            frame, _, where = _assemble(data.frame, out.frame, cand, kept)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = load_dataset(
                    frame,
                    label=data.label,
                    source=data.source,
                    id=data.id,
                    exclude=exclude,
                    types=dict(data.columns),
                    name=data.name,
                )
            score = scan_dataset(ds, seed=scan_seed, detectors=self.detectors).rows["score"].to_numpy()[where]
            n_keep = k if r == self.rounds else round(k * self.candidates_factor ** ((self.rounds - r) / self.rounds))
            n_keep = int(np.clip(n_keep, k, len(kept)))
            best = np.lexsort((rng.random(len(kept)), score))[:n_keep]
            kept = np.sort(kept[best])
            kept_per_round.append(int(n_keep))
            mean_scores.append(round(float(score[best].mean()) if n_keep else 0.0, 6))
        frame, mask, _ = _assemble(data.frame, out.frame, cand, kept)
        meta: dict[str, Any] = {
            "base": self.base.name,
            "candidates": len(cand),
            "kept_per_round": kept_per_round,
            "mean_score_per_round": mean_scores,
        }
        meta.update({key: out.meta[key] for key in _PASSED_ON if key in out.meta})
        return Poisoned(frame, mask, meta)


def _assemble(
    original: pd.DataFrame, poisoned: pd.DataFrame, cand: np.ndarray, kept: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The table with only the kept candidates poisoned: (frame, mask, positions of the kept candidates in it).

    ``cand`` are candidate positions in ``poisoned`` (``< n``: changed original rows; ``>= n``: added rows);
    ``kept`` indexes into ``cand``. Dropped in-place candidates get their original values back, column by column;
    dropped added rows are left out.
    """
    n = len(original)
    chosen = cand[kept]
    undo = np.zeros(n, dtype=bool)
    undo[cand[cand < n]] = True
    undo[chosen[chosen < n]] = False
    head = poisoned.iloc[:n]
    if undo.any():
        head = head.copy()
        undo_s = pd.Series(undo, index=head.index)
        for col in head.columns:
            if col in original.columns:
                head[col] = head[col].mask(undo_s, original[col].set_axis(head.index))
    added = np.sort(chosen[chosen >= n])
    frame = pd.concat([head, poisoned.iloc[added]], ignore_index=True) if len(added) else head.reset_index(drop=True)
    where = np.where(chosen < n, chosen, n + np.searchsorted(added, chosen))
    mask = np.zeros(len(frame), dtype=bool)
    mask[where] = True
    return frame, mask, where
