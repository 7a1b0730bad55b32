"""``make demo`` end to end (``python -m aape_plugin.demo``), shortened: it pre-trains, probes
and reports, and a re-run after the demo's configuration changed trains afresh instead of
failing to resume the old run."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.recipes.helpers import REPO, cpu_env


def demo(out: Path, steps: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "aape_plugin.demo", "--out", str(out), "--steps", str(steps), "--tasks", "demo_pitch"]
    return subprocess.run(command, cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_demo_reports_and_survives_a_change_of_its_configuration(tmp_path: Path) -> None:
    first = demo(tmp_path, 4)
    assert first.returncode == 0, first.stderr[-3000:]
    report = (tmp_path / "results.md").read_text()
    assert "| 4 |" in report and "alias features" in report  # the loss curve, to the last step, with every term
    for row in ("aape_tiny, pre-trained on the demo pool", "aape_tiny, random initialisation", "log-mel statistics (no model)"):
        assert row in report
    (run,) = tmp_path.glob("pretrain-*")
    # Another configuration (here: the run length) gets its own folder, as a changed default would.
    second = demo(tmp_path, 6)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(list(tmp_path.glob("pretrain-*"))) == 2 and run.is_dir()
    assert "| 6 |" in (tmp_path / "results.md").read_text()
