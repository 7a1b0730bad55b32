"""The adaptive half's screen page is its stored JSON, rendered."""

import json

from studies.adaptive_poles import PAGE, STORED_ROWS, render
from tests.recipes.helpers import REPO


def test_the_screen_page_rebuilds_from_its_json_and_keeps_the_stored_rows() -> None:
    docs = REPO / "docs"
    document = json.loads((docs / f"{PAGE}.json").read_text())
    assert (docs / f"{PAGE}.md").read_text() == render(document)
    stored = json.loads((docs / "objectives-visible-screen.json").read_text())
    for name in STORED_ROWS:
        assert document["scores"][name] == stored[name]
    assert {"log-mel statistics", "modulation spectrum"} <= set(document["scores"])
