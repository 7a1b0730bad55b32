"""aape_tiny (both stems) overfits one batch of real audio: the SSL loss falls clearly."""

import pytest
import torch

from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.hub import get_audio_manifest_hub
from aape_plugin.data.reader import AudioReaderOptions
from aape_plugin.data.stats import FeatureStats
from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
from aape_plugin.models.archs import ARCHS
from aape_plugin.models.factory import create_aape_model


@pytest.fixture(scope="module")
def real_batch(fairseq2_initialised: None) -> torch.Tensor:
    from fairseq2.device import CPU
    from fairseq2.gang import create_fake_gangs

    pool = get_audio_manifest_hub().open_dataset("demo_pool")
    options = AudioReaderOptions(batch_size=8, num_frames=96, crop="centre", shuffle=True, seed=0)
    reader = pool.create_reader("train", create_fake_gangs(CPU), LogMelConfig(), FeatureStats.load(pool.stats_file), options)
    return next(reader)[0].features


@pytest.mark.parametrize("arch", ["aape_tiny", "vit_tiny"])
def test_tiny_model_overfits_one_batch_of_real_audio(arch: str, real_batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = create_aape_model(ARCHS[arch]())
    model.train()
    criterion = AapeCriterion(AapeCriterionConfig())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    seeds = list(range(8))  # the same masks every step: one fixed problem to fit
    losses = []
    for _ in range(40):
        loss = criterion(model(real_batch, mask_seeds=seeds)).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_teacher(0.99)
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-5:]) < 0.5 * losses[0], (arch, losses[0], losses[-5:])
