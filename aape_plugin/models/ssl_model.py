"""The AaPE self-supervised model: student, EMA teacher, cross-attention predictor, heads."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from fairseq2.gang import Gang, ReduceOperation
from torch import Tensor
from torch.nn import Linear, Module

from aape_plugin.models.config import AapeConfig
from aape_plugin.nn.audio_encoder import AudioEncoder
from aape_plugin.nn.masking import patch_masks
from aape_plugin.nn.predictor import CrossAttentionPredictor
from aape_plugin.nn.targets import alias_targets, clip_target, global_target, layer_pooled_targets

log = logging.getLogger("aape_plugin.models")


@dataclass
class SslOutput:
    """Predictions and targets of one masked teacher-student step (rows: clip x clone)."""

    predicted_patches: Tensor
    """``(B*M, n_masked, D)`` predictor outputs at the masked positions."""

    target_patches: Tensor
    """``(B*M, n_masked, D)`` layer-pooled teacher tokens at the same positions."""

    predicted_global: Tensor
    """``(B*M, D)`` the student's CLS token through the CLS head."""

    target_global: Tensor
    """``(B*M, D)`` the teacher's clip summary (``targets.global_target``)."""

    embeddings: Tensor
    """``(B*M, contrastive_dim)`` the student's CLS projection for the contrastive term."""

    clip_index: Tensor
    """``(B*M,)`` which clip each row is a masked view of."""

    decay: Tensor | None
    """``(B, S, P, N)`` the teacher stem's SBLU decays on the full clips (AaPE only)."""

    frequency: Tensor | None
    """``(B, S, P, N)`` the teacher stem's SBLU frequencies (AaPE only)."""

    targets: Tensor | None = None
    """``(B, S*P, D)`` the teacher's targets at every patch (for representation-health metrics)."""

    teacher_embeddings: Tensor | None = None
    """``(B, D)`` the teacher's clip embeddings (mean final patch token)."""

    student_embeddings: Tensor | None = None
    """``(B*M, D)`` the student's clip embeddings (mean final token of the visible patches)."""

    predicted_alias: Tensor | None = None
    """``(B*M, n_masked, A)`` the alias head's predictions at the masked positions
    (``targets.alias_features``; ``None`` otherwise)."""

    target_alias: Tensor | None = None
    """``(B*M, n_masked, A)`` the teacher stem's aliasing features there (``targets.alias_targets``)."""

    predicted_visible_alias: Tensor | None = None
    """``(B*M, n_visible, A)`` the student's output tokens at the visible positions through the
    visible alias head (``targets.alias_visible``; ``None`` otherwise)."""

    target_visible_alias: Tensor | None = None
    """``(B*M, n_visible, A)`` the teacher stem's aliasing features at the visible positions."""


