"""``aape_finetune``: fine-tune a pre-trained encoder with a classification head.

    fairseq2 recipe run aape_finetune OUT --preset demo_pitch --config pretrained.checkpoint=RUN

On fairseq2's trainer (DDP/FSDP, checkpoints, resume): layer-wise learning-rate decay,
SpecAugment masks, mixup and random resized crops. The validation split selects the
checkpoint (``regime.score_metric``); the test split is scored once, at the end, with the
best checkpoint (found through fairseq2's checkpoint manager, so ``--checkpoint-dir`` works),
on the training device and by all ranks, into ``OUT/results.json`` and ``OUT/results.md``.
Tasks without a validation split hold out ``dataset.valid_fraction`` of the training clips
(never the test clips).
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F
from fairseq2.checkpoint import CheckpointManager
from fairseq2.datasets import DataReader
from fairseq2.gang import Gangs, ReduceOperation
from fairseq2.metrics import Mean, MetricBag, Sum, format_as_float, format_as_int
from fairseq2.metrics.recorders import MetricDescriptor
from fairseq2.nn.data_parallel import get_data_parallel_facade
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
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
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
from aape_plugin.data.stats import FeatureStats
from aape_plugin.data.reader import AudioReaderOptions, create_audio_reader
from aape_plugin.eval.gather import gather_rows, in_clip_order
from aape_plugin.eval.metrics import MeanAveragePrecision, metric_name, score
from aape_plugin.eval.protocol import held_out_valid, per_class_subset
from aape_plugin.inference.loading import EncoderLoadError, load_encoder
from aape_plugin.models.classifier import AAPE_CLASSIFIER_FAMILY, AapeClassifierConfig, AudioClassifier
from aape_plugin.models.parallelism import unsync_batch_norm_on_cpu
from aape_plugin.nn.augment import mixup, random_resized_crop, spec_augment
from aape_plugin.recipes.checkpoint_budget import StateBudgets, configured_model, run_budgets
from aape_plugin.recipes.dataset_opener import open_dataset_section
from aape_plugin.recipes.feature_stats import RUN_STATS_FILE, resolve_feature_stats
from aape_plugin.recipes.layer_decay import ADAMW_LAYER_DECAY, AdamWLayerDecayConfig, register_layer_decay_optimizer
from aape_plugin.recipes.pretrain import validate_schedule
from aape_plugin.recipes.safe_checkpoints import register_safe_checkpoints
from aape_plugin.recipes.user_errors import register_user_errors, restore_errors_in_one_line
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

    eval_clip_seconds: float | None = None
    """Length validation and test clips are cut or padded to (from their start); unset:
    ``clip_seconds``. Training on shorter random crops than the clips and evaluating on whole
    clips is cheaper and loses little (the head averages over time)."""

    train_per_class: int | None = None
    """Low-label regime: train on at most this many clips per class, drawn with ``subset_seed``
    (listed in ``OUTPUT_DIR/train_clips.txt``); validation and test clips unchanged."""

    valid_per_class: int | None = None
    """Low-label selection: validate (which picks the checkpoint, and in a study the learning
    rate) on at most this many clips per class of the validation split, drawn with
    ``subset_seed`` (listed in ``OUTPUT_DIR/valid_clips.txt``), so that a run said to have 10
    labels per class is not chosen with hundreds. Test clips unchanged."""

    subset_seed: int = 0
    """Seed of the ``train_per_class`` and ``valid_per_class`` draws (the same seed gives the same
    clips to every model)."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        for name in ("train_per_class", "valid_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                result.add_error(f"`{name}` must be >= 1, but is {value}.")
        for name in ("clip_seconds", "eval_clip_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                result.add_error(f"`{name}` must be > 0, but is {value}.")
        return result


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
    if section.train_per_class is not None:
        if dataset.multi_label:
            raise AudioDataError(f"`dataset.train_per_class` needs a single-label task; {dataset.name} is multi-label.")
        train = [train[i] for i in per_class_subset([e.labels[0] for e in train], section.train_per_class, section.subset_seed)]
    if section.valid_per_class is not None:
        if dataset.multi_label:
            raise AudioDataError(f"`dataset.valid_per_class` needs a single-label task; {dataset.name} is multi-label.")
        valid = [valid[i] for i in per_class_subset([e.labels[0] for e in valid], section.valid_per_class, section.subset_seed)]
    return {"train": train, "valid": valid, "test": dataset.entries(section.test_split)}


FREE_ENCODER_FIELDS = frozenset({"encoder.drop_path", "encoder.num_frames"})
"""Encoder settings fine-tuning may change: regularisation and input length, not what the
weights compute."""


def config_differences(pretrained: object, current: object, prefix: str) -> dict[str, object]:
    """The pre-trained value of every (nested) dataclass field where ``pretrained`` differs from
    ``current``, by dotted path (:data:`FREE_ENCODER_FIELDS` aside)."""
    out: dict[str, object] = {}
    for item in fields(pretrained):  # type: ignore[arg-type]
        a, b = getattr(pretrained, item.name), getattr(current, item.name)
        path = f"{prefix}.{item.name}"
        if path in FREE_ENCODER_FIELDS:
            continue
        if is_dataclass(a) and is_dataclass(b):
            out.update(config_differences(a, b, path))
        elif a != b:
            out[path] = a
    return out


def override_argument(path: str, value: object) -> str:
    """``--config`` item that sets ``model.config_overrides.<path>`` to ``value`` (YAML), one
    key at a time: a whole ``config_overrides`` mapping would replace the preset's (its head's
    class count with it)."""
    import yaml

    plain = list(value) if isinstance(value, tuple) else value
    text = yaml.safe_dump(plain, default_flow_style=True, width=10_000).strip()
    return f"model.config_overrides.{path}={text.removesuffix('...').strip()}"


class FinetuneTask(Task):
    """fairseq2's trainer, then one test pass with the best validation checkpoint.

    fairseq2's trainer destroys the process groups when it returns (``Trainer.run`` closes its
    gangs); the test pass gathers across ranks, so closing the root gang waits until this task
    closes (fairseq2's task runner closes it last, also after an error).
    """

    def __init__(self, trainer: Task, finish: "TestOnBest", gangs: Gangs) -> None:
        self._trainer, self._finish, self._gangs = trainer, finish, gangs

    @property
    def step_nr(self) -> int:
        return self._trainer.step_nr

    def request_stop(self) -> None:
        self._trainer.request_stop()

    def close(self) -> None:
        self._trainer.close()
        root = self._gangs.root
        if "close" in vars(root):  # the held-back close
            del root.close
            root.close()

    def run(self) -> None:
        self._gangs.root.close = lambda: None  # type: ignore[method-assign]
        with restore_errors_in_one_line():
            self._trainer.run()
        self._finish()


@dataclass
class TestOnBest:
    """After training: the best checkpoint by validation score (as fairseq2's checkpoint manager
    ranks its steps, wherever ``--checkpoint-dir`` put them) is loaded into the trained model on
    the training device; every rank scores its shard of the test split, the logits are gathered
    and rank 0 writes the result."""

    output_dir: Path
    checkpoints: CheckpointManager
    dp_model: Module
    test_reader: Callable[[], DataReader[AudioBatch]]
    input_shape: tuple[int, int, int]
    num_classes: int
    multi_label: bool
    gangs: Gangs
    amp_dtype: torch.dtype | None
    task_name: str
    pretrained: str
    test_clips: list[str]
    """Paths of the test clips, in the reader's row order (the rows of ``results.json``'s
    predictions, for paired comparisons between models)."""

    def __call__(self) -> None:
        manager = self.checkpoints
        manager.maybe_complete_save_operation(blocking=True)
        steps = manager.get_step_numbers()
        if not steps:
            raise AudioDataError("No checkpoint to test: training saved none (set `regime.checkpoint_every_n_steps`).")
        ranked = manager.load_scores()  # (score, step), best first; higher is better
        best = ranked[0][1] if ranked else steps[-1]
        manager.load_model_state(best, get_data_parallel_facade(self.dp_model))
        device = self.gangs.device
        why = f"the best validation score among steps {steps}" if ranked else "the last one; no validation scores"
        log.info("Testing the checkpoint of step %d (%s) on %s with %d process(es).", best, why, device, self.gangs.dp.size)

        self.dp_model.eval()
        autocast = torch.autocast(device.type, dtype=self.amp_dtype) if self.amp_dtype not in (None, torch.float32) else nullcontext()
        # Empty first pieces give the shapes of an empty shard (fewer clips than ranks).
        logits = [torch.empty(0, self.num_classes, device=device)]
        labels = [torch.empty(0, self.num_classes, device=device) if self.multi_label else torch.empty(0, dtype=torch.int64, device=device)]
        indices = [torch.empty(0, dtype=torch.int64, device=device)]
        reader = self.test_reader()
        with torch.no_grad(), autocast:
            for group in reader:
                if not group:  # this rank's shard is done, others' are not: keep FSDP's collectives in step
                    self.dp_model(torch.zeros(1, *self.input_shape, device=device))
                for batch in group:
                    batch.to(device)
                    assert batch.labels is not None and batch.indices is not None
                    logits.append(self.dp_model(batch.features).float())
                    labels.append(batch.labels)
                    indices.append(batch.indices.to(device))
        gathered = gather_rows(self.gangs.dp, {"logits": torch.cat(logits), "labels": torch.cat(labels), "indices": torch.cat(indices)},
                               to="first")
        skipped = torch.tensor(reader.num_skipped, dtype=torch.int64, device=device)
        if self.gangs.dp.size > 1:
            self.gangs.dp.all_reduce(skipped, ReduceOperation.SUM)
        if gathered is None or self.gangs.root.rank != 0:
            return
        rows = in_clip_order(gathered)

        test_score = score(rows["logits"], rows["labels"], self.multi_label)
        metric = metric_name(self.multi_label)
        result = {"recipe": "aape_finetune", "task": self.task_name, "model": f"fine-tuned from {self.pretrained}", "metric": metric,
                  "summary": {"mean": test_score, "std": 0.0, "n": 1}, "best_step": best, "test_clips": len(rows["indices"]),
                  "valid_scores": {step: value for value, step in sorted(ranked, key=lambda r: r[1])},
                  "skipped_clips": {"test": int(skipped)}}
        if not self.multi_label:
            # Per-clip predictions: what paired bootstrap intervals between models are computed from.
            result["predictions"] = {"test": {"clips": [self.test_clips[int(i)] for i in rows["indices"]],
                                              "labels": rows["labels"].tolist(), "predicted": rows["logits"].argmax(dim=-1).tolist()}}
        (self.output_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (self.output_dir / "results.md").write_text(
            f"# Fine-tuning: {self.task_name}\n\n| task | model | {metric} | best step |\n|---|---|---|---|\n"
            f"| {self.task_name} | {result['model']} | {100 * test_score:.2f} | {best} |\n")
        log.info("Test %s with the best checkpoint (step %d): %.4f. Written to %s.", metric, best, test_score, self.output_dir / "results.md")


def finetune_budgets(resolver: DependencyResolver) -> StateBudgets:
    """The state-file budgets of a fine-tuning run, from its configuration."""
    config = RecipeContext(resolver).get_config_as(FinetuneConfig)
    model_config, model = configured_model(resolver, config.model)
    encoder = cast(AapeClassifierConfig, model_config).encoder
    section = config.dataset
    features = LogMelConfig(n_mels=encoder.num_mel_bins)
    frames = features.num_frames(int(round(section.clip_seconds * features.sample_rate)))
    return run_budgets(model, arch=config.model.arch or config.model.name, batch_size=section.batch_size, num_frames=frames,
                       num_mel_bins=encoder.num_mel_bins, num_prefetch=section.num_prefetch,
                       num_parallel_calls=section.num_parallel_calls, num_steps=config.regime.num_steps)


class FinetuneRecipe(Recipe):
    """Fine-tune an encoder with a classification head (layer-wise LR decay, SpecAugment, mixup, RRC)."""

    description = "Fine-tune a pre-trained encoder with a classification head; test scored once with the best validation checkpoint"

    presets = "aape_plugin.presets:finetune"

    def register(self, container: DependencyContainer) -> None:
        register_user_errors(container)
        register_safe_checkpoints(container, finetune_budgets)
        register_layer_decay_optimizer(container)
        container.collection.register_instance(MetricDescriptor, MetricDescriptor("map", "mAP", 201, format_as_float, higher_better=True))
        container.collection.register_instance(MetricDescriptor, MetricDescriptor("skipped_clips", "Skipped Clips", 836, format_as_int))

    def setup_model(self, context: RecipeContext, model: Module, newly_initialized: bool) -> Module:
        config = context.get_config_as(FinetuneConfig)
        if newly_initialized and config.pretrained.checkpoint is not None:
            classifier = cast(AudioClassifier, model)
            loaded = load_encoder(config.pretrained.checkpoint, weights=config.pretrained.weights, step=config.pretrained.step,
                                  arch=config.model.arch)
            differences = config_differences(loaded.config.encoder, classifier.config.encoder, "encoder")
            if differences:
                # Weights may fit while the computation differs (e.g. `stem.context`): refuse.
                pretrained_with = ", ".join(f"{path}={value!r}" for path, value in differences.items())
                arguments = " ".join(shlex.quote(override_argument(path, value)) for path, value in differences.items())
                raise EncoderLoadError(
                    f"The encoder of {config.pretrained.checkpoint} was pre-trained with {pretrained_with}; "
                    f"`model.arch` {config.model.arch!r} with this run's configuration differs. Fine-tune it with the "
                    f"same values: --config {arguments}"
                )
            try:
                classifier.encoder.load_state_dict(loaded.encoder.state_dict())
            except RuntimeError as ex:
                raise EncoderLoadError(
                    f"The encoder of {config.pretrained.checkpoint} does not fit `model.arch` {config.model.arch!r}: "
                    f"{str(ex).splitlines()[0]} Use the arch it was pre-trained with."
                ) from None
            log.info("Encoder initialised from %s.", loaded.description)
            self._pretrained_stats = loaded.stats  # read once, with the weights (create_task uses them)
        return model

    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(FinetuneConfig)
        section = config.dataset
        model = context.get_model_as(AudioClassifier)
        dp_model = context.get_data_parallel_model()
        if unsync_batch_norm_on_cpu(dp_model, context.gangs.device.type):
            log.warning("Training on CPU with %d processes: the head's batch normalisation uses each rank's own batch "
                        "(PyTorch synchronises batch statistics on GPUs only).", context.gangs.dp.size)

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

        # The statistics the encoder was pre-trained with: read in setup_model with its weights on
        # a fresh start, or the copy the run stored then (a resumed run loads no pre-trained file).
        stats = None
        run_stats = context.output_dir / RUN_STATS_FILE
        if config.pretrained.checkpoint is not None:
            stats = getattr(self, "_pretrained_stats", None)
            if stats is None and run_stats.is_file():
                stats = FeatureStats.load(run_stats)
            elif stats is not None and context.gangs.root.rank == 0:
                context.output_dir.mkdir(parents=True, exist_ok=True)
                stats.save(run_stats)
        stats = stats or resolve_feature_stats(
            stats_file=section.stats_file, dataset=dataset, split=section.train_split, output_dir=context.output_dir,
            gangs=context.gangs, features=features, max_clips=section.stats_max_clips)

        frames = features.num_frames(int(round(section.clip_seconds * features.sample_rate)))
        eval_frames = features.num_frames(int(round((section.eval_clip_seconds or section.clip_seconds) * features.sample_rate)))
        per_step = section.batch_size * context.gangs.dp.size
        if len(parts["train"]) < per_step:
            raise AudioDataError(
                f"{dataset.name} has {len(parts['train'])} training clips{' after dataset.train_per_class' if section.train_per_class else ''}, "
                f"fewer than one batch ({section.batch_size} clips x {context.gangs.dp.size} process(es)); training drops incomplete "
                f"batches, so lower dataset.batch_size.")
        if section.train_per_class is not None and context.gangs.root.rank == 0:
            context.output_dir.mkdir(parents=True, exist_ok=True)
            (context.output_dir / "train_clips.txt").write_text("".join(f"{e.path}\n" for e in parts["train"]))
            log.info("Low-label regime: %d training clips (at most %d per class, subset seed %d), listed in %s.",
                     len(parts["train"]), section.train_per_class, section.subset_seed, context.output_dir / "train_clips.txt")
        if section.valid_per_class is not None and context.gangs.root.rank == 0:
            context.output_dir.mkdir(parents=True, exist_ok=True)
            (context.output_dir / "valid_clips.txt").write_text("".join(f"{e.path}\n" for e in parts["valid"]))
            log.info("Low-label selection: validating on %d clips (at most %d per class, subset seed %d), listed in %s.",
                     len(parts["valid"]), section.valid_per_class, section.subset_seed, context.output_dir / "valid_clips.txt")

        def reader(split: str, train: bool):
            options = AudioReaderOptions(
                batch_size=section.batch_size, num_frames=frames if train else eval_frames, crop="random" if train else "start", shuffle=train,
                num_parallel_calls=section.num_parallel_calls, num_prefetch=section.num_prefetch, seed=config.common.seed,
                max_bad_fraction=section.max_bad_fraction, sync_mode="until_first" if train else "until_last",
                num_accumulate=config.trainer.grad_accumulation.num_batches if train else 1, drop_remainder=train)
            return create_audio_reader(parts[split], context.gangs, features, stats, options,
                                       label_names=dataset.label_names, multi_label=dataset.multi_label, name=f"{dataset.name}/{split}")

        unit = FinetuneUnit(dp_model, config.augment, num_classes, dataset.multi_label)
        valid_unit = FinetuneEvalUnit(dp_model, num_classes, dataset.multi_label)
        trainer = context.create_trainer(unit, reader("train", True), [valid_unit], [reader("valid", False)])

        precision = config.trainer.mixed_precision
        finish = TestOnBest(context.output_dir, context.get_checkpoint_manager(), dp_model, lambda: reader("test", False),
                            (1, features.n_mels, eval_frames), num_classes, dataset.multi_label, context.gangs,
                            precision.dtype if precision.mode != "off" else None, dataset.name,
                            config.pretrained.checkpoint or "random initialisation", [str(e.path) for e in parts["test"]])
        return FinetuneTask(trainer, finish, context.gangs)

    @property
    def config_kls(self) -> type[object]:
        return FinetuneConfig
