"""Patch masks for masked teacher-student training, several per clip: uniformly random, or
EAT's inverse-block masks (the student sees a few blocks of neighbouring patches)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from aape_plugin.nn.transfer import to_device_async


@dataclass
class PatchMasks:
    """``M`` masks for each of ``B`` clips, clone-major within a clip (rows ``b*M .. b*M+M-1``)."""

    visible: Tensor
    """``(B*M, S, P)`` boolean, True where the student sees the patch."""

    masked_index: Tensor
    """``(B*M, n_masked)`` flat patch indices ``s * P + t`` of hidden patches, ascending."""

    clip_index: Tensor
    """``(B*M,)`` the clip each row belongs to."""

    visible_index: Tensor
    """``(B*M, n_visible)`` flat patch indices of the visible patches, ascending (what the
    student encodes; computed without a host sync, unlike ``visible.nonzero()``)."""


def num_masked_patches(num_patches: int, ratio: float) -> int:
    """``round(ratio * N)``, kept in ``[1, N - 1]`` so that a clone is never fully hidden and
    always has something to predict."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"The mask ratio must be in (0, 1), but is {ratio} instead.")

    if num_patches < 2:
        raise ValueError(f"Masking needs at least 2 patches, but the input has {num_patches}.")

    return min(max(round(ratio * num_patches), 1), num_patches - 1)


MaskKind = Literal["random", "inverse_block"]


def _clip_generators(
    batch_size: int, *, device: torch.device | None, generator: torch.Generator | None, seeds: list[int] | None
) -> list[torch.Generator | None]:
    """One generator per clip (from its seed), or the shared one."""
    if seeds is None:
        return [generator] * batch_size
    if len(seeds) != batch_size:
        raise ValueError(f"`seeds` must hold one seed per clip ({batch_size}), but holds {len(seeds)}.")
    return [torch.Generator(device=device).manual_seed(seed) for seed in seeds]


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
        generators = _clip_generators(batch_size, device=device, generator=generator, seeds=seeds)
        noise = torch.cat([torch.rand(num_clones, num_patches, device=device, generator=g) for g in generators])

    masked_index = noise.argsort(dim=1)[:, :num_masked].sort(dim=1).values

    return _masks_from_hidden(masked_index, batch_size, num_clones, grid)


def _masks_from_hidden(masked_index: Tensor, batch_size: int, num_clones: int, grid: tuple[int, int]) -> PatchMasks:
    rows, device = masked_index.size(0), masked_index.device

    visible = torch.ones(rows, grid[0] * grid[1], dtype=torch.bool, device=device)

    visible.scatter_(1, masked_index, False)

    clip_index = torch.arange(batch_size, device=device).repeat_interleave(num_clones)

    # A stable sort of "hidden" (0 before 1) lists the visible patches first, in index order.
    num_visible = grid[0] * grid[1] - masked_index.size(1)
    visible_index = torch.argsort((~visible).to(torch.int8), dim=1, stable=True)[:, :num_visible]

    return PatchMasks(visible.view(rows, *grid), masked_index, clip_index, visible_index)


def inverse_block_patch_masks(
    batch_size: int,
    grid: tuple[int, int],
    *,
    ratio: float,
    num_clones: int,
    block_size: int = 3,
    device: torch.device | None = None,
    generator: torch.Generator | None = None,
    seeds: list[int] | None = None,
) -> PatchMasks:
    """EAT's inverse-block masks: the *visible* patches are blocks of ``block_size x block_size``
    neighbouring patches (clipped at the grid's edges) around random centres, added until
    ``N - num_masked_patches`` are visible; surplus visible patches are hidden again at random so
    that every clone hides exactly as many patches as :func:`random_patch_masks` would. Hidden
    patches thus come in large connected regions, which makes the prediction harder than with
    scattered holes (a visible neighbour no longer gives the answer away).

    :param seeds: as for :func:`random_patch_masks`.
    """
    if block_size < 1:
        raise ValueError(f"`block_size` must be >= 1, but is {block_size} instead.")

    num_subbands, num_time_patches = grid
    num_patches = num_subbands * num_time_patches
    keep = num_patches - num_masked_patches(num_patches, ratio)
    half = block_size // 2

    generators = _clip_generators(batch_size, device=None, generator=generator, seeds=seeds)

    hidden_rows = []
    for g in generators:
        for _ in range(num_clones):
            visible = torch.zeros(num_subbands, num_time_patches, dtype=torch.bool)
            while int(visible.sum()) < keep:
                s, t = divmod(int(torch.randint(0, num_patches, (1,), generator=g)), num_time_patches)
                visible[max(s - half, 0) : s - half + block_size, max(t - half, 0) : t - half + block_size] = True
            shown = visible.flatten().nonzero().squeeze(1)
            surplus = len(shown) - keep
            if surplus > 0:
                drop = shown[torch.randperm(len(shown), generator=g)[:surplus]]
                visible.view(-1)[drop] = False
            hidden_rows.append((~visible.flatten()).nonzero().squeeze(1))

    # Drawn on the host (a loop of data-dependent steps); copied without a stream sync.
    masked_index = torch.stack(hidden_rows)
    if device is not None:
        masked_index = to_device_async(masked_index, torch.device(device))

    return _masks_from_hidden(masked_index, batch_size, num_clones, grid)


def patch_masks(kind: MaskKind, batch_size: int, grid: tuple[int, int], **kwargs: object) -> PatchMasks:
    """:func:`random_patch_masks` or :func:`inverse_block_patch_masks` by name."""
    if kind == "random":
        kwargs.pop("block_size", None)
        return random_patch_masks(batch_size, grid, **kwargs)  # type: ignore[arg-type]
    if kind == "inverse_block":
        return inverse_block_patch_masks(batch_size, grid, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"The mask kind must be 'random' or 'inverse_block', but is {kind!r} instead.")
