"""Fixed 2-D sine-cosine position embeddings for a (frequency, time) patch grid."""

from __future__ import annotations

import torch
from torch import Tensor


def sincos_1d(positions: Tensor, dim: int, *, base: float = 10_000.0) -> Tensor:
    """``(L,)`` positions -> ``(L, dim)`` sine-cosine features (``dim`` even)."""
    if dim % 2 != 0:
        raise ValueError(f"`dim` must be even, but is {dim} instead.")

    freqs = base ** (-torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim // 2))

    angles = positions.to(torch.float64).unsqueeze(-1) * freqs

    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


def sincos_2d(num_rows: int, num_cols: int, dim: int, *, device: torch.device | None = None) -> Tensor:
    """Position embeddings of a ``num_rows x num_cols`` grid, shape ``(num_rows, num_cols, dim)``.

    Half of the channels encode the row (frequency patch), half the column (time patch), so
    each axis keeps its own scale; this is why the grid can change length along time without
    the isotropic interpolation that breaks variable-length spectrograms.
    """
    if dim % 4 != 0:
        raise ValueError(f"`dim` must be a multiple of 4, but is {dim} instead.")

    rows = sincos_1d(torch.arange(num_rows, device=device), dim // 2)
    cols = sincos_1d(torch.arange(num_cols, device=device), dim // 2)

    return torch.cat(
        [rows[:, None, :].expand(-1, num_cols, -1), cols[None, :, :].expand(num_rows, -1, -1)],
        dim=-1,
    )
