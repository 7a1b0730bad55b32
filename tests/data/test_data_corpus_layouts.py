"""Corpora read as downloaded: UrbanSound8K's folds and Speech Commands' list files."""

import csv
import shutil
from pathlib import Path

import pytest

from aape_plugin.data.clips import ManifestError
from aape_plugin.data.corpus_layouts import read_esc50, read_speech_commands, read_us8k
from tests.data.conftest import DEMO

CLIP = DEMO / "keywords" / "en-us_m1_yes.flac"


def test_us8k_layout(tmp_path: Path) -> None:
    (tmp_path / "metadata").mkdir()
    with open(tmp_path / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
        for i, (fold, label) in enumerate([(1, "dog_bark"), (2, "siren"), (10, "siren")]):
            name = f"{i}-0-0-0.wav"
            (tmp_path / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
            shutil.copy(CLIP, tmp_path / "audio" / f"fold{fold}" / name)
            w.writerow([name, i, 0, 1, 1, fold, 0, label])
    splits = read_us8k(tmp_path)
    assert list(splits) == ["fold1", "fold2", "fold10"]
    assert splits["fold10"][0].path == tmp_path / "audio" / "fold10" / "2-0-0-0.wav"
    assert splits["fold2"][0].labels == ("siren",)


def test_speech_commands_layout(tmp_path: Path) -> None:
    for word in ("yes", "no", "_background_noise_"):
        (tmp_path / word).mkdir()
        for k in range(3):
            shutil.copy(CLIP, tmp_path / word / f"abc{k}_nohash_0.wav")
    (tmp_path / "validation_list.txt").write_text("yes/abc1_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/abc2_nohash_0.wav\nyes/abc2_nohash_0.wav\n")
    splits = read_speech_commands(tmp_path)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3, 1, 2]
    assert {e.labels[0] for e in splits["train"]} == {"yes", "no"}  # background noise is not a class


def test_layout_files_missing_are_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="meta/esc50.csv"):
        read_esc50(tmp_path)
    with pytest.raises(ManifestError, match="validation_list.txt"):
        read_speech_commands(tmp_path)


def test_docs_list_exactly_the_columns_each_layout_needs(tmp_path: Path) -> None:
    from aape_plugin.data.corpus_layouts import CORPUS_LAYOUTS, LAYOUT_FILES, layout_table
    from tests.recipes.helpers import REPO

    # The page shows the table the readers check against, byte for byte, for every layout.
    assert layout_table() in (REPO / "docs" / "data.md").read_text()
    assert set(LAYOUT_FILES) == set(CORPUS_LAYOUTS)
    # For each CSV layout, a file with the listed columns alone reads, and one without any of
    # them is refused naming it: the table lists what the reader needs, no more, no less.
    for layout, files in LAYOUT_FILES.items():
        if not files.columns:
            continue
        values = {"filename": "0.flac", "slice_file_name": "0.flac", "fold": "1", "category": "dog", "class": "dog"}
        for dropped in (None, *files.columns):
            root = tmp_path / f"{layout}-{dropped}"
            (root / Path(files.metadata).parent).mkdir(parents=True)
            columns = [c for c in files.columns if c != dropped]
            with open(root / files.metadata, "w", newline="") as f:
                csv.writer(f).writerows([columns, [values[c] for c in columns]])
            if dropped is None:
                (entry,) = CORPUS_LAYOUTS[layout](root)["fold1"]
                assert entry.labels == ("dog",) and entry.path.name == "0.flac"
            else:
                with pytest.raises(ManifestError, match=rf"the header lacks the column\(s\) \['{dropped}'\]"):
                    CORPUS_LAYOUTS[layout](root)
