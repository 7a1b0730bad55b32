"""Which log-mel statistics a run normalises with, decided once and stored with the run."""

from __future__ import annotations

import logging
from pathlib import Path

from fairseq2.gang import Gangs

from aape_plugin.data.dataset import AudioDataset
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.stats import FeatureStats, compute_stats

log = logging.getLogger("aape_plugin.recipes")

RUN_STATS_FILE = "feature_stats.json"


def resolve_feature_stats(
    *,
    stats_file: Path | None,
    dataset: AudioDataset,
    split: str,
    output_dir: Path,
    gangs: Gangs,
    features: LogMelConfig,
    max_clips: int,
) -> FeatureStats:
    """The explicit file, else the data set's own, else the run's stored copy, else computed
    now (rank 0) and stored in the run. Never a silent default from another data set; the
    choice is logged, and a copy always lands in the run folder, so that evaluation and
    resumed runs use the very same numbers."""
    run_file = output_dir / RUN_STATS_FILE

    if stats_file is not None:
        stats, where = FeatureStats.load(stats_file), str(stats_file)
    elif dataset.stats_file is not None:
        stats, where = FeatureStats.load(dataset.stats_file), str(dataset.stats_file)
    elif run_file.exists():
        stats, where = FeatureStats.load(run_file), str(run_file)
    else:
        if gangs.root.rank == 0:
            log.info("No log-mel statistics given for %s; computing them over up to %d clips of %r.", dataset.name, max_clips, split)
            stats = compute_stats(dataset.entries(split), features, max_clips=max_clips, source=f"{dataset.name}/{split}")
            stats.save(run_file)
        gangs.root.barrier()
        stats, where = FeatureStats.load(run_file), f"computed, {run_file}"

    if gangs.root.rank == 0 and not run_file.exists():
        stats.save(run_file)

    log.info("Log-mel statistics: mean %.4f, std %.4f (%s).", stats.mean, stats.std, where)

    return stats
