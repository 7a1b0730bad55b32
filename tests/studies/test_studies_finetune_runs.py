"""Low-label fine-tuning of the experiments' models: what runs in which order, from which
checkpoint, and a page whose comparisons need every task of their group."""

import json
from pathlib import Path

import pytest

from studies.common import MODULATION_TASKS, StudySettings
from studies.experiments import LAMBDA_OPTIONS_FINETUNE
from studies.finetune_page import report
from studies.finetune_runs import ModelStart, ObjectiveFinetune, parse_start, results, runs_needed
from studies.outcomes import load, store
from tests.studies.test_studies_finetuning import finish

SETTINGS = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2, 3), finetune_lr_widen=0)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_long_run_waits_for_its_short_models_rate_and_uses_its_one_pretraining_run(tmp_path: Path) -> None:
    short, long = parse_start("frozen_lambda"), parse_start("frozen_lambda@30000")
    task = MODULATION_TASKS[0]
    first = runs_needed(tmp_path, SETTINGS, [short, long], [task])
    assert [(r.start, r.lr, r.seed) for r in first] == [(short, 1e-3, 1), (short, 3e-3, 1)]
    finish(tmp_path, first[0], [(50, 0.3), (100, 0.5)])
    finish(tmp_path, first[1], [(50, 0.6), (100, 0.4)])
    runs = runs_needed(tmp_path, SETTINGS, [short, long], [task])
    assert [(r.start, r.lr, r.seed) for r in runs[2:]] == [(short, 3e-3, 2), (short, 3e-3, 3)] + [(long, 3e-3, s) for s in (1, 2, 3)]
    for run in runs[2:]:
        command = run.job(tmp_path, SETTINGS, Path("/stats.json")).command
        pretrained = next(a for a in command if a.startswith("pretrained.checkpoint="))
        # Seed k of a 3,000-step model starts from pre-training seed k; the long run has one.
        assert pretrained.endswith(f"frozen_lambda_{run.start.steps}/seed{1 if run.start.steps == 30000 else run.seed}")
        assert f"pretrained.step={run.start.steps}" in command and command[command.index("--preset") + 1] == task
        assert "dataset.train_per_class=10" in command and "optimizer.config.lr=0.003" in command
    assert len({r.folder(tmp_path) for r in runs}) == len(runs)


def test_a_random_start_normalises_with_the_pool_statistics_and_loads_nothing(tmp_path: Path) -> None:
    run = ObjectiveFinetune(parse_start("vit_tiny random init"), MODULATION_TASKS[1], 1e-3, 2)
    command = run.job(tmp_path, SETTINGS, Path("/pool/stats.json")).command
    assert "model.arch=vit_tiny" in command and "dataset.stats_file=/pool/stats.json" in command and "common.seed=2" in command
    assert not any(a.startswith("pretrained.") for a in command) and run.ready(tmp_path)
    assert not ObjectiveFinetune(parse_start("vit_tiny"), MODULATION_TASKS[1], 1e-3, 2).ready(tmp_path)  # not pre-trained yet


@pytest.mark.parametrize("text", ["frozen", "frozen_lambda@many", "random init"])
def test_unknown_models_are_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("@", ".")):
        parse_start(text)


def _finish_cell(root: Path, start: ModelStart, accuracy: dict[int, list[int]]) -> None:
    for lr in (1e-3, 3e-3):
        for seed, correct in accuracy.items():
            run = ObjectiveFinetune(start, MODULATION_TASKS[0], lr, seed)
            finish(root, run, [(50, 0.5 + lr)], test=sum(correct) / len(correct))
            payload = json.loads((run.folder(root) / "results.json").read_text())
            payload["predictions"]["test"] = {"clips": [f"/corpus/c{i}.flac" for i in range(len(correct))],
                                              "labels": [1] * len(correct), "predicted": correct}
            (run.folder(root) / "results.json").write_text(json.dumps(payload))


