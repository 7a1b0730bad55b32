"""The shift-stability page per encoder part: rates read from the clips' names, paired differences."""

import numpy as np
import pytest

from studies.common import MODULATION_TASKS
from studies.shift_parts import PARTS, WINDOWS, compact, controlled_clips, expand, mean_interval, page, rate_of, report


def test_the_rate_is_read_from_the_clip_name_and_a_name_without_one_is_refused() -> None:
    assert rate_of("modulation/am/gm004_p038_13hz.flac") == 13
    assert rate_of("modulation/roll/Gimme_A_Hand_1.0/Hand_Clap_HandClap-Hard_19hz.flac") == 19
    with pytest.raises(ValueError, match="notes/gm002_p036.flac"):
        rate_of("notes/gm002_p036.flac")


def test_the_report_pairs_parts_clip_by_clip_and_groups_by_rate() -> None:
    clips = [f"modulation/x/c{i}_{rate}hz.flac" for i, rate in enumerate([4, 4, 19, 19])]
    base = np.array([0.9, 0.8, 0.7, 0.6])
    rows = {f"{arch} {part}": {t: {"clips": clips, "cosine": (base - 0.1 * k).tolist()} for t in MODULATION_TASKS}
            for k, (arch, part) in enumerate((a, p) for a, ps in PARTS.items() for p in ps)}
    text = report(rows)
    # aape_tiny standard is row 0, alias row 1: alias minus standard is -0.1 on every clip.
    assert "| aape_tiny alias minus aape_tiny standard | -0.100 [-0.100, -0.100]" in text
    assert "| aape_tiny standard | 0.850 | 0.650 |" in text  # by rate: 4 Hz and 19 Hz
    mean, low, high = mean_interval(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and low == pytest.approx(2.0 - 1.96 / np.sqrt(3)) and high == pytest.approx(2.0 + 1.96 / np.sqrt(3))


def test_controlled_clips_are_named_by_rate_and_the_page_rebuilds_from_its_data() -> None:
    names, waves = controlled_clips("noise", 1.0, per_rate=2)
    assert len(names) == len(waves) == 14 and {rate_of(n) for n in names} == {4, 6, 9, 13, 19, 27, 38}
    assert all(len(w) == 16000 and np.abs(w).max() == pytest.approx(0.1) for w in waves)
    clips = ["a_4hz.wav", "b_38hz.wav"]
    rows = {f"{a} {p}": {"c": {"clips": clips, "cosine": [0.5, 0.7]}} for a, ps in PARTS.items() for p in ps}
    stored = compact(rows)
    assert stored["clips"] == {"c": clips} and expand(stored) == rows  # the clip list once, and back
    other = {**rows, "vit_tiny output": {"c": {"clips": clips[::-1], "cosine": [0.5, 0.7]}}}
    with pytest.raises(ValueError, match="vit_tiny output measured other clips"):
        compact(other)
    data = {"command": "python -m studies.shift_parts --seeds 1", "commit": "abc", "seeds": [1], "controlled": stored,
            **{f"corpus, window {w}": stored for w in WINDOWS}}
    text = page(data)
    assert text.count("| aape_tiny alias minus aape_tiny standard | +0.000") == 3
    assert "at commit abc" in text


def test_the_published_page_is_what_its_json_gives() -> None:
    import json
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    assert page(json.loads((docs / "shift-parts.json").read_text())) == (docs / "shift-parts.md").read_text()
