"""Figure 4 of the paper: the input log-mel, and per time patch the distributions of the SBLU
decays and frequencies the Lambda Encoder estimates for it.

    python -m aape_plugin.figures.lambda_estimates --checkpoint aape_tiny_demo --audio clip.flac [more.flac ...] \
        --out docs/figures/figure4_lambda_estimates.png

``--checkpoint``: a pre-training run folder, an AaPE encoder file or an asset card. The
numbers behind the figure go to a JSON next to the PNG; the command also checks, and prints,
that the frequencies lie in the alias-prone band and how much the estimates vary over time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from aape_plugin.data.audio import load_waveform
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.loading import load_encoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed


def estimate(checkpoint: str, audio: list[Path], seconds: float | None = None) -> dict[str, object]:
    loaded = load_encoder(checkpoint)
    stem = loaded.encoder.stem
    if not isinstance(stem, AaPEPatchEmbed):
        raise SystemExit(f"{checkpoint} has a plain stem: there is no Lambda Encoder to show.")
    if loaded.stats is None:
        raise SystemExit(f"{checkpoint} does not say which log-mel statistics it was trained with.")
    embedder = EncoderEmbedder(loaded.encoder, loaded.stats, num_frames=loaded.config.encoder.num_frames)
    wave = torch.cat([load_waveform(path) for path in audio])
    if seconds is not None:
        wave = wave[: int(seconds * embedder.features.sample_rate)]
    mel = embedder.normalised_logmel(wave)  # (F, T)
    p = stem.patch_size
    mel = mel[:, : (mel.size(1) // p) * p]
    with torch.no_grad():
        decay, frequency = stem.lambda_encoder(mel[None, None])  # (1, S, P, N)
    fps = embedder.features.frames_per_second
    return {
        "mel": mel,
        "decay": decay[0],
        "frequency_hz": frequency[0] * fps / (2 * math.pi),
        "band_hz": (stem.lambda_encoder.min_frequency * fps / (2 * math.pi), stem.lambda_encoder.max_frequency * fps / (2 * math.pi)),
        "patch_seconds": p / fps,
    }


def draw(est: dict[str, object], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel: torch.Tensor = est["mel"]  # type: ignore[assignment]
    decay: torch.Tensor = est["decay"]  # type: ignore[assignment]
    freq: torch.Tensor = est["frequency_hz"]  # type: ignore[assignment]
    num_patches = decay.size(1)
    step = float(est["patch_seconds"])  # type: ignore[arg-type]
    centres = [(j + 0.5) * step for j in range(num_patches)]

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True, constrained_layout=True)
    axes[0].imshow(mel.numpy(), origin="lower", aspect="auto", extent=(0, mel.size(1) / 100, 0, mel.size(0)), cmap="magma")
    axes[0].set_ylabel("mel bin")
    axes[0].set_title(title, fontsize=8)
    for j in range(1, num_patches):
        axes[0].axvline(j * step, color="white", lw=0.4, alpha=0.5)

    for ax, values, label in ((axes[1], decay, "decay alpha (1/frame)"), (axes[2], freq, "frequency beta (Hz)")):
        data = [values[:, j].flatten().numpy() for j in range(num_patches)]
        ax.boxplot(data, positions=centres, widths=step * 0.6, showfliers=True, manage_ticks=False)
        ax.set_ylabel(label)
    lo, hi = est["band_hz"]  # type: ignore[misc]
    axes[2].axhline(lo, color="gray", ls="--", lw=0.8)
    axes[2].axhline(hi, color="gray", ls="--", lw=0.8)
    axes[2].set_xlabel("time (s); one box per time patch: all subbands x kernels")
    axes[2].set_xlim(0, num_patches * step)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.figures.lambda_estimates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="aape_tiny_demo")
    parser.add_argument("--audio", type=Path, nargs="+", required=True, help="one file, or several played one after the other")
    parser.add_argument("--seconds", type=float, default=None, help="use only the first seconds")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/figure4_lambda_estimates.png"))
    args = parser.parse_args(argv)

    est = estimate(args.checkpoint, args.audio, args.seconds)
    draw(est, f"{' + '.join(p.name for p in args.audio)} ({args.checkpoint})", args.out)

    decay: torch.Tensor = est["decay"]  # type: ignore[assignment]
    freq: torch.Tensor = est["frequency_hz"]  # type: ignore[assignment]
    lo, hi = est["band_hz"]  # type: ignore[misc]
    summary = {
        "audio": [str(p) for p in args.audio], "checkpoint": args.checkpoint,
        "frequency_hz": {"min": float(freq.min()), "max": float(freq.max()), "band": [lo, hi],
                         "in_band": bool(freq.min() >= lo - 1e-4 and freq.max() <= hi + 1e-4)},
        "decay": {"min": float(decay.min()), "max": float(decay.max())},
        # How much the per-patch median moves over time, relative to its mean.
        "frequency_median_per_patch_hz": freq.median(dim=0).values.median(dim=-1).values.tolist(),
        "decay_median_per_patch": decay.median(dim=0).values.median(dim=-1).values.tolist(),
        "frequency_std_over_patches_hz": float(freq.std(dim=1).mean()),
        "decay_std_over_patches": float(decay.std(dim=1).mean()),
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}; frequencies {summary['frequency_hz']['min']:.2f}-{summary['frequency_hz']['max']:.2f} Hz "
          f"(band {lo:.3f}-{hi:.1f} Hz, in band: {summary['frequency_hz']['in_band']}); mean std over time patches: "
          f"frequency {summary['frequency_std_over_patches_hz']:.3f} Hz, decay {summary['decay_std_over_patches']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
