"""Cutting a log-mel spectrogram into non-overlapping square patches, with shape checks."""

from __future__ import annotations

import torch
from torch import Tensor


class SpectrogramShapeError(ValueError):
    """Raised when a spectrogram does not have the shape a patch embedding expects."""


def check_spectrogram_shape(
    x: Tensor, *, num_mel_bins: int | None, patch_size: int, owner: str
) -> None:
    """Checks ``x`` is ``(B, 1, F, T)`` with ``F == num_mel_bins`` and ``T`` a multiple of
    ``patch_size``, raising an error that names the expected and the actual shape.

    No padding policy is applied silently: cropping or padding the time axis changes what the
    model sees, so it belongs to the data pipeline (which crops or pads to the model's frames).
    """
    expected_f = "F" if num_mel_bins is None else str(num_mel_bins)

    expected = f"(batch, 1, {expected_f}, T) with T a positive multiple of {patch_size}"

    if x.dim() != 4 or x.size(1) != 1:
        raise SpectrogramShapeError(
            f"{owner} expects a log-mel spectrogram of shape {expected}, but got a tensor of "
            f"shape {tuple(x.shape)}. Add the channel axis with `x.unsqueeze(1)` if it is "
            f"missing."
        )

    num_bins, num_frames = x.size(2), x.size(3)

    if num_mel_bins is not None and num_bins != num_mel_bins:
        raise SpectrogramShapeError(
            f"{owner} expects {num_mel_bins} mel bins, i.e. shape {expected}, but got "
            f"{num_bins} bins (shape {tuple(x.shape)})."
        )

    if num_bins % patch_size != 0:
        raise SpectrogramShapeError(
            f"{owner} needs the number of mel bins to be a multiple of the patch size "
            f"{patch_size}, but got {num_bins} (shape {tuple(x.shape)})."
        )

    if num_frames == 0 or num_frames % patch_size != 0:
        fix = (num_frames // patch_size) * patch_size
        raise SpectrogramShapeError(
            f"{owner} expects shape {expected}, but got T={num_frames} frames (shape "
            f"{tuple(x.shape)}). Crop the time axis to {max(fix, patch_size)} frames or pad it "
            f"to {(num_frames // patch_size + 1) * patch_size}."
        )


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """``(B, 1, F, T)`` -> ``(B, F/p, T/p, p*p)``, each patch flattened frequency-major."""
    batch_size, _, num_bins, num_frames = x.shape

    p = patch_size

    x = x.reshape(batch_size, num_bins // p, p, num_frames // p, p)

    return x.permute(0, 1, 3, 2, 4).reshape(batch_size, num_bins // p, num_frames // p, p * p)


def gather_patches(tokens: Tensor, index: Tensor, num_clones: int = 1) -> Tensor:
    """Per-clip tokens ``(B, S*P, ...)`` at the flat indices ``(B*M, n)`` of ``M`` views of each
    clip (rows ``b*M .. b*M+M-1`` read clip ``b``) -> ``(B*M, n, ...)``."""
    rows = torch.div(torch.arange(index.size(0), device=index.device), num_clones, rounding_mode="floor")

    # One index_select on the flattened rows: its backward is an index_add, several times
    # faster than the accumulating index_put of advanced indexing.
    flat = (rows.unsqueeze(1) * tokens.size(1) + index).flatten()

    return tokens.flatten(0, 1).index_select(0, flat).view(*index.shape, *tokens.shape[2:])


def index_to_mask(index: Tensor, grid: tuple[int, int]) -> Tensor:
    """Flat indices ``(B, n)`` -> boolean ``(B, S, P)``, True at the indexed patches."""
    mask = torch.zeros(index.size(0), grid[0] * grid[1], dtype=torch.bool, device=index.device)

    mask.scatter_(1, index, True)

    return mask.view(index.size(0), *grid)
