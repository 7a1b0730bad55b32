"""Readers: sharding covers the data exactly once, resuming continues exactly, families open
by asset card, AudioSet folders as downloaded."""

import shutil
from pathlib import Path

import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.hub import get_audio_manifest_hub, get_audioset_hub
from aape_plugin.data.reader import AudioReaderOptions
from aape_plugin.data.stats import FeatureStats
from tests.data.conftest import DEMO
from tests.recipes.helpers import cpu_env

STATS = FeatureStats.load(DEMO / "stats.json")


@pytest.fixture(scope="module", autouse=True)
def _fairseq2(fairseq2_initialised: None) -> None:
    """Every test here needs the registered families."""


def test_demo_tasks_open_by_card_name() -> None:
    hub = get_audio_manifest_hub()
    pitch = hub.open_dataset("demo_pitch")
    assert pitch.splits == ["train", "valid", "test"]
    assert pitch.label_names == [str(p) for p in range(48, 73)] and not pitch.multi_label
    pool = hub.open_dataset("demo_pool")
    assert pool.label_names is None and pool.splits == ["train"]
    test_clips = {e.path for task in ("demo_pitch", "demo_keywords", "demo_drums", "demo_instrument")
                  for e in hub.open_dataset(task).entries("test")}
    assert test_clips and not test_clips & {e.path for e in pool.entries("train")}


def test_two_ranks_cover_every_clip_exactly_once_per_epoch(tmp_path: Path) -> None:
    # Two real processes (torchrun, gloo): the same shuffle on both ranks, then disjoint shards.
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "tests.data.shard_worker", str(tmp_path)],
        cwd=repo, capture_output=True, text=True, timeout=300, env=cpu_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    expected = sorted(str(e.path) for e in get_audio_manifest_hub().open_dataset("demo_keywords").entries("train"))
    for epoch in range(2):
        a, b = ranks[0][epoch], ranks[1][epoch]
        assert not set(a) & set(b)
        assert sorted(a + b) == expected
    assert ranks[0][0] != ranks[0][1]  # a new shuffle each epoch


def test_each_epoch_is_shuffled_differently() -> None:
    ds = get_audio_manifest_hub().open_dataset("demo_keywords")
    reader = ds.create_reader("train", create_fake_gangs(CPU), LogMelConfig(), STATS, AudioReaderOptions(batch_size=8, num_frames=96))
    first = [p for group in reader for b in group for p in b.paths]
    reader.reset()
    second = [p for group in reader for b in group for p in b.paths]
    assert sorted(first) == sorted(second) and first != second


def test_resumed_reader_continues_exactly_where_it_stopped() -> None:
    ds = get_audio_manifest_hub().open_dataset("demo_pitch")
    options = AudioReaderOptions(batch_size=8, num_frames=64, seed=5, num_parallel_calls=2)

    def make():
        return ds.create_reader("train", create_fake_gangs(CPU), LogMelConfig(), STATS, options)

    reader = make()
    reader.reset()  # second epoch: the crop offsets depend on the epoch too
    for _ in range(5):
        next(reader)
    state = reader.state_dict()
    rest = [b for group in reader for b in group]

    resumed = make()
    resumed.load_state_dict(state)
    again = [b for group in resumed for b in group]

    assert [b.paths for b in rest] == [b.paths for b in again]
    for a, b in zip(rest, again):
        assert torch.equal(a.features, b.features)
        assert torch.equal(a.labels, b.labels)


def test_random_crops_differ_between_epochs_but_repeat_with_the_seed() -> None:
    ds = get_audio_manifest_hub().open_dataset("demo_pitch")
    options = AudioReaderOptions(batch_size=300, num_frames=48, shuffle=False)
    reader = ds.create_reader("train", create_fake_gangs(CPU), LogMelConfig(), STATS, options)
    a = next(reader)[0].features
    reader.reset()
    b = next(iter(reader))[0].features
    c = next(ds.create_reader("train", create_fake_gangs(CPU), LogMelConfig(), STATS, options))[0].features
    assert not torch.equal(a, b)
    assert torch.equal(a, c)


