"""The study numbers quoted in the README and the design notes are what results.json says."""

import json
from pathlib import Path

from studies.summary import BEGIN, IN_SHORT, QUOTED_IN, published_block, quoted_blocks

REPO = Path(__file__).resolve().parents[2]


def test_quoted_study_numbers_are_generated_from_results_json() -> None:
    quoted = quoted_blocks(REPO)
    assert set(quoted) == set(QUOTED_IN), f"every file of {QUOTED_IN} quotes the study between {BEGIN} markers"
    for name, text in quoted.items():
        assert text == published_block(REPO / "docs"), f"{name}'s study block differs from results.json: run `make study` (or its --no-train report)"


def test_results_page_states_what_results_json_holds() -> None:
    page = (REPO / "docs" / "results.md").read_text()
    in_short = page.split(f"{IN_SHORT}\n\n", 1)[1].split("\n\n", 1)[0]
    assert in_short.splitlines() == published_block(REPO / "docs").splitlines()[1:-1], "run studies.summary.refresh_in_short"


def test_the_length_curve_line_quotes_the_last_measured_checkpoint_of_each_stem() -> None:
    from studies.summary import summary_lines

    gap = {"estimate": 0.021, "low": 0.004, "high": 0.038}
    tie = {"estimate": -0.01, "low": -0.03, "high": 0.01}
    results = {"long_runs": {"aape_tiny": 10_000, "vit_tiny": 3_000}, "curve": {
        "aape_tiny": [{"step": 1000, "health": {}, "probe, all labels": tie},
                      {"step": 10_000, "health": {"Teacher Rank": 12.0}, "probe, all labels": gap, "fine-tuning, 10 per class": tie,
                       "shift, frame cosine": gap}],
        "vit_tiny": [{"step": 1000, "health": {}, "probe, all labels": tie}, {"step": 3000, "health": {}}]}}
    (line,) = summary_lines(results)
    assert "10,000 (`aape_tiny`), 3,000 (`vit_tiny`)" in line
    assert "`aape_tiny` at step 10,000: fine-tuning, 10 per class -1.0 [-3.0, +1.0], inconclusive, probe, all labels +2.1 [+0.4, +3.8]" in line
    assert "`vit_tiny` at step 1,000: probe, all labels -1.0 [-3.0, +1.0], inconclusive" in line and "Teacher" not in line


def test_finished_long_runs_quote_the_growth_of_the_fine_tuning_gap_and_aape_against_plain_at_the_end() -> None:
    from studies.summary import summary_lines

    def gap(points: float) -> dict[str, float]:
        return {"estimate": points / 100, "low": points / 100 - 0.015, "high": points / 100 + 0.015}

    ft = "fine-tuning, 10 per class"
    results = {"settings": {"long_steps": 30_000}, "long_runs": {"aape_tiny": 30_000, "vit_tiny": 30_000}, "curve": {
        arch: [{"step": step, "health": {}, "probe, all labels": gap(0.5), ft: gap(g)} for step, g in zip((1000, 30_000), gaps)]
        for arch, gaps in (("aape_tiny", (-2.4, 3.4)), ("vit_tiny", (1.2, 6.2)))},
        "curve_end": {"10 per class": {"claims": {
            "AaPE minus plain stem (both at step 30,000), mean over the five tasks": gap(-0.1),
            "AaPE minus plain stem (both at step 30,000), pitch and instrument": gap(2.0)}}}}
    (line,) = summary_lines(results)
    assert "both finished" in line and "so far" not in line
    assert "at steps 1,000, 30,000: `aape_tiny` -2.4 (1 seed), +3.4 (1 seed); `vit_tiny` +1.2 (1 seed), +6.2 (1 seed)" in line
    assert "from step 30,000: -0.1 [-1.6, +1.4], a tie within ±2 points on the mean, +2.0 [+0.5, +3.5] on pitch and instrument" in line

    results["long_runs"]["vit_tiny"] = 12_000  # one run still going: say how far each is
    assert "so far at steps 30,000 (`aape_tiny`), 12,000 (`vit_tiny`)" in summary_lines(results)[0]


def test_a_fine_tuning_comparison_with_fewer_seeds_than_planned_says_so() -> None:
    from studies.summary import summary_lines

    claim = {"aape_tiny: pre-trained minus random init, mean over the five tasks": {"estimate": 0.001, "low": -0.011, "high": 0.013}}

    def results(seeds: int) -> dict:
        test = {label: {"study_pitch": [0.5] * seeds} for label in ("aape_tiny, pre-trained", "aape_tiny, random init")}
        return {"settings": {"finetune_seeds": [1, 2, 3]}, "finetune": {"all labels": {"claims": claim, "test": test, "chosen_lr": {}}}}

    assert summary_lines(results(1))[0].endswith("`aape_tiny` +0.1 [-1.1, +1.3], a tie within ±2 points (1 seed so far).")
    assert summary_lines(results(3))[0].endswith("`aape_tiny` +0.1 [-1.1, +1.3], a tie within ±2 points.")


def test_the_budget_check_line_keeps_its_order_whatever_order_results_json_stores() -> None:
    from studies.summary import summary_lines

    what = "{} minus aape_tiny, random init, 3x steps, mean over the five tasks"
    gap = {"estimate": 0.012, "low": 0.0, "high": 0.025}
    names = ["aape_tiny, 30,000 steps", "aape_tiny, 30,000 steps, 3x steps", "aape_tiny, pre-trained", "aape_tiny, random init"]
    for order in (names, names[::-1]):
        check = {"factor": 3, "claims": {what.format(n): gap for n in order}}
        (line,) = summary_lines({"settings": {"long_steps": 30_000}, "budget_check": check})
        assert line.index("normal budget") < line.index("(main runs)") < line.index("at step 30,000 +1.2") < line.index("3x longer +1.2")


def test_the_budget_check_page_replaces_the_older_line_and_says_what_its_interval_counts() -> None:
    from studies.summary import summary_lines

    old = {"budget_check": {"factor": 3, "claims": {
        "aape_tiny, 30,000 steps minus aape_tiny, random init, 3x steps, mean over the five tasks":
            {"estimate": 0.012, "low": 0.0004, "high": 0.025}}}}
    (line,) = summary_lines(old)
    assert "+1.20 [+0.04, +2.50]" in line  # a bound that rounds to zero shows its side
    check = {"budget_check": {"factor": 3, "claims": {
        "aape_tiny, 30,000 steps, 3x steps minus aape_tiny, random init, 3x steps, mean over the five tasks":
            {"estimate": 0.025, "low": 0.015, "high": 0.036}},
        "test": {"aape_tiny, 30,000 steps, 3x steps": {"study_pitch": [0.8, 0.8, 0.8]}}},
        "longer_plateau": {"runs": 15, "best_at_last_validation": 1, "mean_late_gain": 0.0093}}
    (line,) = summary_lines(old, check)
    assert "+1.2" not in line and "+2.5 [+1.5, +3.6], one pre-training run, 3 fine-tuning seeds" in line
    assert "not pre-training seeds" in line and "1 of 15" in line
