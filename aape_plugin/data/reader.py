"""Readers of clip lists on fairseq2's data pipeline: shuffled, sharded by data-parallel rank,
decoded in parallel, batched, prefetched, resumable, and honest about unreadable clips."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from fairseq2.data.data_pipeline import read_sequence
from fairseq2.datasets import DataPipelineReader, DataReader, SyncMode
from fairseq2.gang import Gangs
from typing_extensions import Self

from aape_plugin.data.batch import AudioBatch
from aape_plugin.data.clip_loader import ClipLoader, Crop
from aape_plugin.data.clip_report import report_unreadable
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.stats import FeatureStats


@dataclass(kw_only=True)
class AudioReaderOptions:
    """How a reader batches and checks clips."""

    batch_size: int = 32
    """Clips per batch (per data-parallel rank)."""

    num_frames: int = 608
    """Crop / pad target in log-mel frames (the model's input length)."""

    crop: Crop = "random"
    """``random`` (training), ``centre`` or ``start`` (evaluation: the middle or the first
    ``num_frames``), or ``none`` (full clips, padded to the longest of the batch)."""

    shuffle: bool = True
    """Shuffle the clips (every epoch differently)."""

    shuffle_window: int = 0
    """Shuffle buffer in clips; 0 shuffles the whole list."""

    num_parallel_calls: int = 4
    """Clips decoded in parallel."""

    num_prefetch: int = 4
    """Batches prepared ahead."""

    drop_remainder: bool = False
    """Drop the last, smaller batch."""

    max_num_batches: int | None = None
    """Stop after this many batches per epoch."""

    max_bad_fraction: float = 0.01
    """Fail when more than this fraction of the clips read so far could not be decoded."""

    min_clips_before_failing: int = 50
    """Do not judge the fraction before this many clips were read."""

    seed: int = 2
    """Seed of shuffling and random crops (the same on every rank)."""

    sync_mode: Literal["until_first", "until_last"] = "until_first"
    """Ranks stop at the first rank's end of data (training) or the last one's (evaluation)."""

    num_accumulate: int = 1
    """Batches per training step (gradient accumulation)."""

    def validate(self) -> None:
        if self.batch_size < 1 or self.num_frames < 1:
            raise ValueError(f"`batch_size` and `num_frames` must be >= 1, but are {self.batch_size} and {self.num_frames}.")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"`max_bad_fraction` must be in [0, 1], but is {self.max_bad_fraction}.")


class TooManyBadClipsError(AudioDataError):
    """More clips than allowed could not be read; the message summarises which."""


@dataclass
class _Tally:
    """Counters shared with the pipeline (updated from its thread, read by the reader)."""

    seen: int = 0
    bad: int = 0
    pending: int = 0
    examples: list[str] | None = None
    skipped: dict[str, str] | None = None
    """Every clip skipped so far (path -> reason)."""


class AudioReader(DataReader[AudioBatch]):
    """A :class:`DataPipelineReader` plus the bad-clip accounting and the epoch counter that
    makes random crops reproducible on resume."""

    def __init__(self, inner: DataPipelineReader[dict[str, Any]], loader: ClipLoader, tally: _Tally, options: AudioReaderOptions, name: str) -> None:
        self._inner = inner
        self._loader = loader
        self._tally = tally
        self._options = options
        self._name = name

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> list[AudioBatch]:
        batches = [AudioBatch(**fields) for fields in next(self._inner)]
        self._check()
        return batches

    def _check(self) -> None:
        t = self._tally
        o = self._options
        if t.bad and t.seen >= o.min_clips_before_failing and t.bad / t.seen > o.max_bad_fraction:
            shown = "; ".join((t.examples or [])[:5])
            raise TooManyBadClipsError(
                f"{self._name}: {t.bad} of {t.seen} clips read so far ({100 * t.bad / t.seen:.1f}%) could not be "
                f"decoded, more than `max_bad_fraction` = {o.max_bad_fraction}. First ones: {shown}. Fix or remove "
                f"them from the manifest, or raise the limit (e.g. --config dataset.max_bad_fraction=0.05)."
            )

    @property
    def num_skipped(self) -> int:
        return self._tally.bad

    @property
    def num_read(self) -> int:
        return self._tally.seen

    @property
    def skipped(self) -> dict[str, str]:
        """Path -> reason of every distinct clip skipped so far."""
        return dict(self._tally.skipped or {})

    def reset(self) -> None:
        self._loader.epoch += 1
        self._inner.reset()

    def state_dict(self) -> dict[str, object]:
        return {"pipeline": self._inner.state_dict(), "epoch": self._loader.epoch,
                "seen": self._tally.seen, "bad": self._tally.bad}

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self._inner.load_state_dict(state_dict["pipeline"])  # type: ignore[arg-type]
        self._loader.epoch = int(state_dict["epoch"])  # type: ignore[call-overload]
        self._tally.seen = int(state_dict["seen"])  # type: ignore[call-overload]
        self._tally.bad = int(state_dict["bad"])  # type: ignore[call-overload]

    @property
    def num_accumulate(self) -> int:
        return self._inner.num_accumulate


