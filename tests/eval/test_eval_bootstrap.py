"""Paired bootstrap intervals: coverage of a known difference, pairing, ties."""

import numpy as np
import pytest

from aape_plugin.eval.bootstrap import Interval, paired_bootstrap


def test_a_clear_difference_excludes_zero_and_a_tie_does_not() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.7
    better = {"t": np.stack([truth | (rng.random(400) < 0.5) for _ in range(3)])}
    same = {"t": np.stack([truth for _ in range(3)])}
    clear = paired_bootstrap(better, same)
    assert clear.excludes_zero and clear.low > 0.05 and clear.low < clear.estimate < clear.high
    tie = paired_bootstrap(same, {"t": np.stack([truth] * 2)})
    assert tie.estimate == 0.0 and not tie.excludes_zero and "a tie" in tie.describe()


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
