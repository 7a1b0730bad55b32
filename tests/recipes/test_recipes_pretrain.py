"""``fairseq2 recipe run aape_pretrain`` end to end on the demo data, through the console script."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.recipes.helpers import REPO, cpu_env, fairseq2_command, one_line_error, run_cli, run_torchrun, train_metrics

SHORT = [
    "--preset", "demo", "--no-rich", "--config",
    "regime.num_steps=30", "regime.checkpoint_every_n_steps=10", "regime.validate_every_n_steps=10",
    "regime.publish_metrics_every_n_steps=10", "regime.keep_last_n_checkpoints=3",
    "lr_scheduler.config.num_warmup_steps=5",
]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "run"
    proc = run_cli("recipe", "run", "aape_pretrain", str(out), *SHORT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_run_writes_checkpoints_metrics_and_tensorboard(full_run: Path) -> None:
    ckpt = full_run / "checkpoints"
    assert (ckpt / "model.yaml").read_text().startswith("name: checkpoint")
    for step in (10, 20, 30):
        assert (ckpt / f"step_{step}" / "model").is_dir()
        assert (ckpt / f"step_{step}" / "data_reader").is_dir()
    assert (full_run / "feature_stats.json").exists() and (full_run / "config.yaml").exists()

    rows = train_metrics(full_run)
    assert [r["Step"] for r in rows] == [10, 20, 30]
    for key in ("Loss", "Masked Token Loss", "CLS Global Loss", "Contrastive Loss", "EMA Decay",
                "Learning Rate", "Gradient Norm", "Clips per Second", "Skipped Clips",
                "Stem Decay q50", "Stem Frequency Hz q10", "Stem Frequency Hz q90"):
        assert key in rows[-1], key
    assert rows[-1]["Loss"] < rows[0]["Loss"]  # it learns
    assert 3.125 - 0.01 <= rows[-1]["Stem Frequency Hz q10"] <= rows[-1]["Stem Frequency Hz q90"] <= 50.0
    assert rows[-1]["Skipped Clips"] == 0 and rows[-1]["Clips per Second"] > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(full_run / "tb" / "train"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "Loss" in tags and "Contrastive Loss" in tags and "EMA Decay" in tags
    assert [e.step for e in events.Scalars("Loss")] == [10, 20, 30]
    assert events.Scalars("Loss")[-1].value == pytest.approx(rows[-1]["Loss"], rel=1e-6)


def test_killed_run_resumes_to_the_same_result(full_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen([*fairseq2_command(), "recipe", "run", "aape_pretrain", str(out), *SHORT],
                                stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                                env=cpu_env())
    deadline = time.time() + 300
    while "Checkpoint at step 20 saved" not in log.read_text():
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r["Step"] for r in train_metrics(out)] in ([10, 20], [10, 20, 30])

    again = run_cli("recipe", "run", "aape_pretrain", str(out), *SHORT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Restoring training from the last checkpoint at step 20" in again.stderr

    resumed, uninterrupted = train_metrics(out)[-1], train_metrics(full_run)[-1]
    assert resumed["Step"] == uninterrupted["Step"] == 30
    # Same data order, crops and masks (seeded by clip and step), teacher, optimiser and RNG
    # restored: the only freedom left is the order of float sums across threads.
    for key in ("Loss", "Masked Token Loss", "Contrastive Loss"):
        assert resumed[key] == pytest.approx(uninterrupted[key], rel=1e-5), key


@pytest.mark.slow
def test_two_ddp_processes_agree_with_one_on_the_first_step(tmp_path: Path) -> None:
    common = ["--preset", "demo", "--no-rich", "--config", "regime.num_steps=1", "regime.publish_metrics_every_n_steps=1",
              "regime.checkpoint_every_n_steps=1", "regime.validate_every_n_steps=1",
              "lr_scheduler.config.num_warmup_steps=0", "common.cluster=none", "dataset.num_parallel_calls=1"]
    one = run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "one"), *common, "dataset.batch_size=16")
    assert one.returncode == 0, one.stderr[-3000:]
    for name, extra in (("two", []), ("gathered", ["criterion.config.gather_negatives=true"])):
        two = run_torchrun("recipe", "run", "aape_pretrain", str(tmp_path / name), *common, "dataset.batch_size=8", *extra)
        assert two.returncode == 0, two.stderr[-4000:]
    a, b, c = (train_metrics(tmp_path / name)[0] for name in ("one", "two", "gathered"))
    assert a["Number of Examples"] == b["Number of Examples"] == c["Number of Examples"] == 16
    # Same 16 clips (rank r takes every other clip of the shared shuffle), same masks (seeded
    # per clip), same initial weights: the per-clip losses agree. The alias-feature targets are
    # standardised with statistics summed over the ranks, so theirs agrees too.
    for run in (b, c):
        assert run["Masked Token Loss"] == pytest.approx(a["Masked Token Loss"], rel=1e-4)
        assert run["CLS Global Loss"] == pytest.approx(a["CLS Global Loss"], rel=1e-4)
        assert run["Alias Feature Loss"] == pytest.approx(a["Alias Feature Loss"], rel=1e-4)
    # By default the contrastive negatives are the clips on the same rank, so the term and the
    # gradient differ from one process; gathered across ranks (with gradient), both are those
    # of one process with the whole batch.
    assert b["Contrastive Loss"] != pytest.approx(a["Contrastive Loss"], rel=1e-2)
    assert b["Gradient Norm"] != pytest.approx(a["Gradient Norm"], rel=1e-4)
    assert c["Contrastive Loss"] == pytest.approx(a["Contrastive Loss"], rel=1e-5)
    assert c["Gradient Norm"] == pytest.approx(a["Gradient Norm"], rel=2e-5)
    assert (tmp_path / "two" / "checkpoints" / "step_1" / "data_reader" / "dp_01.pt").exists()


def test_unknown_recipe_preset_and_arch_are_one_line_errors() -> None:
    err = one_line_error(run_cli("recipe", "run", "aape_pretrian", "/tmp/x"))
    assert "unknown recipe 'aape_pretrian'; available recipes: aape_extract, aape_finetune, aape_linear_probe, aape_pretrain" in err
    err = one_line_error(run_cli("recipe", "run", "aape_pretrain", "/tmp/x", "--preset", "dmeo"))
    assert "unknown preset 'dmeo'" in err and "audioset_base, audioset_small, demo" in err
    err = one_line_error(run_cli("recipe", "run", "aape_pretrain", "/tmp/x", "--model-arch", "aape_huge"))
    assert "unknown arch 'aape_huge'" in err
    for arch in ("aape_base", "aape_small", "aape_tiny", "vit_base", "vit_small", "vit_tiny"):
        assert arch in err


def test_config_typo_and_missing_dataset_are_clear(tmp_path: Path) -> None:
    err = one_line_error(run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "a"), "--preset", "demo",
                                 "--config", "trainer.max_grad_nrom=1"))
    assert "max_grad_nrom" in err and len(err.strip().splitlines()) == 1
    proc = run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "b"), "--preset", "demo", "--no-rich",
                   "--config", "dataset.name=null", "dataset.family=audioset", f"dataset.root={tmp_path / 'no_audioset'}")
    err = one_line_error(proc)
    assert f"The AudioSet folder {tmp_path / 'no_audioset'} does not exist" in err


@pytest.mark.slow  # four fairseq2 starts
def test_list_presets_dump_config_and_precedence(tmp_path: Path) -> None:
    listing = run_cli("recipe", "list")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == ["aape_extract", "aape_finetune", "aape_linear_probe", "aape_pretrain"]
    presets = run_cli("recipe", "presets", "aape_pretrain")
    assert "demo" in presets.stdout and "aape_tiny on the shipped demo data" in presets.stdout

    user = tmp_path / "mine.yaml"
    user.write_text("dataset:\n  batch_size: 5\n  stats_file: ${dir}/stats.json\nregime:\n  num_steps: 77\n")
    proc = run_cli("recipe", "run", "aape_pretrain", "--preset", "demo", "--config-file", str(user),
                   "--model-arch", "vit_tiny", "--config", "regime.num_steps=88", "--dump-config")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import yaml

    config = yaml.safe_load(proc.stdout)
    assert config["model"]["arch"] == "vit_tiny"             # --model-arch over the preset
    assert config["dataset"]["batch_size"] == 5               # user file over the preset
    assert config["dataset"]["name"] == "demo_pool"           # preset over the default
    assert config["regime"]["num_steps"] == 88                # --config over the user file
    assert config["dataset"]["stats_file"] == str(tmp_path / "stats.json")  # ${dir} = the user file's folder
    assert config["optimizer"]["config"]["lr"] == 0.001       # preset value kept


def test_assets_command_forwards_to_fairseq2() -> None:
    proc = run_cli("assets", "list", "--kind", "dataset")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dataset:demo_pitch@" in proc.stdout and "dataset:demo_pool@" in proc.stdout


def test_output_dir_may_come_after_config_overrides_and_the_alias_target_runs(tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "run"), "--preset", "demo",
                   "--config", "regime.num_steps=2", "lr_scheduler.config.num_warmup_steps=1",
                   "regime.checkpoint_every_n_steps=2", "regime.publish_metrics_every_n_steps=2", "regime.validate_every_n_steps=2",
                   "model.config_overrides={targets: {alias_features: true}}", "criterion.config.alias_weight=0.5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = train_metrics(tmp_path / "run")
    assert [r["Step"] for r in rows] == [2]
    # The option applied: its term is reported, and the total is the weighted sum of the terms.
    row = rows[0]
    assert row["Alias Feature Loss"] > 0
    expected = row["Masked Token Loss"] + row["CLS Global Loss"] + 0.1 * row["Contrastive Loss"] + 0.5 * row["Alias Feature Loss"]
    assert row["Loss"] == pytest.approx(expected, rel=1e-4)


def test_checkpoints_are_usable_by_name_in_later_recipes(full_run: Path, tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_linear_probe", str(tmp_path / "probe"), "--preset", "demo_drums", "--no-rich",
                   "--config", f"common.assets.prev_checkpoint_dir={full_run / 'checkpoints'}", "model.checkpoint=last_checkpoint",
                   "probe.penalties=[1e-2]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Evaluating asset last_checkpoint (teacher)" in proc.stderr
    result = __import__("json").loads((tmp_path / "probe" / "results.json").read_text())
    stats = __import__("json").loads((full_run / "feature_stats.json").read_text())
    assert result["model_key"]["stats"] == [stats["mean"], stats["std"]]  # the run's own statistics


@pytest.mark.slow
def test_fsdp_with_activation_checkpointing_matches_one_process(tmp_path: Path) -> None:
    # FSDP2 over gloo on two CPU processes with layer-wise activation checkpointing, against
    # one process with the same 8 clips per step. Without the contrastive term (its negatives
    # are the clips on the same rank) the step is the same computation: same weights after it.
    from aape_plugin.inference.loading import load_encoder

    common = ["--preset", "demo", "--no-rich", "--config", "common.cluster=none", "regime.num_steps=2",
              "regime.publish_metrics_every_n_steps=1", "regime.checkpoint_every_n_steps=1", "regime.keep_last_n_checkpoints=2",
              "regime.validate_every_n_steps=2", "lr_scheduler.config.num_warmup_steps=1", "dataset.num_parallel_calls=1",
              "criterion.config.contrastive_weight=0", "ema.start=0.9", "ema.end=0.9"]
    one = run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "one"), *common, "dataset.batch_size=8")
    assert one.returncode == 0, one.stderr[-3000:]
    proc = run_torchrun("recipe", "run", "aape_pretrain", str(tmp_path / "fsdp"), *common, "dataset.batch_size=4",
                        "trainer.data_parallelism=fsdp", "trainer.activation_checkpointing.mode=layerwise")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "fsdp" / "checkpoints" / "step_1" / "model" / "pp_00" / "tp_00" / "sdp_01.pt").exists()  # sharded

    def weights(run: str, step: int, which: str) -> dict:
        encoder = load_encoder(tmp_path / run / "checkpoints" / f"step_{step}", weights=which).encoder  # type: ignore[arg-type]
        return {k: v.clone() for k, v in encoder.state_dict().items()}

    a, b = train_metrics(tmp_path / "one")[0], train_metrics(tmp_path / "fsdp")[0]
    assert a["Number of Examples"] == b["Number of Examples"] == 8
    assert b["Masked Token Loss"] == pytest.approx(a["Masked Token Loss"], rel=1e-4)
    for which in ("student", "teacher"):
        single, sharded = weights("one", 1, which), weights("fsdp", 1, which)
        for name in single:
            torch.testing.assert_close(sharded[name], single[name], atol=2e-6, rtol=1e-4, msg=f"{which}.{name}")

    # The EMA update ran on the sharded parameters: teacher_2 = d teacher_1 + (1 - d) student_2.
    d = 0.9
    teacher_1, teacher_2, student_2 = weights("fsdp", 1, "teacher"), weights("fsdp", 2, "teacher"), weights("fsdp", 2, "student")
    moved, trained = 0, 0
    for name, value in teacher_2.items():
        if not value.is_floating_point():
            continue
        torch.testing.assert_close(value, d * teacher_1[name] + (1 - d) * student_2[name], atol=1e-6, rtol=1e-5, msg=name)
        if ".lambda_encoder." not in f".{name}":  # kept at its initialisation in pre-training
            trained += 1
            moved += int(not torch.equal(value, teacher_1[name]))
    assert moved > 0.9 * trained
    assert (tmp_path / "fsdp" / "checkpoints" / "step_2" / "model").is_dir()

    # Resuming the sharded run from step 1 reaches the same step 2: the sharded optimiser state
    # (saved as plain local shards, rebuilt around the parameters' placements) is restored.
    import shutil

    shutil.copytree(tmp_path / "fsdp", tmp_path / "fsdp_resumed")
    shutil.rmtree(tmp_path / "fsdp_resumed" / "checkpoints" / "step_2")
    again = run_torchrun("recipe", "run", "aape_pretrain", str(tmp_path / "fsdp_resumed"), *common, "dataset.batch_size=4",
                         "trainer.data_parallelism=fsdp", "trainer.activation_checkpointing.mode=layerwise")
    assert again.returncode == 0 and "Optimizer state restored" in again.stderr, again.stderr[-4000:]
    for which in ("student", "teacher"):
        resumed = weights("fsdp_resumed", 2, which)
        for name, value in weights("fsdp", 2, which).items():
            torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=1e-5, msg=f"{which}.{name}")


def test_encoders_load_from_a_run_by_its_checkpoint_steps(full_run: Path) -> None:
    from aape_plugin.inference.loading import EncoderLoadError, load_encoder

    ckpt = full_run / "checkpoints"
    assert load_encoder(full_run).description == f"{ckpt / 'step_30'} (teacher)"  # the last step
    assert load_encoder(full_run, step=10, weights="student").description == f"{ckpt / 'step_10'} (student)"
    assert load_encoder(ckpt / "step_20").description == f"{ckpt / 'step_20'} (teacher)"
    assert load_encoder(ckpt / "step_20" / "model").description == f"{ckpt / 'step_20'} (teacher)"
    with pytest.raises(EncoderLoadError, match=r"has no checkpoint at step 15; it has steps \[10, 20, 30\]"):
        load_encoder(full_run, step=15)


class _WritesMarker:
    """Unpickling this runs code: it writes the file it names (what a tampered state would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "code ran"))


