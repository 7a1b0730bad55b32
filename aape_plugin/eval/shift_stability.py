"""Aliasing stability: how much an encoder's output changes when its input moves by less than a
patch.

A stride-``p`` patch embedding samples the spectrogram's time axis every ``p`` frames; content
above the post-patch Nyquist then aliases, and moving the input by ``k < p`` frames changes the
tokens more than the small shift warrants. For each clip we take a window of ``W`` frames at
offset 0 and at offsets ``k = 1 .. p-1`` and measure the cosine similarity, to the unshifted
window, of the clip embedding and of the frame tokens (token ``j`` of the shifted input against
token ``j`` of the unshifted one; both cover almost the same audio). Higher is more stable.
Embeddings are centred first (the mean over all clips of the unshifted ones is subtracted from
both), so that a large component common to every clip does not hide the changes. Clips shorter
than ``W + p - 1`` frames are padded with zeros (the normalised mean) at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.inference.embedder import EncoderEmbedder


@dataclass
class ShiftStability:
    shifts: list[int]
    clip_cosine: np.ndarray
    """``(clips, shifts)``: cos(clip embedding shifted, unshifted) per clip and shift."""
    frame_cosine: np.ndarray
    """``(clips, shifts)``: the mean over time patches of cos(token shifted, token unshifted)."""

    @property
    def clip_cosine_per_clip(self) -> np.ndarray:
        """``(clips,)``: the mean over shifts (what intervals over clips resample)."""
        return self.clip_cosine.mean(axis=1)

    @property
    def frame_cosine_per_clip(self) -> np.ndarray:
        return self.frame_cosine.mean(axis=1)


@torch.no_grad()
def shift_stability(embedder: EncoderEmbedder, logmels: list[Tensor], *, window: int, batch_size: int = 64) -> ShiftStability:
    """:param logmels: normalised log-mel ``(F, T)`` per clip.
    :param window: frames per input, a multiple of the patch size."""
    p = embedder.encoder.patch_size
    if window % p != 0:
        raise ValueError(f"`window` ({window}) must be a multiple of the patch size {p}.")
    if not logmels:
        raise ValueError("No clips to measure.")
    need = window + p - 1
    padded = torch.stack([F.pad(m[:, :need], (0, max(0, need - m.size(-1)))) for m in logmels]).unsqueeze(1)  # (N, 1, F, need)

    def encode(offset: int) -> tuple[Tensor, Tensor]:
        clips, frames = [], []
        for start in range(0, padded.size(0), batch_size):
            x = padded[start : start + batch_size, ..., offset : offset + window]
            clip, frame, _ = embedder.embed_logmel(x, torch.full((x.size(0),), window))
            clips.append(clip)
            frames.append(frame)
        return torch.cat(clips), torch.cat(frames)

    base_clip, base_frames = encode(0)
    clip_mean = base_clip.mean(dim=0, keepdim=True)
    frame_mean = base_frames.mean(dim=(0, 1), keepdim=True)
    shifts = list(range(1, p))
    clip_cos, frame_cos = [], []
    for k in shifts:
        clip, frames = encode(k)
        clip_cos.append(F.cosine_similarity(clip - clip_mean, base_clip - clip_mean, dim=-1))
        frame_cos.append(F.cosine_similarity(frames - frame_mean, base_frames - frame_mean, dim=-1).mean(dim=1))
    return ShiftStability(shifts, torch.stack(clip_cos, 1).double().numpy(), torch.stack(frame_cos, 1).double().numpy())
