"""The analyses outside the paired comparisons are declarations too: each one's declaration gives
back the command that wrote its committed page, and the runner trains what it reads first."""

import json
import shlex
import sys
from pathlib import Path

import pytest

from studies.analyses import ANALYSES, MAIN_STUDY, POLE_GRADIENTS, SHIFT_PARTS, STEM_PARTS
from studies.run import main
from tests.studies.partial_root import finish_pretraining

DOCS = Path(__file__).resolve().parents[2] / "docs"


def stored_command(page: str) -> list[str]:
    """The arguments of the command a page's JSON says wrote it (``python -m MODULE ...``)."""
    command = json.loads((DOCS / page).read_text())["command"]
    module, _, rest = command.partition(" -m ")[2].partition(" ")
    # The labels of --run hold spaces and commas: split on the option names, not on spaces.
    head, *runs = rest.split(" --run ")
    return [module, *shlex.split(head), *(part for run in runs for part in ("--run", run))]


def test_stem_parts_declares_the_command_of_docs_modulation() -> None:
    stored = stored_command("modulation.json")
    root = Path("/root/.cache/aape-fairseq2/study-runs/objectives")  # where the committed page's runs lay
    declared = [STEM_PARTS.module, *STEM_PARTS.argv(root, Path("docs"))]
    out = declared.index("--out")
    assert declared[out + 1] == str(root / "modulation")
    del declared[out:out + 2]
    out = stored.index("--out")
    del stored[out:out + 2]
    assert declared == stored


def test_shift_parts_and_pole_gradients_declare_their_pages_commands() -> None:
    assert [SHIFT_PARTS.module, *SHIFT_PARTS.argv(Path("R"), Path("docs"))] == stored_command("shift-parts.json")
    note = json.loads((DOCS / "pole-gradients.json").read_text())["note"]
    cited = note.split("`python -m ", 1)[1].split("`", 1)[0]
    assert [POLE_GRADIENTS.module, *POLE_GRADIENTS.argv(Path("R"), Path("docs"))] == [*shlex.split(cited), "--page", "docs/pole-gradients.md"]


def test_the_main_study_runs_its_own_runner() -> None:
    assert MAIN_STUDY.argv(Path("R"), Path("docs")) == ["--out", "R", "--docs", "docs"]
    assert MAIN_STUDY.argv(Path("R"), None, mode="train") == ["--out", "R", "--train-only"]
    assert MAIN_STUDY.argv(Path("R"), None, mode="measure") == ["--out", "R", "--no-train"]
    assert not MAIN_STUDY.runs()


def listed(root: Path, name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main([name, "--out", str(root), "--list", "--docs", "docs"]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_runner_trains_the_runs_an_analysis_reads_once_each_then_measures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = listed(tmp_path, "stem_parts", capsys)
    assert [line.split(":")[0] for line in lines] == [
        "pre-train default 3000 steps seed 1", "pre-train frozen_lambda 3000 steps seed 1", "pre-train offsets 3000 steps seed 1",
        "pre-train vit_tiny 3000 steps seed 1", "pre-train alias_subband 3000 steps seed 1",
        "pre-train frozen_lambda 30000 steps seed 1", "stem_parts"]
    assert lines[-1] == f"stem_parts: {sys.executable} -m studies.modulation " + " ".join(STEM_PARTS.argv(tmp_path, Path("docs")))
    for run in STEM_PARTS.runs():
        finish_pretraining(tmp_path, run.variant, run.steps, run.seed)
    assert [line.split(":")[0] for line in listed(tmp_path, "stem_parts", capsys)] == ["stem_parts"]


def test_an_analysis_is_not_measured_before_its_runs_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stem_parts", "--out", str(tmp_path), "--measure-only"]) == 1
    assert f"not finished: {tmp_path / 'default_3000' / 'seed1'}" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--seeds", "1"], ["--models", "default"], ["--baselines"], ["--no-random-init"]])
def test_an_analysis_refuses_the_options_that_narrow_an_experiment(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["shift_parts", "--out", "R", *option])
    assert f"shift_parts is an analysis, run whole: {option[0]}" in capsys.readouterr().err


def test_every_analysis_and_experiment_has_its_own_name() -> None:
    from studies.experiments import EXPERIMENTS

    assert not set(ANALYSES) & set(EXPERIMENTS)
    for analysis in ANALYSES.values():
        for page in analysis.pages:
            assert (DOCS / page).is_file(), (analysis.name, page)
