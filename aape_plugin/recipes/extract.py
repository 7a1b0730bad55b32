"""``aape_extract``: clip and frame embeddings of a folder of audio or of a data set's splits.

    fairseq2 recipe run aape_extract OUT --config input_dir=/my/audio model.checkpoint=RUN
    fairseq2 recipe run aape_extract OUT --config dataset.name=demo_pitch model.checkpoint=aape_tiny_demo

Writes, per split (``files`` for a folder), ``OUT/<split>.safetensors``: the embeddings of the
HEAR API on the same grid (:mod:`aape_plugin.inference.timestamps`; timestamps in
milliseconds, every ``timestamp_hop_ms``), with the clip paths, the unit and the hop in its
metadata, and ``OUT/<split>.json``, the same metadata for reading without safetensors. The
format is ``docs/embeddings.md``. Whole clips are embedded (no cropping), each at its own
length. Under torchrun each rank embeds its shard on its own device; rank 0 alone gathers the
rows (into host memory, one rank's shard at a time) and writes each clip once.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from fairseq2.recipe import Recipe, RecipeContext
from fairseq2.recipe.config import CommonSection, GangSection
from fairseq2.recipe.error import RecipeError
from fairseq2.runtime.dependency import DependencyContainer
from fairseq2.task import Task
from fairseq2.utils.validation import ValidationResult

from aape_plugin.data.audioset import AUDIO_SUFFIXES
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.reader import AudioReaderOptions, create_audio_reader
from aape_plugin.data.stats import FeatureStats
from aape_plugin.eval.gather import gather_objects, gather_rows
from aape_plugin.inference.loading import EncoderLoadError
from aape_plugin.inference.timestamps import DEFAULT_HOP_MS, num_shifts, timestamp_embeddings, timestamps_ms
from aape_plugin.recipes.dataset_opener import open_dataset_section
from aape_plugin.recipes.linear_probe import EncoderSourceSection, build_embedder
from aape_plugin.recipes.sections import AudioDatasetSection
from aape_plugin.recipes.simple_task import SimpleTask
from aape_plugin.recipes.user_errors import register_user_errors
from aape_plugin.safetensors_files import save_safetensors

log = logging.getLogger("aape_plugin.recipes")

FORMAT = "aape_extract/2"
"""``format`` in the metadata of every file: version 2 has timestamps in milliseconds on the
HEAR grid (version 1, unnamed, had seconds at patch centres, 160 ms apart)."""


@dataclass(kw_only=True)
class ExtractDatasetSection(AudioDatasetSection):
    family: str | None = None

    splits: list[str] | None = None
    """Splits to extract (default: all)."""

    batch_size: int = 8

    def validate(self) -> ValidationResult:
        # Unlike a training data set, this one is optional (``input_dir`` can replace it).
        return ValidationResult()


@dataclass(kw_only=True)
class ExtractConfig:
    model: EncoderSourceSection = field(default_factory=lambda: EncoderSourceSection(checkpoint="aape_tiny_demo"))

    input_dir: Path | None = None
    """A folder of audio files (searched recursively); or use `dataset`."""

    dataset: ExtractDatasetSection = field(default_factory=ExtractDatasetSection)

    timestamp_hop_ms: float = DEFAULT_HOP_MS
    """Spacing of the frame embeddings, as the HEAR API's: 10, 20, 40, 80 or 160 ms (the patch;
    160 / hop encoder passes per window). Timestamps are ``5 + m * hop`` ms."""

    gang: GangSection = field(default_factory=GangSection)

    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))


MAX_PATHS_BYTES = 90_000_000
"""The clip paths are stored in the file's header, which safetensors refuses beyond 100 MB."""


class TimestampHopError(RecipeError):
    """``timestamp_hop_ms`` does not divide the encoder's patch (one line, exit code 2)."""


class SplitTooLargeError(RecipeError):
    """A split's paths do not fit in a safetensors header (one line, exit code 2)."""


def check_paths_fit(split: str, entries: list[ClipEntry], limit: int = MAX_PATHS_BYTES) -> None:
    """Refuses, before anything is embedded, a split whose paths the file could not hold."""
    size = len(json.dumps([str(e.path) for e in entries]).encode())
    if size > limit:
        raise SplitTooLargeError(
            f"The {len(entries)} paths of split {split!r} take {size / 1e6:.1f} MB, more than the {limit / 1e6:g} MB the "
            f"safetensors header holds beside the embeddings; extract it in parts (sub-folders, or `dataset.splits`)."
        )


