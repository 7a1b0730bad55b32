"""Fine-tuning, extraction and the comparison report through the console script."""

import json
from pathlib import Path

from safetensors.torch import load_file

from aape_plugin.eval.report import comparison_table, load_results
from tests.data.conftest import DEMO
from tests.recipes.helpers import run_cli


def test_finetune_selects_on_valid_and_scores_test_once(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    proc = run_cli("recipe", "run", "aape_finetune", str(out), "--preset", "demo_drums", "--no-rich", "--config",
                   "regime.num_steps=40", "regime.validate_every_n_steps=20", "regime.checkpoint_every_n_steps=20",
                   "regime.publish_metrics_every_n_steps=20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["metric"] == "accuracy" and 0.0 <= result["summary"]["mean"] <= 1.0
    assert result["best_step"] in (20, 40) and set(map(int, result["valid_scores"])) <= {20, 40}
    assert "Encoder initialised from asset aape_tiny_demo" in proc.stderr
    assert proc.stderr.count("Test accuracy with the best checkpoint") == 1
    valid = [json.loads(line) for line in (out / "metrics" / "valid.jsonl").read_text().splitlines()]
    assert [v["Step"] for v in valid] == [20, 40] and all("Accuracy" in v for v in valid)


def test_finetune_refuses_a_head_of_the_wrong_size(tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_finetune", str(tmp_path / "x"), "--preset", "demo_drums", "--no-rich",
                   "--config", "model.config_overrides.num_classes=7")
    assert proc.returncode == 2 and "num_classes=6" in proc.stderr and "Traceback" not in proc.stderr


def test_extract_writes_clip_and_frame_embeddings_with_timestamps(tmp_path: Path) -> None:
    out = tmp_path / "ex"
    proc = run_cli("recipe", "run", "aape_extract", str(out), "--no-rich", "--config", f"input_dir={DEMO / 'drums'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = load_file(str(out / "files.safetensors"))
    paths = json.loads((out / "files.json").read_text())["paths"]
    n = len(list((DEMO / "drums").glob("*.flac")))
    assert data["clip"].shape == (n, 640) and len(paths) == n
    offsets = data["frame_offsets"]
    assert offsets[0] == 0 and offsets[-1] == data["frames"].shape[0] == data["timestamps"].shape[0]
    first = slice(int(offsets[0]), int(offsets[1]))
    assert (data["timestamps"][first].diff() > 0).all()
    assert data["frames"][first].mean(0).allclose(data["clip"][0], atol=1e-4)


def test_report_merges_runs_into_one_table(tmp_path: Path) -> None:
    for name, model, mean in (("a", "aape", 0.8), ("b", "logmel", 0.6)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"task": "demo_pitch", "model": model, "metric": "accuracy", "summary": {"mean": mean, "std": 0.01, "n": 3}}))
    table = comparison_table(load_results([tmp_path / "a", tmp_path / "b"]))
    assert "| aape | 80.0 +- 1.0 |" in table and "| logmel | 60.0 +- 1.0 |" in table