def test_the_page_compares_complete_groups_and_rebuilds_from_its_outcomes(tmp_path: Path) -> None:
    settings = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2, 3), finetune_lr_widen=0)
    tasks = MODULATION_TASKS[:1]
    frozen, random = parse_start("frozen_lambda"), parse_start("aape_tiny random init")
    _finish_cell(tmp_path, frozen, {s: [1] * 30 + [0] * 10 for s in (1, 2, 3)})
    _finish_cell(tmp_path, random, {s: [1] * 20 + [0] * 20 for s in (1, 2, 3)})
    found = results(tmp_path, settings, [frozen, random], tasks)
    assert sorted(found) == [f"{m}, seed {s}" for m in ("aape_tiny random init", "frozen_lambda, 3000 steps") for s in (1, 2, 3)]
    # The group of one task here: the comparison needs every task of its group.
    text, data = report(found, settings.finetune_seeds, LAMBDA_OPTIONS_FINETUNE)
    assert "minus" not in text and "| 75.0 |" in text and "| 50.0 |" in text
    one_task = {"first task": tasks}
    text, data = report(found, settings.finetune_seeds, LAMBDA_OPTIONS_FINETUNE, one_task)
    back, _ = report(load(json.loads(json.dumps(store(found, corpus=Path("/corpus"))))), settings.finetune_seeds,
                     LAMBDA_OPTIONS_FINETUNE, one_task)
    assert "frozen_lambda, 3000 steps minus aape_tiny random init" in text and back == text
    comparison = data["comparisons"]["frozen_lambda, 3000 steps - aape_tiny random init: first task"]
    assert comparison["estimate"] == pytest.approx(0.25) and comparison["low"] > 0
    # Validation rose with the rate, and this grid may not widen: the choice is its end, and said so.
    from studies.finetune_page import choices_table
    from studies.finetune_runs import choices

    chosen = choices(tmp_path, settings, [frozen], tasks)
    assert chosen == {"frozen_lambda, 3000 steps": {tasks[0]: {"grid": [1e-3, 3e-3], "lr": 3e-3, "at_end": True}}}
    table = choices_table(chosen, LAMBDA_OPTIONS_FINETUNE)
    assert "| frozen_lambda, 3000 steps | 0.003 (end) |" in table and "1 of 1 choices" in table


def test_the_visible_target_reuses_the_stored_fine_tuning_of_the_models_it_does_not_run() -> None:
    from studies.experiments import VISIBLE_ALIAS_TARGET_FINETUNE as experiment
    from studies.finetune_page import order
    from studies.finetune_runs import reused_readings

    found, chosen = reused_readings(DOCS, experiment.reuses, order(experiment), {}, {})
    for label in ("alias_subband, 3000 steps", "aape_tiny random init", "vit_tiny, 3000 steps"):
        for seed in (1, 2, 3):
            assert set(MODULATION_TASKS) <= set(found[f"{label}, seed {seed}"]), label
        assert set(MODULATION_TASKS) <= set(chosen[label])
    assert not any(key.startswith(("frozen_lambda", "alias_visible")) for key in found)



@pytest.mark.parametrize("variant", ["fixed_poles", "offsets_balanced", "alias_visible"])
def test_a_variant_is_fine_tuned_with_its_own_encoder_and_the_tasks_head(tmp_path: Path, variant: str) -> None:
    # aape_finetune refuses a checkpoint whose encoder options differ from the ones it builds, and
    # a head whose class count is not the task's: the resolved configuration must keep both.
    import subprocess
    import sys

    import yaml

    from studies.variants import STEMS, VARIANTS

    task = MODULATION_TASKS[0]
    command = ObjectiveFinetune(ModelStart(variant), task, 1e-3, 1).job(tmp_path, SETTINGS, Path("/pool/stats.json")).command
    resolved = subprocess.run([*command, "--dump-config"], capture_output=True, text=True, check=True)
    overrides = yaml.safe_load(resolved.stdout)["model"]["config_overrides"]
    assert overrides["num_classes"] == 7, resolved.stdout
    expected = yaml.safe_load("{" + STEMS[variant] + "}") if variant in STEMS else None
    assert overrides.get("encoder", {}).get("stem") == expected
    assert any("encoder: {stem:" in o for o in VARIANTS[variant]) == (variant in STEMS)
