"""The study numbers quoted in the README and the design notes are what results.json says."""

import json
from pathlib import Path

from studies.summary import BEGIN, QUOTED_IN, block, quoted_blocks

REPO = Path(__file__).resolve().parents[2]


def test_quoted_study_numbers_are_generated_from_results_json() -> None:
    results = json.loads((REPO / "docs" / "results.json").read_text())
    quoted = quoted_blocks(REPO)
    assert set(quoted) == set(QUOTED_IN), f"every file of {QUOTED_IN} quotes the study between {BEGIN} markers"
    for name, text in quoted.items():
        assert text == block(results), f"{name}'s study block differs from results.json: run `make study` (or its --no-train report)"


def test_results_page_states_what_results_json_holds() -> None:
    page = (REPO / "docs" / "results.md").read_text()
    results = json.loads((REPO / "docs" / "results.json").read_text())
    for line in block(results).splitlines()[1:-1]:
        assert line in page, line
