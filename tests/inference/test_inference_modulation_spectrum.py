"""The modulation-spectrum baseline reads a band's envelope rate: a real note, amplitude-modulated
at a known rate, puts its envelope power in the bin of that rate, and the centroid follows the
rate; padding a clip changes nothing; the probe recipe runs it like the log-mel row."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from aape_plugin.corpora.modulation import amplitude_modulate
from aape_plugin.data.audio import load_waveform
from aape_plugin.data.features import LogMel, LogMelConfig
from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.modulation_spectrum import (
    ModulationSpectrumEmbedder,
    envelope_centroid,
    envelope_spectrum,
    modulation_edges,
)
from tests.data.conftest import DEMO
from tests.recipes.helpers import run_cli

NOTE = DEMO / "notes" / "gm040_p060.flac"
"""A real violin note (FluidR3 GM program 40, middle C): a steady carrier."""


def logmel_of(wave: np.ndarray) -> torch.Tensor:
    return LogMel(LogMelConfig())(torch.from_numpy(wave).float())  # (80, T)


@pytest.fixture(scope="module")
def note() -> np.ndarray:
    wave = load_waveform(NOTE).numpy()
    return wave[: 16000]  # 1 s


def loud_bands(mel: torch.Tensor, count: int = 8) -> torch.Tensor:
    return mel.mean(dim=1).topk(count).indices


def test_the_bins_tile_the_band_above_the_patch_rate_nyquist_in_half_octaves() -> None:
    edges = modulation_edges(3.125, 50.0)
    assert edges.numel() == 9 and edges[0] == pytest.approx(3.125) and edges[-1] == pytest.approx(50.0)
    assert torch.allclose(edges[1:] / edges[:-1], torch.full((8,), math.sqrt(2), dtype=torch.float64))
    with pytest.raises(ValueError, match="0 < min_hz < max_hz"):
        modulation_edges(50.0, 3.125)


@pytest.mark.parametrize("rate", [4.4, 9.0, 18.5, 38.0])
def test_an_amplitude_modulated_note_puts_its_envelope_power_at_the_rate(note: np.ndarray, rate: float) -> None:
    mel = logmel_of(amplitude_modulate(note, rate, depth=0.8, phase=0.3))
    power, rates = envelope_spectrum(mel, 100.0)
    bands = loud_bands(mel)
    above = rates >= 3.125
    peak = rates[above][power[bands][:, above].mean(dim=0).argmax()]
    assert float(peak) == pytest.approx(rate, abs=100.0 / 256 + 0.05)
    # The same bands of the steady note hold far less envelope power at that rate.
    steady_power, _ = envelope_spectrum(logmel_of(note), 100.0)
    at_rate = (rates - rate).abs().argmin()
    assert power[bands, at_rate].mean() > 30 * steady_power[bands, at_rate].mean()


def test_the_envelope_centroid_follows_the_rate(note: np.ndarray) -> None:
    centroids = []
    for rate in (4.4, 9.0, 18.5, 38.0):
        mel = logmel_of(amplitude_modulate(note, rate, depth=0.8, phase=0.3))
        loudest = int(mel.view(5, 16, -1).mean(dim=(1, 2)).argmax())
        centroids.append(float(envelope_centroid(mel, 100.0, band_size=16, min_hz=3.125)[loudest]))
    # Monotone in the rate; the 25 ms frames smooth the fastest rates, so it grows more slowly than the rate.
    assert centroids == sorted(centroids) and centroids[0] < 8.0 and centroids[-1] > 2.5 * centroids[0], centroids


def test_the_embedder_puts_the_rate_in_its_bin_and_ignores_padding(note: np.ndarray) -> None:
    embedder = ModulationSpectrumEmbedder(FeatureStats(mean=0.0, std=1.0))
    assert embedder.clip_dim == 80 * 8
    rate = 9.0
    mel = logmel_of(amplitude_modulate(note, rate, depth=0.8, phase=0.3))
    t = mel.size(1)
    # The same clip alone, and padded with 50 frames of another clip in a batch of two.
    padded = torch.cat([mel, torch.randn(80, 50)], dim=1)
    x = torch.stack([padded, torch.randn(80, t + 50)]).unsqueeze(1)
    clip, frames, valid = embedder.embed_logmel(x, torch.tensor([t, t + 50]))
    alone, _, _ = embedder.embed_logmel(mel[None, None], torch.tensor([t]))
    torch.testing.assert_close(clip[0], alone[0])
    assert frames.shape == (2, math.ceil((t + 50) / 16), 640) and valid.tolist() == [math.ceil(t / 16), math.ceil((t + 50) / 16)]
    per_bin = clip[0].view(80, 8)[loud_bands(mel)].mean(dim=0)
    edges = embedder.edges
    expected = int(((edges[:-1] <= rate) & (edges[1:] > rate)).nonzero())
    assert int(per_bin.argmax()) == expected


@pytest.mark.slow  # a probe recipe run
def test_the_probe_recipe_runs_the_modulation_spectrum_baseline(tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_linear_probe", str(tmp_path / "out"), "--no-rich", "--preset", "demo_pitch",
                   "--config", "probe.penalties=[1e-2,1e-1]", "model.kind=modspec")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["model_key"]["kind"] == "modspec" and result["runs"][0]["converged"]
    assert 0.0 < result["summary"]["mean"] <= 1.0
