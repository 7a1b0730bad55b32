"""The adaptive half's screen page is its stored JSON, rendered, and its rule is the protocol's."""

import json

from studies.common import MODULATION_TASKS, TASKS
from studies.experiments import ADAPTIVE_SCREEN
from studies.screen_page import merged, render, rule
from tests.recipes.helpers import REPO

STORED_ROWS = tuple(f"{name}, seed {s}" for s in (1, 2, 3)
                    for name in ("aape_tiny random init", "vit_tiny random init", "alias_visible, 3000 steps"))


def test_the_screen_page_rebuilds_from_its_json_and_keeps_the_stored_rows() -> None:
    docs = REPO / "docs"
    document = json.loads((docs / f"{ADAPTIVE_SCREEN.outcomes}.json").read_text())
    assert (docs / f"{ADAPTIVE_SCREEN.page}.md").read_text() == render(document, ADAPTIVE_SCREEN)
    stored = json.loads((docs / "objectives-visible-screen.json").read_text())
    for name in STORED_ROWS:
        assert document["scores"][name] == stored[name]
    assert {"log-mel statistics", "modulation spectrum"} <= set(document["scores"])


def test_new_rows_join_the_stored_ones_and_replace_a_row_measured_again() -> None:
    old = {"scores": {"a, seed 1": {"t": 0.1}, "b, seed 1": {"t": 0.2}}, "adaptivity": {"b": "x"}, "note": "kept"}
    new = merged(old, {"r, seed 1": {"t": 0.5}}, {"b, seed 1": {"t": 0.3}, "c, seed 1": {"t": 0.4}})
    assert list(new["scores"]) == ["r, seed 1", "a, seed 1", "b, seed 1", "c, seed 1"]
    assert new["scores"]["b, seed 1"] == {"t": 0.3} and new["adaptivity"] == {"b": "x"} and new["note"] == "kept"


def _row(modulation: float, five: float) -> dict[str, float]:
    return {**{t: modulation for t in MODULATION_TASKS}, **{t: five for t in TASKS}}


def test_the_rule_compares_means_over_shared_seeds_and_names_the_failing_margin() -> None:
    scores = {}
    for seed in (1, 2, 3):
        scores[f"alias_visible, 3000 steps, seed {seed}"] = _row(0.80, 0.78)
        scores[f"aape_tiny random init, seed {seed}"] = _row(0.82, 0.76)
        scores[f"trained_visible, 3000 steps, seed {seed}"] = _row(0.795, 0.775)  # -0.5 / -0.5, task -2.5: passes
        scores[f"modulation_lambda, 3000 steps, seed {seed}"] = {**_row(0.80, 0.78), MODULATION_TASKS[0]: 0.78}  # -4 on one task
    scores["fixed_poles, 3000 steps, seed 1"] = _row(0.9, 0.9)
    lines, data = rule(scores, {"trained_visible": "+0.10 [+0.05, +0.15]"}, ADAPTIVE_SCREEN.rule)
    assert data["trained_visible"]["accuracy_ok"] and data["trained_visible"]["modulation_minus_preset"] == -0.5
    assert not data["modulation_lambda"]["accuracy_ok"] and data["modulation_lambda"]["minus_random_init"][MODULATION_TASKS[0]] == -4.0
    assert data["fixed_poles"]["seeds"] == [1]
    text = "\n".join(lines)
    assert "| trained_visible | 1, 2, 3 | -0.5 | -0.5 | -2.5 | -2.5 | -2.5 | +0.10 [+0.05, +0.15] | passes on accuracy; adaptivity decides |" in text
    assert "| modulation_lambda | 1, 2, 3 |" in text and "fails on accuracy" in text
    assert "| fixed_poles | 1 | +10.0 | +12.0 |" in text and "undecided (1 seed; the rule needs 3)" in text
