"""The fine-tuning arm's grid: what runs, in which order, and which learning rate each cell takes."""

import json
from pathlib import Path

import pytest

from studies.common import TASKS, StudySettings
from studies.finetuning import REGIMES, FinetuneRun, Start, chosen_lr, grid_lrs, late_gain, main_runs, read_finetune_result

SETTINGS = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2, 3), finetune_lr_widen=0)


def finish(root: Path, run: FinetuneRun, curve: list[tuple[int, float]], test: float = 0.5) -> None:
    """The files an ``aape_finetune`` run leaves (their format is checked on a real run in
    tests/eval/test_eval_recipes.py)."""
    out = run.folder(root)
    (out / "metrics").mkdir(parents=True)
    (out / "metrics" / "valid.jsonl").write_text("".join(json.dumps({"Step": s, "Accuracy": a}) + "\n" for s, a in curve))
    best = max(curve, key=lambda c: c[1])[0]
    (out / "results.json").write_text(json.dumps({"summary": {"mean": test}, "best_step": best, "predictions": {
        "test": {"clips": ["a.flac", "b.flac"], "labels": [0, 1], "predicted": [0, 0]}}}))


def test_the_grid_runs_first_and_its_best_validation_rate_runs_the_other_seeds(tmp_path: Path) -> None:
    start, task, regime = Start("aape_tiny", "random"), TASKS[0], REGIMES[1]
    first = main_runs(tmp_path, SETTINGS, start, task, regime)
    assert [(r.lr, r.seed) for r in first] == [(1e-3, 1), (3e-3, 1)]
    assert chosen_lr(tmp_path, SETTINGS, start, task, regime) is None
    finish(tmp_path, first[0], [(50, 0.40), (100, 0.62)])
    assert chosen_lr(tmp_path, SETTINGS, start, task, regime) is None  # the grid is not complete
    finish(tmp_path, first[1], [(50, 0.55), (100, 0.60)])
    assert chosen_lr(tmp_path, SETTINGS, start, task, regime) == 1e-3  # best validation, not last
    runs = main_runs(tmp_path, SETTINGS, start, task, regime)
    assert [(r.lr, r.seed) for r in runs[2:]] == [(1e-3, 2), (1e-3, 3)]
    result = read_finetune_result(first[0].folder(tmp_path))
    assert result.valid == 0.62 and result.best_step == 100 and result.correct == [1, 0]
    assert late_gain(result) == pytest.approx(0.22)


