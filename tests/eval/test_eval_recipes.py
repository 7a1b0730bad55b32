"""Fine-tuning and the comparison report through the console script (extraction:
tests/inference/test_inference_embedding_contract.py)."""

import json
import shlex
from pathlib import Path

import pytest
import torch

from aape_plugin.eval.report import comparison_table, load_results
from studies.finetuning import read_finetune_result
from tests.recipes.helpers import one_line_error, run_cli


def test_finetune_selects_on_valid_and_scores_test_once(tmp_path: Path) -> None:
    # Also the low-label regime (2 clips per class) and short training crops with whole-clip
    # evaluation, as the study runs it.
    out = tmp_path / "ft"
    proc = run_cli("recipe", "run", "aape_finetune", str(out), "--preset", "demo_drums", "--no-rich", "--config",
                   "regime.num_steps=40", "regime.validate_every_n_steps=20", "regime.checkpoint_every_n_steps=20",
                   "regime.publish_metrics_every_n_steps=20", "dataset.train_per_class=2", "dataset.batch_size=4", "dataset.clip_seconds=0.5",
                   "dataset.eval_clip_seconds=1.0", "dataset.valid_per_class=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    subset = (out / "train_clips.txt").read_text().split()
    assert len(subset) == 2 * 6 and "Low-label regime: 12 training clips" in proc.stderr
    # Low-label selection: the checkpoint is chosen on one validation clip per class.
    valid_subset = (out / "valid_clips.txt").read_text().split()
    assert len(valid_subset) == 6 and "Low-label selection: validating on 6 clips" in proc.stderr
    assert not set(valid_subset) & set(subset)
    # Per-clip test predictions, named by file, are what the study pairs models on.
    study_view = read_finetune_result(out)
    assert study_view is not None and len(study_view.clips) == result["test_clips"] == len(set(study_view.clips))
    assert all(Path(c).is_file() for c in study_view.clips) and not set(study_view.clips) & set(subset)
    assert sum(study_view.correct) / len(study_view.correct) == pytest.approx(result["summary"]["mean"], abs=1e-6)
    assert result["metric"] == "accuracy" and 0.0 <= result["summary"]["mean"] <= 1.0
    assert "Encoder initialised from asset aape_tiny_demo" in proc.stderr
    assert proc.stderr.count("Test accuracy with the best checkpoint") == 1
    valid = [json.loads(line) for line in (out / "metrics" / "valid.jsonl").read_text().splitlines()]
    assert [v["Step"] for v in valid] == [20, 40]
    # Both validations were scored, and the test used the best of them (the later on a tie, as
    # fairseq2 ranks checkpoints); the scores of the kept checkpoints are those validations'.
    accuracy = {v["Step"]: v["Accuracy"] for v in valid}
    assert all(0.0 <= a <= 1.0 for a in accuracy.values())
    assert result["best_step"] == max(accuracy, key=lambda s: (accuracy[s], s))
    kept = {int(step): value for step, value in result["valid_scores"].items()}
    assert result["best_step"] in kept and set(kept) <= {20, 40}
    for step, value in kept.items():
        assert value == pytest.approx(accuracy[step], abs=1e-6)
    assert f"best checkpoint (step {result['best_step']})" in proc.stderr


def test_finetune_refuses_fewer_training_clips_than_a_batch(tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_finetune", str(tmp_path / "x"), "--preset", "demo_drums", "--no-rich",
                   "--config", "dataset.train_per_class=2")
    err = one_line_error(proc)
    assert "12 training clips after dataset.train_per_class, fewer than one batch (16 clips" in err and "dataset.batch_size" in err


def test_finetune_refuses_a_head_of_the_wrong_size(tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_finetune", str(tmp_path / "x"), "--preset", "demo_drums", "--no-rich",
                   "--config", "model.config_overrides.num_classes=7")
    assert proc.returncode == 2 and "num_classes=6" in proc.stderr and "Traceback" not in proc.stderr


def test_finetune_refuses_an_encoder_pre_trained_to_compute_differently_and_says_how_to_match_it(tmp_path: Path) -> None:
    # The weights would fit (no parameter changes), but the stem would compute another function.
    changed = ("model.config_overrides.encoder.stem.centre_tap=exact", "model.config_overrides.encoder.stem.init_decay=0.5",
               "model.config_overrides.encoder.stem.adaptive=false")
    proc = run_cli("recipe", "run", "aape_finetune", str(tmp_path / "x"), "--preset", "demo_drums", "--no-rich", "--config", *changed)
    err = one_line_error(proc)
    assert "was pre-trained with encoder.stem.centre_tap='paper', encoder.stem.init_decay=0.25, encoder.stem.adaptive=True;" in err
    suggested = shlex.split(err.split("Fine-tune it with the same values: --config ", 1)[1])
    assert suggested == ["model.config_overrides.encoder.stem.centre_tap=paper", "model.config_overrides.encoder.stem.init_decay=0.25",
                         "model.config_overrides.encoder.stem.adaptive=true"]
    # What it suggests, given after the changed values, fine-tunes (one step), the head's class count kept.
    out = tmp_path / "y"
    proc = run_cli("recipe", "run", "aape_finetune", str(out), "--preset", "demo_drums", "--no-rich", "--config", *changed, *suggested,
                   "regime.num_steps=2", "regime.validate_every_n_steps=2", "regime.checkpoint_every_n_steps=2",
                   "regime.publish_metrics_every_n_steps=2", "lr_scheduler.config.num_warmup_steps=1", "dataset.clip_seconds=0.5",
                   "dataset.eval_clip_seconds=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "results.json").read_text())["best_step"] == 2


def test_report_merges_runs_into_one_table(tmp_path: Path) -> None:
    for name, model, mean in (("a", "aape", 0.8), ("b", "logmel", 0.6)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"task": "demo_pitch", "model": model, "metric": "accuracy", "summary": {"mean": mean, "std": 0.01, "n": 3}}))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text(json.dumps(
        {"task": "demo_pitch", "model": "single", "metric": "accuracy", "summary": {"mean": 0.7, "std": 0.0, "n": 1}}))
    table = comparison_table(load_results([tmp_path / "a", tmp_path / "b", tmp_path / "c"]))
    assert "| aape | 80.0 +- 1.0 |" in table and "| logmel | 60.0 +- 1.0 |" in table
    assert "| single | 70.0 |" in table  # one deterministic run: no spread to show


def test_validation_and_test_map_are_one_definition() -> None:
    from torcheval.metrics import MultilabelAUPRC

    from aape_plugin.eval.metrics import MeanAveragePrecision, mean_average_precision

    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(40, 5, generator=g) > 0.6).long()
    targets[:, 4] = 0  # a class absent from the split
    scores = targets.float() * 0.4 + torch.rand(40, 5, generator=g)
    metric = MeanAveragePrecision(num_labels=5)
    metric.update(scores[:25], targets[:25])  # as the validation accumulates batches
    other = MeanAveragePrecision(num_labels=5)
    other.update(scores[25:], targets[25:])
    metric.merge_state([other])  # as ranks merge theirs
    assert float(metric.compute()) == pytest.approx(mean_average_precision(scores, targets), abs=1e-6)  # float32
    # torcheval's macro AUPRC counts the absent class as 0: a lower, different number.
    theirs = MultilabelAUPRC(num_labels=5, average="macro")
    theirs.update(scores, targets)
    assert float(theirs.compute()) < float(metric.compute()) - 0.1