def encode_labels(entries: Sequence[ClipEntry], label_names: list[str] | None, multi_label: bool) -> list[Any]:
    """Class index (single-label) or list of indices (multi-label) per entry; ``None`` when the
    data set is unlabelled. Unknown names are an :class:`AudioDataError` naming the row."""
    if label_names is None:
        return [None] * len(entries)

    index = {name: i for i, name in enumerate(label_names)}
    out: list[Any] = []
    for e in entries:
        unknown = [n for n in e.labels if n not in index]
        if unknown:
            raise AudioDataError(f"{e.where}: unknown label(s) {unknown}; known labels: {label_names[:20]}{'...' if len(label_names) > 20 else ''}.")
        if not multi_label and len(e.labels) != 1:
            raise AudioDataError(f"{e.where}: a single-label task needs exactly one label per clip, found {list(e.labels)}.")
        out.append([index[n] for n in e.labels] if multi_label else index[e.labels[0]])
    return out


def create_audio_reader(
    entries: Sequence[ClipEntry],
    gangs: Gangs,
    features: LogMelConfig,
    stats: FeatureStats,
    options: AudioReaderOptions,
    *,
    label_names: list[str] | None = None,
    multi_label: bool = False,
    name: str = "dataset",
) -> AudioReader:
    """The reader of ``entries``: every rank shuffles the same way, then takes its shard."""
    options.validate()

    if not entries:
        raise AudioDataError(f"{name}: the split has no clips.")

    labels = encode_labels(entries, label_names, multi_label)
    num_classes = len(label_names) if label_names is not None else 0

    # The loader fills these dicts in place (the pipeline hands each worker its own copy).
    examples = [{"index": i, "path": str(e.path), "label": lab} for i, (e, lab) in enumerate(zip(entries, labels))]

    loader = ClipLoader(features, stats, num_frames=options.num_frames, crop=options.crop, seed=options.seed)

    tally = _Tally(examples=[], skipped={})
    lock = threading.Lock()

    def keep(example: dict[str, Any]) -> bool:
        with lock:
            tally.seen += 1
            if example["ok"]:
                return True
            tally.bad += 1
            tally.pending += 1
            if tally.examples is not None and len(tally.examples) < 20:
                tally.examples.append(f"{example['path']} ({example['reason']})")
            if tally.skipped is not None:
                tally.skipped[example["path"]] = example["reason"]
        report_unreadable(example["path"], example["reason"])
        return False

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        """The fields of an :class:`AudioBatch`, as a plain dict: batches waiting in the
        pipeline's buffers are part of the reader's checkpoint state, and a state of dicts and
        tensors is what a resume can load without trusting the file (no class to rebuild)."""
        frames = [ex["features"].size(-1) for ex in batch]
        longest = max(frames)
        if min(frames) == longest:  # cropped clips: nothing to pad
            feats = torch.stack([ex["features"] for ex in batch])
        else:
            feats = torch.stack([torch.nn.functional.pad(ex["features"], (0, longest - ex["features"].size(-1))) for ex in batch])
        label_tensor = None
        if label_names is not None:
            if multi_label:
                label_tensor = torch.zeros(len(batch), num_classes)
                for row, ex in enumerate(batch):
                    label_tensor[row, ex["label"]] = 1.0
            else:
                label_tensor = torch.tensor([ex["label"] for ex in batch], dtype=torch.int64)
        with lock:
            skipped, tally.pending = tally.pending, 0
        return {
            "features": feats,
            "num_frames": torch.tensor([ex["num_frames"] for ex in batch]),
            "paths": [ex["path"] for ex in batch],
            "labels": label_tensor,
            "indices": torch.tensor([ex["index"] for ex in batch], dtype=torch.int64),
            "num_skipped": skipped,
            "extras": {"num_samples": torch.tensor([ex["num_samples"] for ex in batch], dtype=torch.int64),
                       "source_rates": torch.tensor([ex["source_rate"] for ex in batch], dtype=torch.int64)},
        }

    builder = read_sequence(examples)

    if options.shuffle:
        builder.shuffle(options.shuffle_window, seed=options.seed)

    if gangs.dp.size > 1:
        builder.shard(gangs.dp.rank, gangs.dp.size, allow_uneven=True)

    # Two stages in two threads (a prefetch queue between them is a thread boundary in
    # fairseq2's pipeline): decoding (libsndfile) and the front end (torch) overlap, clip after
    # clip, each with `num_parallel_calls` calls at a time.
    builder.map(loader.decode, num_parallel_calls=options.num_parallel_calls)
    builder.prefetch(2 * options.num_parallel_calls)
    builder.map(loader.features, num_parallel_calls=options.num_parallel_calls)
    builder.filter(keep)
    builder.bucket(options.batch_size, drop_remainder=options.drop_remainder)
    builder.map(collate)

    if options.max_num_batches is not None:
        builder.take(options.max_num_batches)

    builder.prefetch(options.num_prefetch)

    sync_mode = SyncMode.UNTIL_FIRST if options.sync_mode == "until_first" else SyncMode.UNTIL_LAST

    inner: DataPipelineReader[dict[str, Any]] = DataPipelineReader(
        builder.and_return(),
        gangs,
        num_accumulate=options.num_accumulate,
        drop_remainder=options.drop_remainder,
        sync=True,
        sync_mode=sync_mode,
    )

    return AudioReader(inner, loader, tally, options, name)
