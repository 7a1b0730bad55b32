"""The study's measurement budget is summed from what the stored results say they took."""

import json
from pathlib import Path

import pytest

from studies.probing import measurement_hours


def test_measurement_hours_sum_the_results_that_record_their_time(tmp_path: Path) -> None:
    (tmp_path / "probes").mkdir()
    (tmp_path / "shift").mkdir()
    (tmp_path / "probes" / "a.json").write_text(json.dumps({"seconds": 1800.0, "scores": {}}))
    (tmp_path / "probes" / "b.json").write_text(json.dumps({"scores": {}}))  # stored before results were timed
    (tmp_path / "shift" / "c.json").write_text(json.dumps({"seconds": 900.0, "tasks": {}}))
    hours, timed, total = measurement_hours(tmp_path)
    assert hours == pytest.approx(0.75) and (timed, total) == (2, 3)
    assert measurement_hours(tmp_path / "missing") == (0.0, 0, 0)
