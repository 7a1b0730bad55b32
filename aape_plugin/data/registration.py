"""Registers the dataset families with fairseq2."""

from __future__ import annotations

from fairseq2.composition import register_dataset_family
from fairseq2.runtime.dependency import DependencyContainer

from aape_plugin.data.audioset_dataset import AUDIOSET_FAMILY, AudioSetDataset, AudioSetDatasetConfig, open_audioset_dataset
from aape_plugin.data.manifest_dataset import (
    AUDIO_MANIFEST_FAMILY,
    AudioManifestDataset,
    AudioManifestDatasetConfig,
    open_audio_manifest_dataset,
)


def register_aape_datasets(container: DependencyContainer) -> None:
    register_dataset_family(container, AUDIOSET_FAMILY, AudioSetDataset, AudioSetDatasetConfig, opener=open_audioset_dataset)

    register_dataset_family(
        container, AUDIO_MANIFEST_FAMILY, AudioManifestDataset, AudioManifestDatasetConfig, opener=open_audio_manifest_dataset
    )
