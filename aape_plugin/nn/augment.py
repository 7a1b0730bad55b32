"""Spectrogram augmentations for fine-tuning: SpecAugment masks, mixup, random resized crop.

All work on normalised log-mel batches ``(B, 1, F, T)`` where 0 is the data set's mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def spec_augment(x: Tensor, *, freq_mask: int, time_mask: int, num_masks: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Zeroes ``num_masks`` random bands of up to ``freq_mask`` bins and of up to
    ``time_mask`` frames in each clip (Park et al., 2019)."""
    b, _, f, t = x.shape
    out = x.clone()
    dev = x.device
    for size, axis_len, axis in ((freq_mask, f, 2), (time_mask, t, 3)):
        if size <= 0:
            continue
        for _ in range(num_masks):
            width = torch.randint(0, min(size, axis_len) + 1, (b,), generator=generator).to(dev)
            start = (torch.rand(b, generator=generator).to(dev) * (axis_len - width + 1)).long()
            pos = torch.arange(axis_len, device=dev)[None, :]
            mask = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (B, L)
            shape = (b, 1, axis_len, 1) if axis == 2 else (b, 1, 1, axis_len)
            out = out.masked_fill(mask.view(shape), 0.0)
    return out


def mixup(x: Tensor, targets: Tensor, *, alpha: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mixes each clip with another of the batch, ``lam ~ Beta(alpha, alpha)`` per batch;
    ``targets`` must be probabilities (one-hot or multi-hot)."""
    if alpha <= 0:
        return x, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.size(0), generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


def random_resized_crop(x: Tensor, *, min_scale: float = 0.6, generator: torch.Generator | None = None) -> Tensor:
    """Crops a random stretch of ``[min_scale, 1]`` of the time axis and stretches it back to the
    full length (bilinear), per clip: tempo-like augmentation that keeps the frequency axis."""
    if min_scale >= 1.0:
        return x
    b, _, f, t = x.shape
    out = torch.empty_like(x)
    for i in range(b):
        scale = min_scale + (1 - min_scale) * float(torch.rand(1, generator=generator))
        width = max(2, int(round(scale * t)))
        start = int(torch.randint(0, t - width + 1, (1,), generator=generator))
        out[i] = F.interpolate(x[i : i + 1, :, :, start : start + width], size=(f, t), mode="bilinear", align_corners=False)[0]
    return out
