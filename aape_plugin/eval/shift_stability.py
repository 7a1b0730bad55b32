"""Aliasing stability: how much an encoder's output changes when its input moves by less than a
patch.

A stride-``p`` patch embedding samples the spectrogram's time axis every ``p`` frames; content
above the post-patch Nyquist then aliases, and moving the input by ``k < p`` frames changes the
tokens more than the small shift warrants. For each clip we take a window of ``W`` frames at
offset 0 and at offsets ``k = 1 .. p-1`` and measure the cosine similarity, to the unshifted
window, of the clip embedding and of the frame tokens (token ``j`` of the shifted input against
token ``j`` of the unshifted one; both cover almost the same audio). Higher is more stable.
Embeddings are centred first (the mean over all clips of the unshifted ones is subtracted from
both), so that a large component common to every clip does not hide the changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.inference.embedder import EncoderEmbedder


@dataclass
class ShiftStability:
    shifts: list[int]
    clip_cosine: list[float]
    """Mean over clips of cos(clip embedding shifted, unshifted), per shift."""
    frame_cosine: list[float]
    """Mean over clips and time patches of cos(token shifted, token unshifted), per shift."""


@torch.no_grad()
def shift_stability(embedder: EncoderEmbedder, logmels: list[Tensor], *, window: int) -> ShiftStability:
    """:param logmels: normalised log-mel ``(F, T)`` per clip, ``T >= window + p - 1``.
    :param window: frames per input, a multiple of the patch size."""
    p = embedder.encoder.patch_size
    if window % p != 0:
        raise ValueError(f"`window` ({window}) must be a multiple of the patch size {p}.")
    usable = [m for m in logmels if m.size(-1) >= window + p - 1]
    if not usable:
        raise ValueError(f"No clip has the {window + p - 1} frames the shifts need.")

    def encode(offset: int) -> tuple[Tensor, Tensor]:
        x = torch.stack([m[:, offset : offset + window] for m in usable]).unsqueeze(1)
        clip, frames, _ = embedder.embed_logmel(x, torch.full((len(usable),), window))
        return clip, frames

    base_clip, base_frames = encode(0)
    clip_mean = base_clip.mean(dim=0, keepdim=True)
    frame_mean = base_frames.mean(dim=(0, 1), keepdim=True)
    shifts = list(range(1, p))
    clip_cos, frame_cos = [], []
    for k in shifts:
        clip, frames = encode(k)
        clip_cos.append(float(F.cosine_similarity(clip - clip_mean, base_clip - clip_mean, dim=-1).mean()))
        frame_cos.append(float(F.cosine_similarity(frames - frame_mean, base_frames - frame_mean, dim=-1).mean()))
    return ShiftStability(shifts, clip_cos, frame_cos)
