"""The bad-input corpus through the public commands (pre-training, probe, extraction,
fine-tuning): every run finishes, each problem clip is named once, and the clips skipped as
unreadable are counted in what the run writes; above ``max_bad_fraction`` a run stops with
one summary line and exit code 2."""

import csv
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.data.conftest import DEMO, SHORT_CLIPS, make_odd_corpus
from tests.recipes.helpers import aape_command, one_line_error, run_cli, train_metrics


def run_aape(*args: str):  # noqa: ANN201
    """These runs use the ``aape`` name of the command."""
    return run_cli(*args, script="aape")

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bool]]:
    return make_odd_corpus(tmp_path_factory.mktemp("corpus"))


def unreadable(corpus: dict) -> list[str]:
    return [str(p) for p, ok in corpus.values() if not ok]


def too_short(corpus: dict) -> list[str]:
    """Clips padded with silence (shorter than half an STFT window), named as such."""
    return [str(corpus[name][0]) for name, length in SHORT_CLIPS.items() if length < 201]


def assert_named_once(log: str, paths: list[str]) -> None:
    for path in paths:
        assert log.count(path) == 1, (path, log.count(path))


@pytest.fixture(scope="module")
def task(corpus: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """demo_drums plus every corpus file, spread over the splits: a config file for the probe
    and fine-tuning, and each split's unreadable clips."""
    folder = tmp_path_factory.mktemp("task")
    rows = list(csv.DictReader(open(DEMO / "demo_drums.csv")))
    labels = sorted({r["label"] for r in rows})
    bad: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i, (path, ok) in enumerate(corpus.values()):
        split = SPLITS[i % 3] if i % 3 else "train"
        rows.append({"file_name": str(path), "label": labels[i % len(labels)], "split": split})
        if not ok:
            bad[split].append(str(path))
    assert all(bad.values()), bad  # every split has unreadable clips
    with open(folder / "task.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    # No statistics file: the run computes them over the training split, bad clips included.
    config = folder / "task.yaml"
    config.write_text(
        f"dataset:\n  name: null\n  family: audio_manifest\n  root: {DEMO}\n"
        f"  config_overrides: {{metadata: {folder / 'task.csv'}}}\n  max_bad_fraction: 0.5\n"
    )
    return config, bad


def test_probe_finishes_names_each_bad_clip_once_and_counts_them(task: tuple, corpus: dict, tmp_path: Path) -> None:
    config, bad = task
    out = tmp_path / "probe"
    proc = run_aape("recipe", "run", "aape_linear_probe", str(out), "--preset", "demo_drums", "--no-rich",
                   "--config-file", str(config), "--config", "model.kind=logmel",  # (computes the task's statistics)
                   "probe.penalties=[1e-2]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_named_once(proc.stderr, unreadable(corpus) + too_short(corpus))
    result = json.loads((out / "results.json").read_text())
    assert result["skipped_clips"] == {split: len(paths) for split, paths in bad.items()}
    stats = json.loads((out / "feature_stats.json").read_text())
    assert stats["num_skipped"] == len(bad["train"])
    assert "Clips skipped as unreadable: test" in (out / "results.md").read_text()


def test_extract_embeds_every_readable_clip_and_lists_the_rest(corpus: dict, tmp_path: Path) -> None:
    out = tmp_path / "extract"
    folder = next(iter(corpus.values()))[0].parent
    proc = run_aape("recipe", "run", "aape_extract", str(out), "--no-rich", "--config", f"input_dir={folder}",
                   "dataset.max_bad_fraction=1.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    present = [p for p in unreadable(corpus) if Path(p).exists()]
    assert_named_once(proc.stderr, present + too_short(corpus))
    listing = json.loads((out / "files.json").read_text())
    assert sorted(listing["paths"]) == sorted(str(p) for p, ok in corpus.values() if ok)
    assert sorted(listing["skipped"]) == sorted(present)
    data = load_file(str(out / "files.safetensors"))
    assert data["frames"].isfinite().all() and data["clip"].isfinite().all()
    offsets = data["frame_offsets"].tolist()
    for row, path in enumerate(listing["paths"]):
        if path in too_short(corpus):
            assert offsets[row + 1] - offsets[row] == 1, path  # one frame: one patch


def test_finetune_finishes_and_counts_bad_clips_in_its_metrics(task: tuple, corpus: dict, tmp_path: Path) -> None:
    config, bad = task
    out = tmp_path / "ft"
    proc = run_aape("recipe", "run", "aape_finetune", str(out), "--preset", "demo_drums", "--no-rich",
                   "--config-file", str(config), "--config", "regime.num_steps=4", "regime.validate_every_n_steps=2",
                   "regime.checkpoint_every_n_steps=2", "regime.publish_metrics_every_n_steps=2",
                   "lr_scheduler.config.num_warmup_steps=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_named_once(proc.stderr, unreadable(corpus) + too_short(corpus))
    valid = [json.loads(line) for line in (out / "metrics" / "valid.jsonl").read_text().splitlines()]
    assert [v["Skipped Clips"] for v in valid] == [len(bad["valid"])] * 2
    result = json.loads((out / "results.json").read_text())
    assert result["skipped_clips"] == {"test": len(bad["test"])}


@pytest.fixture(scope="module")
def pool(corpus: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pre-training manifest: 40 demo clips and the corpus (6 unreadable of 56)."""
    folder = tmp_path_factory.mktemp("pool")
    lines = (DEMO / "pretrain.tsv").read_text().splitlines()
    rows = [line.split("\t")[0] for line in lines[1:41]] + [str(p) for p, _ in corpus.values()]
    (folder / "pool.tsv").write_text("path\tnum_samples\n" + "".join(f"{r}\t16000\n" for r in rows))
    config = folder / "pool.yaml"
    config.write_text(
        f"dataset:\n  name: null\n  family: audio_manifest\n  root: {DEMO}\n"
        f"  config_overrides: {{splits: {{train: {folder / 'pool.tsv'}}}}}\n  stats_file: {DEMO / 'stats.json'}\n"
        f"  batch_size: 8\n"
    )
    return config


PRETRAIN = ["regime.checkpoint_every_n_steps=100", "regime.validate_every_n_steps=100",
            "regime.publish_metrics_every_n_steps=2", "lr_scheduler.config.num_warmup_steps=1"]


def test_pretrain_counts_skipped_clips_and_stops_above_the_limit(pool: Path, corpus: dict, tmp_path: Path) -> None:
    ok = run_aape("recipe", "run", "aape_pretrain", str(tmp_path / "ok"), "--preset", "demo", "--no-rich",
                 "--config-file", str(pool), "--config", "regime.num_steps=6", "dataset.max_bad_fraction=0.5", *PRETRAIN)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert_named_once(ok.stderr, unreadable(corpus) + too_short(corpus))
    rows = train_metrics(tmp_path / "ok")
    # 6 steps of 8 clips read 48 or more of the 56: at least one unreadable clip was met.
    assert 1 <= sum(r["Skipped Clips"] for r in rows) <= 2 * len(unreadable(corpus))

    # Above the limit (the default 1%), once 50 clips were read: one summary line, exit code 2.
    proc = run_aape("recipe", "run", "aape_pretrain", str(tmp_path / "stop"), "--preset", "demo", "--no-rich",
                   "--config-file", str(pool), "--config", "regime.num_steps=20", *PRETRAIN)
    err = one_line_error(proc)
    errors = [line for line in err.splitlines() if " ERROR" in line]
    assert len(errors) == 1, err[-3000:]
    assert "could not be decoded, more than `max_bad_fraction` = 0.01. First ones: " in errors[0]


def test_the_aape_command_reports_errors_under_its_own_name() -> None:
    import subprocess

    err = subprocess.run([*aape_command(), "recipe", "run", "aape_pretrian", "/tmp/x"], capture_output=True, text=True, timeout=300)
    assert err.returncode == 2 and err.stderr.startswith("aape: error: unknown recipe 'aape_pretrian'; available recipes: aape_extract")


class _RecipeWithMissingPresets:
    """A recipe whose presets package is not importable (a virtualenv installed from another checkout)."""

    presets = "aape_plugin_elsewhere.presets:pretrain"


def test_presets_that_cannot_be_imported_are_one_line_errors_that_say_how_to_fix_it() -> None:
    from importlib.metadata import EntryPoint

    import pytest

    from aape_plugin.cli.presets import list_presets
    from aape_plugin.cli.recipes import CliError, RecipeEntry

    entry = RecipeEntry("broken", EntryPoint("broken", f"{__name__}:_RecipeWithMissingPresets", "fairseq2.recipe"))
    with pytest.raises(CliError, match=r"presets package 'aape_plugin_elsewhere.presets' cannot be imported .*scripts/setup.sh"):
        list_presets(entry)
