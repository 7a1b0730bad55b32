"""The pre-training step: loss, EMA update and metrics. fairseq2's trainer does the rest."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import MutableMapping

import torch
from fairseq2.metrics import Mean, MetricBag, Sum
from fairseq2.trainer import TrainUnit
from fairseq2.evaluator import EvalUnit
from torch import Tensor
from torch.nn import Module

from aape_plugin.data.batch import AudioBatch
from aape_plugin.losses import AapeCriterion, AapeLoss
from aape_plugin.models.ema import EmaConfig, ema_decay
from aape_plugin.models.health import HEALTH_METRICS, representation_health
from aape_plugin.models.ssl_model import AapeSslModel, SslOutput

log = logging.getLogger("aape_plugin.recipes")

QUANTILES = (0.1, 0.5, 0.9)

COLLAPSE_RANK = 1.5
"""Effective rank of the teacher's clip embeddings under which the run is warned of collapse."""

COLLAPSE_SPREAD = 0.05
"""Spread of the targets across clips (they have unit scale) under which the same warning is given."""

LOSS_METRICS = ("loss", "patch_loss", "global_loss", "contrastive_loss")


def stem_quantile_names() -> list[str]:
    return [f"stem_{what}_q{int(q * 100):02d}" for what in ("decay", "frequency_hz") for q in QUANTILES]


MAX_KERNEL_METRICS = 16
"""Per-kernel pole metrics are recorded for up to this many kernels per subband."""


def stem_kernel_names(num_kernels: int) -> list[str]:
    """``stem_k<n>_frequency_hz`` and ``stem_k<n>_decay``: the median pole of kernel ``n`` over
    the batch's patches and subbands, so that each kernel's trajectory along training is in
    TensorBoard (where the quantiles over all kernels hide which kernel moved)."""
    return [f"stem_k{n}_{what}" for n in range(min(num_kernels, MAX_KERNEL_METRICS)) for what in ("frequency_hz", "decay")]


ALIAS_LOSS_METRIC = "alias_loss"
"""Recorded only for models that predict aliasing features (``targets.alias_features``)."""


def loss_metric_names(model: AapeSslModel) -> tuple[str, ...]:
    return (*LOSS_METRICS, ALIAS_LOSS_METRIC) if model.alias_head is not None else LOSS_METRICS


def record_losses(bag: MetricBag, loss: AapeLoss, weight: int) -> None:
    for name, value in zip(LOSS_METRICS, (loss.total, loss.patch, loss.global_, loss.contrastive)):
        bag.get(name, Mean).update(value.detach().float(), weight=weight)
    if loss.alias is not None:
        bag.get(ALIAS_LOSS_METRIC, Mean).update(loss.alias.detach().float(), weight=weight)


def record_stem(bag: MetricBag, output: SslOutput, frames_per_second: float) -> None:
    """Quantiles of the estimated SBLU decays (1/frame) and frequencies (Hz)."""
    if output.decay is None or output.frequency is None:
        return
    q = torch.tensor(QUANTILES)
    decays = output.decay.detach().float().cpu()
    frequencies = output.frequency.detach().float().cpu() * frames_per_second / (2 * math.pi)
    decay = torch.quantile(decays.flatten(), q)
    freq_hz = torch.quantile(frequencies.flatten(), q)
    for name, value in zip(stem_quantile_names(), [*decay, *freq_hz]):
        bag.get(name, Mean).update(value)
    num_kernels = decays.size(-1)
    kernel_freq = frequencies.reshape(-1, num_kernels).median(dim=0).values
    kernel_decay = decays.reshape(-1, num_kernels).median(dim=0).values
    for n in range(min(num_kernels, MAX_KERNEL_METRICS)):
        bag.get(f"stem_k{n}_frequency_hz", Mean).update(kernel_freq[n])
        bag.get(f"stem_k{n}_decay", Mean).update(kernel_decay[n])


def record_health(bag: MetricBag, output: SslOutput, num_clones: int, weight: int) -> None:
    for name, value in representation_health(output, num_clones).items():
        bag.get(name, Mean).update(value.float(), weight=weight)


def warn_on_collapse(values: MutableMapping[str, object]) -> None:
    """A warning in the log when the published statistics say the representation collapses."""
    rank, spread = values.get("teacher_rank"), values.get("target_clip_spread")
    problems = []
    if isinstance(rank, (int, float, Tensor)) and float(rank) < COLLAPSE_RANK:
        problems.append(f"the teacher's clip embeddings have effective rank {float(rank):.2f}")
    if isinstance(spread, (int, float, Tensor)) and float(spread) < COLLAPSE_SPREAD:
        problems.append(f"the targets barely differ between clips (spread {float(spread):.3f})")
    if problems:
        log.warning("Representation collapse: %s. Check the learning rate, the EMA decay and the target settings.", "; ".join(problems))


