"""Random patch masks for masked teacher-student training, several per clip."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PatchMasks:
    """``M`` masks for each of ``B`` clips, clone-major within a clip (rows ``b*M .. b*M+M-1``)."""

    visible: Tensor
    """``(B*M, S, P)`` boolean, True where the student sees the patch."""

    masked_index: Tensor
    """``(B*M, n_masked)`` flat patch indices ``s * P + t`` of hidden patches, ascending."""

    clip_index: Tensor
    """``(B*M,)`` the clip each row belongs to."""


def num_masked_patches(num_patches: int, ratio: float) -> int:
    """``round(ratio * N)``, kept in ``[1, N - 1]`` so that a clone is never fully hidden and
    always has something to predict."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"The mask ratio must be in (0, 1), but is {ratio} instead.")

    if num_patches < 2:
        raise ValueError(f"Masking needs at least 2 patches, but the input has {num_patches}.")

    return min(max(round(ratio * num_patches), 1), num_patches - 1)


def random_patch_masks(
    batch_size: int,
    grid: tuple[int, int],
    *,
    ratio: float,
    num_clones: int,
    device: torch.device | None = None,
    generator: torch.Generator | None = None,
    seeds: list[int] | None = None,
) -> PatchMasks:
    """Independent uniformly random masks with exactly ``num_masked_patches`` hidden each.

    :param seeds: one seed per clip: its clones' masks then depend on the seed alone, not on
        which other clips share the batch or the process (so one process and several
        data-parallel ones, or an interrupted and an uninterrupted run, mask alike).
    """
    num_subbands, num_time_patches = grid

    num_patches = num_subbands * num_time_patches

    num_masked = num_masked_patches(num_patches, ratio)

    rows = batch_size * num_clones

    if seeds is None:
        noise = torch.rand(rows, num_patches, device=device, generator=generator)
    else:
        if len(seeds) != batch_size:
            raise ValueError(f"`seeds` must hold one seed per clip ({batch_size}), but holds {len(seeds)}.")
        noise = torch.cat([
            torch.rand(num_clones, num_patches, device=device, generator=torch.Generator(device=device).manual_seed(seed))
            for seed in seeds
        ])

    masked_index = noise.argsort(dim=1)[:, :num_masked].sort(dim=1).values

    visible = torch.ones(rows, num_patches, dtype=torch.bool, device=device)

    visible.scatter_(1, masked_index, False)

    clip_index = torch.arange(batch_size, device=device).repeat_interleave(num_clones)

    return PatchMasks(visible.view(rows, num_subbands, num_time_patches), masked_index, clip_index)
