"""Paired bootstrap intervals for differences in accuracy between two models on the same test clips.

With a few hundred test clips one clip moves accuracy by a few tenths of a point, and a handful
of pre-training seeds spread results by a point or more; a difference is only worth stating with
an interval that accounts for both. Each bootstrap draw resamples the test clips of every task
(the same clips for both models: the comparison is paired) and, independently for each model,
its pre-training seeds; the statistic is the difference of mean accuracies, averaged over tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A difference (``a - b``, in accuracy units) and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def describe(self, scale: float = 100.0) -> str:
        """``+1.2 [+0.4, +2.0]`` (points), with ``tie`` when the interval contains zero."""
        verdict = "" if self.excludes_zero else ", a tie"
        return f"{scale * self.estimate:+.1f} [{scale * self.low:+.1f}, {scale * self.high:+.1f}]{verdict}"


def paired_bootstrap(
    correct_a: Mapping[str, np.ndarray],
    correct_b: Mapping[str, np.ndarray],
    *,
    num_draws: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The interval of ``mean_task(acc_a - acc_b)``.

    :param correct_a: per task, a ``(seeds, clips)`` 0/1 array: whether model ``a`` (one row per
        pre-training seed) got each test clip right. Columns are the same clips, in the same
        order, in ``correct_b``; the numbers of rows may differ.
    """
    if set(correct_a) != set(correct_b) or not correct_a:
        raise ValueError(f"Both models need the same, non-empty set of tasks; got {sorted(correct_a)} and {sorted(correct_b)}.")

    rng = np.random.default_rng(seed)
    tasks = sorted(correct_a)
    estimate = 0.0
    draws = np.zeros(num_draws)
    for task in tasks:
        a, b = np.asarray(correct_a[task], dtype=np.float64), np.asarray(correct_b[task], dtype=np.float64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"{task}: expected (seeds, clips) arrays over the same clips, got {a.shape} and {b.shape}.")
        estimate += a.mean() - b.mean()
        n = a.shape[1]
        clips = rng.integers(0, n, size=(num_draws, n))
        rows_a = rng.integers(0, a.shape[0], size=(num_draws, a.shape[0]))
        rows_b = rng.integers(0, b.shape[0], size=(num_draws, b.shape[0]))
        # Accuracy of a resampled set of seeds on resampled clips = mean over the chosen rows of
        # each row's accuracy on the chosen clips.
        for draw in range(num_draws):
            c = clips[draw]
            draws[draw] += a[rows_a[draw]][:, c].mean() - b[rows_b[draw]][:, c].mean()
    estimate /= len(tasks)
    draws /= len(tasks)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high))
