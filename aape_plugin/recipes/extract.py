"""``aape_extract``: clip and frame embeddings of a folder of audio or of a data set's splits.

    fairseq2 recipe run aape_extract OUT --config input_dir=/my/audio model.checkpoint=RUN
    fairseq2 recipe run aape_extract OUT --config dataset.name=demo_pitch model.checkpoint=aape_tiny_demo

Writes, per split (``files`` for a folder), ``OUT/<split>.safetensors`` with ``clip``
``(N, D)``, ``frames`` ``(M, E)`` (all clips' frame embeddings, concatenated),
``frame_offsets`` ``(N + 1,)`` (clip ``i`` owns ``frames[offsets[i]:offsets[i+1]]``) and
``timestamps`` ``(M,)`` (seconds from each clip's start), and ``OUT/<split>.json`` with the
clip paths in row order (the order of the clip list) and the clips skipped as unreadable
(path -> reason). Whole clips are embedded (no cropping). Under torchrun each rank embeds its
shard on its own device; rank 0 alone gathers the rows (into host memory, one rank's shard at a
time) and writes each clip once.
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
from fairseq2.runtime.dependency import DependencyContainer
from fairseq2.task import Task
from fairseq2.utils.validation import ValidationResult
from safetensors.torch import save_file

from aape_plugin.data.audioset import AUDIO_SUFFIXES
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.reader import AudioReaderOptions, create_audio_reader
from aape_plugin.data.stats import FeatureStats
from aape_plugin.eval.gather import gather_objects, gather_rows
from aape_plugin.inference.loading import EncoderLoadError
from aape_plugin.recipes.dataset_opener import open_dataset_section
from aape_plugin.recipes.linear_probe import EncoderSourceSection, build_embedder
from aape_plugin.recipes.sections import AudioDatasetSection
from aape_plugin.recipes.simple_task import SimpleTask
from aape_plugin.recipes.user_errors import register_user_errors

log = logging.getLogger("aape_plugin.recipes")


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

    gang: GangSection = field(default_factory=GangSection)

    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))


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

        gangs = context.gangs
        for split, entries in jobs.items():
            options = AudioReaderOptions(batch_size=config.dataset.batch_size, num_frames=1, crop="none", shuffle=False,
                                         num_parallel_calls=config.dataset.num_parallel_calls, max_bad_fraction=config.dataset.max_bad_fraction,
                                         sync_mode="until_last")
            reader = create_audio_reader(entries, gangs, embedder.features, embedder.stats, options, name=split)
            # Each rank embeds its shard; empty first pieces give the shapes of an empty shard.
            clips, counts, indices = [torch.empty(0, embedder.clip_dim)], [torch.empty(0, dtype=torch.int64)], [torch.empty(0, dtype=torch.int64)]
            frames = [torch.empty(0, embedder.frame_dim)]
            for group in reader:
                for batch in group:
                    # Clips of one length at a time: no clip sees another's padding, so its
                    # embeddings do not depend on the clips it was batched with.
                    for length in batch.num_frames.unique().tolist():
                        rows = (batch.num_frames == length).nonzero().squeeze(1)
                        clip, frame, valid = embedder.embed_logmel(batch.features[rows, ..., :length], batch.num_frames[rows])
                        clips.append(clip)
                        counts.append(valid.long())
                        indices.append(batch.indices[rows])
                        frames.extend(frame[i, : int(valid[i])] for i in range(len(rows)))
                    self._step_nr += 1
            # Rank 0 alone collects the rows (one rank's shard at a time, into host memory): the
            # others never hold more than their own shard.
            per_clip = gather_rows(gangs.dp, {"clip": torch.cat(clips), "count": torch.cat(counts), "indices": torch.cat(indices)}, to="first")
            gathered_frames = gather_rows(gangs.dp, {"frames": torch.cat(frames)}, to="first")
            skipped = {path: why for part in gather_objects(gangs.dp, reader.skipped) for path, why in part.items()}  # type: ignore[attr-defined]
            if per_clip is None or gathered_frames is None:
                continue
            all_frames = gathered_frames["frames"]
            # Frames come in the clips' (rank) order: cut them per clip, then put clips in list order.
            pieces = all_frames.split(per_clip["count"].tolist())
            order = torch.argsort(per_clip["indices"]).tolist()
            count = per_clip["count"][order]
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), count.cumsum(0)])
            stamps = [embedder.timestamps(int(n)) for n in count]
            out = context.output_dir / f"{split}.safetensors"
            save_file({"clip": per_clip["clip"][order].contiguous(), "frames": torch.cat([pieces[i] for i in order]),
                       "frame_offsets": offsets, "timestamps": torch.cat([torch.empty(0, dtype=torch.float64), *stamps])}, str(out))
            paths = [str(entries[int(per_clip["indices"][i])].path) for i in order]
            record: dict[str, object] = {"model": key, "paths": paths, "skipped": skipped}
            if device.type == "cuda":  # what rank 0's device needed (the others need less: no gathered rows)
                record["peak_device_memory_bytes"] = torch.cuda.max_memory_allocated(device)
            (context.output_dir / f"{split}.json").write_text(json.dumps(record, indent=1) + "\n")
            log.info("Wrote %d clip embeddings (%d-d) and %d frame embeddings of %r to %s; %d clip(s) skipped as unreadable.",
                     len(paths), embedder.clip_dim, int(offsets[-1]), split, out, len(skipped))


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
