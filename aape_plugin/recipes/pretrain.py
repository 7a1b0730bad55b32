"""``aape_pretrain``: masked teacher-student pre-training of AaPE (or plain-stem) ViTs.

    fairseq2 recipe run aape_pretrain OUT --model-arch aape_base --config dataset.root=/data/audioset
    fairseq2 recipe run aape_pretrain OUT --preset demo        # the shipped demo data, on CPU

fairseq2's trainer does the loop, mixed precision, gradient accumulation, DDP/FSDP,
checkpointing and metric recording; this recipe adds the train unit (loss, EMA, metrics).
Re-running the same command on the same OUT resumes from the last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from fairseq2.checkpoint import CheckpointManager
from fairseq2.metrics import format_as_float, format_as_int
from fairseq2.metrics.recorders import MetricDescriptor
from fairseq2.recipe import Recipe, RecipeContext
from fairseq2.recipe.component import ComponentManager
from fairseq2.recipe.config import (
    COSINE_ANNEALING_LR,
    CommonSection,
    CosineAnnealingLRConfig,
    GangSection,
    LRSchedulerSection,
    MixedPrecisionConfig,
    ModelSection,
    OptimizerSection,
    RegimeSection,
    TrainerSection,
)
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from fairseq2.task import Task
from fairseq2.utils.validation import ValidationResult
from torch.nn import Module

from aape_plugin.data.audioset_dataset import AUDIOSET_FAMILY
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.reader import AudioReaderOptions
from aape_plugin.losses import AapeCriterion
from aape_plugin.models.config import AAPE_FAMILY, AapeConfig
from aape_plugin.models.ema import EmaConfig, resolve_ema
from aape_plugin.models.health import HEALTH_METRICS
from aape_plugin.models.ssl_model import AapeSslModel
from aape_plugin.recipes.checkpoint_budget import StateBudgets, configured_model, run_budgets
from aape_plugin.recipes.dataset_opener import open_dataset_section
from aape_plugin.recipes.feature_stats import resolve_feature_stats
from aape_plugin.recipes.layer_decay import ADAMW_LAYER_DECAY, AdamWLayerDecayConfig, register_layer_decay_optimizer
from aape_plugin.recipes.pretrain_unit import (
    ALIAS_LOSS_METRIC,
    MAX_KERNEL_METRICS,
    AapePretrainEvalUnit,
    AapePretrainUnit,
    loss_metric_names,
    stem_kernel_names,
    stem_quantile_names,
)
from aape_plugin.recipes.sections import AudioDatasetSection, CriterionSection
from aape_plugin.recipes.safe_checkpoints import register_safe_checkpoints
from aape_plugin.recipes.user_errors import OneLineRestoreErrors, register_user_errors


@dataclass(kw_only=True)
class PretrainDatasetSection(AudioDatasetSection):
    family: str | None = AUDIOSET_FAMILY

    train_split: str = "train"
    """Split pre-trained on."""

    valid_split: str | None = None
    """Optional split on which the SSL losses are reported at each validation."""


@dataclass(kw_only=True)
class AapePretrainConfig:
    """Defaults: ``aape_base`` on AudioSet with EAT's optimisation settings (per GPU)."""

    model: ModelSection = field(default_factory=lambda: ModelSection(family=AAPE_FAMILY, arch="aape_base"))

    dataset: PretrainDatasetSection = field(default_factory=PretrainDatasetSection)

    criterion: CriterionSection = field(default_factory=CriterionSection)

    ema: EmaConfig = field(default_factory=EmaConfig)
    """Teacher EMA decay schedule (by optimiser step)."""

    gang: GangSection = field(default_factory=GangSection)

    trainer: TrainerSection = field(
        default_factory=lambda: TrainerSection(
            data_parallelism="ddp",
            max_grad_norm=4.0,
            mixed_precision=MixedPrecisionConfig(mode="static", dtype=torch.bfloat16),
        )
    )

    optimizer: OptimizerSection = field(
        default_factory=lambda: OptimizerSection(
            name=ADAMW_LAYER_DECAY,
            config=AdamWLayerDecayConfig(lr=5e-4, betas=(0.9, 0.95), weight_decay=0.05, layer_decay=1.0, lambda_lr_scale=1.0),
        )
    )
    """AdamW without weight decay on biases, norms and tokens (``layer_decay: 1.0``: every
    layer at the same learning rate). The Lambda Encoder is trained with the rest, as in the
    paper (``lambda_lr_scale: 1.0``). ``lambda_lr_scale: 0.0`` keeps it at its initialisation:
    the ``study`` and ``demo`` presets do, since at their scale (``aape_tiny``, 3,000 steps on
    the 4.5-hour study corpus) training it wore away the modulation rates on validation
    (``docs/objectives.md``, round 1)."""

    lr_scheduler: LRSchedulerSection | None = field(
        default_factory=lambda: LRSchedulerSection(
            name=COSINE_ANNEALING_LR, config=CosineAnnealingLRConfig(num_warmup_steps=26_667, final_lr_scale=0.0)
        )
    )

    regime: RegimeSection = field(
        default_factory=lambda: RegimeSection(
            num_steps=200_000,
            checkpoint_every_n_steps=5_000,
            keep_last_n_checkpoints=2,
            publish_metrics_every_n_steps=100,
            validate_every_n_steps=5_000,
        )
    )

    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))

    def validate(self) -> ValidationResult:
        """Cross-section checks fairseq2 cannot make (it validates each section alone)."""
        return validate_schedule(self.lr_scheduler, self.regime)


