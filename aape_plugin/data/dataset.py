"""What every AaPE data set offers the recipes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from aape_plugin.data.errors import AudioDataError
from fairseq2.gang import Gangs

from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.reader import AudioReader, AudioReaderOptions, create_audio_reader
from aape_plugin.data.stats import FeatureStats


class AudioDataset(ABC):
    """Named splits of labelled or unlabelled clips, read through :func:`create_audio_reader`."""

    name: str

    @property
    @abstractmethod
    def splits(self) -> list[str]:
        """Available split names."""

    @property
    @abstractmethod
    def label_names(self) -> list[str] | None:
        """Class names (index order), or ``None`` for unlabelled data."""

    @property
    @abstractmethod
    def multi_label(self) -> bool:
        """Whether a clip can carry several labels (labels are then multi-hot)."""

    @abstractmethod
    def entries(self, split: str) -> list[ClipEntry]:
        """The clips of ``split`` (for code that iterates clips itself, e.g. embedding caches)."""

    @property
    def stats_file(self) -> Path | None:
        """Stored log-mel statistics of this data set, if its config names them."""
        return None

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise AudioDataError(f"{self.name} has no split {split!r}; its splits are {self.splits}.")

    def create_reader(
        self, split: str, gangs: Gangs, features: LogMelConfig, stats: FeatureStats, options: AudioReaderOptions
    ) -> AudioReader:
        self.check_split(split)

        return create_audio_reader(
            self.entries(split), gangs, features, stats, options,
            label_names=self.label_names, multi_label=self.multi_label, name=f"{self.name}/{split}",
        )
