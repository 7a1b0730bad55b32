"""Representation-health statistics of a masked teacher-student step.

A self-distillation run can "learn" by collapsing (every clip mapped to the same vector, targets
that are the same everywhere), and its loss then looks excellent. These statistics, recorded
with the losses, show it as it happens: how much the targets differ between clips and between
positions, how much of them is position alone (trivially predictable from the predictor's
queries), the effective rank of teacher and student clip embeddings, and how well the student's
predictions agree with the targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.models.ssl_model import SslOutput

HEALTH_METRICS = (
    "target_clip_spread",
    "target_position_spread",
    "target_position_share",
    "teacher_rank",
    "student_rank",
    "prediction_cosine",
    "global_r2",
)
"""The statistics :func:`representation_health` returns."""


def effective_rank(x: Tensor) -> Tensor:
    """``exp`` of the entropy of the normalised singular values of the centred rows of ``x``
    ``(n, d)`` (Roy & Vetterli, 2007): between 1 (all rows on one line) and ``min(n - 1, d)``."""
    x = x.float()
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) <= 0.0:
        return torch.ones((), device=x.device)
    p = s / s.sum()
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum())


@torch.no_grad()
def representation_health(output: SslOutput, num_clones: int) -> dict[str, Tensor]:
    """The statistics of :data:`HEALTH_METRICS` for one batch (scalars).

    * ``target_clip_spread``: std across clips of the target at the same patch position, mean
      over positions and channels (targets have unit scale: about 1 is healthy, near 0 is
      collapse);
    * ``target_position_spread``: std across the patches of one clip, mean over clips and channels;
    * ``target_position_share``: fraction of the target variance explained by the patch position
      alone (the per-position mean over the batch's clips);
    * ``teacher_rank`` / ``student_rank``: effective rank of the clips' embeddings (the mean final
      patch token; the student's first clone of each clip), at most ``batch size - 1``;
    * ``prediction_cosine``: mean cosine between predicted and target tokens at masked patches;
    * ``global_r2``: 1 - MSE of the CLS prediction / variance of its target across clips (0: no
      better than predicting the batch mean, 1: perfect).
    """
    stats: dict[str, Tensor] = {}

    if output.targets is not None and output.targets.size(0) > 1:
        t = output.targets.float()  # (B, N, D)
        total = t.var(dim=(0, 1)).mean().clamp_min(1e-12)
        stats["target_clip_spread"] = t.std(dim=0).mean()
        stats["target_position_spread"] = t.std(dim=1).mean()
        stats["target_position_share"] = t.mean(dim=0).var(dim=0).mean() / total

    if output.teacher_embeddings is not None and output.teacher_embeddings.size(0) > 1:
        stats["teacher_rank"] = effective_rank(output.teacher_embeddings)

    if output.student_embeddings is not None:
        first_clones = output.student_embeddings[::num_clones]
        if first_clones.size(0) > 1:
            stats["student_rank"] = effective_rank(first_clones)

    stats["prediction_cosine"] = F.cosine_similarity(
        output.predicted_patches.float(), output.target_patches.float(), dim=-1
    ).mean()

    target = output.target_global.float()[::num_clones]
    predicted = output.predicted_global.float()[::num_clones]
    if target.size(0) > 1:
        variance = target.var(dim=0, unbiased=False).sum().clamp_min(1e-12)
        stats["global_r2"] = 1.0 - (predicted - target).square().mean(dim=0).sum() / variance

    return {k: v.detach() for k, v in stats.items()}