def validate_schedule(lr_scheduler: LRSchedulerSection | None, regime: RegimeSection) -> ValidationResult:
    """A cosine schedule needs steps after its warm-up (fairseq2 divides by their number)."""
    result = ValidationResult()
    config = getattr(lr_scheduler, "config", None)
    warmup = getattr(config, "num_warmup_steps", None)
    if isinstance(config, CosineAnnealingLRConfig) and warmup is not None and warmup >= regime.num_steps:
        result.add_error(
            f"`lr_scheduler.config.num_warmup_steps` ({warmup}) must be smaller than `regime.num_steps` "
            f"({regime.num_steps}); lower the warm-up with --config lr_scheduler.config.num_warmup_steps=N, or, for a smoke run, "
            f"use --preset quick (10 steps on the demo data, its warm-up and checkpoint spacing to match)."
        )
    return result


def register_metric_descriptors(container: DependencyContainer) -> None:
    """Display names of the metrics fairseq2 does not know (it knows loss, contrastive_loss)."""

    def add(name: str, display: str, priority: int, fmt: object = format_as_float) -> None:
        container.collection.register_instance(MetricDescriptor, MetricDescriptor(name, display, priority, fmt))  # type: ignore[arg-type]

    add("patch_loss", "Masked Token Loss", 91)
    add("global_loss", "CLS Global Loss", 92)
    add(ALIAS_LOSS_METRIC, "Alias Feature Loss", 93)
    add("ema_decay", "EMA Decay", 250)
    add("clips_per_second", "Clips per Second", 811)
    add("skipped_clips", "Skipped Clips", 836, format_as_int)
    for i, name in enumerate(HEALTH_METRICS):
        add(name, name.replace("_", " ").title().replace("R2", "R²"), 270 + i)
    add("total_skipped_clips", "Total Skipped Clips", 837, format_as_int)
    for i, name in enumerate(stem_quantile_names()):
        what, q = name.rsplit("_q", 1)
        add(name, f"Stem {what[5:].replace('_', ' ').title()} q{q}", 260 + i)
    for i, name in enumerate(stem_kernel_names(MAX_KERNEL_METRICS)):
        kernel, _, what = name[len("stem_k"):].partition("_")
        add(name, f"Stem Kernel {kernel} {'Frequency Hz' if what == 'frequency_hz' else 'Decay'}", 300 + i)


