"""The AaPE pre-training criterion: masked-token regression, CLS-to-global regression and the
multi-mask contrastive consistency term (Figure 1 of the paper).

The criterion is a fairseq2 component: a recipe's ``criterion`` section names it
(``name: aape_multi_mask``) and carries its config, so ablations are config changes, e.g.
``--config criterion.config.contrastive_weight=0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F
from fairseq2.gang import Gang, Gangs
from fairseq2.recipe.component import register_component
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from fairseq2.utils.validation import ValidationResult
from torch import Tensor

from aape_plugin.models.gather import contrastive_rows
from aape_plugin.models.ssl_model import SslOutput

AAPE_MULTI_MASK_CRITERION: Final = "aape_multi_mask"


@dataclass(kw_only=True)
class AapeCriterionConfig:
    """Weights of the three terms and the contrastive temperature."""

    patch_weight: float = 1.0
    """Weight of the MSE between predicted and teacher tokens at masked positions."""

    global_weight: float = 1.0
    """Weight of the MSE between the CLS head and the teacher's clip summary."""

    contrastive_weight: float = 0.1
    """Weight of the multi-mask contrastive term (0 turns it off: the ablation)."""

    temperature: float = 0.1
    """Softmax temperature of the contrastive term."""

    alias_weight: float = 1.0
    """Weight of the MSE between the alias head's predictions and the teacher stem's aliasing
    features at masked positions (with ``targets.alias_visible``, the mean of that MSE and the
    one at the visible positions). Applies only to a model built with
    ``targets.alias_features: true`` (otherwise there is no such term)."""

    gather_negatives: bool = False
    """Contrast against the clones of every data-parallel rank's clips (an all-gather with
    gradient), not only those on the same rank. Off by default and in the presets: the
    objective then does not change with the number of GPUs at a fixed per-GPU batch."""

    def validate(self) -> ValidationResult:
        """fairseq2 validates recipe configs through this (the ``Validatable`` protocol)."""
        result = ValidationResult()

        for name in ("patch_weight", "global_weight", "contrastive_weight", "alias_weight"):
            if getattr(self, name) < 0:
                result.add_error(f"`{name}` must be >= 0, but is {getattr(self, name)} instead.")

        if self.temperature <= 0:
            result.add_error(f"`temperature` must be > 0, but is {self.temperature} instead.")

        return result


@dataclass
class AapeLoss:
    """The weighted total (to back-propagate) and each unweighted term (to report)."""

    total: Tensor
    patch: Tensor
    global_: Tensor
    contrastive: Tensor
    alias: Tensor | None = None
    """``None`` when the model predicts no aliasing features."""


def multi_mask_contrastive_loss(embeddings: Tensor, clip_index: Tensor, temperature: float, valid: Tensor | None = None) -> Tensor:
    """InfoNCE over masked views: other clones of the same clip are positives, clones of other
    clips are negatives.

    For each row ``i`` with positives ``P(i)`` (same clip, ``j != i``):
    ``l_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / t) / sum_{a != i} exp(s_ia / t) )``,
    ``s`` the cosine similarity; the loss is the mean of ``l_i`` over rows that have positives
    (zero when no row has one, e.g. a single clone per clip). It does not depend on the order
    of the rows.

    :param valid: ``(N,)`` boolean, False for padding rows (gathered negatives,
        :func:`aape_plugin.models.gather.contrastive_rows`): they are neither anchors, positives
        nor negatives, so the loss equals the loss over the real rows alone.
    """
    z = F.normalize(embeddings.float(), dim=-1)

    logits = z @ z.t() / temperature

    excluded = torch.eye(len(z), dtype=torch.bool, device=z.device)
    if valid is not None:
        excluded = excluded | ~valid.unsqueeze(0)

    logits = logits.masked_fill(excluded, float("-inf"))

    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)

    positives = (clip_index.unsqueeze(0) == clip_index.unsqueeze(1)) & ~excluded

    num_positives = positives.sum(dim=1)

    has_positives = num_positives > 0
    if valid is not None:
        has_positives = has_positives & valid
    has_positives = has_positives.to(log_prob.dtype)

    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)

    per_row = -pos_log_prob / num_positives.clamp_min(1)

    # The mean over rows with positives, written without a data-dependent branch or selection
    # (either would wait for the device on every step): zero when no row has a positive.
    return (per_row * has_positives).sum() / has_positives.sum().clamp_min(1.0)


class AapeCriterion:
    """Computes :class:`AapeLoss` from the model's :class:`SslOutput`."""

    def __init__(self, config: AapeCriterionConfig, dp_gang: Gang | None = None, max_rows: int | None = None) -> None:
        """:param dp_gang: the data-parallel gang the negatives are gathered over when
        ``gather_negatives`` is set.
        :param max_rows: the most contrastive rows a rank has in a training step (batch size x
            clones): gathered rows are padded to it (see :meth:`bind_max_rows`)."""
        result = config.validate()
        if result.has_error():
            raise ValueError(f"Invalid criterion config: {result}")

        self.config = config
        self.dp_gang = dp_gang if config.gather_negatives else None
        self.max_rows = max_rows

    def bind_max_rows(self, max_rows: int) -> None:
        """Set by the recipe, which knows the batch size and the clones: gathered negatives are
        padded to this many rows per rank instead of asking every rank how many it has (which
        would wait for the device on every step)."""
        self.max_rows = max_rows

    def __call__(self, output: SslOutput) -> AapeLoss:
        c = self.config

        patch = F.mse_loss(output.predicted_patches.float(), output.target_patches.float())

        global_ = F.mse_loss(output.predicted_global.float(), output.target_global.float())

        embeddings, clip_index, valid = contrastive_rows(output.embeddings, output.clip_index, self.dp_gang, self.max_rows)
        contrastive = multi_mask_contrastive_loss(embeddings, clip_index, c.temperature, valid)

        total = c.patch_weight * patch + c.global_weight * global_ + c.contrastive_weight * contrastive

        alias = None
        if output.predicted_alias is not None and output.target_alias is not None:
            alias = F.mse_loss(output.predicted_alias.float(), output.target_alias.float())
            if output.predicted_visible_alias is not None and output.target_visible_alias is not None:
                visible = F.mse_loss(output.predicted_visible_alias.float(), output.target_visible_alias.float())
                alias = 0.5 * (alias + visible)
            total = total + c.alias_weight * alias

        return AapeLoss(total=total, patch=patch, global_=global_, contrastive=contrastive, alias=alias)


def create_aape_criterion(resolver: DependencyResolver, config: AapeCriterionConfig) -> AapeCriterion:
    return AapeCriterion(config, resolver.resolve(Gangs).dp if config.gather_negatives else None)


def register_aape_criteria(container: DependencyContainer) -> None:
    register_component(
        container, AapeCriterion, AAPE_MULTI_MASK_CRITERION, AapeCriterionConfig, create_aape_criterion
    )
