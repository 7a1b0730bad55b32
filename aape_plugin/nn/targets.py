"""Layer-wise pooled teacher targets and their global summary."""

from __future__ import annotations

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
    if not 1 <= num_layers <= len(layers):
        raise ValueError(
            f"`num_layers` must be between 1 and the number of encoder layers ({len(layers)}), "
            f"but is {num_layers} instead."
        )

    total = None

    for layer in layers[-num_layers:]:
        patches = layer[:, skip_tokens:].float()

        normed = F.instance_norm(patches.transpose(1, 2)).transpose(1, 2)

        total = normed if total is None else total + normed

    assert total is not None

    return F.layer_norm(total / num_layers, total.shape[-1:])


def global_target(targets: Tensor) -> Tensor:
    """The clip-level summary the CLS token predicts: the mean target over patches."""
    return targets.mean(dim=1)
