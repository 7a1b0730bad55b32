"""An interval for a difference between two models that covers with few pre-training seeds.

With 3-4 pre-training seeds a percentile bootstrap over seeds is too narrow: resampling 3 values
with replacement reproduces about ``(n-1)/n`` of their variance and none of the uncertainty of
estimating it from 3 values (measured by ``tests/eval/test_eval_seed_interval.py``: it covers
about 80% where it claims 95%). This interval adds the two sources of variation the study has,
and widens for the few seeds with Student's t:

* seeds: one pre-training run moves every task at once, so each seed's score is its mean over
  the tasks; ``s_a^2 / n_a + s_b^2 / n_b`` over those means, or, when the seeds pair by id (the
  same seed number for both models, e.g. a fine-tuning seed shared by both starts), ``s_d^2 /
  n`` over the per-seed differences;
* clips: the test clips are a sample too, the same for both models (paired); the variance of
  the mean over clips of the seed-averaged per-clip difference, per task, averaged over tasks.

The interval is ``d +- t(nu) sqrt(V_seed + V_clip)`` with Welch-Satterthwaite degrees of
freedom ``nu`` (the clip part counts as exactly known: thousands of clips).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

from aape_plugin.eval.bootstrap import Interval


def seed_t_interval(
    scores_a: Mapping[str, np.ndarray],
    scores_b: Mapping[str, np.ndarray],
    *,
    paired: bool = False,
    confidence: float = 0.95,
) -> Interval:
    """The interval of ``mean_task(mean(score_a) - mean(score_b))``.

    :param scores_a: per task, a ``(seeds, clips)`` array of per-clip scores (1/0 or any per-clip
        measure) of model ``a``, row ``k`` the same seed in every task; the same clips in the same
        order for model ``b``.
    :param paired: row ``k`` of ``a`` and of ``b`` share a seed (needs as many rows).
    """
    if set(scores_a) != set(scores_b) or not scores_a:
        raise ValueError(f"Both models need the same, non-empty set of tasks; got {sorted(scores_a)} and {sorted(scores_b)}.")
    tasks = sorted(scores_a)
    a = {t: np.asarray(scores_a[t], dtype=np.float64) for t in tasks}
    b = {t: np.asarray(scores_b[t], dtype=np.float64) for t in tasks}
    for t in tasks:
        if a[t].ndim != 2 or b[t].ndim != 2 or a[t].shape[1] != b[t].shape[1]:
            raise ValueError(f"{t}: expected (seeds, clips) arrays over the same clips, got {a[t].shape} and {b[t].shape}.")
    n_a, n_b = {a[t].shape[0] for t in tasks}, {b[t].shape[0] for t in tasks}
    if len(n_a) != 1 or len(n_b) != 1:
        raise ValueError("Every task needs the same seeds of a model.")
    n_a_, n_b_ = n_a.pop(), n_b.pop()
    if paired and n_a_ != n_b_:
        raise ValueError(f"Paired seeds need as many seeds of both models, got {n_a_} and {n_b_}.")

    # Per seed: its mean over tasks (each task's mean over its clips).
    seed_a = np.mean([a[t].mean(axis=1) for t in tasks], axis=0)
    seed_b = np.mean([b[t].mean(axis=1) for t in tasks], axis=0)
    estimate = float(seed_a.mean() - seed_b.mean())

    if paired:
        if n_a_ < 2:
            raise ValueError("An interval over seeds needs at least 2 seeds.")
        v_seed = float(np.var(seed_a - seed_b, ddof=1) / n_a_)
        df_seed = n_a_ - 1
        parts = [(v_seed, df_seed)]
    else:
        if n_a_ < 2 and n_b_ < 2:
            raise ValueError("An interval over seeds needs at least 2 seeds of one model.")
        parts = []
        for values, n in ((seed_a, n_a_), (seed_b, n_b_)):
            if n >= 2:
                parts.append((float(np.var(values, ddof=1) / n), n - 1))
    v_seed = sum(v for v, _ in parts)

    # Clips: per task, the variance of the mean over clips of the seed-averaged difference.
    v_clip = float(np.mean([np.var(a[t].mean(axis=0) - b[t].mean(axis=0), ddof=1) / a[t].shape[1] for t in tasks]) / len(tasks))

    total = v_seed + v_clip
    if total <= 0:
        return Interval(estimate, estimate, estimate)
    denominator = sum(v**2 / df for v, df in parts if v > 0)
    df = total**2 / denominator if denominator > 0 else np.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, df) * np.sqrt(total))
    return Interval(estimate, estimate - half, estimate + half)
