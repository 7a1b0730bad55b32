"""What the HEAR API's finer timestamp hop costs: time per clip of ``get_timestamp_embeddings``
at the default 40 ms hop (four encoder passes per window, one per sub-patch shift) against the
native 160 ms (one pass), and of ``get_scene_embeddings`` (one pass).

Models: the shipped ``aape_tiny_demo`` and a randomly initialised ``aape_base`` (the paper's
size; the cost does not depend on the weights). Clips of real demo audio, interleaved repeats,
medians.

Run: ``python -m benchmarks.hear_hop [--repeats 5] [--seconds 10] [--out docs/benchmarks/hear_hop.md]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aape_plugin import hear
from aape_plugin.data.audio import load_waveform
from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.loading import new_encoder
from benchmarks.common import machine, markdown_table, save_report, time_interleaved

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"

TARGET = 4.5


def demo_audio(seconds: float, n: int) -> torch.Tensor:
    wave = torch.cat([load_waveform(p) for p in sorted((DEMO / "keywords").glob("*.flac"))])
    length = int(16_000 * seconds)
    return torch.stack([wave[i * 16_000 : i * 16_000 + length] for i in range(n)])


def models(arch: str, device: torch.device) -> tuple[hear.HearModel, hear.HearModel]:
    """The same encoder at the default hop and at the native one."""
    if arch == "aape_tiny_demo":
        fine = hear.load_model("aape_tiny_demo", device=str(device))
    else:
        loaded = new_encoder(arch, device=device)
        stats = FeatureStats(mean=-7.0, std=6.8)
        embedder = EncoderEmbedder(loaded.encoder, stats, num_frames=loaded.config.encoder.num_frames, device=device)
        fine = hear.HearModel(embedder)
    return fine, hear.HearModel(fine.embedder, timestamp_hop_ms=160.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hear_hop", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/hear_hop.md"))
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    audio = demo_audio(args.seconds, args.batch_size)
    n = audio.size(0)

    per_clip: dict[str, dict[str, float]] = {}
    seconds: dict[str, dict[str, list[float]]] = {}
    for arch in ("aape_tiny_demo", "aape_base"):
        fine, native = models(arch, device)
        print(f"timing {arch} on {device}, {args.repeats} repeats", file=sys.stderr)
        timings = time_interleaved(
            {
                "timestamps, 40 ms hop": lambda: hear.get_timestamp_embeddings(audio, fine),
                "timestamps, 160 ms hop": lambda: hear.get_timestamp_embeddings(audio, native),
                "scene": lambda: hear.get_scene_embeddings(audio, fine),
            },
            repeats=args.repeats,
            sync=sync,
        )
        per_clip[arch] = {k: v.median / n for k, v in timings.items()}
        seconds[arch] = {k: v.seconds for k, v in timings.items()}

    ratios = {arch: t["timestamps, 40 ms hop"] / t["timestamps, 160 ms hop"] for arch, t in per_clip.items()}
    results = {
        "machine": machine(),
        "settings": vars(args) | {"out": str(args.out), "device": str(device)},
        "seconds_per_batch": seconds,
        "seconds_per_clip": per_clip,
        "ratio_40_to_160": ratios,
    }

    m = results["machine"]
    rows = [
        [arch, *(f"{t[k] * 1000:.0f}" for k in ("timestamps, 40 ms hop", "timestamps, 160 ms hop", "scene")), f"{ratios[arch]:.2f}"]
        for arch, t in per_clip.items()
    ]
    worst = max(ratios.values())
    verdict = "meets" if worst <= TARGET else "misses"

    text = f"""# HEAR timestamp embeddings: the cost of the 40 ms hop

Command: `python -m benchmarks.hear_hop --repeats {args.repeats} --seconds {args.seconds:g}` (written by it; `make bench` runs it).
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads){', ' + m['gpu'] if 'gpu' in m else ''}, device `{device}`; {m['date']}.
Setting: batches of {args.batch_size} clips of {args.seconds:g} s of real demo audio; milliseconds per clip (median batch time / {args.batch_size}).

{markdown_table(["model", "timestamps, 40 ms hop (default)", "timestamps, 160 ms (native)", "scene", "40 / 160 ms"], rows)}

The 40 ms hop encodes each window four times (once per 40 ms shift of the log-mel) and
interleaves the patches, so every timestamp embedding is computed rather than interpolated;
its cost is the four encoder passes (target <= {TARGET}x the native hop: {verdict}).
`hear.load_model(..., timestamp_hop_ms=160)` gives the native hop at a quarter of the cost;
10 and 20 ms cost 16 and 8 passes. Absolute times move with the load of a shared machine; the
ratio of the interleaved runs is the figure this page is for.
"""

    save_report(args.out, text, results)

    return 0


if __name__ == "__main__":
    sys.exit(main())
