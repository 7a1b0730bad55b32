"""How adaptive is a Lambda Encoder? Figure 4 of the paper, measured.

    python -m aape_plugin.eval.adaptivity --checkpoint aape_tiny_demo --dataset demo_pool --split train \\
        --out adaptivity.json [--page adaptivity.md]
    python -m aape_plugin.eval.adaptivity --checkpoint RUN --dataset study_am_rate --split valid --out am.json
    python -m aape_plugin.eval.adaptivity --from-json a.json b.json --page docs/adaptivity.md

The paper's Figure 4 shows the estimated decays and frequencies varying "adaptively in response
to the input". Two numbers say whether a checkpoint's estimates do:

* **Variation** of each (subband, kernel)'s estimated frequency, over the time patches of a clip
  and over clips (the spread of the clip means), relative to the kernel's mean, beside the same
  spread for freshly initialised encoders of the same configuration (``--reference-seeds``): a
  random Lambda Encoder's small head weights already make its estimates jitter a little, so
  only variation beyond that jitter is something the encoder learned.
* **Following**: Spearman's rank correlation, over clips, between each (subband, kernel)'s
  clip-mean frequency and what it should follow: the true rate where the data set's labels are
  rates (``4.4hz``, the modulation tasks), and on any audio the subband's envelope-spectrum
  centroid above the patch rate's Nyquist (:func:`aape_plugin.inference.modulation_spectrum.envelope_centroid`).
  The summary is the mean rho over (subband, kernel), with a 95% percentile bootstrap interval
  over clips (the same resamples for every checkpoint, so differences are paired), and the
  largest |rho| beside the level it reaches with the reference shuffled over the clips.

A plain stem has no Lambda Encoder and is refused; so is ``adaptive: false`` (its poles cannot
vary with the input: that is what it is for).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from aape_plugin.data.features import LogMelConfig
from aape_plugin.nn.audio_encoder import AudioEncoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed

RATE_LABEL = re.compile(r"^(\d+(?:\.\d+)?)\s*hz$", re.IGNORECASE)
"""Labels that are rates (the modulation tasks' ``4.4hz``)."""

BOOTSTRAP_DRAWS = 1000


class AdaptivityError(Exception):
    """The measurement cannot run on this input; the message says why, in one line."""


@dataclass
class Poles:
    """The Lambda Encoder's estimates for a set of clips."""

    frequency_hz: np.ndarray
    """``(C, S, P, N)`` clips x subbands x time patches x kernels."""

    decay: np.ndarray
    """``(C, S, P, N)`` in 1/frame."""


@dataclass
class Following:
    """Spearman's rho between clip-mean frequencies and a per-clip reference."""

    reference: str
    rho: list[list[float]]
    """``(S, N)``."""
    mean_rho: float
    """The mean over (subband, kernel): positive when the estimates rise with the reference."""
    mean_rho_interval: tuple[float, float]
    max_abs: float
    """The largest |rho| over (subband, kernel)."""
    max_abs_null: float
    """The 95th percentile of the largest |rho| with the reference shuffled over the clips: what
    the largest correlation reaches with no relation at all (a maximum over many kernels is
    never near zero)."""
    mean_rho_draws: list[float] = field(default_factory=list)
    """The mean rho of each bootstrap draw (the same draws for every encoder on these clips),
    for paired differences."""


@dataclass
class Measurement:
    """One encoder on one set of clips."""

    name: str
    lambda_trained: bool
    """Whether the Lambda Encoder moved from its initialisation (:func:`lambda_encoder_trained`)."""
    clips: int
    patches_per_clip: int
    centre_hz: list[list[float]]
    """``(S, N)`` mean estimated frequency."""
    within_clip: float
    """Median over (subband, kernel) of the std over a clip's patches, relative to the centre,
    averaged over clips."""
    across_clips: float
    """Median over (subband, kernel) of the std of the clip means, relative to the centre."""
    decay_within_clip: float
    decay_across_clips: float
    following: list[Following] = field(default_factory=list)
    versus_initialisation: dict[str, list[float]] = field(default_factory=dict)
    """Per reference, ``[difference, lo, hi]``: this encoder's mean rho minus the mean of its
    random initialisations', with the 95% interval of the paired bootstrap (same draws)."""


def paired_difference(measured: Measurement, initialisations: list[Measurement]) -> dict[str, list[float]]:
    """:func:`Measurement.versus_initialisation` of ``measured``."""
    out: dict[str, list[float]] = {}
    for k, f in enumerate(measured.following):
        base = np.mean([np.array(i.following[k].mean_rho_draws) for i in initialisations], axis=0)
        draws = np.array(f.mean_rho_draws) - base
        point = f.mean_rho - float(np.mean([i.following[k].mean_rho for i in initialisations]))
        lo, hi = np.percentile(draws, [2.5, 97.5])
        out[f.reference] = [round(point, 4), round(float(lo), 4), round(float(hi), 4)]
    return out


def lambda_encoder_trained(stem: AaPEPatchEmbed) -> bool:
    """Whether the Lambda Encoder moved from its initialisation: its LayerNorms start at weight 1
    and bias 0 exactly, and any optimiser step with a nonzero learning rate moves them. (A
    frozen one, ``optimizer.config.lambda_lr_scale: 0``, keeps them, in the teacher too.)"""
    norms = [m for m in stem.lambda_encoder.modules() if isinstance(m, torch.nn.LayerNorm)]
    return any(not (bool((m.weight == 1).all()) and bool((m.bias == 0).all())) for m in norms)


def lambda_stem(encoder: AudioEncoder, what: str) -> AaPEPatchEmbed:
    stem = encoder.stem
    if not isinstance(stem, AaPEPatchEmbed):
        raise AdaptivityError(f"{what} has a plain stem: there is no Lambda Encoder to measure.")
    if not stem.lambda_encoder.adaptive:
        raise AdaptivityError(f"{what} has fixed poles (`encoder.stem.adaptive: false`): its estimates cannot follow the input.")
    return stem


@torch.no_grad()
def estimate_poles(encoder: AudioEncoder, logmels: list[torch.Tensor], num_frames: int, what: str = "the encoder", *,
                   frames_per_second: float = LogMelConfig().frames_per_second) -> Poles:
    """Each clip's first ``num_frames`` frames (the encoder's input length), cut to whole
    patches; clips must hold at least one patch, and are cut to the shortest clip's patch count
    so that every clip has the same number of patches. Frequencies come back in Hz at
    ``frames_per_second``."""
    stem = lambda_stem(encoder, what)
    p = stem.patch_size
    if not logmels:
        raise AdaptivityError("no clips to measure")
    shortest = min(m.size(-1) for m in logmels)
    if shortest < p:
        raise AdaptivityError(f"a clip of {shortest} frames is shorter than one patch ({p} frames)")
    frames = min(num_frames, shortest) // p * p
    freqs, decays = [], []
    for mel in logmels:
        decay, frequency = stem.lambda_encoder(mel[None, None, :, :frames].float())
        decays.append(decay[0].numpy())
        freqs.append((frequency[0] * frames_per_second / (2 * math.pi)).numpy())
    return Poles(frequency_hz=np.stack(freqs).astype(np.float64), decay=np.stack(decays).astype(np.float64))


def _spread(values: np.ndarray) -> tuple[float, float]:
    """(within a clip, across clips) relative spreads of ``(C, S, P, N)`` estimates."""
    centre = values.mean(axis=(0, 2))  # (S, N)
    within = values.std(axis=2).mean(axis=0) / centre
    across = values.mean(axis=2).std(axis=0) / centre
    return float(np.median(within)), float(np.median(across))


def bootstrap_draws(num_clips: int, seed: int = 0) -> np.ndarray:
    """``(BOOTSTRAP_DRAWS, C)`` clip indices, the same for every encoder measured on these clips."""
    return np.random.default_rng(seed).integers(0, num_clips, size=(BOOTSTRAP_DRAWS, num_clips))


def following(poles: Poles, reference: np.ndarray, name: str, draws: np.ndarray, permutations: int = 200) -> Following:
    """:param reference: ``(C,)`` one value per clip, or ``(C, S)`` one per clip and subband."""
    means = poles.frequency_hz.mean(axis=2)  # (C, S, N)
    num_clips, num_subbands, _ = means.shape
    ref = reference if reference.ndim == 2 else np.repeat(reference[:, None], num_subbands, axis=1)

    def table(rows: np.ndarray, ref_rows: np.ndarray) -> np.ndarray:
        """``(S, N)`` rho between the clips ``rows`` and the references ``ref_rows`` (ranks averaged over ties)."""
        a = rankdata(means[rows], axis=0)
        b = rankdata(ref[ref_rows], axis=0)[:, :, None]
        a, b = a - a.mean(axis=0), b - b.mean(axis=0)
        denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
        return np.where(denominator > 0, (a * b).sum(axis=0) / np.where(denominator > 0, denominator, 1.0), 0.0)

    everything = np.arange(num_clips)
    rho = table(everything, everything)
    mean_draws = [float(table(rows, rows).mean()) for rows in draws]
    shuffles = np.random.default_rng(1)
    null = [float(np.abs(table(everything, shuffles.permutation(num_clips))).max()) for _ in range(permutations)]
    lo, hi = np.percentile(mean_draws, [2.5, 97.5])
    return Following(name, rho.round(4).tolist(), float(rho.mean()), (float(lo), float(hi)), float(np.abs(rho).max()),
                     float(np.percentile(null, 95)), [round(m, 5) for m in mean_draws])


def measure(name: str, trained: bool, poles: Poles, references: dict[str, np.ndarray], draws: np.ndarray) -> Measurement:
    within, across = _spread(poles.frequency_hz)
    decay_within, decay_across = _spread(poles.decay)
    return Measurement(
        name=name, lambda_trained=trained, clips=poles.frequency_hz.shape[0], patches_per_clip=poles.frequency_hz.shape[2],
        centre_hz=poles.frequency_hz.mean(axis=(0, 2)).round(3).tolist(), within_clip=within, across_clips=across,
        decay_within_clip=decay_within, decay_across_clips=decay_across,
        following=[following(poles, ref, ref_name, draws) for ref_name, ref in references.items()],
    )


def rate_of(labels: tuple[str, ...]) -> float | None:
    match = RATE_LABEL.match(labels[0]) if len(labels) == 1 else None
    return float(match.group(1)) if match else None


def references_for(logmels: list[torch.Tensor], labels: list[tuple[str, ...]], band_size: int,
                   frames_per_second: float) -> dict[str, np.ndarray]:
    """The true rate (when every clip's label is one) and the envelope centroid per subband,
    above the patch rate's Nyquist (``frames_per_second / (2 * band_size)``)."""
    from aape_plugin.inference.modulation_spectrum import envelope_centroid

    out: dict[str, np.ndarray] = {}
    rates = [rate_of(label) for label in labels]
    if rates and all(r is not None for r in rates):
        out["true rate"] = np.array(rates, dtype=np.float64)
    min_hz = frames_per_second / (2 * band_size)
    out["envelope centroid"] = np.stack([envelope_centroid(m, frames_per_second, band_size, min_hz).numpy() for m in logmels])
    return out


# --- the command ------------------------------------------------------------------------------


def _load_clips(dataset: str | None, split: str, audio: list[Path], max_clips: int) -> tuple[list[Path], list[tuple[str, ...]], object]:
    from aape_plugin.data.hub import get_audio_manifest_hub

    if dataset is not None:
        opened = get_audio_manifest_hub().open_dataset(dataset)
        if split not in opened.splits:
            raise AdaptivityError(f"data set {dataset!r} has no split {split!r}; its splits: {', '.join(opened.splits)}")
        entries = opened.entries(split)
        step = max(1, len(entries) // max_clips)
        entries = entries[::step][:max_clips]
        return [e.path for e in entries], [e.labels for e in entries], opened.stats_file
    for path in audio:
        if not path.is_file():
            raise AdaptivityError(f"{path} is not a file")
    return list(audio), [() for _ in audio], None


def run(checkpoints: list[str], *, dataset: str | None, split: str, audio: list[Path], max_clips: int,
        reference_seeds: list[int], seconds: float) -> dict[str, object]:
    from aape_plugin.data.audio import load_waveform
    from aape_plugin.data.stats import FeatureStats
    from aape_plugin.inference.embedder import EncoderEmbedder
    from aape_plugin.inference.loading import load_encoder
    from aape_plugin.models.factory import create_encoder

    paths, labels, stats_file = _load_clips(dataset, split, audio, max_clips)
    waves = [load_waveform(p, duration=seconds) for p in paths]
    results: list[Measurement] = []
    draws = bootstrap_draws(len(paths))
    references: dict[str, np.ndarray] | None = None
    for checkpoint in checkpoints:
        loaded = load_encoder(checkpoint)
        stats = loaded.stats or (FeatureStats.load(stats_file) if stats_file else None)
        if stats is None:
            raise AdaptivityError(f"{checkpoint} does not say which log-mel statistics it was trained with; give --dataset")
        embedder = EncoderEmbedder(loaded.encoder, stats, num_frames=loaded.config.encoder.num_frames)
        logmels = [embedder.normalised_logmel(w) for w in waves]
        stem = lambda_stem(loaded.encoder, checkpoint)
        fps = embedder.features.frames_per_second
        if references is None:
            references = references_for(logmels, labels, stem.patch_size, fps)
        num_frames = loaded.config.encoder.num_frames
        measured = measure(checkpoint, lambda_encoder_trained(stem), estimate_poles(loaded.encoder, logmels, num_frames, checkpoint, frames_per_second=fps),
                           references, draws)
        initialisations = []
        for seed in reference_seeds:
            torch.manual_seed(seed)
            fresh = create_encoder(loaded.config.encoder, drop_path=0.0).eval()
            name = f"{checkpoint}: random initialisation, seed {seed}"
            initialisations.append(measure(name, False, estimate_poles(fresh, logmels, num_frames, name, frames_per_second=fps), references, draws))
        if initialisations:
            measured.versus_initialisation = paired_difference(measured, initialisations)
        results += [measured, *initialisations]
    return {
        "data": {"dataset": dataset, "split": split if dataset else None, "audio": [str(p) for p in audio] if not dataset else [],
                 "clips": len(paths), "seconds": seconds},
        "bootstrap": {"draws": BOOTSTRAP_DRAWS, "interval": "95% percentile, over clips"},
        "measurements": [asdict(m) for m in results],
    }


def render(documents: list[dict[str, object]]) -> str:
    """The page: one section per measured data set, one row per encoder."""
    lines = ["# Adaptivity of the Lambda Encoder", "",
             "Generated by `python -m aape_plugin.eval.adaptivity` (see its docstring for the method). Variation: the",
             "median over (subband, kernel) of the estimated frequency's spread, relative to the kernel's mean,",
             "over a clip's time patches (within) and over the clip means (across). Following: Spearman's rho over",
             "clips between each (subband, kernel)'s clip-mean frequency and the reference: the mean over",
             "(subband, kernel) with its 95% bootstrap interval over clips, and the largest |rho| beside (in",
             "brackets) the level the largest reaches with the reference shuffled over clips. Random",
             "initialisations of the same configuration are the reference for jitter; differences against",
             "them are paired (the same bootstrap draws of the same clips).", ""]
    for doc in documents:
        data = doc["data"]  # type: ignore[index]
        where = f"`{data['dataset']}` ({data['split']})" if data["dataset"] else ", ".join(f"`{a}`" for a in data["audio"])  # type: ignore[index]
        lines += [f"## {where}: {data['clips']} clips, first {data['seconds']:g} s", ""]  # type: ignore[index]
        if doc.get("note"):  # type: ignore[union-attr]
            lines += [str(doc["note"]), ""]  # type: ignore[index]
        refs = [f["reference"] for f in doc["measurements"][0]["following"]]  # type: ignore[index]
        head = "| encoder | Lambda Encoder | within a clip | across clips | decay within / across |"
        rule = "|---|---|---|---|---|"
        for ref in refs:
            head += f" {ref}: mean rho | {ref}: max abs rho (no-relation level) | {ref}: mean rho minus initialisations' (paired) |"
            rule += "---|---|---|"
        lines += [head, rule]
        for m in doc["measurements"]:  # type: ignore[union-attr]
            state = "trained" if m["lambda_trained"] else "at initialisation"
            row = (f"| {m['name']} | {state} | {100 * m['within_clip']:.2f}% | {100 * m['across_clips']:.2f}% | "
                   f"{100 * m['decay_within_clip']:.2f}% / {100 * m['decay_across_clips']:.2f}% |")
            for f in m["following"]:
                lo, hi = f["mean_rho_interval"]
                row += f" {f['mean_rho']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {f['max_abs']:.2f} ({f['max_abs_null']:.2f}) |"
                paired = m.get("versus_initialisation", {}).get(f["reference"])
                row += f" {paired[0]:+.3f} [{paired[1]:+.3f}, {paired[2]:+.3f}] |" if paired else " |"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.eval.adaptivity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], help="a run folder, encoder file or asset card (repeatable)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="a data set by name (its labels are used when they are rates)")
    source.add_argument("--audio", type=Path, nargs="+", default=[], help="audio files")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--max-clips", type=int, default=300, help="at most this many clips, evenly over the split")
    parser.add_argument("--seconds", type=float, default=2.0, help="read at most this much of each clip")
    parser.add_argument("--reference-seeds", type=int, nargs="*", default=[1, 2, 3], help="random initialisations measured beside each checkpoint")
    parser.add_argument("--out", type=Path, help="the measurement as JSON")
    parser.add_argument("--from-json", type=Path, nargs="+", default=[], help="render stored measurements instead of measuring")
    parser.add_argument("--page", type=Path, help="write the Markdown page here")
    parser.add_argument("--note", help="a paragraph stored with the measurement and shown under its heading")
    args = parser.parse_args(argv)
    prog = parser.prog

    try:
        if args.from_json:
            documents = [json.loads(p.read_text()) for p in args.from_json]
        else:
            if not args.checkpoint or not (args.dataset or args.audio):
                parser.error("give --checkpoint and --dataset or --audio (or --from-json)")
            if args.max_clips < 3 or args.seconds <= 0:
                parser.error("--max-clips must be at least 3 and --seconds positive")
            from aape_plugin.inference.loading import EncoderLoadError, ensure_fairseq2

            ensure_fairseq2()
            try:
                document = run(args.checkpoint, dataset=args.dataset, split=args.split, audio=args.audio, max_clips=args.max_clips,
                               reference_seeds=args.reference_seeds, seconds=args.seconds)
            except EncoderLoadError as ex:
                raise AdaptivityError(str(ex)) from None
            if args.note:
                document["note"] = args.note
            documents = [document]
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(document, indent=1) + "\n")
        page = render(documents)
        if args.page:
            args.page.parent.mkdir(parents=True, exist_ok=True)
            args.page.write_text(page)
        print(page)
    except AdaptivityError as ex:
        print(f"{prog}: error: {ex}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
