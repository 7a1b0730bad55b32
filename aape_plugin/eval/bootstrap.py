"""Paired, hierarchical bootstrap intervals for differences between two models on the same clips.

With a few hundred test clips one clip moves accuracy by a few tenths of a point, and a handful
of pre-training seeds spread results by a point or more; a difference is only worth stating with
an interval that accounts for both. One pre-training run moves every task at once (a lucky seed
is lucky everywhere), so each bootstrap draw resamples **one** set of seeds per model and uses it
for every task (first level), then the clips of each task (second level; the same clips for both
models: the comparison is paired). The statistic is the difference of mean scores, averaged over
tasks. Resampling seeds independently per task would treat five tasks as five independent seed
draws and give intervals on the task mean that are too narrow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


TIE_MARGIN = 0.02
"""How close to zero both ends of an interval must lie for the difference to be called a tie (2
points of accuracy; 0.02 of a cosine): a wider interval that holds zero is inconclusive."""


@dataclass(frozen=True)
class Interval:
    """A difference (``a - b``, in score units) and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def describe(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+1.2 [+0.4, +2.0]`` (points); an interval that contains zero is ``a tie within ±2
        points`` when its ends, as printed, also lie within :data:`TIE_MARGIN` of zero, and
        ``inconclusive`` when they reach further (it shows neither a difference nor its absence)."""
        # A bound that excludes zero but rounds to it gets the digits that show its side.
        while digits < 3 and any(v != 0.0 and round(scale * v, digits) == 0.0 for v in (self.low, self.high)):
            digits += 1
        f = f"{{:+.{digits}f}}"
        low, high = f.format(scale * self.low), f.format(scale * self.high)
        if self.excludes_zero:
            verdict = ""
        elif max(-float(low), float(high)) <= scale * TIE_MARGIN + 1e-9:
            verdict = f", a tie within ±{scale * TIE_MARGIN:g}" + (" points" if scale == 100.0 else "")
        else:
            verdict = ", inconclusive"
        return f"{f.format(scale * self.estimate)} [{low}, {high}]{verdict}"

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def _clip_weights(rng: np.random.Generator, num_clips: int, num_draws: int) -> np.ndarray:
    """``(draws, clips)``: how often each clip is drawn in each resample, divided by the count."""
    return rng.multinomial(num_clips, np.full(num_clips, 1.0 / num_clips), size=num_draws) / num_clips


def _seed_weights(rng: np.random.Generator, num_seeds: int, num_draws: int) -> np.ndarray:
    """``(draws, seeds)``: the same for the seeds (one resample per draw, shared by all tasks)."""
    return rng.multinomial(num_seeds, np.full(num_seeds, 1.0 / num_seeds), size=num_draws) / num_seeds


def paired_bootstrap(
    scores_a: Mapping[str, np.ndarray],
    scores_b: Mapping[str, np.ndarray],
    *,
    num_draws: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    share_seeds: bool = True,
) -> Interval:
    """The interval of ``mean_task(score_a - score_b)``.

    :param scores_a: per task, a ``(seeds, clips)`` array of per-clip scores of model ``a`` (1/0
        for right/wrong, or any per-clip measure), one row per pre-training seed. Columns are the
        same clips, in the same order, in ``scores_b``; the numbers of rows may differ between
        models but not between the tasks of one model (row ``k`` is seed ``k`` everywhere).
    :param share_seeds: resample one set of seeds per model and draw for all tasks (the default,
        see the module docstring); ``False`` resamples them independently per task (only to show
        how much narrower that makes the interval).
    """
    if set(scores_a) != set(scores_b) or not scores_a:
        raise ValueError(f"Both models need the same, non-empty set of tasks; got {sorted(scores_a)} and {sorted(scores_b)}.")

    tasks = sorted(scores_a)
    arrays = {}
    for task in tasks:
        a, b = np.asarray(scores_a[task], dtype=np.float64), np.asarray(scores_b[task], dtype=np.float64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"{task}: expected (seeds, clips) arrays over the same clips, got {a.shape} and {b.shape}.")
        arrays[task] = (a, b)
    seeds_a = {a.shape[0] for a, _ in arrays.values()}
    seeds_b = {b.shape[0] for _, b in arrays.values()}
    if share_seeds and (len(seeds_a) != 1 or len(seeds_b) != 1):
        raise ValueError(f"Every task needs the same seeds of a model; got {sorted(seeds_a)} and {sorted(seeds_b)} rows.")

    rng = np.random.default_rng(seed)
    shared = (_seed_weights(rng, seeds_a.pop(), num_draws), _seed_weights(rng, seeds_b.pop(), num_draws)) if share_seeds else None
    estimate = 0.0
    draws = np.zeros(num_draws)
    for task in tasks:
        a, b = arrays[task]
        estimate += a.mean() - b.mean()
        clips = _clip_weights(rng, a.shape[1], num_draws)  # (draws, clips), the same for a and b
        # Each seed's score on each resample of the clips, then the resampled seeds' mean.
        per_seed_a, per_seed_b = clips @ a.T, clips @ b.T  # (draws, seeds)
        wa, wb = shared if shared is not None else (_seed_weights(rng, a.shape[0], num_draws), _seed_weights(rng, b.shape[0], num_draws))
        draws += (per_seed_a * wa).sum(axis=1) - (per_seed_b * wb).sum(axis=1)
    estimate /= len(tasks)
    draws /= len(tasks)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def check_same_clips(named_clip_lists: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Raises unless every list names the same clips in the same order (before pairing them)."""
    (first_name, first), *rest = named_clip_lists
    for name, clips in rest:
        if list(clips) != list(first):
            differ = next((i for i, (x, y) in enumerate(zip(first, clips)) if x != y), min(len(first), len(clips)))
            raise ValueError(
                f"Cannot pair {name} with {first_name}: their clips differ (first at row {differ} of "
                f"{len(first)} and {len(clips)})."
            )