def test_missing_folder_error_shows_what_was_expected(tmp_path: Path) -> None:
    from fairseq2.datasets import DatasetError

    from aape_plugin.data.manifest_dataset import AudioManifestDatasetConfig

    with pytest.raises(DatasetError, match=r"does not exist.*--config dataset.root="):
        get_audio_manifest_hub().open_custom_dataset(AudioManifestDatasetConfig(root=tmp_path / "nope", metadata="m.csv"))
    with pytest.raises(DatasetError, match=r"expected EVAR's `file_name,label,split` CSV, e.g."):
        get_audio_manifest_hub().open_custom_dataset(AudioManifestDatasetConfig(root=tmp_path, metadata="m.csv"))


def test_audioset_folder_as_downloaded(tmp_path: Path) -> None:
    from aape_plugin.data.audioset_dataset import AudioSetDatasetConfig

    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n2,/m/0dgw9r,"Human sounds, other"\n'
    )
    ids = ["aaaaaaaaaaa", "b-b_bbbbbbb", "ccccccccccc", "ddddddddddd", "eeeeeeeeeee"]
    rows = [f'{ids[0]}, 0.000, 10.000, "/m/09x0r"', f'{ids[1]}, 30.000, 40.000, "/m/04rlf,/m/0dgw9r"',
            f'{ids[2]}, 0.000, 10.000, "/m/04rlf"', f'{ids[3]}, 0.000, 10.000, "/m/09x0r,/m/04rlf"',
            f'{ids[4]}, 0.000, 10.000, "/m/0dgw9r"']
    header = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=5\n# YTID, start_seconds, end_seconds, positive_labels\n"
    (tmp_path / "balanced_train_segments.csv").write_text(header + "\n".join(rows[:4]) + "\n")
    (tmp_path / "eval_segments.csv").write_text(header + rows[4] + "\n")
    audio = tmp_path / "audio" / "part01"
    audio.mkdir(parents=True)
    clip = DEMO / "keywords" / "en-us_m1_yes.flac"
    shutil.copy(clip, audio / f"{ids[0]}.flac")           # YTID.flac
    shutil.copy(clip, audio / f"Y{ids[1]}.flac")          # YYTID.flac
    shutil.copy(clip, tmp_path / "audio" / f"{ids[2]}_0.000.flac")  # YTID_start, other folder
    shutil.copy(clip, audio / f"{ids[4]}.flac")
    # ids[3] was never downloaded.

    config = AudioSetDatasetConfig(root=tmp_path, audio_dir="audio")
    ds = get_audioset_hub().open_custom_dataset(config)
    assert ds.missing["balanced_train"] == 1 and ds.missing["eval"] == 0
    assert ds.label_names == ["/m/09x0r", "/m/04rlf", "/m/0dgw9r"] and ds.multi_label
    assert {e.path.name for e in ds.entries("balanced_train")} == {f"{ids[0]}.flac", f"Y{ids[1]}.flac", f"{ids[2]}_0.000.flac"}
    assert "train" in ds.splits  # unbalanced CSV absent: train = balanced only

    options = AudioReaderOptions(batch_size=4, num_frames=96, shuffle=False, crop="centre")
    batch = next(ds.create_reader("balanced_train", create_fake_gangs(CPU), LogMelConfig(), STATS, options))[0]
    by_name = {Path(p).name: row for p, row in zip(batch.paths, batch.labels.tolist())}
    assert by_name[f"Y{ids[1]}.flac"] == [0.0, 1.0, 1.0]
    assert by_name[f"{ids[0]}.flac"] == [1.0, 0.0, 0.0]

    from aape_plugin.data.errors import AudioDataError

    with pytest.raises(AudioDataError, match=r"AudioSet split 'train': 1 of 4 segments \(25.0%\) have no audio file under .*"
                                             r"\(e.g. ddddddddddd\), more than max_missing_fraction=0.1"):
        get_audioset_hub().open_custom_dataset(AudioSetDatasetConfig(root=tmp_path, audio_dir="audio", max_missing_fraction=0.1))
