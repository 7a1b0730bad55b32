"""Typed access to the dataset families, for Python users and tests.

>>> from aape_plugin.data.hub import get_audio_manifest_hub
>>> pitch = get_audio_manifest_hub().open_dataset("demo_pitch")   # by asset card name
"""

from __future__ import annotations

from fairseq2.datasets.hub import DatasetHubAccessor

from aape_plugin.data.audioset_dataset import AUDIOSET_FAMILY, AudioSetDataset, AudioSetDatasetConfig
from aape_plugin.data.manifest_dataset import AUDIO_MANIFEST_FAMILY, AudioManifestDataset, AudioManifestDatasetConfig

get_audio_manifest_hub = DatasetHubAccessor(AUDIO_MANIFEST_FAMILY, AudioManifestDataset, AudioManifestDatasetConfig)

get_audioset_hub = DatasetHubAccessor(AUDIOSET_FAMILY, AudioSetDataset, AudioSetDatasetConfig)
