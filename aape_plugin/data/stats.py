"""Log-mel normalisation statistics of a data set: computed once, stored with the data or run.

Run: ``python -m aape_plugin.data.stats MANIFEST --root AUDIO_DIR --out stats.json [--max-clips 2000]``
(``MANIFEST``: a TSV manifest or an EVAR metadata CSV; the training split of a CSV is used.)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from aape_plugin.data.audio import AudioReadError, load_waveform
from aape_plugin.data.clip_report import report_short, report_unreadable
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.features import LogMel, LogMelConfig
from aape_plugin.progress import progress_task

log = logging.getLogger("aape_plugin.data")


class StatsError(AudioDataError):
    """The statistics file is missing or malformed; the message says which and how to make one."""


@dataclass(kw_only=True)
class FeatureStats:
    """Mean and standard deviation of the log-mel over all bins and frames of a data set."""

    mean: float
    std: float
    num_clips: int = 0
    num_frames: int = 0
    source: str = ""
    """What they were computed on (manifest path, clip count)."""
    num_skipped: int = 0
    """Clips left out because they could not be read."""

    def validate(self) -> None:
        if not math.isfinite(self.mean) or not math.isfinite(self.std) or self.std <= 0:
            raise StatsError(f"Feature stats need a finite mean and a positive std, but have mean={self.mean}, std={self.std}.")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @staticmethod
    def load(path: Path) -> FeatureStats:
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise StatsError(
                f"No feature statistics at {path}. Compute them with "
                f"`python -m aape_plugin.data.stats MANIFEST --root AUDIO_DIR --out {path}`."
            ) from None
        except json.JSONDecodeError as ex:
            raise StatsError(f"{path} is not a JSON statistics file ({ex}).") from None

        try:
            stats = FeatureStats(**{k: raw[k] for k in ("mean", "std")}, **{k: raw[k] for k in ("num_clips", "num_frames", "source", "num_skipped") if k in raw})
        except (KeyError, TypeError):
            raise StatsError(f"{path} must hold at least `mean` and `std`, but holds {sorted(raw)}.") from None

        stats.validate()

        return stats


def compute_stats(
    entries: list[ClipEntry],
    features: LogMelConfig,
    *,
    max_clips: int | None = 2000,
    seed: int = 0,
    progress: bool = True,
    source: str = "",
) -> FeatureStats:
    """Mean and std over (a random sample of) the clips, accumulated in float64.

    Unreadable clips are skipped, named in the log and counted (``num_skipped``), not fatal;
    clips shorter than half an STFT window count, padded with silence (:class:`LogMel`).
    The progress bar is fairseq2's (off with ``--no-rich`` or ``FAIRSEQ2_NO_PROGRESS``).
    """
    chosen = list(entries)
    if max_clips is not None and len(chosen) > max_clips:
        chosen = random.Random(seed).sample(chosen, max_clips)

    logmel = LogMel(features)

    total = 0.0
    total_sq = 0.0
    count = 0
    clips = 0
    bad: list[str] = []

    with progress_task("log-mel statistics", len(chosen), enabled=progress) as step:
        for entry in chosen:
            try:
                wave = load_waveform(entry.path, features.sample_rate)
            except AudioReadError as ex:
                bad.append(str(ex))
                report_unreadable(entry.path, ex.reason)
                step(1)
                continue
            if wave.numel() < features.min_reflect_samples:
                report_short(entry.path, wave.numel(), features.min_reflect_samples, features.sample_rate)
            mel = logmel(wave).double()
            total += float(mel.sum())
            total_sq += float((mel * mel).sum())
            count += mel.numel()
            clips += 1
            step(1)

    if count == 0:
        raise StatsError(f"None of the {len(chosen)} clips could be read; first error: {bad[:1]}")

    if bad:
        log.warning("Log-mel statistics: skipped %d unreadable clip(s) of %d.", len(bad), len(chosen))

    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))

    return FeatureStats(mean=mean, std=std, num_clips=clips, num_frames=count // features.n_mels, source=source, num_skipped=len(bad))


def main(argv: list[str] | None = None) -> int:
    from aape_plugin.data.manifest import read_manifest

    parser = argparse.ArgumentParser(prog="python -m aape_plugin.data.stats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path, help="TSV manifest or EVAR metadata CSV")
    parser.add_argument("--root", type=Path, default=None, help="audio folder (default: the manifest's folder)")
    parser.add_argument("--split", default="train", help="split of an EVAR CSV (default: train)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-clips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    root = args.root or args.manifest.parent
    entries = read_manifest(args.manifest, root, split=args.split)

    stats = compute_stats(entries, LogMelConfig(), max_clips=args.max_clips, seed=args.seed,
                          source=f"{args.manifest} ({min(len(entries), args.max_clips)} of {len(entries)} clips)")
    stats.save(args.out)

    print(f"mean {stats.mean:.4f}  std {stats.std:.4f}  ({stats.num_clips} clips, {stats.num_frames} frames) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
