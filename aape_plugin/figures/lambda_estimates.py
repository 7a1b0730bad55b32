"""Figure 4 of the paper: the input log-mel, and per time patch the distributions of the SBLU
decays and frequencies the Lambda Encoder estimates for it.

    python -m aape_plugin.figures.lambda_estimates --checkpoint aape_tiny_demo --audio clip.flac [more.flac ...] \
        [--out figure4_lambda_estimates.png]

``--checkpoint``: a pre-training run folder, an AaPE encoder file or an asset card. The figure
(default: ``figure4_lambda_estimates.png`` in the working directory) and a JSON of the numbers
behind it beside it; the command also checks, and prints, that the frequencies lie in the
alias-prone band and how much the estimates vary over time.

Any length of audio: a clip shorter than one time patch is refused; beyond ``--max-boxes``
patches each box pools consecutive patches (the title says how many). Frequencies are in Hz at
the log-mel's frame rate (100 frames/s: ``Hz = rad/frame x 100 / (2 pi)``), the unit of the
task labels; decays in 1/frame. The title says whether the Lambda Encoder was trained in
pre-training or kept at its initialisation (``optimizer.config.lambda_lr_scale`` of the run's
``config.yaml``; for an asset card or a file, which carry no run configuration, read from its weights).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import yaml

from aape_plugin.data.audio import AudioReadError, load_waveform
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.loading import EncoderLoadError, load_encoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed

DEFAULT_OUT = Path("figure4_lambda_estimates.png")

MAX_BOXES = 40
"""Boxes per panel beyond which consecutive time patches are pooled (a 30 s clip has 187)."""


class FigureError(Exception):
    """An input the figure cannot use; the message names it and what to do."""


def lambda_training(checkpoint: str, stem: AaPEPatchEmbed | None = None) -> str:
    """Whether the Lambda Encoder of ``checkpoint`` was trained in pre-training: ``trained
    (lambda_lr_scale X)``, ``frozen at initialisation (lambda_lr_scale 0)`` from the run's
    ``config.yaml`` (``optimizer.config.lambda_lr_scale``; 0 keeps it frozen). An asset card or
    a file carries no run configuration: then its weights say it (``stem`` given; its
    LayerNorms move from 1 and 0 with any training, :func:`aape_plugin.eval.adaptivity.lambda_encoder_trained`),
    else ``unknown (...)``."""
    path = Path(checkpoint).expanduser()
    run = None
    if path.is_dir():  # the run folder, its checkpoints folder, a step_N folder or its model folder
        run = next((f for f in (path, *list(path.parents)[:3]) if (f / "config.yaml").is_file() and (f / "checkpoints").is_dir()), None)
    if run is None:
        if stem is not None:
            from aape_plugin.eval.adaptivity import lambda_encoder_trained

            return ("trained (its weights moved from their initialisation)" if lambda_encoder_trained(stem)
                    else "at initialisation (its weights never moved: frozen, or not pre-trained)")
        if not path.is_dir():
            return "unknown (an asset card or file carries no run configuration)"
        return "unknown (no config.yaml of a pre-training run)"
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    optimizer = config.get("optimizer") or {}
    scale = (optimizer.get("config") or {}).get("lambda_lr_scale")
    if scale is None:
        if optimizer.get("name") not in (None, "adamw_layer_decay"):
            return f"trained (optimizer {optimizer.get('name')} trains every parameter)"
        return f"unknown ({run / 'config.yaml'} has no optimizer.config.lambda_lr_scale)"
    return "frozen at initialisation (lambda_lr_scale 0)" if float(scale) == 0.0 else f"trained (lambda_lr_scale {float(scale):g})"


def read_audio(audio: list[Path]) -> torch.Tensor:
    """The clips one after the other at 16 kHz; a file that cannot be read is one line."""
    waves = []
    for path in audio:
        if path.is_dir():
            raise FigureError(f"--audio {path} is a folder, not an audio file.")
        if not path.is_file():
            raise FigureError(f"--audio {path} does not exist.")
        try:
            waves.append(load_waveform(path))
        except AudioReadError as ex:
            raise FigureError(f"--audio {path} cannot be read: {ex}") from None
    return torch.cat(waves)


def estimate(checkpoint: str, audio: list[Path], seconds: float | None = None) -> dict[str, object]:
    wave = read_audio(audio)
    try:
        loaded = load_encoder(checkpoint)
    except EncoderLoadError as ex:
        raise FigureError(str(ex)) from None
    stem = loaded.encoder.stem
    if not isinstance(stem, AaPEPatchEmbed):
        raise FigureError(f"{checkpoint} has a plain stem: there is no Lambda Encoder to show.")
    if loaded.stats is None:
        raise FigureError(f"{checkpoint} does not say which log-mel statistics it was trained with.")
    embedder = EncoderEmbedder(loaded.encoder, loaded.stats, num_frames=loaded.config.encoder.num_frames)
    rate = embedder.features.sample_rate
    if seconds is not None:
        wave = wave[: int(seconds * rate)]
    mel = embedder.normalised_logmel(wave)  # (F, T)
    p = stem.patch_size
    fps = embedder.features.frames_per_second
    if mel.size(1) < p:
        what = " + ".join(str(a) for a in audio) + (f" (its first {seconds:g} s)" if seconds is not None else "")
        raise FigureError(f"{what} is {wave.numel() / rate:.2f} s long, shorter than one time patch ({p} frames, {p / fps:.2f} s): "
                          f"give a longer clip (or several, played one after the other).")
    mel = mel[:, : (mel.size(1) // p) * p]  # whole patches only
    with torch.no_grad():
        decay, frequency = stem.lambda_encoder(mel[None, None])  # (1, S, P, N)
    return {
        "mel": mel,
        "decay": decay[0],
        "frequency_hz": frequency[0] * fps / (2 * math.pi),
        "band_hz": (stem.lambda_encoder.min_frequency * fps / (2 * math.pi), stem.lambda_encoder.max_frequency * fps / (2 * math.pi)),
        "patch_seconds": p / fps,
        "frames_per_second": fps,
        "lambda_encoder": lambda_training(checkpoint, stem),
    }


def patches_per_box(num_patches: int, max_boxes: int = MAX_BOXES) -> int:
    """How many consecutive time patches one box pools so that at most ``max_boxes`` are drawn."""
    return max(1, -(-num_patches // max_boxes))


def draw(est: dict[str, object], title: str, out: Path, *, max_boxes: int = MAX_BOXES) -> int:
    """Draws the figure; returns how many time patches each box pools."""
    import matplotlib.pyplot as plt

    fig, pooled = figure(est, title, max_boxes=max_boxes)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return pooled


def figure(est: dict[str, object], title: str, *, max_boxes: int = MAX_BOXES):  # type: ignore[no-untyped-def]
    """The matplotlib figure :func:`draw` saves, and how many time patches each box pools."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    mel: torch.Tensor = est["mel"]  # type: ignore[assignment]
    decay: torch.Tensor = est["decay"]  # type: ignore[assignment]
    freq: torch.Tensor = est["frequency_hz"]  # type: ignore[assignment]
    fps = float(est["frames_per_second"])  # type: ignore[arg-type]
    num_patches = decay.size(1)
    pooled = patches_per_box(num_patches, max_boxes)
    step = float(est["patch_seconds"]) * pooled  # type: ignore[arg-type]
    groups = [range(j, min(j + pooled, num_patches)) for j in range(0, num_patches, pooled)]
    centres = [(g.start + len(g) / 2) * float(est["patch_seconds"]) for g in groups]  # type: ignore[arg-type]
    end = num_patches * float(est["patch_seconds"])  # type: ignore[arg-type]

    boxes = f"one box per time patch ({float(est['patch_seconds']):.2f} s)" if pooled == 1 else \
        f"{num_patches} time patches, {pooled} pooled per box ({step:.2f} s)"  # type: ignore[arg-type]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True, constrained_layout=True)
    image = axes[0].imshow(mel.numpy(), origin="lower", aspect="auto", extent=(0, mel.size(1) / fps, 0, mel.size(0)), cmap="magma")
    fig.colorbar(image, ax=axes[0], label="log-mel (normalised)", pad=0.01)
    axes[0].set_ylabel("mel bin")
    axes[0].set_title(f"{title}\nLambda Encoder: {est['lambda_encoder']}; {boxes}", fontsize=8)
    for g in groups[1:]:
        axes[0].axvline(g.start * float(est["patch_seconds"]), color="white", lw=0.4, alpha=0.5)  # type: ignore[arg-type]

    for ax, values, label in ((axes[1], decay, "decay alpha (1/frame)"),
                              (axes[2], freq, f"frequency beta (Hz at {fps:g} frames/s)")):
        data = [values[:, g.start:g.stop].flatten().numpy() for g in groups]
        widths = [0.6 * len(g) * float(est["patch_seconds"]) for g in groups]  # type: ignore[arg-type]
        ax.boxplot(data, positions=centres, widths=widths, showfliers=pooled == 1, manage_ticks=False)
        ax.set_ylabel(label)
    lo, hi = est["band_hz"]  # type: ignore[misc]
    axes[2].axhline(lo, color="tab:blue", ls="--", lw=0.8)
    axes[2].axhline(hi, color="tab:red", ls="--", lw=0.8)
    axes[2].legend(handles=[Line2D([], [], color="tab:blue", ls="--", lw=0.8, label=f"band's lower edge {lo:.3g} Hz (patch-rate Nyquist)"),
                            Line2D([], [], color="tab:red", ls="--", lw=0.8, label=f"band's upper edge {hi:.3g} Hz (frame-rate Nyquist)")],
                   fontsize=7, loc="upper right")
    axes[2].set_xlabel(f"time (s); {boxes}: all subbands x kernels" + ("" if pooled == 1 else " of the pooled patches, whiskers 1.5 IQR"))
    axes[2].set_xlim(0, end)
    return fig, pooled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.figures.lambda_estimates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="aape_tiny_demo")
    parser.add_argument("--audio", type=Path, nargs="+", required=True, help="one file, or several played one after the other")
    parser.add_argument("--seconds", type=float, default=None, help="use only the first seconds")
    parser.add_argument("--max-boxes", type=int, default=MAX_BOXES, help="pool consecutive time patches beyond this many boxes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default: {DEFAULT_OUT} in the working directory)")
    args = parser.parse_args(argv)
    if args.max_boxes < 1:
        parser.error(f"--max-boxes must be at least 1, got {args.max_boxes}")
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds:g}")

    try:
        est = estimate(args.checkpoint, args.audio, args.seconds)
    except FigureError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 2
    pooled = draw(est, f"{' + '.join(p.name for p in args.audio)} ({args.checkpoint})", args.out, max_boxes=args.max_boxes)

    decay: torch.Tensor = est["decay"]  # type: ignore[assignment]
    freq: torch.Tensor = est["frequency_hz"]  # type: ignore[assignment]
    lo, hi = est["band_hz"]  # type: ignore[misc]
    summary = {
        "audio": [str(p) for p in args.audio], "checkpoint": args.checkpoint, "lambda_encoder": est["lambda_encoder"],
        "frames_per_second": est["frames_per_second"], "num_patches": decay.size(1), "patches_per_box": pooled,
        "frequency_hz": {"min": float(freq.min()), "max": float(freq.max()), "band": [lo, hi],
                         "in_band": bool(freq.min() >= lo - 1e-4 and freq.max() <= hi + 1e-4)},
        "decay": {"min": float(decay.min()), "max": float(decay.max())},
        # How much the per-patch median moves over time, relative to its mean.
        "frequency_median_per_patch_hz": freq.median(dim=0).values.median(dim=-1).values.tolist(),
        "decay_median_per_patch": decay.median(dim=0).values.median(dim=-1).values.tolist(),
        "frequency_std_over_patches_hz": float(freq.std(dim=1).mean()) if decay.size(1) > 1 else 0.0,
        "decay_std_over_patches": float(decay.std(dim=1).mean()) if decay.size(1) > 1 else 0.0,
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}; Lambda Encoder {est['lambda_encoder']}; frequencies {summary['frequency_hz']['min']:.2f}-"
          f"{summary['frequency_hz']['max']:.2f} Hz (band {lo:.3f}-{hi:.1f} Hz, in band: {summary['frequency_hz']['in_band']}); "
          f"mean std over time patches: frequency {summary['frequency_std_over_patches_hz']:.3f} Hz, "
          f"decay {summary['decay_std_over_patches']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
