"""The HEAR API on audio of any length, with consistent shapes and timestamps."""

import pytest
import torch

from aape_plugin import hear
from aape_plugin.data.audio import load_waveform
from tests.data.conftest import DEMO


@pytest.fixture(scope="module")
def model() -> hear.HearModel:
    return hear.load_model("aape_tiny_demo", device="cpu")


def real_audio(seconds: float, n: int = 2) -> torch.Tensor:
    wave = torch.cat([load_waveform(p) for p in sorted((DEMO / "keywords").glob("*.flac"))[:40]])
    length = int(16_000 * seconds)
    return torch.stack([wave[i * 4000 : i * 4000 + length] for i in range(n)])


@pytest.mark.parametrize("seconds,steps", [(0.1, 1), (1.0, 7), (30.0, 188)])
def test_shapes_and_timestamps(model: hear.HearModel, seconds: float, steps: int) -> None:
    audio = real_audio(seconds)
    scene = hear.get_scene_embeddings(audio, model)
    frames, stamps = hear.get_timestamp_embeddings(audio, model)
    assert scene.shape == (2, model.scene_embedding_size) and torch.isfinite(scene).all()
    assert frames.shape == (2, steps, model.timestamp_embedding_size)
    assert stamps.shape == (2, steps)
    assert (stamps.diff(dim=1) > 0).all() and stamps.min() >= 0 and stamps.max() <= 1000 * seconds
    # The scene embedding is the mean of the time steps.
    torch.testing.assert_close(scene, frames.mean(dim=1), atol=1e-4, rtol=1e-4)
    assert model.sample_rate == 16_000


def test_different_sounds_get_different_embeddings(model: hear.HearModel) -> None:
    scene = hear.get_scene_embeddings(real_audio(1.0), model)
    assert (scene[0] - scene[1]).abs().max() > 1e-3


def test_finer_timestamps_by_interpolation() -> None:
    fine = hear.load_model("aape_tiny_demo", device="cpu", timestamp_hop_ms=40.0)
    frames, stamps = hear.get_timestamp_embeddings(real_audio(1.0), fine)
    assert frames.shape[1] == stamps.shape[1] == 25
    assert stamps[0, 1] - stamps[0, 0] == pytest.approx(40.0)


def test_bad_audio_shape_is_explained(model: hear.HearModel) -> None:
    with pytest.raises(ValueError, match=r"\(n_sounds, n_samples\)"):
        hear.get_scene_embeddings(torch.zeros(16000), model)
