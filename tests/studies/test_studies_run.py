"""The runner names, for every declared experiment, exactly the jobs the per-reading modules it
replaced named (``data/jobs-before-declarations.json``, written by them on the same roots), keeps
its guards, and refuses unknown names by listing the known ones."""

import json
import sys
from pathlib import Path

import pytest

from studies.experiments import EXPERIMENTS, experiment
from studies.run import jobs, main, narrowed, pretraining_runs, reused_models
from tests.studies.partial_root import finish_pretraining, fill_partially

DOCS = Path(__file__).resolve().parents[2] / "docs"
BEFORE = json.loads((Path(__file__).parent / "data" / "jobs-before-declarations.json").read_text())


def named(root: Path, name: str) -> list[str]:
    r = str(root)
    out = []
    for job in jobs(experiment(name), root, DOCS, pool_stats=Path("/pool/stats.json")):
        command = " ".join("PYTHON" if a == sys.executable else a.replace(r, "ROOT") for a in job.command)
        out.append(f"{job.name} | {str(job.log).replace(r, 'ROOT')} | {command}")
    return out


@pytest.mark.parametrize("state", ["empty", "partial"])
@pytest.mark.parametrize("name", sorted(BEFORE))
def test_the_runner_names_the_jobs_the_old_modules_named(tmp_path: Path, name: str, state: str) -> None:
    if state == "partial":
        fill_partially(tmp_path)
    found = named(tmp_path, name)
    assert len(found) == len(set(found))
    assert sorted(found) == sorted(BEFORE[name][state])


def test_a_reading_reuses_the_stored_models_and_runs_the_rest() -> None:
    assert reused_models(experiment("visible_alias_target"), DOCS) == {"alias_subband", "vit_tiny", "aape_tiny random init",
                                                                       "vit_tiny random init"}
    assert reused_models(experiment("visible_alias_target_finetune"), DOCS) == {"alias_subband", "vit_tiny", "aape_tiny random init"}
    assert reused_models(experiment("adaptive_fresh_five_tasks"), DOCS) == {"alias_visible", "aape_tiny random init"}
    assert reused_models(experiment("adaptive_screen"), DOCS) == {"alias_visible", "aape_tiny random init", "vit_tiny random init"}
    assert reused_models(experiment("lambda_options"), DOCS) == set()


def test_the_fresh_fine_tuning_runs_under_its_own_root_from_linked_pre_training(tmp_path: Path) -> None:
    fresh = experiment("adaptive_fresh_finetune")
    assert not fresh.pretrains and fresh.split == "fresh" and fresh.regime == "finetune"
    found = named(tmp_path, "adaptive_fresh_finetune")
    # Nothing is pre-trained here: only the random initialisation's seed-1 grids can start.
    assert found and all(" fine-tune aape_tiny random init, " in f" {line}" for line in found)
    assert len(found) == 2 * 3
    for variant in ("alias_visible", "trained_visible", "fixed_poles", "modulation_lambda"):
        finish_pretraining(tmp_path, variant, 3000, 1)
    found = named(tmp_path, "adaptive_fresh_finetune")
    assert len(found) == 5 * 2 * 3 and not any("pre-train" in line for line in found)
    assert all("ROOT/finetune/few/" in line for line in found)
    assert {r.variant for r in pretraining_runs(fresh, DOCS)} == {"alias_visible", "trained_visible", "fixed_poles", "modulation_lambda"}


def test_a_probe_reading_of_a_test_split_never_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import studies.run as run

    started = []
    monkeypatch.setattr(run, "run_jobs", lambda pending, jobs: started.append(pending()) or [])
    monkeypatch.setattr(run, "read", lambda *args: "read")
    monkeypatch.setattr("aape_plugin.inference.loading.ensure_fairseq2", lambda: None)
    monkeypatch.setenv("AAPE_STUDY_DIR", str(tmp_path / "corpus"))
    assert main(["lambda_options", "--out", str(tmp_path / "runs")]) == 0
    assert main(["lambda_options", "--out", str(tmp_path / "runs"), "--measure-only"]) == 0
    assert started == []
    assert main(["lambda_options", "--out", str(tmp_path / "runs"), "--train-only"]) == 0
    assert len(started) == 1 and len(started[0]) == 10


@pytest.mark.parametrize("name", ["adaptive_fresh", "adaptive_fresh_finetune"])
def test_the_fresh_reading_refuses_a_folder_that_is_not_the_fresh_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         name: str) -> None:
    monkeypatch.setenv("AAPE_STUDY_DIR", str(tmp_path))
    for mode in ("--measure-only", "--train-only"):
        with pytest.raises(SystemExit, match="AAPE_STUDY_DIR must name the fresh test split's folder"):
            main([name, "--out", str(tmp_path / "runs"), mode])


def test_an_old_test_split_reading_refuses_the_fresh_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fresh_test").mkdir()
    monkeypatch.setenv("AAPE_STUDY_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="unset AAPE_STUDY_DIR"):
        main(["adaptive_fresh_five_tasks", "--out", str(tmp_path / "runs"), "--measure-only"])


def test_a_screen_of_some_variants_keeps_the_random_initialisations_unless_told() -> None:
    screen = experiment("variant_screen")
    some = narrowed(screen, ["alias_target", "alias_target_trained"], [1])
    assert some.models == ("aape_tiny random init", "vit_tiny random init", "alias_target", "alias_target_trained") and some.seeds == (1,)
    assert narrowed(screen, ["fixed_poles"], None, random_init=False).models == ("fixed_poles",)
    assert not screen.baselines and narrowed(screen, None, None, baselines=True).baselines


def test_unknown_names_list_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="Unknown experiment 'round_3'; known: lambda_options, "):
        experiment("round_3")
    with pytest.raises(ValueError, match=r"declares no model \['alias_target'\]; it declares: alias_visible, "):
        narrowed(experiment("visible_alias_target"), ["alias_target"], None)
    with pytest.raises(SystemExit):
        main(["round_3", "--out", "/nonexistent"])
    assert "known: " + ", ".join(EXPERIMENTS) in capsys.readouterr().err
    from studies.experiments import Experiment

    with pytest.raises(ValueError, match="unknown model 'frozen'; known: "):
        Experiment(name="x", question="", regime="probe", split="test", layout="paired", models=("frozen",))
