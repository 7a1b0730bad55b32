"""``aape_finetune``: fine-tune a pre-trained encoder with a classification head.

    fairseq2 recipe run aape_finetune OUT --preset demo_pitch --config pretrained.checkpoint=RUN

On fairseq2's trainer (DDP/FSDP, checkpoints, resume): layer-wise learning-rate decay,
SpecAugment masks, mixup and random resized crops. The validation split selects the
checkpoint (``regime.score_metric``); the test split is scored once, at the end, with the
best checkpoint, into ``OUT/results.json`` and ``OUT/results.md``. Tasks without a validation
split hold out ``dataset.valid_fraction`` of the training clips (never the test clips).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F
import yaml
from fairseq2.gang import Gangs, create_fake_gangs
from fairseq2.metrics import Mean, MetricBag, Sum, format_as_float, format_as_int
from fairseq2.metrics.recorders import MetricDescriptor
from fairseq2.recipe import Recipe, RecipeContext
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
from fairseq2.runtime.dependency import DependencyContainer
from fairseq2.task import Task
from fairseq2.trainer import TrainUnit
from fairseq2.evaluator import EvalUnit
from fairseq2.utils.validation import ValidationResult
from torch import Tensor
from torch.nn import Module
from torcheval.metrics import MulticlassAccuracy

from aape_plugin.data.batch import AudioBatch
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.dataset import AudioDataset
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.reader import AudioReaderOptions, create_audio_reader
from aape_plugin.eval.metrics import MeanAveragePrecision, metric_name, score
from aape_plugin.eval.protocol import held_out_valid
from aape_plugin.inference.loading import EncoderLoadError, load_encoder
from aape_plugin.models.classifier import AAPE_CLASSIFIER_FAMILY, AapeClassifierConfig, AudioClassifier
from aape_plugin.nn.augment import mixup, random_resized_crop, spec_augment
from aape_plugin.recipes.dataset_opener import open_dataset_section
from aape_plugin.recipes.feature_stats import resolve_feature_stats
from aape_plugin.recipes.layer_decay import ADAMW_LAYER_DECAY, AdamWLayerDecayConfig, register_layer_decay_optimizer
from aape_plugin.recipes.pretrain import validate_schedule
from aape_plugin.recipes.user_errors import register_user_errors
from aape_plugin.recipes.sections import AudioDatasetSection

log = logging.getLogger("aape_plugin.recipes")


@dataclass(kw_only=True)
class PretrainedSection:
    checkpoint: str | None = None
    """Encoder to start from: a pre-training run, a checkpoint file or an asset card. Unset:
    train from a random initialisation (the from-scratch baseline)."""

    weights: Literal["teacher", "student"] = "teacher"
    """Which encoder of an SSL checkpoint."""

    step: int | None = None
    """Checkpoint step of a run (default: the last one)."""


@dataclass(kw_only=True)
class FinetuneDatasetSection(AudioDatasetSection):
    family: str | None = "audio_manifest"
    clip_seconds: float = 5.0
    """Clips are cropped (randomly in training, from the start to evaluate) or padded to this."""

    train_split: str = "train"
    """Split trained on."""

    valid_split: str | None = "valid"
    """Split that selects the checkpoint (``regime.score_metric``)."""

    test_split: str = "test"
    """Split scored once, with the selected checkpoint."""

    valid_fraction: float = 0.1
    """Held out from training when ``valid_split`` is unset or missing."""

    batch_size: int = 32
    """Clips per batch and data-parallel rank."""


@dataclass(kw_only=True)
class AugmentSection:
    freq_mask: int = 16
    """Maximum width of each of two frequency masks, in mel bins (0: off)."""
    time_mask: int = 48
    """Maximum width of each of two time masks, in frames (0: off)."""
    mixup: float = 0.3
    """Beta(alpha, alpha) of mixup (0: off)."""
    rrc_min_scale: float = 0.6
    """Shortest time crop of the random resized crop (1.0: off)."""


@dataclass(kw_only=True)
class FinetuneConfig:
    model: ModelSection = field(default_factory=lambda: ModelSection(family=AAPE_CLASSIFIER_FAMILY, arch="aape_base"))
    pretrained: PretrainedSection = field(default_factory=PretrainedSection)
    dataset: FinetuneDatasetSection = field(default_factory=FinetuneDatasetSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    gang: GangSection = field(default_factory=GangSection)
    trainer: TrainerSection = field(default_factory=lambda: TrainerSection(
        data_parallelism="ddp", max_grad_norm=None, mixed_precision=MixedPrecisionConfig(mode="static", dtype=torch.bfloat16)))
    optimizer: OptimizerSection = field(default_factory=lambda: OptimizerSection(name=ADAMW_LAYER_DECAY, config=AdamWLayerDecayConfig()))
    lr_scheduler: LRSchedulerSection | None = field(default_factory=lambda: LRSchedulerSection(
        name=COSINE_ANNEALING_LR, config=CosineAnnealingLRConfig(num_warmup_steps=500, final_lr_scale=0.0)))
    regime: RegimeSection = field(default_factory=lambda: RegimeSection(
        num_steps=10_000, validate_every_n_steps=500, checkpoint_every_n_steps=500, publish_metrics_every_n_steps=100,
        score_metric="accuracy", keep_best_n_checkpoints=1, keep_last_n_checkpoints=1))
    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))

    def validate(self) -> ValidationResult:
        return validate_schedule(self.lr_scheduler, self.regime)


def targets_of(batch: AudioBatch, num_classes: int, multi_label: bool) -> Tensor:
    assert batch.labels is not None
    return batch.labels.float() if multi_label else F.one_hot(batch.labels, num_classes).float()


class FinetuneUnit(TrainUnit[AudioBatch]):
    def __init__(self, dp_model: Module, augment: AugmentSection, num_classes: int, multi_label: bool) -> None:
        self._dp_model, self._augment, self._c, self._multi = dp_model, augment, num_classes, multi_label

    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        metric_bag.add("loss", Mean())
        metric_bag.add("num_examples", Sum())
        metric_bag.add("total_num_examples", Sum())
        metric_bag.add("skipped_clips", Sum())

    def process_batch(self, batch: AudioBatch, metric_bag: MetricBag) -> tuple[Tensor, int | None]:
        a = self._augment
        x, y = batch.features, targets_of(batch, self._c, self._multi)
        x = random_resized_crop(x, min_scale=a.rrc_min_scale)
        x = spec_augment(x, freq_mask=a.freq_mask, time_mask=a.time_mask)
        x, y = mixup(x, y, alpha=a.mixup)
        logits = self._dp_model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y) if self._multi else F.cross_entropy(logits, y)
        metric_bag.get("loss", Mean).update(loss.detach(), weight=batch.batch_size)
        for name in ("num_examples", "total_num_examples"):
            metric_bag.get(name, Sum).update(batch.batch_size)
        metric_bag.get("skipped_clips", Sum).update(batch.num_skipped)
        return loss, None


class FinetuneEvalUnit(EvalUnit[AudioBatch]):
    def __init__(self, dp_model: Module, num_classes: int, multi_label: bool) -> None:
        self._dp_model, self._c, self._multi = dp_model, num_classes, multi_label

    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        metric_bag.add("loss", Mean())
        metric_bag.add("skipped_clips", Sum())
        if self._multi:
            metric_bag.add("map", MeanAveragePrecision(num_labels=self._c))
        else:
            metric_bag.add("accuracy", MulticlassAccuracy())

    def process_batch(self, batch: AudioBatch, metric_bag: MetricBag) -> None:
        logits = self._dp_model(batch.features).float()
        assert batch.labels is not None
        metric_bag.get("skipped_clips", Sum).update(batch.num_skipped)
        if self._multi:
            metric_bag.get("loss", Mean).update(F.binary_cross_entropy_with_logits(logits, batch.labels.float()), weight=batch.batch_size)
            metric_bag.get("map", MeanAveragePrecision).update(torch.sigmoid(logits), batch.labels.long())
        else:
            metric_bag.get("loss", Mean).update(F.cross_entropy(logits, batch.labels), weight=batch.batch_size)
            metric_bag.get("accuracy", MulticlassAccuracy).update(logits, batch.labels)


def split_entries(dataset: AudioDataset, section: FinetuneDatasetSection, seed: int) -> dict[str, list[ClipEntry]]:
    """train / valid / test clip lists; valid held out of train when the task has none."""
    for split in (section.train_split, section.test_split):
        dataset.check_split(split)
    train = dataset.entries(section.train_split)
    if section.valid_split is not None and section.valid_split in dataset.splits:
        valid = dataset.entries(section.valid_split)
    else:
        labels = [e.labels if dataset.multi_label else e.labels[0] for e in train]
        keep, hold = held_out_valid(labels, section.valid_fraction, seed)
        train, valid = [train[i] for i in keep], [train[i] for i in hold]
    return {"train": train, "valid": valid, "test": dataset.entries(section.test_split)}


class FinetuneTask(Task):
    """fairseq2's trainer, then one test pass with the best validation checkpoint."""

    def __init__(self, trainer: Task, finish: "TestOnBest") -> None:
        self._trainer, self._finish = trainer, finish

    @property
    def step_nr(self) -> int:
        return self._trainer.step_nr

    def request_stop(self) -> None:
        self._trainer.request_stop()

    def close(self) -> None:
        self._trainer.close()

    def run(self) -> None:
        self._trainer.run()
        self._finish()


