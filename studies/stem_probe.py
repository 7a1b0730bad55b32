"""Probing the stem alone: where does an AaPE encoder keep (or lose) what a task needs?

A :class:`StemEmbedder` embeds clips like the probe's :class:`EncoderEmbedder` does (per time
patch the subband tokens concatenated, averaged over the clip) but stops at the patch embedding,
and can stop before Patch Fusion: ``standard`` (the conv tokens), ``alias`` (the Adaptive SBLU's
features), ``fused`` (the stem's output, what the ViT receives minus positions). Probing each on
a frequency-structured task says whether information is missing from a branch, lost in fusion,
or lost later in the ViT.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.embedder import Embedder
from aape_plugin.nn.audio_encoder import AudioEncoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed

StemPart = Literal["standard", "alias", "fused"] | str
"""A stem part, or ``layer<k>``: the output of block ``k`` (1-based) of the ViT, before the final
norm (the residual stream the teacher's targets average)."""


class StemEmbedder(Embedder):
    """Clip embeddings from one part of an encoder's stem."""

    def __init__(self, encoder: AudioEncoder, stats: FeatureStats, *, part: StemPart, num_frames: int) -> None:
        if part in ("alias", "fused") and not isinstance(encoder.stem, AaPEPatchEmbed):
            raise ValueError(f"The {part!r} part exists only in an AaPE stem.")
        self.layer = int(part.removeprefix("layer")) if part.startswith("layer") else None
        self.encoder = encoder.eval()
        self.stats = stats
        self.part = part
        self.num_frames = num_frames
        from aape_plugin.data.features import LogMelConfig

        self.features = LogMelConfig(n_mels=encoder.num_mel_bins)
        stem = encoder.stem
        width = {"standard": stem.embed_dim, "fused": stem.embed_dim}.get(part) or (
            stem.embed_dim if self.layer is not None else stem.sblu.out_dim)  # type: ignore[union-attr]
        self._dim = (encoder.num_mel_bins // encoder.patch_size) * width

    @property
    def clip_dim(self) -> int:
        return self._dim

    @property
    def frame_dim(self) -> int:
        return self._dim

    @property
    def frame_hop_seconds(self) -> float:
        return self.encoder.patch_size / self.features.frames_per_second

    def _tokens(self, x: Tensor) -> Tensor:
        """``(B, S, P, W)`` for one window."""
        stem = self.encoder.stem
        if self.layer is not None:
            out = self.encoder(x, return_layers=True)
            tokens = out.layers[self.layer - 1]
            tokens = tokens[:, -out.grid[0] * out.grid[1]:]  # drop the CLS token
            return tokens.reshape(x.size(0), *out.grid, -1)
        if self.part == "standard":
            return stem.proj(x).permute(0, 2, 3, 1)
        if self.part == "alias":
            decay, frequency = stem.lambda_encoder(x)  # type: ignore[union-attr]
            return stem.sblu(x, decay, frequency)  # type: ignore[union-attr]
        return stem(x).tokens

    @torch.no_grad()
    def embed_logmel(self, x: Tensor, num_frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.encoder.patch_size
        x = x.float()
        chunks = []
        for start in range(0, max(x.size(-1), 1), self.num_frames):
            chunk = x[..., start : start + self.num_frames]
            n = chunk.size(-1)
            chunk = F.pad(chunk, (0, max(p, math.ceil(n / p) * p) - n))
            tokens = self._tokens(chunk)  # (B, S, P, W)
            chunks.append(tokens.permute(0, 2, 1, 3).flatten(2))  # (B, P, S*W)
        frames = torch.cat(chunks, dim=1)
        valid = torch.clamp((num_frames + p - 1) // p, min=1, max=frames.size(1))
        mask = (torch.arange(frames.size(1))[None, :] < valid[:, None]).float()
        clip = (frames * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return clip, frames, valid
