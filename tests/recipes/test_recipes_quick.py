"""The ``quick`` pre-training preset: a smoke run whose step counts agree with each other."""

import re
from pathlib import Path

import pytest
import yaml

from aape_plugin.inference.loading import EncoderLoadError, load_encoder
from tests.recipes.helpers import REPO, one_line_error, run_cli, train_metrics

QUICK = REPO / "recipes" / "pretrain" / "quick.yaml"


def test_quick_preset_runs_end_to_end_in_well_under_a_minute(quick_run: Path) -> None:
    log = (quick_run / "stderr.log").read_text()
    finished = re.search(r"Task finished in (\d+) second\(s\) after (\d+) step\(s\)", log)
    assert finished and int(finished[2]) == 10 and int(finished[1]) < 60, finished
    assert sorted(p.name for p in (quick_run / "checkpoints").glob("step_*")) == ["step_10"]
    assert [m["Step"] for m in train_metrics(quick_run)] == [5, 10]
    loaded = load_encoder(quick_run)  # what it wrote loads for evaluation
    assert loaded.stats is not None and "step_10" in loaded.description


def test_quick_preset_spacings_agree_for_its_step_count_and_longer_ones() -> None:
    config = yaml.safe_load(QUICK.read_text())
    regime, warmup = config["regime"], config["lr_scheduler"]["config"]["num_warmup_steps"]
    assert config["dataset"]["name"] == "demo_pool"
    assert warmup < regime["num_steps"] <= 20
    # fairseq2 requires checkpoints on published steps; the last step is a checkpoint.
    assert regime["checkpoint_every_n_steps"] % regime["publish_metrics_every_n_steps"] == 0
    assert regime["num_steps"] % regime["checkpoint_every_n_steps"] == 0
    assert regime["validate_every_n_steps"] % regime["publish_metrics_every_n_steps"] == 0


def test_a_short_demo_run_is_pointed_to_the_quick_preset(tmp_path: Path) -> None:
    err = one_line_error(run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "x"), "--preset", "demo", "--no-rich",
                                 "--config", "regime.num_steps=20"))
    assert "`lr_scheduler.config.num_warmup_steps` (40) must be smaller than `regime.num_steps` (20)" in err
    assert "--preset quick" in err
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_a_folder_of_runs_names_the_runs_inside(quick_run: Path, tmp_path: Path) -> None:
    with pytest.raises(EncoderLoadError) as refused:
        load_encoder(quick_run.parent)
    message = str(refused.value)
    assert "\n" not in message and f"{quick_run.parent} is not a pre-training run but holds one: {quick_run}; give it instead." == message
    # Many runs two levels down: the first few are named, the rest counted.
    for i in range(5):
        (tmp_path / "sweep" / f"lr{i}" / "checkpoints").mkdir(parents=True)
        (tmp_path / "sweep" / f"lr{i}" / "checkpoints" / "model.yaml").write_text((quick_run / "checkpoints" / "model.yaml").read_text())
    with pytest.raises(EncoderLoadError, match=r"holds 5: .*/sweep/lr0, .*/sweep/lr1, .*/sweep/lr2 and 2 more; give one of them"):
        load_encoder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderLoadError, match="is not a pre-training run: expected"):
        load_encoder(tmp_path / "empty")
