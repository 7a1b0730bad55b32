"""Clip and frame embeddings of audio of any length.

An :class:`EncoderEmbedder` takes normalised log-mel (the readers' output) or 16 kHz audio,
cuts the time axis into windows of the encoder's input length (the last one padded to a whole
patch with zeros, the normalised mean), and encodes each window. Per time patch, the frequency
tokens are concatenated (``S x D``: 5 x 768 = 3840 for ViT-B, as M2D is probed in EVAR); the
clip embedding is their mean over the clip's valid time patches, optionally followed by the
mean CLS token. :class:`LogMelEmbedder` is the input-feature baseline: per-bin mean and
standard deviation of the normalised log-mel over time.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.data.features import LogMel, LogMelConfig
from aape_plugin.data.stats import FeatureStats
from aape_plugin.nn.audio_encoder import AudioEncoder


@dataclass
class FrameEmbeddings:
    embeddings: Tensor
    """``(T', E)``: one embedding per time step."""

    timestamps: Tensor
    """``(T',)``: centre of each time step, seconds from the start of the clip."""


class Embedder(ABC):
    """Audio or normalised log-mel -> embeddings, for probes, extraction and the HEAR API."""

    features: LogMelConfig
    stats: FeatureStats

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    @abstractmethod
    def clip_dim(self) -> int: ...

    @property
    @abstractmethod
    def frame_dim(self) -> int: ...

    @property
    @abstractmethod
    def frame_hop_seconds(self) -> float:
        """Time between successive frame embeddings."""

    @abstractmethod
    def embed_logmel(self, x: Tensor, num_frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """
        :param x: normalised log-mel ``(B, 1, F, T)``.
        :param num_frames: ``(B,)`` valid frames of each clip.
        :returns: clip embeddings ``(B, clip_dim)``, frame embeddings ``(B, T', frame_dim)``,
            and the number of valid frame embeddings per clip ``(B,)``.
        """

    def normalised_logmel(self, wave: Tensor) -> Tensor:
        """``(..., samples)`` at ``sample_rate`` -> ``(..., F, T)`` normalised log-mel."""
        mel = self._logmel(wave.float())
        return (mel - self.stats.mean) / self.stats.std

    @property
    def _logmel(self) -> LogMel:
        cached = getattr(self, "_logmel_module", None)
        if cached is None:
            cached = LogMel(self.features)
            self._logmel_module = cached
        return cached

    @torch.no_grad()
    def embed_waves(self, waves: Tensor) -> tuple[Tensor, Tensor]:
        """Clips of equal length ``(B, samples)`` -> clip ``(B, clip_dim)`` and frame
        embeddings ``(B, T', frame_dim)``."""
        mel = self.normalised_logmel(waves).unsqueeze(1)
        frames = torch.full((mel.size(0),), mel.size(-1), dtype=torch.int64)
        clip, frame, _ = self.embed_logmel(mel, frames)
        return clip, frame

    def timestamps(self, count: int) -> Tensor:
        return (torch.arange(count, dtype=torch.float64) + 0.5) * self.frame_hop_seconds


class EncoderEmbedder(Embedder):
    def __init__(
        self,
        encoder: AudioEncoder,
        stats: FeatureStats,
        *,
        num_frames: int,
        features: LogMelConfig | None = None,
        with_cls: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        self.encoder = encoder.eval().to(device)
        self.stats = stats
        self.features = features or LogMelConfig(n_mels=encoder.num_mel_bins)
        self.num_frames = num_frames
        self.with_cls = with_cls and encoder.cls_token is not None
        self.device = torch.device(device)
        self.num_subbands = encoder.num_mel_bins // encoder.patch_size

    @property
    def frame_dim(self) -> int:
        return self.num_subbands * self.encoder.dim

    @property
    def clip_dim(self) -> int:
        return self.frame_dim + (self.encoder.dim if self.with_cls else 0)

    @property
    def frame_hop_seconds(self) -> float:
        return self.encoder.patch_size / self.features.frames_per_second

    @torch.no_grad()
    def embed_logmel(self, x: Tensor, num_frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.encoder.patch_size
        x = x.to(self.device, torch.float32)
        total = x.size(-1)
        frame_chunks, cls_chunks = [], []
        for start in range(0, max(total, 1), self.num_frames):
            chunk = x[..., start : start + self.num_frames]
            n = chunk.size(-1)
            chunk = F.pad(chunk, (0, max(p, math.ceil(n / p) * p) - n))
            out = self.encoder(chunk)
            s, t = out.grid
            frame_chunks.append(out.patches.view(x.size(0), s, t, -1).permute(0, 2, 1, 3).reshape(x.size(0), t, -1))
            if out.cls is not None:
                cls_chunks.append(out.cls)
        frames = torch.cat(frame_chunks, dim=1).float()  # (B, T', S*D)

        valid = torch.clamp((num_frames.to(self.device) + p - 1) // p, min=1, max=frames.size(1))
        mask = (torch.arange(frames.size(1), device=self.device)[None, :] < valid[:, None]).float()
        clip = (frames * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

        if self.with_cls:
            # Windows whose first frame is beyond the clip's end hold only padding.
            starts = torch.arange(len(cls_chunks), device=self.device) * self.num_frames
            win_mask = (starts[None, :] < num_frames.to(self.device)[:, None].clamp(min=1)).float()
            cls = torch.stack(cls_chunks, dim=1).float()
            clip = torch.cat([clip, (cls * win_mask[..., None]).sum(1) / win_mask.sum(1, keepdim=True)], dim=-1)

        return clip.cpu(), frames.cpu(), valid.cpu()


class LogMelEmbedder(Embedder):
    """The baseline without a model: per-bin mean and std of the normalised log-mel."""

    def __init__(self, stats: FeatureStats, features: LogMelConfig | None = None, *, frame_hop: int = 16) -> None:
        self.features = features or LogMelConfig()
        self.stats = stats
        self.frame_hop = frame_hop

    @property
    def frame_dim(self) -> int:
        return self.features.n_mels

    @property
    def clip_dim(self) -> int:
        return 2 * self.features.n_mels

    @property
    def frame_hop_seconds(self) -> float:
        return self.frame_hop / self.features.frames_per_second

    @torch.no_grad()
    def embed_logmel(self, x: Tensor, num_frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mel = x.squeeze(1).float()  # (B, F, T)
        t = mel.size(-1)
        mask = (torch.arange(t)[None, :] < num_frames[:, None].clamp(min=1)).float()[:, None, :]
        count = mask.sum(-1)
        mean = (mel * mask).sum(-1) / count
        std = (((mel - mean[..., None]) ** 2) * mask).sum(-1).div(count).sqrt()
        n = max(1, math.ceil(t / self.frame_hop))
        padded = F.pad(mel, (0, n * self.frame_hop - t))
        frames = padded.view(mel.size(0), mel.size(1), n, self.frame_hop).mean(-1).transpose(1, 2)
        valid = torch.clamp((num_frames + self.frame_hop - 1) // self.frame_hop, min=1, max=n)
        return torch.cat([mean, std], dim=-1), frames, valid