class ExtractTask(SimpleTask):
    def __init__(self, context: RecipeContext, config: ExtractConfig) -> None:
        super().__init__()
        self._context, self._config = context, config

    def run(self) -> None:
        config, context = self._config, self._context
        device = torch.device(config.model.device) if config.model.device else context.device

        jobs: dict[str, list[ClipEntry]] = {}
        if config.input_dir is not None:
            folder = config.input_dir.expanduser()
            if not folder.is_dir():
                raise AudioDataError(f"`input_dir` {folder} is not a folder of audio files.")
            files = sorted(Path(d) / f for d, _, fs in os.walk(folder) for f in fs if Path(f).suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise AudioDataError(f"No audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) under {folder}.")
            jobs["files"] = [ClipEntry(p) for p in files]
        elif config.dataset.name is not None or config.dataset.family is not None:
            dataset = open_dataset_section(context.resolver, config.dataset)
            for split in config.dataset.splits or dataset.splits:
                dataset.check_split(split)
                jobs[split] = dataset.entries(split)
        else:
            raise AudioDataError("Set `input_dir` (a folder of audio) or `dataset.name` / `dataset.family`.")

        stats = FeatureStats.load(config.dataset.stats_file) if config.dataset.stats_file else None
        embedder, key = build_embedder(config.model, lambda: stats or FeatureStats(mean=0.0, std=1.0), device)
        if config.model.kind == "aape" and stats is None and embedder.stats.mean == 0.0 and embedder.stats.std == 1.0:
            raise EncoderLoadError("The encoder does not say which log-mel statistics it was trained with; set `dataset.stats_file`.")
        hop = config.timestamp_hop_ms
        try:
            num_shifts(embedder, hop)
        except ValueError as ex:
            raise TimestampHopError(str(ex)) from None

        for split, entries in jobs.items():
            check_paths_fit(split, entries)
        gangs = context.gangs
        for split, entries in jobs.items():
            options = AudioReaderOptions(batch_size=config.dataset.batch_size, num_frames=1, crop="none", shuffle=False,
                                         num_parallel_calls=config.dataset.num_parallel_calls, max_bad_fraction=config.dataset.max_bad_fraction,
                                         sync_mode="until_last")
            reader = create_audio_reader(entries, gangs, embedder.features, embedder.stats, options, name=split)
            # Each rank embeds its shard; empty first pieces give the shapes of an empty shard.
            empty = torch.empty(0, dtype=torch.int64)
            clips, counts, indices, samples, rates = [torch.empty(0, embedder.clip_dim)], [empty], [empty], [empty], [empty]
            frames = [torch.empty(0, embedder.frame_dim)]
            for group in reader:
                for batch in group:
                    num_samples = batch.extras["num_samples"]
                    stamps = torch.tensor([len(timestamps_ms(embedder, int(n), hop)) for n in num_samples])
                    # Clips of one length at a time: no clip sees another's padding, so its
                    # embeddings do not depend on the clips it was batched with, and are those
                    # the HEAR API gives for it alone.
                    for length, count in torch.stack([batch.num_frames.cpu(), stamps], 1).unique(dim=0).tolist():
                        rows = ((batch.num_frames.cpu() == length) & (stamps == count)).nonzero().squeeze(1)
                        mel = batch.features[rows, ..., :length]
                        clip, _, _ = embedder.embed_logmel(mel, batch.num_frames[rows])
                        clips.append(clip.float().cpu())
                        frames.extend(timestamp_embeddings(embedder, mel, count, hop).unbind(0))
                        counts.append(torch.full((len(rows),), count, dtype=torch.int64))
                        indices.append(batch.indices[rows])
                        samples.append(num_samples[rows])
                        rates.append(batch.extras["source_rates"][rows])
                    self._step_nr += 1
            # Rank 0 alone collects the rows (one rank's shard at a time, into host memory): the
            # others never hold more than their own shard.
            per_clip = gather_rows(gangs.dp, {"clip": torch.cat(clips), "count": torch.cat(counts), "indices": torch.cat(indices),
                                              "num_samples": torch.cat(samples), "source_rates": torch.cat(rates)}, to="first")
            gathered_frames = gather_rows(gangs.dp, {"frames": torch.cat(frames)}, to="first")
            skipped = {path: why for part in gather_objects(gangs.dp, reader.skipped) for path, why in part.items()}  # type: ignore[attr-defined]
            if per_clip is None or gathered_frames is None:
                continue
            # Frames come in the clips' (rank) order: cut them per clip, then put clips in list order.
            pieces = gathered_frames["frames"].split(per_clip["count"].tolist())
            order = torch.argsort(per_clip["indices"]).tolist()
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), per_clip["count"][order].cumsum(0)])
            num_samples = per_clip["num_samples"][order]
            stamps = torch.cat([torch.empty(0, dtype=torch.float64), *(timestamps_ms(embedder, int(n), hop) for n in num_samples)])
            paths = [str(entries[int(per_clip["indices"][i])].path) for i in order]
            about: dict[str, object] = {
                "format": FORMAT, "split": split, "timestamp_unit": "ms", "timestamp_hop_ms": hop,
                "first_timestamp_ms": 500.0 / embedder.features.frames_per_second, "sample_rate": embedder.sample_rate,
                "model": key, "paths": paths, "skipped": skipped,
            }
            out = save_safetensors(
                {"clip": per_clip["clip"][order], "frames": torch.cat([pieces[i] for i in order]), "frame_offsets": offsets,
                 "timestamps_ms": stamps, "num_samples": num_samples, "source_rates": per_clip["source_rates"][order]},
                context.output_dir / f"{split}.safetensors",
                metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in about.items()},
            )
            if device.type == "cuda":  # what rank 0's device needed (the others need less: no gathered rows)
                about["peak_device_memory_bytes"] = torch.cuda.max_memory_allocated(device)
            (context.output_dir / f"{split}.json").write_text(json.dumps(about, indent=1) + "\n")
            log.info("Wrote %d clip embeddings (%d-d) and %d frame embeddings (every %g ms) of %r to %s; %d clip(s) skipped as unreadable.",
                     len(paths), embedder.clip_dim, int(offsets[-1]), hop, split, out, len(skipped))


class ExtractRecipe(Recipe):
    """Write clip and frame embeddings (with timestamps) of a folder or a data set to disk."""

    description = "Write clip and frame embeddings (with timestamps) of a folder or a data set to safetensors files"

    def register(self, container: DependencyContainer) -> None:
        register_user_errors(container)

    def create_task(self, context: RecipeContext) -> Task:
        return ExtractTask(context, context.get_config_as(ExtractConfig))

    @property
    def config_kls(self) -> type[object]:
        return ExtractConfig