@dataclass
class TestOnBest:
    output_dir: Path
    test: list[ClipEntry]
    features: LogMelConfig
    stats: object
    section: FinetuneDatasetSection
    label_names: list[str]
    multi_label: bool
    gangs: Gangs
    task_name: str
    pretrained: str

    def __call__(self) -> None:
        if self.gangs.root.rank != 0:
            self.gangs.root.barrier()
            return
        try:
            self._run()
        finally:
            if self.gangs.root.size > 1:
                self.gangs.root.barrier()

    def _run(self) -> None:
        from aape_plugin.models.hub import get_classifier_hub

        ckpt = self.output_dir / "checkpoints"
        scores = {}
        for path in (ckpt / "scores").glob("step_*.txt"):
            scores[int(re.findall(r"\d+", path.stem)[0])] = float(path.read_text().split()[0])
        steps = sorted(int(p.name[5:]) for p in ckpt.glob("step_*") if (p / "model").is_dir())
        if not steps:
            raise AudioDataError(f"No checkpoint in {ckpt} to test.")
        # fairseq2's order of the best checkpoints: the highest score, the later step on a tie.
        best = max((s for s in steps if s in scores), key=lambda s: (scores[s], s), default=steps[-1])
        meta = yaml.safe_load((ckpt / "model.yaml").read_text())
        from fairseq2.runtime.dependency import get_dependency_resolver
        from fairseq2.utils.structured import ValueConverter

        config = get_dependency_resolver().resolve(ValueConverter).structure(meta["model_config"], AapeClassifierConfig)
        model = get_classifier_hub().load_custom_model(ckpt / f"step_{best}" / "model", config).eval()
        frames = self.features.num_frames(int(round(self.section.clip_seconds * self.features.sample_rate)))
        options = AudioReaderOptions(batch_size=self.section.batch_size, num_frames=frames, crop="start", shuffle=False,
                                     num_parallel_calls=self.section.num_parallel_calls, sync_mode="until_last")
        reader = create_audio_reader(self.test, create_fake_gangs(torch.device("cpu")), self.features, self.stats,  # type: ignore[arg-type]
                                     options, label_names=self.label_names, multi_label=self.multi_label, name="test")
        logits, labels = [], []
        with torch.no_grad():
            for group in reader:
                for batch in group:
                    logits.append(model(batch.features).float())
                    labels.append(batch.labels)
        test_score = score(torch.cat(logits), torch.cat(labels), self.multi_label)
        metric = metric_name(self.multi_label)
        result = {"recipe": "aape_finetune", "task": self.task_name, "model": f"fine-tuned from {self.pretrained}", "metric": metric,
                  "summary": {"mean": test_score, "std": 0.0, "n": 1}, "best_step": best, "valid_scores": scores,
                  "skipped_clips": {"test": reader.num_skipped}}
        (self.output_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (self.output_dir / "results.md").write_text(
            f"# Fine-tuning: {self.task_name}\n\n| task | model | {metric} | best step |\n|---|---|---|---|\n"
            f"| {self.task_name} | {result['model']} | {100 * test_score:.2f} | {best} |\n")
        log.info("Test %s with the best checkpoint (step %d): %.4f. Written to %s.", metric, best, test_score, self.output_dir / "results.md")


class FinetuneRecipe(Recipe):
    """Fine-tune an encoder with a classification head (layer-wise LR decay, SpecAugment, mixup, RRC)."""

    description = "Fine-tune a pre-trained encoder with a classification head; test scored once with the best validation checkpoint"

    presets = "aape_plugin.presets:finetune"

    def register(self, container: DependencyContainer) -> None:
        register_user_errors(container)
        register_layer_decay_optimizer(container)
        container.collection.register_instance(MetricDescriptor, MetricDescriptor("map", "mAP", 201, format_as_float, higher_better=True))
        container.collection.register_instance(MetricDescriptor, MetricDescriptor("skipped_clips", "Skipped Clips", 836, format_as_int))

    def setup_model(self, context: RecipeContext, model: Module, newly_initialized: bool) -> Module:
        config = context.get_config_as(FinetuneConfig)
        if newly_initialized and config.pretrained.checkpoint is not None:
            classifier = cast(AudioClassifier, model)
            loaded = load_encoder(config.pretrained.checkpoint, weights=config.pretrained.weights, step=config.pretrained.step,
                                  arch=config.model.arch)
            try:
                classifier.encoder.load_state_dict(loaded.encoder.state_dict())
            except RuntimeError as ex:
                raise EncoderLoadError(
                    f"The encoder of {config.pretrained.checkpoint} does not fit `model.arch` {config.model.arch!r}: "
                    f"{str(ex).splitlines()[0]} Use the arch it was pre-trained with."
                ) from None
            log.info("Encoder initialised from %s.", loaded.description)
        return model

    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(FinetuneConfig)
        section = config.dataset
        model = context.get_model_as(AudioClassifier)
        dp_model = context.get_data_parallel_model()

        dataset = open_dataset_section(context.resolver, section)
        if not dataset.label_names:
            raise AudioDataError(f"{dataset.name} has no labels to fine-tune on.")
        num_classes = len(dataset.label_names)
        if model.config.num_classes != num_classes:
            raise AudioDataError(
                f"{dataset.name} has {num_classes} classes but the model head has {model.config.num_classes}; "
                f"set --config model.config_overrides.num_classes={num_classes}."
            )

        parts = split_entries(dataset, section, config.common.seed)
        features = LogMelConfig(n_mels=model.config.encoder.num_mel_bins)

        stats_source = None
        if config.pretrained.checkpoint is not None:
            stats_source = load_encoder(config.pretrained.checkpoint, weights=config.pretrained.weights, arch=config.model.arch).stats
        stats = stats_source or resolve_feature_stats(
            stats_file=section.stats_file, dataset=dataset, split=section.train_split, output_dir=context.output_dir,
            gangs=context.gangs, features=features, max_clips=section.stats_max_clips)

        frames = features.num_frames(int(round(section.clip_seconds * features.sample_rate)))

        def reader(split: str, train: bool):
            options = AudioReaderOptions(
                batch_size=section.batch_size, num_frames=frames, crop="random" if train else "start", shuffle=train,
                num_parallel_calls=section.num_parallel_calls, num_prefetch=section.num_prefetch, seed=config.common.seed,
                max_bad_fraction=section.max_bad_fraction, sync_mode="until_first" if train else "until_last",
                num_accumulate=config.trainer.grad_accumulation.num_batches if train else 1, drop_remainder=train)
            return create_audio_reader(parts[split], context.gangs, features, stats, options,
                                       label_names=dataset.label_names, multi_label=dataset.multi_label, name=f"{dataset.name}/{split}")

        unit = FinetuneUnit(dp_model, config.augment, num_classes, dataset.multi_label)
        valid_unit = FinetuneEvalUnit(dp_model, num_classes, dataset.multi_label)
        trainer = context.create_trainer(unit, reader("train", True), [valid_unit], [reader("valid", False)])

        finish = TestOnBest(context.output_dir, parts["test"], features, stats, section, dataset.label_names,
                            dataset.multi_label, context.gangs, dataset.name, config.pretrained.checkpoint or "random initialisation")
        return FinetuneTask(trainer, finish)

    @property
    def config_kls(self) -> type[object]:
        return FinetuneConfig