def pretrain_budgets(resolver: DependencyResolver) -> StateBudgets:
    """The state-file budgets of a pre-training run, from its configuration."""
    config = RecipeContext(resolver).get_config_as(AapePretrainConfig)
    model_config, model = configured_model(resolver, config.model)
    encoder = cast(AapeConfig, model_config).encoder
    section = config.dataset
    return run_budgets(model, arch=config.model.arch or config.model.name, batch_size=section.batch_size,
                       num_frames=encoder.num_frames, num_mel_bins=encoder.num_mel_bins, num_prefetch=section.num_prefetch,
                       num_parallel_calls=section.num_parallel_calls, num_steps=config.regime.num_steps)


class AapePretrainRecipe(Recipe):
    """Pre-train AaPE / plain-stem ViTs (masked teacher-student, multi-mask, contrastive)."""

    description = "Pre-train an AaPE (or plain-stem) ViT: masked teacher-student with multi-mask and contrastive terms"

    presets = "aape_plugin.presets:pretrain"

    def register(self, container: DependencyContainer) -> None:
        register_metric_descriptors(container)
        register_user_errors(container)
        register_safe_checkpoints(container, pretrain_budgets)
        register_layer_decay_optimizer(container)

    def setup_model(self, context: RecipeContext, model: Module, newly_initialized: bool) -> Module:
        # fairseq2 turns gradients on for the whole model; the teacher must stay frozen
        # before DDP/FSDP build their buckets.
        cast(AapeSslModel, model).teacher.requires_grad_(False)
        return model

    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(AapePretrainConfig)

        section = config.dataset

        model = context.get_model_as(AapeSslModel)
        dp_model = context.get_data_parallel_model()

        dataset = open_dataset_section(context.resolver, section)

        encoder = model.config.encoder
        features = LogMelConfig(n_mels=encoder.num_mel_bins)

        stats = resolve_feature_stats(
            stats_file=section.stats_file,
            dataset=dataset,
            split=section.train_split,
            output_dir=context.output_dir,
            gangs=context.gangs,
            features=features,
            max_clips=section.stats_max_clips,
        )

        def options(*, shuffle: bool, crop: str, sync_mode: str, accumulate: int) -> AudioReaderOptions:
            return AudioReaderOptions(
                batch_size=section.batch_size,
                num_frames=encoder.num_frames,
                crop=crop,  # type: ignore[arg-type]
                shuffle=shuffle,
                shuffle_window=section.shuffle_window,
                num_parallel_calls=section.num_parallel_calls,
                num_prefetch=section.num_prefetch,
                max_bad_fraction=section.max_bad_fraction,
                seed=config.common.seed,
                sync_mode=sync_mode,  # type: ignore[arg-type]
                num_accumulate=accumulate,
                drop_remainder=shuffle,
            )

        train_reader = dataset.create_reader(
            section.train_split, context.gangs, features, stats,
            options(shuffle=True, crop="random", sync_mode="until_first", accumulate=config.trainer.grad_accumulation.num_batches),
        )

        components = context.resolver.resolve(ComponentManager)
        criterion = components.create_component(AapeCriterion, config.criterion.name, config.criterion.config)
        criterion.bind_max_rows(section.batch_size * model.config.masking.num_clones)
        model.bind_data_parallel_gang(context.gangs.dp)

        ema = resolve_ema(config.ema, config.regime.num_steps)

        unit = AapePretrainUnit(dp_model, model, criterion, ema, features.frames_per_second, config.common.seed,
                                publish_every=config.regime.publish_metrics_every_n_steps, num_steps=config.regime.num_steps)

        context.get_optimizer().register_step_post_hook(lambda optimizer, args, kwargs: unit.update_teacher())

        valid_units, valid_readers = [], []
        if section.valid_split is not None:
            valid_units.append(AapePretrainEvalUnit(dp_model, criterion, model.config.masking.num_clones, loss_metric_names(model)))
            valid_readers.append(
                dataset.create_reader(
                    section.valid_split, context.gangs, features, stats,
                    options(shuffle=False, crop="centre", sync_mode="until_last", accumulate=1),
                )
            )

        checkpoints = context.resolver.resolve(CheckpointManager)
        return OneLineRestoreErrors(context.create_trainer(unit, train_reader, valid_units, valid_readers),
                                    lambda: checkpoints.get_step_numbers(exclude_model_only=True))

    @property
    def config_kls(self) -> type[object]:
        return AapePretrainConfig
