"""The log-mel front end against an independent NumPy computation, on real audio."""

from pathlib import Path

import numpy as np
import torch

from aape_plugin.data.audio import load_waveform
from aape_plugin.data.features import LogMel, LogMelConfig

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def reference_logmel(wave: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    """Centred, reflect-padded STFT with a periodic Hann window; triangular HTK-mel filters
    (no area normalisation); power; natural log with the same offset."""
    pad = cfg.n_fft // 2
    x = np.pad(wave.astype(np.float64), (pad, pad), mode="reflect")
    n_frames = 1 + (len(x) - cfg.n_fft) // cfg.hop_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    frames = np.stack([x[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, bins)

    freqs = np.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(cfg.f_min)), hz_to_mel(np.array(cfg.f_max)), cfg.n_mels + 2))
    fb = np.zeros((len(freqs), cfg.n_mels))
    for m in range(cfg.n_mels):
        lo, centre, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / (centre - lo)
        down = (hi - freqs) / (hi - centre)
        fb[:, m] = np.maximum(0.0, np.minimum(up, down))
    return np.log(power @ fb + cfg.log_offset).T  # (n_mels, frames)


def test_logmel_matches_the_reference_on_real_audio() -> None:
    cfg = LogMelConfig()
    for name in ("notes/gm000_p060.flac", "keywords/en-us_m1_yes.flac", "drums/BJA_Pacific_Snare.flac"):
        wave = load_waveform(DEMO / name)
        ours = LogMel(cfg)(wave).double().numpy()
        ref = reference_logmel(wave.numpy(), cfg)
        assert ours.shape == ref.shape == (80, 101)
        loud = ref > ref.max() - 60  # compare where there is signal (log of ~0 is ill-conditioned)
        assert np.abs(ours - ref)[loud].max() < 1e-3, name


def test_frame_arithmetic() -> None:
    cfg = LogMelConfig()
    assert cfg.frames_per_second == 100
    assert cfg.num_frames(16_000) == 101
    assert cfg.num_frames(cfg.num_samples(608)) == 608


def test_a_pure_tone_lands_in_the_right_mel_bin() -> None:
    cfg = LogMelConfig()
    t = torch.arange(16_000) / 16_000
    mel = LogMel(cfg)(torch.sin(2 * torch.pi * 1000 * t))
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(50.0)), hz_to_mel(np.array(8000.0)), 82))
    expected = int(np.argmin(np.abs(edges[1:-1] - 1000)))
    assert abs(int(mel[:, 50].argmax()) - expected) <= 1