def test_each_start_gets_its_command(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    random = FinetuneRun(Start("vit_tiny", "random"), "study_drums", REGIMES[1], 3e-3, 2).job(tmp_path, SETTINGS, stats)
    assert f"dataset.stats_file={stats}" in random.command and "model.arch=vit_tiny" in random.command
    assert "dataset.train_per_class=10" in random.command and "regime.num_steps=300" in random.command
    pitch = FinetuneRun(Start("vit_tiny", "random"), "study_pitch", REGIMES[1], 3e-3, 2).job(tmp_path, SETTINGS, stats)
    assert "regime.num_steps=650" in pitch.command  # at least 40 epochs of its 490 clips
    assert not any(c.startswith("pretrained.") for c in random.command) and "common.seed=2" in random.command
    main = FinetuneRun(Start("aape_tiny", "main"), "study_pitch", REGIMES[0], 1e-3, 3)
    command = main.job(tmp_path, SETTINGS, stats).command
    assert f"pretrained.checkpoint={tmp_path / 'aape_tiny_3000' / 'seed3'}" in command and "pretrained.step=3000" in command
    assert not any(c.startswith("dataset.train_per_class") for c in command) and "--preset" in command
    assert not main.ready(tmp_path, SETTINGS)  # its pre-training run has not finished
    (tmp_path / "aape_tiny_3000" / "seed3" / "checkpoints" / "step_3000").mkdir(parents=True)
    assert main.ready(tmp_path, SETTINGS)
    curve = FinetuneRun(Start("aape_tiny", "curve", 10_000), "study_pitch", REGIMES[0], 1e-3, 1).job(tmp_path, SETTINGS, stats)
    assert f"pretrained.checkpoint={tmp_path / 'aape_tiny_30000' / 'seed1'}" in curve.command and "pretrained.step=10000" in curve.command


def test_few_labels_and_the_aape_verdict_run_first(tmp_path: Path) -> None:
    from studies.study import job_priority

    def run(arch: str, kind: str, regime: str, seed: int = 1, step: int | None = None) -> FinetuneRun:
        return FinetuneRun(Start(arch, kind, step), TASKS[0], regime, 1e-3, seed)

    few, all_labels = REGIMES[1], REGIMES[0]
    expected = [run("aape_tiny", "random", few), run("vit_tiny", "main", few), run("aape_tiny", "curve", few, step=10_000),
                run("vit_tiny", "curve", few, step=10_000), run("aape_tiny", "curve", few, step=1000),
                run("aape_tiny", "main", few, seed=2), run("vit_tiny", "random", few, seed=3),
                run("aape_tiny", "main", all_labels), run("vit_tiny", "random", all_labels, seed=2)]
    shuffled = expected[::-1]
    assert sorted(shuffled, key=lambda r: job_priority(r, SETTINGS)) == expected


def test_the_grid_extends_past_the_end_that_validation_picks(tmp_path: Path) -> None:
    settings = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2), finetune_lr_widen=1)
    start, task, regime = Start("aape_tiny", "main"), TASKS[1], REGIMES[1]
    first = main_runs(tmp_path, settings, start, task, regime)
    finish(tmp_path, first[0], [(50, 0.40), (100, 0.50)])
    finish(tmp_path, first[1], [(50, 0.45), (100, 0.55)])  # the largest rate wins: one more, 3x larger
    assert grid_lrs(tmp_path, settings, start, task, regime) == [1e-3, 3e-3, 9e-3]
    assert chosen_lr(tmp_path, settings, start, task, regime) is None  # waits for the new rate
    runs = main_runs(tmp_path, settings, start, task, regime)
    assert [(r.lr, r.seed) for r in runs] == [(1e-3, 1), (3e-3, 1), (9e-3, 1)]
    finish(tmp_path, runs[2], [(50, 0.60), (100, 0.30)])
    assert chosen_lr(tmp_path, settings, start, task, regime) == 9e-3  # still an end: widened once only
    assert [(r.lr, r.seed) for r in main_runs(tmp_path, settings, start, task, regime)][3:] == [(9e-3, 2)]
    low = Start("vit_tiny", "random")
    runs = main_runs(tmp_path, settings, low, task, regime)
    finish(tmp_path, runs[0], [(50, 0.70)])
    finish(tmp_path, runs[1], [(50, 0.50)])
    assert grid_lrs(tmp_path, settings, low, task, regime) == [3.3e-4, 1e-3, 3e-3]
    assert FinetuneRun(low, task, regime, 3.3e-4, 1).folder(tmp_path).name == "lr0.00033_seed1"


def test_the_seeded_curve_steps_fine_tune_with_every_seed_and_pair_with_the_same_random_seeds(tmp_path: Path) -> None:
    from studies.finetuning import curve_runs
    from studies.report import paired_seeds

    settings = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2, 3), finetune_lr_widen=0, curve_steps=(1000, 10_000),
                             curve_seeded_steps=(10_000,))
    regime = REGIMES[1]
    for task in TASKS:  # the main pre-trained model's grid picks 3e-3 for every task
        for run in main_runs(tmp_path, settings, Start("aape_tiny", "main"), task, regime)[:2]:
            finish(tmp_path, run, [(50, 0.6 if run.lr == 3e-3 else 0.5)])
    runs = curve_runs(tmp_path, settings, "aape_tiny", TASKS[0], regime)
    assert [(r.start.step, r.seed, r.lr) for r in runs] == [(1000, 1, 3e-3), (10_000, 1, 3e-3), (10_000, 2, 3e-3), (10_000, 3, 3e-3)]

    curve, random = Start("aape_tiny", "curve", 10_000), Start("aape_tiny", "random")
    for task in TASKS:
        for seed in (1, 3):  # seed 2 of the curve has not run: seed 3 pairs with random seed 3, not 2
            finish(tmp_path, FinetuneRun(curve, task, regime, 3e-3, seed), [(50, 0.5)], test=0.1 * seed)
        for seed in (1, 2, 3):
            finish(tmp_path, FinetuneRun(random, task, regime, 1e-3, seed), [(50, 0.5)], test=0.01 * seed)
        for run in main_runs(tmp_path, settings, random, task, regime)[:2]:
            if not run.finished(tmp_path):
                finish(tmp_path, run, [(50, 0.4)])
    mine, theirs = paired_seeds(tmp_path, settings, curve, random, regime)
    assert [r[TASKS[0]].test for r in mine] == pytest.approx([0.1, 0.3])
    assert [r[TASKS[0]].test for r in theirs] == pytest.approx([0.01, 0.03])


