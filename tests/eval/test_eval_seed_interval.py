"""The study's interval covers with the seed counts it uses, where the percentile bootstrap over
seeds does not (a simulation with a known difference).

Simulated: 5 tasks of 200 clips (clip difficulty shared by both models), two models whose
per-clip correctness is Bernoulli of ``sigmoid(model + seed + seed x task + clip)``; a seed's luck
is shared by all its tasks (as one pre-training run moves every task). With paired seeds the
two models' seed effects are correlated (the same fine-tuning seed). The true difference is the
expectation over seeds and clips, computed by Monte Carlo."""

import numpy as np
import pytest

from aape_plugin.eval.bootstrap import paired_bootstrap
from aape_plugin.eval.seed_interval import seed_t_interval

TASKS, CLIPS, SEED_SD, TASK_SD, MEANS = 5, 200, 0.25, 0.05, (1.0, 0.9)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def seed_effects(rng: np.random.Generator, n: int, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    if not paired:
        return rng.normal(0, SEED_SD, n), rng.normal(0, SEED_SD, n)
    shared = rng.normal(0, SEED_SD, n)
    return shared + rng.normal(0, SEED_SD / 2, n), shared + rng.normal(0, SEED_SD / 2, n)


def simulate(rng: np.random.Generator, n: int, paired: bool) -> tuple[dict, dict]:
    clips = rng.normal(0, 1.0, (TASKS, CLIPS))
    models = []
    for mean, seeds in zip(MEANS, seed_effects(rng, n, paired)):
        logits = mean + seeds[:, None, None] + rng.normal(0, TASK_SD, (n, TASKS))[:, :, None] + clips[None]
        outcomes = rng.random(logits.shape) < sigmoid(logits)
        models.append({f"task{t}": outcomes[:, t].astype(float) for t in range(TASKS)})
    return models[0], models[1]


def true_difference(paired: bool, draws: int = 1_000_000) -> float:
    rng = np.random.default_rng(7)
    clips = rng.normal(0, 1.0, draws)
    a, b = seed_effects(rng, draws, paired)
    return float(np.mean(sigmoid(MEANS[0] + a + rng.normal(0, TASK_SD, draws) + clips)
                         - sigmoid(MEANS[1] + b + rng.normal(0, TASK_SD, draws) + clips)))


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("seeds", [3, 4])
def test_the_t_interval_over_seeds_and_clips_covers_close_to_95_percent(seeds: int, paired: bool) -> None:
    truth = true_difference(paired)
    rng = np.random.default_rng(100 * seeds + paired)
    replicates = 400
    covered = sum(interval.low <= truth <= interval.high
                  for interval in (seed_t_interval(*simulate(rng, seeds, paired), paired=paired) for _ in range(replicates)))
    # 400 replicates: 3 standard errors of a 95% coverage are 0.033.
    assert 0.917 <= covered / replicates <= 0.99, covered / replicates


def test_the_percentile_bootstrap_over_three_seeds_does_not_cover() -> None:
    # Why the study moved off it: with three unpaired seeds it covers about 85% where it claims 95%.
    truth = true_difference(False)
    rng = np.random.default_rng(5)
    replicates = 150
    covered = sum(interval.low <= truth <= interval.high for interval in
                  (paired_bootstrap(*simulate(rng, 3, False), num_draws=300, seed=r) for r in range(replicates)))
    assert covered / replicates < 0.9, covered / replicates


def test_bad_input_is_refused() -> None:
    a = {"x": np.ones((3, 10))}
    with pytest.raises(ValueError, match="same, non-empty set of tasks"):
        seed_t_interval(a, {"y": np.ones((3, 10))})
    with pytest.raises(ValueError, match="as many seeds"):
        seed_t_interval(a, {"x": np.ones((2, 10))}, paired=True)
    with pytest.raises(ValueError, match="same clips"):
        seed_t_interval(a, {"x": np.ones((3, 9))})
    flat = seed_t_interval(a, {"x": np.ones((3, 10))})
    assert (flat.estimate, flat.low, flat.high) == (0.0, 0.0, 0.0)