class AapeSslModel(Module):
    """Masked teacher-student model with multi-mask (Figure 1 of the paper).

    The teacher (an EMA copy of the whole student, stem included) encodes each full clip once;
    its layer-pooled tokens are shared by the ``M`` masked clones of the clip. The student
    encodes only the visible patches of each clone; the cross-attention predictor predicts the
    teacher tokens at the masked positions, the CLS head the teacher's clip summary, and the
    contrastive head gives the embeddings the criterion pulls together across clones.

    The teacher never receives gradients and stays in eval mode; update it with
    :meth:`update_teacher` after each optimiser step.
    """

    def __init__(
        self,
        config: AapeConfig,
        student: AudioEncoder,
        teacher: AudioEncoder,
        predictor: CrossAttentionPredictor,
    ) -> None:
        super().__init__()

        self.config = config

        self.student = student
        self.teacher = teacher
        self.predictor = predictor

        dim = student.dim

        self.cls_head = Linear(dim, dim)
        self.contrastive_head = Linear(dim, config.contrastive_dim)

        # The alias-feature target is an option of the AaPE stem: a plain stem has no aliasing
        # features to predict, so it trains without the term (a preset such as ``study`` sets the
        # option for both stems, and ``--model-arch vit_tiny`` gives its plain-stem reference).
        self.alias_head: Linear | None = None
        if config.targets.alias_features and config.encoder.stem.kind == "aape":
            self.alias_head = Linear(dim, config.encoder.stem.alias_dim)
        elif config.targets.alias_features:
            log.info("`targets.alias_features` applies to the AaPE stem only; the %r stem trains without the alias term.",
                     config.encoder.stem.kind)

        # ``alias_visible`` refines the alias-feature target: without it there is nothing to refine
        # (so ``targets: {alias_features: false}`` alone turns the whole term off).
        self.visible_alias_head: Linear | None = None
        if self.alias_head is not None and config.targets.alias_visible:
            self.visible_alias_head = Linear(dim, config.encoder.stem.alias_dim)

        self.teacher.requires_grad_(False)

        self._dp_gang: Gang | None = None

    def bind_data_parallel_gang(self, gang: Gang) -> None:
        """Set by the pre-training recipe: the ``subband`` alias targets are standardised with
        the statistics of the whole batch, summed over the ranks of ``gang``, in training steps.
        (Validation keeps each rank's own: ranks may run different numbers of validation
        batches there, and a collective would wait for the others.)"""
        self._dp_gang = gang if gang.size > 1 else None

    def _sum_over_ranks(self, x: Tensor) -> Tensor:
        assert self._dp_gang is not None
        x = x.contiguous()
        self._dp_gang.all_reduce(x, ReduceOperation.SUM)
        return x

    def train(self, mode: bool = True) -> AapeSslModel:
        """Trainers call ``model.train()`` on everything; the teacher stays in eval mode."""
        super().train(mode)

        self.teacher.eval()

        return self

    def forward(self, x: Tensor, mask_seeds: list[int] | None = None) -> SslOutput:
        """
        :param x: normalised log-mel ``(B, 1, F, T)``.
        :param mask_seeds: optional seed per clip for its masks (see :func:`random_patch_masks`);
            by default masks come from the global random generator.
        """
        masking = self.config.masking
        num_clones = masking.num_clones

        target_config = self.config.targets

        synced = self._dp_gang is not None and torch.is_grad_enabled()

        with torch.no_grad():
            teacher_out = self.teacher(x, return_layers=True, layer_output=target_config.source)

            targets = layer_pooled_targets(teacher_out.layers, target_config.num_layers)

            if target_config.global_target == "clip":
                clip_targets = clip_target(teacher_out.layers, target_config.num_layers)
            else:
                clip_targets = global_target(targets)  # (B, D)

            alias = None
            if self.alias_head is not None:
                assert teacher_out.alias is not None
                alias = alias_targets(  # (B, S*P, A)
                    teacher_out.alias, target_config.alias_norm, sum_over_ranks=self._sum_over_ranks if synced else None
                )

        grid = teacher_out.grid

        masks = patch_masks(
            masking.kind, x.size(0), grid, ratio=masking.ratio, num_clones=num_clones,
            block_size=masking.block_size, device=x.device, seeds=mask_seeds,
        )

        student_out = self.student(x, visible_index=masks.visible_index, num_clones=num_clones)

        assert student_out.cls is not None

        context = torch.cat([student_out.cls.unsqueeze(1), student_out.patches], dim=1)

        predicted = self.predictor(context, masks.masked_index, grid)

        num_patches = grid[0] * grid[1]

        flat_index = masks.clip_index.unsqueeze(1) * num_patches + masks.masked_index

        target_patches = targets.flatten(0, 1)[flat_index]  # (B*M, n_masked, D)

        predicted_alias = target_alias = None
        if self.alias_head is not None and alias is not None:
            predicted_alias = self.alias_head(predicted)
            target_alias = alias.flatten(0, 1)[flat_index]

        predicted_visible_alias = target_visible_alias = None
        if self.visible_alias_head is not None and alias is not None:
            predicted_visible_alias = self.visible_alias_head(student_out.patches)
            visible_index = masks.clip_index.unsqueeze(1) * num_patches + masks.visible_index
            target_visible_alias = alias.flatten(0, 1)[visible_index]

        return SslOutput(
            predicted_patches=predicted,
            target_patches=target_patches,
            predicted_global=self.cls_head(student_out.cls),
            target_global=clip_targets[masks.clip_index],
            embeddings=self.contrastive_head(student_out.cls),
            clip_index=masks.clip_index,
            decay=teacher_out.decay,
            frequency=teacher_out.frequency,
            targets=targets,
            teacher_embeddings=teacher_out.patches.detach().mean(dim=1),
            student_embeddings=student_out.patches.detach().mean(dim=1),
            predicted_alias=predicted_alias,
            target_alias=target_alias,
            predicted_visible_alias=predicted_visible_alias,
            target_visible_alias=target_visible_alias,
        )

    @torch.no_grad()
    def update_teacher(self, decay: float) -> None:
        """``teacher <- decay * teacher + (1 - decay) * student``, parameter by parameter.

        Works on FSDP2-sharded (DTensor) parameters too, since both sides are sharded alike.
        """
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"The EMA decay must be in [0, 1], but is {decay} instead.")

        teacher = [p for p in self.teacher.parameters()]
        student = [p for p in self.student.parameters()]

        torch._foreach_lerp_(teacher, student, 1.0 - decay)
