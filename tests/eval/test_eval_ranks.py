"""The evaluation recipes under torchrun: two gloo processes on CPU give what one process gives."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.data.conftest import DEMO
from tests.recipes.helpers import run_cli, run_torchrun

PROBE = ["--preset", "demo_drums", "--no-rich", "--config", "model.checkpoint=aape_tiny_demo",
         "probe.penalties=[1e-3,1e-2,1e-1]"]


@pytest.mark.slow
def test_two_process_probe_equals_one_process(tmp_path: Path) -> None:
    one = run_cli("recipe", "run", "aape_linear_probe", str(tmp_path / "one"), *PROBE)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_torchrun("recipe", "run", "aape_linear_probe", str(tmp_path / "two"), *PROBE, "common.cluster=none")
    assert two.returncode == 0, two.stderr[-4000:]

    a, b = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    # Every clip probed (not each rank's half), the same probe and accuracy.
    assert [(r["train"], r["valid"], r["test"]) for r in b["runs"]] == [(77, 10, 24)]
    # (Embeddings agree to 1e-5 across process counts, so L-BFGS may take a different number of
    # iterations; the chosen penalty and the scores are the same.)
    same = [(r["penalty"], r["valid_score"], r["test_score"]) for r in a["runs"]]
    assert [(r["penalty"], r["valid_score"], r["test_score"]) for r in b["runs"]] == same and b["summary"] == a["summary"]

    # One cache file per split, written once, with the same rows in the same (clip) order.
    names = sorted(p.name for p in (tmp_path / "one" / "embeddings").glob("*.safetensors"))
    assert len(names) == 3 and names == sorted(p.name for p in (tmp_path / "two" / "embeddings").glob("*.safetensors"))
    for name in names:
        x, y = load_file(str(tmp_path / "one" / "embeddings" / name)), load_file(str(tmp_path / "two" / "embeddings" / name))
        assert torch.equal(x["indices"], y["indices"]) and torch.equal(x["labels"], y["labels"])
        assert (x["indices"].diff() > 0).all()
        torch.testing.assert_close(y["embeddings"], x["embeddings"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_two_process_extraction_writes_every_clip_once(tmp_path: Path) -> None:
    args = ["--no-rich", "--config", f"input_dir={DEMO / 'drums'}"]
    one = run_cli("recipe", "run", "aape_extract", str(tmp_path / "one"), *args)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_torchrun("recipe", "run", "aape_extract", str(tmp_path / "two"), *args, "common.cluster=none")
    assert two.returncode == 0, two.stderr[-4000:]

    files = sorted(str(p) for p in (DEMO / "drums").glob("*.flac"))
    a, b = (json.loads((tmp_path / name / "files.json").read_text())["paths"] for name in ("one", "two"))
    assert b == a == files  # each clip exactly once, in the order of the file list

    x, y = load_file(str(tmp_path / "one" / "files.safetensors")), load_file(str(tmp_path / "two" / "files.safetensors"))
    assert torch.equal(x["frame_offsets"], y["frame_offsets"]) and torch.equal(x["timestamps_ms"], y["timestamps_ms"])
    # A clip's embeddings do not depend on the clips it shares a batch (or a rank) with.
    torch.testing.assert_close(y["clip"], x["clip"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y["frames"], x["frames"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_two_process_finetune_tests_the_best_checkpoint_of_its_checkpoint_dir(tmp_path: Path) -> None:
    out, checkpoints = tmp_path / "ft", tmp_path / "elsewhere"
    proc = run_torchrun("recipe", "run", "aape_finetune", str(out), "--checkpoint-dir", str(checkpoints),
                        "--preset", "demo_drums", "--no-rich", "--config", "common.cluster=none", "dataset.batch_size=8",
                        "regime.num_steps=20", "regime.validate_every_n_steps=10", "regime.checkpoint_every_n_steps=10",
                        "regime.publish_metrics_every_n_steps=10", "lr_scheduler.config.num_warmup_steps=5")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not (out / "checkpoints").exists()
    result = json.loads((out / "results.json").read_text())
    scores = {int(p.stem[5:]): float(p.read_text()) for p in (checkpoints / "scores").glob("step_*.txt")}
    assert result["best_step"] == max(scores, key=lambda s: (scores[s], s))
    assert {int(k): v for k, v in result["valid_scores"].items()} == scores
    assert f"Testing the checkpoint of step {result['best_step']}" in proc.stderr and "on cpu with 2 process(es)" in proc.stderr
    assert result["test_clips"] == 24  # both ranks' shards

    # The score is that of the best checkpoint on every test clip, recomputed here in one process.
    import yaml
    from fairseq2.device import CPU
    from fairseq2.gang import create_fake_gangs
    from fairseq2.runtime.dependency import get_dependency_resolver
    from fairseq2.utils.structured import ValueConverter

    from aape_plugin.data.features import LogMelConfig
    from aape_plugin.data.hub import get_audio_manifest_hub
    from aape_plugin.data.reader import AudioReaderOptions
    from aape_plugin.data.stats import FeatureStats
    from aape_plugin.eval.metrics import score
    from aape_plugin.inference.loading import ensure_fairseq2
    from aape_plugin.models.classifier import AapeClassifierConfig
    from aape_plugin.models.hub import get_classifier_hub

    ensure_fairseq2()
    meta = yaml.safe_load((checkpoints / "model.yaml").read_text())
    config = get_dependency_resolver().resolve(ValueConverter).structure(meta["model_config"], AapeClassifierConfig)
    model = get_classifier_hub().load_custom_model(checkpoints / f"step_{result['best_step']}" / "model", config).eval()
    dataset = get_audio_manifest_hub().open_dataset("demo_drums")
    stats = FeatureStats.load(DEMO / "stats.json")  # what the shipped aape_tiny_demo was trained with
    reader = dataset.create_reader("test", create_fake_gangs(CPU), LogMelConfig(), stats,
                                   AudioReaderOptions(batch_size=64, num_frames=LogMelConfig().num_frames(16_000), crop="start", shuffle=False))
    with torch.no_grad():
        batches = [b for group in reader for b in group]
        logits = torch.cat([model(b.features) for b in batches])
    assert sum(b.batch_size for b in batches) == 24
    assert result["summary"]["mean"] == pytest.approx(score(logits, torch.cat([b.labels for b in batches]), False), abs=1e-6)


def test_a_second_local_rank_is_on_cpu_under_the_tests() -> None:
    # On a GPU machine, fairseq2 would map LOCAL_RANK=1 to cuda:1; the tests pin every process to CPU.
    code = "from fairseq2 import init_fairseq2; init_fairseq2(); from fairseq2.device import detect_default_device; print(detect_default_device())"
    import subprocess
    import sys

    from tests.recipes.helpers import cpu_env

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=cpu_env({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "cpu"
