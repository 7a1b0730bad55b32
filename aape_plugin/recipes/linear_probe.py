"""``aape_linear_probe``: the EVAR linear-evaluation protocol on frozen embeddings.

    fairseq2 recipe run aape_linear_probe OUT --preset esc50 --config dataset.root=/data/esc50 model.checkpoint=RUN
    fairseq2 recipe run aape_linear_probe OUT --preset demo_pitch --config model.checkpoint=RUN

Per clip, a crop of ``dataset.clip_seconds`` (random for train/valid splits, from the start for
test and fold splits) is embedded once and cached; a StandardScaler is fitted on the training
embeddings; one linear layer is trained with Adam and early stopping on the validation split
(held out from training when the task has none); the test score of the best validation epoch
is reported, for each seed and fold. Results: ``OUT/results.json`` and ``OUT/results.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from fairseq2.recipe import Recipe, RecipeContext
from fairseq2.recipe.config import CommonSection, GangSection
from fairseq2.runtime.dependency import DependencyContainer
from fairseq2.task import Task
from fairseq2.utils.validation import ValidationResult

from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.stats import FeatureStats
from aape_plugin.eval.embedding_cache import EmbeddingCache, weights_digest
from aape_plugin.eval.linear_eval import linear_evaluation, write_results
from aape_plugin.eval.probe import ProbeSettings
from aape_plugin.eval.protocol import limit_train, plan_rounds
from aape_plugin.inference.embedder import Embedder, EncoderEmbedder, LogMelEmbedder
from aape_plugin.inference.modulation_spectrum import ModulationSpectrumEmbedder
from aape_plugin.inference.loading import EncoderLoadError, load_encoder, new_encoder
from aape_plugin.recipes.dataset_opener import open_dataset_section
from aape_plugin.recipes.feature_stats import resolve_feature_stats
from aape_plugin.recipes.user_errors import register_user_errors
from aape_plugin.recipes.sections import AudioDatasetSection
from aape_plugin.recipes.simple_task import SimpleTask

log = logging.getLogger("aape_plugin.recipes")


@dataclass(kw_only=True)
class EncoderSourceSection:
    """The representation evaluated."""

    kind: Literal["aape", "logmel", "modspec"] = "aape"
    """``aape``: an encoder of the aape family; ``logmel``: the input-feature baseline (per-bin
    mean and std of the log-mel), which shows what the representation adds; ``modspec``: the
    modulation-spectrum baseline (per mel band, the log power of its envelope in half-octave
    bins above the patch rate's Nyquist, :mod:`aape_plugin.inference.modulation_spectrum`),
    which shows how far a textbook feature gets on rate tasks."""

    checkpoint: str | None = None
    """A pre-training run folder (or its checkpoints / step_N folder), a .pt/.safetensors file
    (give ``arch``), or an asset card name. Unset: a randomly initialised ``arch``."""

    arch: str | None = None
    """Architecture of a checkpoint file, or of the random encoder when no checkpoint is set."""

    step: int | None = None
    """Checkpoint step of a run (default: the last one)."""

    weights: Literal["teacher", "student"] = "teacher"
    """Which encoder of an SSL checkpoint."""

    with_cls: bool = False
    """Append the mean CLS token to the clip embedding."""

    init_seed: int = 0
    """Seed of a random encoder's initialisation."""

    stats_file: Path | None = None
    """Log-mel statistics to normalise with (default: the pre-training run's, else the task's)."""

    device: str | None = None
    """Device for embedding (default: the recipe's, i.e. each rank's own: ``FAIRSEQ2_DEVICE``,
    else the GPU of ``LOCAL_RANK``, else the CPU)."""

    num_frames: int | None = None
    """Encoder window in frames (default: the encoder's training input length)."""


@dataclass(kw_only=True)
class ProbeDatasetSection(AudioDatasetSection):
    family: str | None = "audio_manifest"

    clip_seconds: float = 5.0
    """EVAR's per-task unit: each clip is cropped (or padded) to this length."""

    folds: list[str] | None = None
    """Split names used as folds for leave-one-fold-out (default: splits named fold1, 2, ...)."""

    valid_fraction: float = 0.1
    """Share of training clips held out for early stopping when the task has no valid split."""

    batch_size: int = 32
    """Clips embedded per batch."""

    train_per_class: int | None = None
    """Low-label regime: train the probe on at most this many clips per class (drawn with
    ``subset_seed``; validation and test clips unchanged). Unset: every training clip."""

    subset_seed: int = 0
    """Seed of the ``train_per_class`` draw (the same seed gives the same clips to every model)."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.train_per_class is not None and self.train_per_class < 1:
            result.add_error(f"`train_per_class` must be >= 1, but is {self.train_per_class}.")
        return result


@dataclass(kw_only=True)
class LinearProbeConfig:
    model: EncoderSourceSection = field(default_factory=EncoderSourceSection)

    dataset: ProbeDatasetSection = field(default_factory=lambda: ProbeDatasetSection(name="demo_pitch", family=None))
    """The task (an asset card ``name``, or ``family`` + ``root``; presets set it)."""

    probe: ProbeSettings = field(default_factory=ProbeSettings)
    """The linear-evaluation protocol."""

    cache_dir: Path | None = None
    """Where embeddings are cached (default: OUTPUT_DIR/embeddings); share it between runs of
    the same model to reuse them."""

    gang: GangSection = field(default_factory=GangSection)

    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))


def build_embedder(source: EncoderSourceSection, task_stats: Callable[[], FeatureStats],
                   device: torch.device) -> tuple[Embedder, dict[str, Any]]:
    """The embedder of ``source`` and a description of it (also the cache key's model part).

    :param task_stats: the task's own log-mel statistics, asked for only when neither
        ``source.stats_file`` nor the encoder says which statistics to use (computing them reads
        up to thousands of clips)."""
    if source.kind == "logmel":
        stats = FeatureStats.load(source.stats_file) if source.stats_file else task_stats()
        return LogMelEmbedder(stats), {"kind": "logmel", "stats": [stats.mean, stats.std]}
    if source.kind == "modspec":
        stats = FeatureStats.load(source.stats_file) if source.stats_file else task_stats()
        return ModulationSpectrumEmbedder(stats), {"kind": "modspec", "stats": [stats.mean, stats.std]}

    if source.checkpoint is not None:
        loaded = load_encoder(source.checkpoint, weights=source.weights, step=source.step, arch=source.arch, device=device)
    elif source.arch is not None:
        loaded = new_encoder(source.arch, seed=source.init_seed, device=device)
    else:
        raise EncoderLoadError("Set `model.checkpoint` (a run, file or card), or `model.arch` for a random encoder, or `model.kind=logmel`.")

    if source.stats_file:
        stats = FeatureStats.load(source.stats_file)
        log.info("Log-mel statistics: mean %.4f, std %.4f (model.stats_file %s).", stats.mean, stats.std, source.stats_file)
    elif loaded.stats is not None:
        stats = loaded.stats
        log.info("Log-mel statistics: mean %.4f, std %.4f (the encoder's own, from %s).", stats.mean, stats.std, loaded.description)
    else:
        stats = task_stats()
    num_frames = source.num_frames or loaded.config.encoder.num_frames
    embedder = EncoderEmbedder(loaded.encoder, stats, num_frames=num_frames, with_cls=source.with_cls, device=device)
    # The weights' hash, not the file's name or date: a rewritten checkpoint is embedded again.
    return embedder, {"kind": "aape", "source": loaded.description, "weights": weights_digest(loaded.encoder), "stats": [stats.mean, stats.std],
                      "with_cls": source.with_cls, "num_frames": num_frames}


class LinearProbeTask(SimpleTask):
    def __init__(self, context: RecipeContext, config: LinearProbeConfig) -> None:
        super().__init__()
        self._context = context
        self._config = config

    def run(self) -> None:
        # fairseq2 runs recipes without a trainable `model` section under inference mode;
        # the probe heads train, so autograd is turned back on here.
        with torch.inference_mode(False), torch.enable_grad():
            self._run()

    def _run(self) -> None:
        config, context = self._config, self._context
        out = context.output_dir
        section = config.dataset
        device = torch.device(config.model.device) if config.model.device else context.device

        dataset = open_dataset_section(context.resolver, section)

        labels_of = {s: [e.labels if dataset.multi_label else e.labels[0] for e in dataset.entries(s)] for s in dataset.splits}
        rounds = plan_rounds(dataset.splits, labels_of, folds=section.folds, valid_fraction=section.valid_fraction, seed=config.common.seed)
        if section.train_per_class is not None:
            rounds = limit_train(rounds, labels_of, section.train_per_class, section.subset_seed)

        train_splits = {p.split for r in rounds for p in (*r.train, *r.valid)}

        def task_stats() -> FeatureStats:
            return resolve_feature_stats(
                stats_file=section.stats_file, dataset=dataset, split=sorted(train_splits)[0], output_dir=out,
                gangs=context.gangs, features=LogMelConfig(), max_clips=section.stats_max_clips,
            )

        # The task's statistics are resolved (and computed, when it has none) only for an
        # embedder that uses them: an encoder normalises with the statistics it was trained with.
        embedder, model_key = build_embedder(config.model, task_stats, device)
        log.info("Evaluating %s on %s (%d round(s) x %d seed(s)).", model_key.get("source", model_key["kind"]), dataset.name, len(rounds), len(config.probe.run_seeds()))

        payload = linear_evaluation(
            dataset, embedder, model_key, rounds, context.gangs,
            clip_seconds=section.clip_seconds, batch_size=section.batch_size,
            num_parallel_calls=section.num_parallel_calls, num_prefetch=section.num_prefetch,
            max_bad_fraction=section.max_bad_fraction, seed=config.common.seed,
            settings=config.probe, cache=EmbeddingCache(config.cache_dir or out / "embeddings"), should_stop=lambda: self._stop_requested,
        )
        if payload is None:  # stopped, or a rank other than 0 (it helped to embed)
            return
        self._step_nr = len(payload["runs"])
        write_results(out, payload)


class LinearProbeRecipe(Recipe):
    """Linear probe (EVAR protocol) of a frozen encoder or the log-mel baseline, one preset per task."""

    description = "Linear probe (EVAR protocol) of a frozen encoder or the log-mel baseline; one preset per task"

    presets = "aape_plugin.presets:eval"

    def register(self, container: DependencyContainer) -> None:
        register_user_errors(container)

    def create_task(self, context: RecipeContext) -> Task:
        return LinearProbeTask(context, context.get_config_as(LinearProbeConfig))

    @property
    def config_kls(self) -> type[object]:
        return LinearProbeConfig
