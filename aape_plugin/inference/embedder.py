"""Clip and frame embeddings of audio of any length.

An :class:`EncoderEmbedder` takes normalised log-mel (the readers' output) or 16 kHz audio,
cuts the time axis into windows of the encoder's input length (the last one padded to a whole
patch with zeros, the normalised mean), and encodes each window. Each clip is encoded at its
own length, so that its embeddings do not depend on the other clips of a batch (a longer
neighbour would otherwise add padding the encoder attends to). Per time patch, the frequency
tokens are concatenated (``S x D``: 5 x 768 = 3840 for ViT-B, as M2D is probed in EVAR); the
clip embedding is their mean over the clip's valid time patches, optionally followed by the
mean CLS token. Frame embeddings finer than a patch, with their timestamps, are
:mod:`aape_plugin.inference.timestamps`. :class:`LogMelEmbedder` is the input-feature baseline: per-bin mean and
standard deviation of the normalised log-mel over time.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.data.features import LogMel, LogMelConfig
from aape_plugin.data.stats import FeatureStats
from aape_plugin.nn.audio_encoder import AudioEncoder


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
        total = x.size(-1)
        x = F.pad(x.to(torch.float32), (0, max(p, math.ceil(total / p) * p) - total))
        num_frames = num_frames.cpu().clamp(min=1, max=max(total, 1))
        # Only a clip's own frames count: whatever lies beyond them becomes padding (zeros, the
        # normalised mean), and each clip is padded to a whole patch, no further.
        x = x.masked_fill((torch.arange(x.size(-1)) >= num_frames[:, None]).to(x.device)[:, None, None, :], 0.0)
        lengths = (num_frames + p - 1) // p * p
        steps = int(lengths.max()) // p
        frames = torch.zeros(x.size(0), steps, self.frame_dim)
        clip = torch.zeros(x.size(0), self.clip_dim)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten()
            group_frames, group_cls = self._encode(x[rows, ..., :length])
            frames[rows, : group_frames.size(1)] = group_frames
            clip[rows, : self.frame_dim] = group_frames.mean(1)
            if self.with_cls:
                clip[rows, self.frame_dim :] = group_cls
        return clip, frames, lengths // p

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Clips of one length (a whole number of patches): frame embeddings ``(B, T', S*D)``
        and the CLS token averaged over the windows."""
        x = x.to(self.device)
        frame_chunks, cls_chunks = [], []
        for start in range(0, x.size(-1), self.num_frames):
            out = self.encoder(x[..., start : start + self.num_frames])
            s, t = out.grid
            frame_chunks.append(out.patches.view(x.size(0), s, t, -1).permute(0, 2, 1, 3).reshape(x.size(0), t, -1))
            if out.cls is not None:
                cls_chunks.append(out.cls)
        frames = torch.cat(frame_chunks, dim=1).float().cpu()  # (B, T', S*D)
        cls = torch.stack(cls_chunks, dim=1).float().mean(1).cpu() if self.with_cls else None
        return frames, cls


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