def test_the_budget_check_fine_tunes_random_inits_longer_after_the_rest_of_its_regime_and_is_reported_against_them(tmp_path: Path) -> None:
    from studies.finetuning import budget_runs
    from studies.report import budget_check
    from studies.study import job_priority

    settings = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2), finetune_lr_widen=0, budget_check_factor=3)
    regime, random = REGIMES[1], Start("aape_tiny", "random")
    assert budget_runs(tmp_path, settings, "aape_tiny", TASKS[0]) == []  # waits for the cell's chosen rate
    for task in TASKS:
        for run in main_runs(tmp_path, settings, random, task, regime)[:2]:
            finish(tmp_path, run, [(50, 0.6 if run.lr == 3e-3 else 0.5)], test=0.5)
        finish(tmp_path, FinetuneRun(random, task, regime, 3e-3, 2), [(50, 0.6)], test=0.5)
    runs = budget_runs(tmp_path, settings, "aape_tiny", "study_pitch")
    assert [(r.lr, r.seed, r.budget) for r in runs] == [(3e-3, 1, 3), (3e-3, 2, 3)]
    assert runs[0].folder(tmp_path).name == "lr0.003_seed1_x3"
    command = runs[0].job(tmp_path, settings, tmp_path / "stats.json").command
    assert "regime.num_steps=1950" in command and "lr_scheduler.config.num_warmup_steps=195" in command  # 3 x 650 for pitch
    with pytest.raises(ValueError, match="low-label regime only"):
        FinetuneRun(random, TASKS[0], REGIMES[0], 1e-3, 1, budget=3).job(tmp_path, settings, tmp_path / "stats.json")
    later = [FinetuneRun(Start("vit_tiny", "main"), TASKS[0], regime, 1e-3, 3), FinetuneRun(random, TASKS[0], REGIMES[0], 1e-3, 1)]
    assert sorted([later[1], runs[1], later[0]], key=lambda r: job_priority(r, settings)) == [later[0], runs[1], later[1]]
    for run in main_runs(tmp_path, settings, Start("aape_tiny", "main"), "study_pitch", regime)[:2]:  # the long run's end takes
        finish(tmp_path, run, [(50, 0.7 if run.lr == 1e-3 else 0.5)])                                 # the main run's rate
    end = budget_runs(tmp_path, settings, "aape_tiny", "study_pitch")[2:]
    assert [(r.start.step, r.lr, r.seed, r.budget) for r in end] == [(30_000, 1e-3, 1, 3), (30_000, 1e-3, 2, 3)]
    vit = FinetuneRun(Start("vit_tiny", "random"), "study_pitch", regime, 1e-3, 1, 3)
    assert sorted([vit, end[1], runs[1], end[0], runs[0]], key=lambda r: job_priority(r, settings)) == [*runs, *end, vit]

    assert budget_check(tmp_path, settings) == ("", {})  # nothing finished yet: no paragraph
    for task in TASKS:
        for seed in (1, 2):  # longer fine-tuning: one more clip right (test 1.0 instead of 0.5)
            out = FinetuneRun(random, task, regime, 3e-3, seed, 3).folder(tmp_path)
            finish(tmp_path, FinetuneRun(random, task, regime, 3e-3, seed, 3), [(50, 0.7)], test=1.0)
            payload = json.loads((out / "results.json").read_text())
            payload["predictions"]["test"]["predicted"] = [0, 1]
            (out / "results.json").write_text(json.dumps(payload))
    text, data = budget_check(tmp_path, settings)
    claim = data["claims"]["aape_tiny, random init minus aape_tiny, random init, 3x steps, mean over the five tasks"]
    assert claim["estimate"] == pytest.approx(-0.5) and "Budget check" in text and "(2 seeds)" in text
    assert data["test"]["aape_tiny, random init, 3x steps"]["study_pitch"] == [1.0, 1.0]