def mask_seeds(seed: int, step_nr: int, batch: AudioBatch) -> list[int] | None:
    """One seed per clip from (run seed, step, clip index): masks that do not depend on how
    clips are spread over processes, and that a resumed run reproduces."""
    if batch.indices is None:
        return None
    return [((seed * 1_000_003 + step_nr) * 1_000_003 + int(i)) % (2**63) for i in batch.indices.tolist()]


class AapePretrainUnit(TrainUnit[AudioBatch]):
    def __init__(
        self,
        dp_model: Module,
        model: AapeSslModel,
        criterion: AapeCriterion,
        ema: EmaConfig,
        frames_per_second: float,
        seed: int = 2,
        *,
        publish_every: int | None = None,
        num_steps: int | None = None,
    ) -> None:
        """
        :param publish_every: ``regime.publish_metrics_every_n_steps``: the stem quantiles and
            the representation-health statistics are computed on the steps whose metrics are
            published (and the last step) only. They read values back to the host (quantiles,
            the SVD of the effective rank), which would stall a GPU on every step.
        :param num_steps: ``regime.num_steps``.
        """
        self._dp_model = dp_model
        self._model = model
        self._criterion = criterion
        self._ema = ema
        self._fps = frames_per_second
        self._seed = seed
        self._step_nr = 0
        self._last_publish = time.monotonic()
        self._publish_every = publish_every
        self._num_steps = num_steps

    def publishes(self, step_nr: int) -> bool:
        """Whether fairseq2's trainer publishes the metrics of this step."""
        every = self._publish_every
        return (every is not None and step_nr % every == 0) or step_nr == self._num_steps

    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        # The plain stem has no poles: no empty stem metrics (torcheval warns on every read).
        config = self._model.config.encoder.stem
        stem = [*stem_quantile_names(), *stem_kernel_names(config.num_kernels)] if config.kind == "aape" else []
        for name in (*loss_metric_names(self._model), "ema_decay", *stem, *HEALTH_METRICS):
            metric_bag.add(name, Mean())
        for name in ("num_examples", "total_num_examples", "skipped_clips", "total_skipped_clips"):
            metric_bag.add(name, Sum())

    def set_step_nr(self, step_nr: int) -> None:
        self._step_nr = step_nr

    def process_batch(self, batch: AudioBatch, metric_bag: MetricBag) -> tuple[Tensor, int | None]:
        output = self._dp_model(batch.features, mask_seeds(self._seed, self._step_nr, batch))

        loss = self._criterion(output)

        n = batch.batch_size
        record_losses(metric_bag, loss, n)
        if self.publishes(self._step_nr):
            record_stem(metric_bag, output, self._fps)
            record_health(metric_bag, output, self._model.config.masking.num_clones, n)
        metric_bag.get("ema_decay", Mean).update(torch.tensor(ema_decay(self._ema, self._step_nr)))
        for name in ("num_examples", "total_num_examples"):
            metric_bag.get(name, Sum).update(n)
        for name in ("skipped_clips", "total_skipped_clips"):
            metric_bag.get(name, Sum).update(batch.num_skipped)

        return loss.total, None

    def update_teacher(self) -> None:
        """Called right after each optimiser step (a post-step hook)."""
        self._model.update_teacher(ema_decay(self._ema, self._step_nr))

    def process_metric_values(self, values: MutableMapping[str, object]) -> None:
        now = time.monotonic()
        elapsed, self._last_publish = now - self._last_publish, now
        examples = values.get("num_examples")
        if isinstance(examples, (int, float, Tensor)) and elapsed > 0:
            values["clips_per_second"] = float(examples) / elapsed
        warn_on_collapse(values)


class AapePretrainEvalUnit(EvalUnit[AudioBatch]):
    """SSL losses and representation health on held-out clips (new random masks each time)."""

    def __init__(self, dp_model: Module, criterion: AapeCriterion, num_clones: int, loss_metrics: tuple[str, ...] = LOSS_METRICS) -> None:
        """:param loss_metrics: :func:`loss_metric_names` of the model."""
        self._dp_model = dp_model
        self._criterion = criterion
        self._num_clones = num_clones
        self._loss_metrics = loss_metrics

    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        for name in (*self._loss_metrics, *HEALTH_METRICS):
            metric_bag.add(name, Mean())
        metric_bag.add("num_examples", Sum())

    def process_batch(self, batch: AudioBatch, metric_bag: MetricBag) -> None:
        output = self._dp_model(batch.features)
        loss = self._criterion(output)
        record_losses(metric_bag, loss, batch.batch_size)
        record_health(metric_bag, output, self._num_clones, batch.batch_size)
        metric_bag.get("num_examples", Sum).update(batch.batch_size)
