"""The adaptive half's fresh-split reading: its comparisons are the protocol's, paired by seed, and
a comparison whose models this machine does not hold is left out."""

from pathlib import Path

import pytest

from studies.common import MODULATION_TASKS
from studies.experiments import ADAPTIVE_FRESH, FRESH_COMPARISONS as COMPARISONS, RANDOM_AAPE as RANDOM
from studies.outcomes import Outcome
from studies.per_task_page import report

CLIPS = [f"fresh/c{i}.flac" for i in range(40)]


def _outcome(right: int) -> Outcome:
    correct = [1] * right + [0] * (len(CLIPS) - right)
    return Outcome(valid=0.5, test=right / len(CLIPS), clips=CLIPS, correct=correct)


def test_the_reading_pairs_seeds_and_skips_what_this_machine_does_not_hold() -> None:
    scores = {}
    for seed in (1, 2, 3):
        scores[f"trained_visible, 3000 steps, seed {seed}"] = {t: _outcome(30 + seed) for t in MODULATION_TASKS}
        scores[f"fixed_poles, 3000 steps, seed {seed}"] = {t: _outcome(20 + seed) for t in MODULATION_TASKS}
        scores[f"{RANDOM}, seed {seed}"] = {t: _outcome(30 + seed) for t in MODULATION_TASKS}
    scores["modulation spectrum"] = {t: _outcome(39) for t in MODULATION_TASKS}
    text, data = report(scores, ADAPTIVE_FRESH)
    assert "| trained_visible | 3 | 80.0 | 80.0 | 80.0 | 80.0 |" in text
    assert "| modulation spectrum | no model | 97.5 | 97.5 | 97.5 | 97.5 |" in text
    # Paired by seed: the same 10 clips better in every seed: +25 points, no spread over seeds.
    adaptive = data["comparisons"]["trained_visible - fixed_poles: modulation group"]
    assert adaptive["seeds"] == [1, 2, 3] and adaptive["estimate"] == pytest.approx(0.25)
    assert data["comparisons"][f"trained_visible - {RANDOM}: modulation group"]["estimate"] == pytest.approx(0.0)
    # alias_visible and modulation_lambda were not measured: their comparisons are left out.
    assert {key.split(":")[0] for key in data["comparisons"]} == {
        f"{a} - {b}" for a, b in COMPARISONS if "alias_visible" not in (a, b) and "modulation_lambda" not in (a, b)}