def test_the_budget_lane_schedules_only_what_the_budget_check_stands_on(tmp_path: Path) -> None:
    from studies.study import pending_jobs

    settings = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2), finetune_lr_widen=0, budget_check_factor=3)
    stats, regime = tmp_path / "stats.json", REGIMES[1]
    first = [job.name for job in pending_jobs(tmp_path, settings, stats, "budget", ("aape_tiny",))]
    assert first[0] == "pre-train aape_tiny 3000 steps seed 1"
    assert sum(name.startswith("pre-train") for name in first) == 1  # the first main run only, no long run
    assert not any("vit_tiny" in name for name in first)
    random_grid = [r for t in TASKS for r in main_runs(tmp_path, settings, Start("aape_tiny", "random"), t, regime)]
    assert len(first) == 1 + len(random_grid) and all(r.seed == 1 and r.budget == 1 for r in random_grid)

    # Once the random init's and the first main run's grids are done, the longer runs follow;
    # the normal-budget seeds past the first and all labels never come.
    (tmp_path / "aape_tiny_3000" / "seed1" / "checkpoints" / "step_3000").mkdir(parents=True)
    for task in TASKS:
        for start in (Start("aape_tiny", "random"), Start("aape_tiny", "main")):
            for run in main_runs(tmp_path, settings, start, task, regime)[:2]:
                finish(tmp_path, run, [(50, 0.6 if run.lr == 3e-3 else 0.5)])
    names = [job.name for job in pending_jobs(tmp_path, settings, stats, "budget", ("aape_tiny",))]
    expected = [FinetuneRun(Start("aape_tiny", "random"), t, regime, 3e-3, s, 3) for t in TASKS for s in (1, 2)]
    assert sorted(names) == sorted(run.job(tmp_path, settings, stats).name for run in expected)
    (tmp_path / "aape_tiny_30000" / "seed1" / "checkpoints" / "step_30000").mkdir(parents=True)  # the long run's end
    names = [job.name for job in pending_jobs(tmp_path, settings, stats, "budget", ("aape_tiny",))]
    expected += [FinetuneRun(Start("aape_tiny", "curve", 30_000), t, regime, 3e-3, s, 3) for t in TASKS for s in (1, 2)]
    assert sorted(names) == sorted(run.job(tmp_path, settings, stats).name for run in expected)
    everything = [job.name for job in pending_jobs(tmp_path, settings, stats, "rest", ("aape_tiny",))]
    assert set(names) < set(everything) and "pre-train aape_tiny 3000 steps seed 2" in everything
    with pytest.raises(ValueError, match="lane must be one of"):
        pending_jobs(tmp_path, settings, stats, "fast")


def test_the_budget_lane_writes_its_own_page_and_leaves_the_study_page_alone(tmp_path: Path) -> None:
    from studies.report import budget_check, write_budget_page

    settings = StudySettings(finetune_lrs=(1e-3, 3e-3), finetune_seeds=(1, 2), finetune_lr_widen=0, budget_check_factor=3)
    root, docs, random = tmp_path / "runs", tmp_path / "docs", Start("aape_tiny", "random")
    with pytest.raises(FileNotFoundError, match="run the budget lane first"):
        write_budget_page(root, docs, settings, "python -m studies.study --lane budget")
    for task in TASKS:
        for run in main_runs(root, settings, random, task, REGIMES[1])[:2]:
            finish(root, run, [(50, 0.6 if run.lr == 3e-3 else 0.5)])
        for seed in (1, 2):
            finish(root, FinetuneRun(random, task, REGIMES[1], 3e-3, seed, 3), [(50, 0.7)])
    written = write_budget_page(root, docs, settings, "python -m studies.study --lane budget")
    assert written["budget_check"] == budget_check(root, settings)[1]
    assert json.loads((docs / "budget-check.json").read_text())["budget_check"]["claims"] == written["budget_check"]["claims"]
    page = (docs / "budget-check.md").read_text()
    assert "aape_tiny, random init, 3x steps" in page and "python -m studies.study --lane budget" in page
    assert sorted(p.name for p in docs.iterdir()) == ["budget-check.json", "budget-check.md"]
    # Whether 3x was long enough: the longer random runs' validation curves, all 10 of them.
    assert written["longer_plateau"]["runs"] == 10 and "Was 3x long enough for the random initialisations? Over 10" in page


def test_the_plateau_summary_measures_what_the_last_third_of_a_run_added() -> None:
    from studies.finetuning import FinetuneResult
    from studies.report import plateau_summary

    def run(curve: list[tuple[int, float]]) -> FinetuneResult:
        return FinetuneResult(valid=max(v for _, v in curve), test=0.5, best_step=max(curve, key=lambda c: c[1])[0], curve=curve,
                              correct=[1], clips=["a.flac"])

    still_learning = run([(100, 0.50), (200, 0.60), (300, 0.70)])  # best at its last validation, +10 points late
    flat = run([(100, 0.50), (200, 0.80), (300, 0.79)])
    line, data = plateau_summary([still_learning, flat])
    assert data["runs"] == 2 and data["best_at_last_validation"] == 1
    assert data["mean_late_gain"] == pytest.approx(0.05) and data["max_late_gain"] == pytest.approx(0.10)
    assert "added 5.00 points" in line and "1 of them scored best at their last validation" in line
