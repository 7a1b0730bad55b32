"""Paired bootstrap intervals: coverage of a known difference, pairing, ties."""

import numpy as np
import pytest

from aape_plugin.eval.bootstrap import Interval, check_same_clips, paired_bootstrap


def test_a_clear_difference_excludes_zero_and_a_tie_does_not() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.7
    better = {"t": np.stack([truth | (rng.random(400) < 0.5) for _ in range(3)])}
    same = {"t": np.stack([truth for _ in range(3)])}
    clear = paired_bootstrap(better, same)
    assert clear.excludes_zero and clear.low > 0.05 and clear.low < clear.estimate < clear.high
    tie = paired_bootstrap(same, {"t": np.stack([truth] * 2)})
    assert tie.estimate == 0.0 and not tie.excludes_zero and "a tie" in tie.describe()


def test_an_interval_that_holds_zero_is_a_tie_only_within_two_points_as_printed() -> None:
    assert Interval(0.003, -0.01, 0.015).describe() == "+0.3 [-1.0, +1.5], a tie within ±2 points"
    assert Interval(0.008, -0.004, 0.0199).describe() == "+0.8 [-0.4, +2.0], a tie within ±2 points"  # as printed
    assert Interval(0.008, -0.004, 0.0211).describe() == "+0.8 [-0.4, +2.1], inconclusive"
    assert Interval(-0.034, -0.277, 0.209).describe() == "-3.4 [-27.7, +20.9], inconclusive"
    assert Interval(-0.008, -0.035, 0.019).describe(1.0, 3) == "-0.008 [-0.035, +0.019], inconclusive"
    assert Interval(-0.002, -0.014, 0.017).describe(1.0, 3) == "-0.002 [-0.014, +0.017], a tie within ±0.02"
    assert Interval(0.045, 0.033, 0.057).describe() == "+4.5 [+3.3, +5.7]"


def test_pairing_makes_a_small_consistent_gain_significant() -> None:
    """B is A with 8 of 400 wrong clips fixed: +2 points on the same clips. Paired, the interval
    is tight; an unpaired comparison of two 70%-accurate models on 400 clips would be +-6."""
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.7
    b = a.copy()
    b[np.flatnonzero(~a)[:8]] = True
    interval = paired_bootstrap({"t": b[None]}, {"t": a[None]})
    assert interval.estimate == pytest.approx(0.02) and interval.excludes_zero and interval.high - interval.low < 0.03


def test_seed_spread_widens_the_interval() -> None:
    rng = np.random.default_rng(2)
    base = rng.random(300) < 0.6
    steady = np.stack([base] * 4)
    noisy = np.stack([base ^ (rng.random(300) < p) for p in (0.0, 0.2, 0.4, 0.6)])
    narrow = paired_bootstrap({"t": steady}, {"t": steady[:1]})
    wide = paired_bootstrap({"t": noisy}, {"t": steady[:1]})
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)


def test_tasks_must_match() -> None:
    with pytest.raises(ValueError, match="same, non-empty set of tasks"):
        paired_bootstrap({"a": np.ones((1, 3))}, {"b": np.ones((1, 3))})
    with pytest.raises(ValueError, match="over the same clips"):
        paired_bootstrap({"a": np.ones((1, 3))}, {"a": np.ones((1, 4))})
    assert Interval(0.01, 0.002, 0.02).describe() == "+1.0 [+0.2, +2.0]"


def test_seed_effects_shared_across_tasks_widen_the_task_mean_interval() -> None:
    # Four pre-training seeds whose luck is the same on every one of five tasks: seed k gets
    # the same extra share of clips right everywhere. Drawing one set of seeds for all tasks
    # keeps that correlation; drawing seeds independently per task averages it away and gives
    # an interval on the task mean that is too narrow.
    rng = np.random.default_rng(3)
    luck = (0.0, 0.05, 0.10, 0.30)
    a, b = {}, {}
    for task in range(5):
        truth = rng.random(500) < 0.6
        b[str(task)] = np.stack([truth] * 4)
        a[str(task)] = np.stack([truth | (rng.random(500) < p) for p in luck])
    shared = paired_bootstrap(a, b)
    independent = paired_bootstrap(a, b, share_seeds=False)
    assert shared.estimate == pytest.approx(independent.estimate)
    assert (shared.high - shared.low) > 1.6 * (independent.high - independent.low)


def test_one_set_of_seeds_is_drawn_for_every_task() -> None:
    # A model whose seeds disagree but whose tasks are exact copies: sharing the seed draw makes
    # the five-task mean exactly as uncertain as one task.
    rng = np.random.default_rng(4)
    one = np.stack([rng.random(300) < p for p in (0.5, 0.6, 0.7, 0.8)])
    zero = np.zeros((1, 300))
    single = paired_bootstrap({"t": one}, {"t": zero}, seed=7)
    copies = paired_bootstrap({str(k): one for k in range(5)}, {str(k): zero for k in range(5)}, seed=7)
    assert copies.high - copies.low == pytest.approx(single.high - single.low, rel=0.15)


def test_tasks_with_different_seed_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="same seeds of a model"):
        paired_bootstrap({"a": np.ones((2, 3)), "b": np.ones((3, 3))}, {"a": np.ones((1, 3)), "b": np.ones((1, 3))})


def test_clip_lists_are_checked_before_pairing() -> None:
    check_same_clips([("x", ["a.wav", "b.wav"]), ("y", ["a.wav", "b.wav"])])
    with pytest.raises(ValueError, match="Cannot pair y with x: their clips differ \\(first at row 1"):
        check_same_clips([("x", ["a.wav", "b.wav"]), ("y", ["a.wav", "c.wav"])])
