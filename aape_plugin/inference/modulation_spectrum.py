"""Modulation-spectrum statistics: the textbook feature for what AaPE's branch is for.

Each log-mel band, read along time at the frame rate (100 Hz), is that band's envelope. Its
spectrum above the patch rate's Nyquist (``frames_per_second / (2 * patch_size)`` = 3.125 Hz
for 16-frame patches) is what a patch embedding with stride 16 folds onto lower rates, and
what the SBLU branch is built to see. :class:`ModulationSpectrumEmbedder` is the baseline
without a model: per mel band, the log power of its envelope in half-octave bins from that
Nyquist to the frame Nyquist (50 Hz), probed like the log-mel statistics. Its numbers say how
far a fixed, textbook feature gets on a task, and so what a learned stem must beat.

:func:`envelope_centroid` gives, per subband, the power-weighted mean rate of the same spectrum:
the reference that the Lambda Encoder's estimated frequencies can be compared with on real
audio (``aape_plugin.eval.adaptivity``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.embedder import Embedder


def modulation_edges(min_hz: float, max_hz: float, bins_per_octave: int = 2) -> Tensor:
    """Log-spaced bin edges from ``min_hz`` to ``max_hz`` (float64): half octaves by default,
    so 3.125-50 Hz is 8 bins, each wider than the spectral resolution of a 1 s clip."""
    if not 0 < min_hz < max_hz:
        raise ValueError(f"The modulation band must satisfy 0 < min_hz < max_hz, but is [{min_hz}, {max_hz}].")
    count = max(1, round(bins_per_octave * math.log2(max_hz / min_hz)))
    return torch.logspace(math.log10(min_hz), math.log10(max_hz), count + 1, dtype=torch.float64)


def envelope_spectrum(mel: Tensor, frames_per_second: float, *, min_fft: int = 256) -> tuple[Tensor, Tensor]:
    """Power spectrum of each band's envelope.

    :param mel: ``(..., F, T)`` log-mel (valid frames only).
    :returns: ``(power (..., F, K), rates (K,))``: the Hann-windowed periodogram of each band
        with its mean removed, zero-padded to at least ``min_fft`` points, normalised by the
        window's energy so that clips of any length are comparable.
    """
    if mel.dim() < 2:
        raise ValueError(f"`mel` must be (..., bands, frames), but has shape {tuple(mel.shape)}.")
    frames = mel.size(-1)
    if frames < 2:
        raise ValueError(f"An envelope spectrum needs at least 2 frames, but the clip has {frames}.")
    x = mel.double() - mel.double().mean(dim=-1, keepdim=True)
    window = torch.hann_window(frames, periodic=False, dtype=torch.float64)
    n_fft = max(min_fft, 1 << (frames - 1).bit_length())
    spectrum = torch.fft.rfft(x * window, n=n_fft)
    power = spectrum.abs().square() / window.square().sum()
    rates = torch.fft.rfftfreq(n_fft, d=1.0 / frames_per_second, dtype=torch.float64)
    return power, rates


def binned_power(power: Tensor, rates: Tensor, edges: Tensor) -> Tensor:
    """``(..., K)`` periodogram -> ``(..., len(edges) - 1)`` mean power per bin (a bin that
    holds no frequency of the grid takes the nearest one)."""
    out = []
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        inside = (rates >= lo) & (rates < hi)
        if not bool(inside.any()):
            distance = (rates - (lo * hi) ** 0.5).abs()
            inside = distance == distance.min()
        out.append(power[..., inside].mean(dim=-1))
    return torch.stack(out, dim=-1)


def envelope_centroid(mel: Tensor, frames_per_second: float, band_size: int, min_hz: float, max_hz: float | None = None) -> Tensor:
    """Per subband of ``band_size`` mel bands, the power-weighted mean envelope rate in Hz
    between ``min_hz`` and ``max_hz`` (default: the frame Nyquist).

    :param mel: ``(F, T)`` log-mel of one clip, ``F`` a multiple of ``band_size``.
    :returns: ``(F / band_size,)`` rates in Hz (float64).
    """
    if mel.size(0) % band_size:
        raise ValueError(f"{mel.size(0)} mel bands do not split into subbands of {band_size}.")
    power, rates = envelope_spectrum(mel, frames_per_second)
    max_hz = frames_per_second / 2 if max_hz is None else max_hz
    inside = (rates >= min_hz) & (rates <= max_hz)
    sub = power[:, inside].view(mel.size(0) // band_size, band_size, -1).mean(dim=1)  # (S, K)
    r = rates[inside]
    return (sub * r).sum(dim=1) / sub.sum(dim=1).clamp_min(1e-30)


class ModulationSpectrumEmbedder(Embedder):
    """The no-model baseline of the modulation tasks: per mel band, the log power of its
    envelope in half-octave bins above the patch rate's Nyquist (80 x 8 = 640 values a clip).

    Frame embeddings are the same statistics over a window of ``window`` frames centred on
    each hop of ``frame_hop`` frames (the encoder's patch grid)."""

    def __init__(self, stats: FeatureStats, features: LogMelConfig | None = None, *, patch_size: int = 16,
                 frame_hop: int = 16, window: int = 64, bins_per_octave: int = 2) -> None:
        self.features = features or LogMelConfig()
        self.stats = stats
        self.frame_hop = frame_hop
        self.window = window
        fps = self.features.frames_per_second
        self.min_hz = fps / (2 * patch_size)
        self.edges = modulation_edges(self.min_hz, fps / 2, bins_per_octave)

    @property
    def num_bins(self) -> int:
        return self.edges.numel() - 1

    @property
    def frame_dim(self) -> int:
        return self.features.n_mels * self.num_bins

    @property
    def clip_dim(self) -> int:
        return self.frame_dim

    @property
    def frame_hop_seconds(self) -> float:
        return self.frame_hop / self.features.frames_per_second

    def statistics(self, mel: Tensor) -> Tensor:
        """``(..., F, T)`` log-mel -> ``(..., F * K)`` log envelope power per band and bin (float32)."""
        if mel.size(-1) < 2:
            mel = torch.cat([mel, mel[..., -1:].expand(*mel.shape[:-1], 2 - mel.size(-1))], dim=-1)
        power, rates = envelope_spectrum(mel, self.features.frames_per_second)
        return binned_power(power, rates, self.edges).clamp_min(1e-10).log().flatten(-2).float()

    @torch.no_grad()
    def embed_logmel(self, x: Tensor, num_frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mel = x.squeeze(1).float()  # (B, F, T)
        clips, frames, valid = [], [], []
        n = max(1, math.ceil(mel.size(-1) / self.frame_hop))
        for b in range(mel.size(0)):
            t = int(num_frames[b].clamp(min=1, max=mel.size(-1)))
            clip = mel[b, :, :t]
            clips.append(self.statistics(clip))
            count = max(1, math.ceil(t / self.frame_hop))
            # One window of ``window`` frames (or the whole clip, if shorter) per hop, centred
            # on it where the clip allows; hops past the clip's end repeat its last window.
            size = min(self.window, t)
            starts = [max(0, min(min(j, count - 1) * self.frame_hop + self.frame_hop // 2 - size // 2, t - size)) for j in range(n)]
            windows = torch.stack([clip[:, s: s + size] for s in starts])  # (n, F, size)
            frames.append(self.statistics(windows))
            valid.append(count)
        return torch.stack(clips), torch.stack(frames), torch.tensor(valid, dtype=torch.int64)