def test_a_tampered_run_folder_is_refused_on_resume_and_runs_no_code(full_run: Path, tmp_path: Path) -> None:
    # More attacks, with memory bounds, in test_recipes_safe_resume.py.
    import shutil

    copy = tmp_path / "copied_run"
    shutil.copytree(full_run, copy)
    marker = tmp_path / "marker"
    state = copy / "checkpoints" / "step_30" / "trainer" / "rank_00.pt"
    torch.save({"step_nr": 30, "payload": _WritesMarker(marker)}, state, pickle_protocol=2)
    proc = run_cli("recipe", "run", "aape_pretrain", str(copy), *SHORT, "regime.num_steps=40")
    err = one_line_error(proc)
    assert f"{state} is a pickle checkpoint" in err and "nothing of it was built" in err, err
    assert f"convert it with `aape convert {copy}`" in err and not marker.exists()


def test_a_model_path_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    bad = tmp_path / "model.pt"
    torch.save({"model": _WritesMarker(marker)}, bad)
    proc = run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "run"), *SHORT, f"model.path={bad}")
    err = one_line_error(proc)
    assert f"{bad} is a pickle checkpoint" in err and f"aape convert {bad}" in err and not marker.exists(), err


def test_finetuning_reads_its_pre_trained_step_once_and_resumes_without_it(full_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "pretrained"
    shutil.copytree(full_run, run)
    out = tmp_path / "ft"
    args = ["recipe", "run", "aape_finetune", str(out), "--preset", "demo_drums", "--no-rich", "--config",
            f"pretrained.checkpoint={run}", "pretrained.step=10", "model.arch=aape_tiny", "regime.validate_every_n_steps=2",
            "regime.checkpoint_every_n_steps=2", "regime.publish_metrics_every_n_steps=2", "lr_scheduler.config.num_warmup_steps=1"]
    first = run_cli(*args, "regime.num_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("Encoder initialised from") == 1 and f"{run}/checkpoints/step_10 (teacher)" in first.stderr
    assert (out / "feature_stats.json").read_text() == (run / "feature_stats.json").read_text()
    # Resuming to more steps needs nothing from the pre-training run: its folder is gone.
    shutil.rmtree(run)
    resumed = run_cli(*args, "regime.num_steps=4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Encoder initialised from" not in resumed.stderr and json.loads((out / "results.json").read_text())["best_step"] in (2, 4)
