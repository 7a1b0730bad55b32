"""Layer-wise pooled teacher targets and their global summary."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def layer_pooled_targets(layers: list[Tensor], num_layers: int, *, skip_tokens: int = 1) -> Tensor:
    """Mean of the top-``num_layers`` block outputs, each instance-normalised, then LayerNorm.

    Instance normalisation (each channel over the tokens of a clip) puts the layers on one
    scale before averaging, so that no layer dominates; the final LayerNorm (no affine) gives
    targets of unit scale per token. (As in data2vec / EAT.)

    :param layers: block outputs ``(B, skip_tokens + N, D)``, first block first.
    :param skip_tokens: leading tokens (CLS) that are not patch targets.
    :returns: ``(B, N, D)`` targets for every patch.
    """
    def instance_normed(layer: Tensor) -> Tensor:
        return F.instance_norm(layer[:, skip_tokens:].float().transpose(1, 2)).transpose(1, 2)

    return _layer_normed_mean([instance_normed(layer) for layer in _top_layers(layers, num_layers)])


def global_target(targets: Tensor) -> Tensor:
    """The mean patch target over patches (``global_target: patch_mean``).

    Instance normalisation makes every channel of every layer zero-mean over the clip's tokens,
    so this summary is close to zero (after the final LayerNorm, about 1-3% of the patch
    targets' energy): a CLS token regressing it has almost nothing to learn. Kept for comparison.
    """
    return targets.mean(dim=1)


def clip_target(layers: list[Tensor], num_layers: int, *, skip_tokens: int = 1) -> Tensor:
    """A clip-level target of unit scale (``global_target: clip``): for each of the top
    ``num_layers`` layers the mean over the clip's patch tokens, LayerNormed, then averaged over
    the layers and LayerNormed again (no affine).

    Normalising the clip summary itself (instead of averaging tokens that were normalised over
    the clip) keeps what differs from clip to clip.

    :returns: ``(B, D)``.
    """
    def layer_normed_summary(layer: Tensor) -> Tensor:
        summary = layer[:, skip_tokens:].float().mean(dim=1)
        return F.layer_norm(summary, summary.shape[-1:])

    return _layer_normed_mean([layer_normed_summary(layer) for layer in _top_layers(layers, num_layers)])


def alias_targets(
    alias: Tensor, norm: str = "patch", eps: float = 1e-5, *, sum_over_ranks: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    """Targets from the stem's aliasing features (``targets.alias_features``). They are
    root-mean-square band powers, positive and of wide range: first their log, then

    - ``patch``: LayerNorm over the features of each patch (no affine);
    - ``subband``: each feature standardised per subband over the batch's clips and time patches.
      Most of what differs between patches in ``patch`` targets is the subband's fixed pattern
      (about three quarters of their variance on modulation clips), which a predictor reads from
      the position alone; this removes it and leaves what differs between clips and patches.

    Neither normalises over the clip's own tokens, unlike :func:`layer_pooled_targets`: a
    modulation that holds over the whole clip is the same at every patch, and subtracting the
    clip mean would remove exactly it.

    :param alias: ``(B, S, P, A)`` (``subband`` needs the grid), or ``(B, N, A)`` for ``patch``.
    :param sum_over_ranks: for ``subband``, sums a tensor over the data-parallel ranks (an
        all-reduce): the statistics are then those of the whole batch, whatever the number of
        processes it is split over, as with synchronised batch norm.
    :returns: ``(B, S*P, A)`` float.
    """
    logged = alias.float().clamp_min(1e-6).log()
    if norm == "patch":
        out = F.layer_norm(logged, logged.shape[-1:])
    elif norm == "subband":
        if logged.dim() != 4:
            raise ValueError(f"`subband` alias targets need features on the (subband, patch) grid, (B, S, P, A), but got {tuple(alias.shape)}.")
        mean, std = _subband_moments(logged, sum_over_ranks)
        out = (logged - mean) / (std + eps)
    else:
        raise ValueError(f"`norm` must be 'patch' or 'subband', but is {norm!r}.")
    return out.flatten(1, 2) if out.dim() == 4 else out


def _subband_moments(logged: Tensor, sum_over_ranks: Callable[[Tensor], Tensor] | None) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``(B, S, P, A)`` over clips and patches, ``(1, S, 1, A)``.

    From the count, sum and sum of squares (in float64, so that the difference of the two
    moments loses nothing): these three add up over ranks, so one all-reduce of a small tensor
    gives the statistics of the whole batch.
    """
    wide = logged.double()
    count = torch.full_like(wide[0, :, 0], float(wide.size(0) * wide.size(2)))
    moments = torch.stack([count, wide.sum(dim=(0, 2)), wide.square().sum(dim=(0, 2))])  # (3, S, A)
    if sum_over_ranks is not None:
        moments = sum_over_ranks(moments)
    n, total, squares = moments.unbind(0)
    mean = total / n
    std = (squares / n - mean.square()).clamp_min(0.0).sqrt()
    return mean.float()[None, :, None], std.float()[None, :, None]


def _top_layers(layers: list[Tensor], num_layers: int) -> list[Tensor]:
    """The last ``num_layers`` of ``layers``, checked to exist."""
    if not 1 <= num_layers <= len(layers):
        raise ValueError(
            f"`num_layers` must be between 1 and the number of encoder layers ({len(layers)}), "
            f"but is {num_layers} instead."
        )
    return layers[-num_layers:]


def _layer_normed_mean(parts: list[Tensor]) -> Tensor:
    """The mean of ``parts``, LayerNormed over the channels (no affine): unit scale per row."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return F.layer_norm(total / len(parts), total.shape[-1:])
