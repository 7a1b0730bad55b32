"""What every AaPE data set offers the recipes: named splits of (labelled) clips."""

from __future__ import annotations

from pathlib import Path

from fairseq2.gang import Gangs

from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.reader import AudioReader, AudioReaderOptions, create_audio_reader
from aape_plugin.data.stats import FeatureStats


class AudioDataset:
    """Clip lists by split, read through :func:`create_audio_reader`. The dataset families
    (``audio_manifest``, ``audioset``) build these from the layouts they understand."""

    def __init__(
        self,
        name: str,
        entries: dict[str, list[ClipEntry]],
        label_names: list[str] | None,
        *,
        multi_label: bool | None = None,
        stats_file: Path | None = None,
    ) -> None:
        """
        :param label_names: class names in index order; ``None`` for unlabelled data.
        :param multi_label: default: whether any clip carries several labels.
        :param stats_file: stored log-mel statistics of this data set, if its config names them.
        """
        self.name = name
        self._entries = entries
        self.label_names = label_names
        self.multi_label = multi_label if multi_label is not None else any(len(e.labels) > 1 for es in entries.values() for e in es)
        self.stats_file = stats_file

    @property
    def splits(self) -> list[str]:
        return list(self._entries)

    def check_split(self, split: str) -> None:
        if split not in self._entries:
            raise AudioDataError(f"{self.name} has no split {split!r}; its splits are {self.splits}.")

    def entries(self, split: str) -> list[ClipEntry]:
        """The clips of ``split`` (for code that iterates clips itself, e.g. embedding caches)."""
        self.check_split(split)
        return self._entries[split]

    def create_reader(
        self, split: str, gangs: Gangs, features: LogMelConfig, stats: FeatureStats, options: AudioReaderOptions
    ) -> AudioReader:
        return create_audio_reader(
            self.entries(split), gangs, features, stats, options,
            label_names=self.label_names, multi_label=self.multi_label, name=f"{self.name}/{split}",
        )
