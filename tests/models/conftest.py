"""A batch of real audio from the demo pool, as the pre-training reader gives it."""

import pytest
import torch


@pytest.fixture(scope="session")
def real_logmel_batch(fairseq2_initialised: None) -> torch.Tensor:
    """Eight normalised 80 x 96 log-mel crops of demo-pool clips ``(8, 1, 80, 96)``."""
    from fairseq2.device import CPU
    from fairseq2.gang import create_fake_gangs

    from aape_plugin.data.features import LogMelConfig
    from aape_plugin.data.hub import get_audio_manifest_hub
    from aape_plugin.data.reader import AudioReaderOptions
    from aape_plugin.data.stats import FeatureStats

    pool = get_audio_manifest_hub().open_dataset("demo_pool")
    options = AudioReaderOptions(batch_size=8, num_frames=96, crop="centre", shuffle=True, seed=0)
    reader = pool.create_reader("train", create_fake_gangs(CPU), LogMelConfig(), FeatureStats.load(pool.stats_file), options)
    return next(reader)[0].features
