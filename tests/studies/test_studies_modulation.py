"""The kernel trajectories of docs/modulation.md: one block per run folder, at the steps it logged."""

import json
from pathlib import Path

from studies.modulation import kernel_trajectories


def _metrics(folder: Path, steps: list[int]) -> None:
    (folder / "metrics").mkdir(parents=True)
    rows = [{"Step": s, "Stem Kernel 0 Frequency Hz": 3.7 + s / 10_000, "Stem Kernel 0 Decay": 0.22,
             "Stem Kernel 1 Frequency Hz": 5.5, "Stem Kernel 1 Decay": 0.23} for s in steps]
    (folder / "metrics" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_run_measured_at_several_checkpoints_is_listed_once_at_every_logged_step(tmp_path: Path) -> None:
    long, short = tmp_path / "long", tmp_path / "short"
    _metrics(long, [50, 1000, 3000, 10_000, 20_000, 30_000])
    _metrics(short, [50, 1000, 3000])
    table = kernel_trajectories([("frozen, 30k run at 1k", long), ("frozen, 30k run at 30k", long), ("default, 3k", short)])
    rows = [line for line in table.splitlines()[2:]]
    assert [r.split(" | ")[0:2] for r in rows] == [["| frozen, 30k run", s] for s in ("50", "1000", "3000", "10000", "30000")] + \
        [["| default, 3k", s] for s in ("50", "1000", "3000")]
    assert "| frozen, 30k run | 30000 | 6.7 Hz / 0.22 | 5.5 Hz / 0.23 |" in table
