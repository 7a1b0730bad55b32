"""The ``audioset`` dataset family: official segment CSVs + a folder of downloaded clips."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aape_plugin.data.errors import AudioDataError

from aape_plugin.data.audioset import audioset_entries, index_audio_folder, read_class_labels, read_segments
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.dataset import AudioDataset
from aape_plugin.data.demo import resolve_root

AUDIOSET_FAMILY: Final = "audioset"

log = logging.getLogger("aape_plugin.data")


@dataclass(kw_only=True)
class AudioSetDatasetConfig:
    """An AudioSet folder as downloaded. Relative paths are taken from ``root``."""

    root: Path = field(default_factory=lambda: Path("/data/audioset"))
    """Folder holding the CSVs (and, by default, the audio)."""

    audio_dir: str = "."
    """Folder searched (recursively) for clips named after their YouTube ID."""

    class_labels: str = "class_labels_indices.csv"
    """The 527-class list."""

    splits: dict[str, list[str]] = field(
        default_factory=lambda: {
            "train": ["balanced_train_segments.csv", "unbalanced_train_segments.csv"],
            "balanced_train": ["balanced_train_segments.csv"],
            "eval": ["eval_segments.csv"],
        }
    )
    """Segment CSVs of each split (a split whose CSVs are all absent is left out)."""

    max_missing_fraction: float = 0.3
    """Refuse to open when more than this fraction of a split's segments has no audio file
    (downloads commonly miss 10-20%); below it, the missing ones are counted and logged."""

    stats: str | None = None
    """Optional JSON of log-mel statistics (``python -m aape_plugin.data.stats``)."""


class AudioSetDataset(AudioDataset):
    """A data set of the ``audioset`` family: always multi-label over the 527 classes."""

    def __init__(self, entries: dict[str, list[ClipEntry]], label_names: list[str], missing: dict[str, int], stats_file: Path | None) -> None:
        super().__init__("audioset", entries, label_names, multi_label=True, stats_file=stats_file)

        self.missing = missing
        """Segments per split whose audio was not found."""


def open_audioset_dataset(config: AudioSetDatasetConfig) -> AudioSetDataset:
    root = resolve_root(config.root)

    if not root.is_dir():
        raise AudioDataError(
            f"The AudioSet folder {root} does not exist. Expected {root}/class_labels_indices.csv, "
            f"{root}/balanced_train_segments.csv, ... and the clips (e.g. {root}/audio/YTID.wav); "
            f"in a recipe, set it with --config dataset.root=/path/to/audioset."
        )

    classes = read_class_labels(root / config.class_labels)
    mids = {c.mid for c in classes}

    split_segments = {}
    for split, csv_names in config.splits.items():
        paths = [root / name for name in csv_names if (root / name).is_file()]
        if paths:
            split_segments[split] = [seg for path in paths for seg in read_segments(path, mids)]

    if not split_segments:
        wanted = sorted({n for names in config.splits.values() for n in names})
        raise AudioDataError(f"No AudioSet segment CSV found in {root}; expected some of {wanted}.")

    audio_dir = root / config.audio_dir
    files = index_audio_folder(audio_dir, {seg.ytid for segs in split_segments.values() for seg in segs})

    entries: dict[str, list[ClipEntry]] = {}
    missing: dict[str, int] = {}
    for split, segs in split_segments.items():
        found, absent = audioset_entries(segs, files)
        fraction = len(absent) / len(segs)
        if fraction > config.max_missing_fraction:
            raise AudioDataError(
                f"AudioSet split {split!r}: {len(absent)} of {len(segs)} segments ({100 * fraction:.1f}%) have no "
                f"audio file under {audio_dir} (e.g. {absent[0].ytid}), more than max_missing_fraction="
                f"{config.max_missing_fraction}. Check `audio_dir` and the file naming (YTID.wav, YYTID.wav, YTID_start.flac)."
            )
        if absent:
            log.warning("AudioSet split %r: %d of %d segments have no audio file and are left out (e.g. %s).",
                        split, len(absent), len(segs), ", ".join(s.ytid for s in absent[:3]))
        entries[split] = found
        missing[split] = len(absent)

    stats_file = (root / config.stats) if config.stats is not None else None

    return AudioSetDataset(entries, [c.mid for c in classes], missing, stats_file)
