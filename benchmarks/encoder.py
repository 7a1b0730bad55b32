"""The ViT-B encoder against timm's ``VisionTransformer`` at the same shape.

Both: 1 x 80 x 608 log-mel, 16 x 16 conv patches (190 tokens) + CLS, D 768, 12 layers,
12 heads, MLP ratio 4, forward + backward of one step, batch 8. Interleaved repeats, medians.
timm is a benchmark-only dependency (``pip install -e '.[bench]'``).

Run: ``python -m benchmarks.encoder [--repeats 9] [--out docs/benchmarks/encoder.md]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aape_plugin.nn.audio_encoder import AudioEncoder
from aape_plugin.nn.patch_embed import PlainPatchEmbed
from benchmarks.common import machine, markdown_table, save_report, time_interleaved

TARGET = 1.00


def build_timm(frames: int) -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=(80, frames),
        patch_size=16,
        in_chans=1,
        num_classes=0,
        global_pool="",
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        class_token=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.encoder", description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=608)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/encoder.md"))
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)

    x = torch.randn(args.batch_size, 1, 80, args.frames, device=device)

    ours = AudioEncoder(PlainPatchEmbed()).to(device)
    theirs = build_timm(args.frames).to(device)

    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())

    def step_ours() -> None:
        ours.zero_grad(set_to_none=True)
        out = ours(x)
        (out.patches.mean() + out.cls.mean()).backward()

    def step_theirs() -> None:
        theirs.zero_grad(set_to_none=True)
        theirs.forward_features(x).mean().backward()

    print(f"timing on {device}, {args.repeats} repeats", file=sys.stderr)

    timings = time_interleaved({"aape_plugin": step_ours, "timm": step_theirs}, repeats=args.repeats, sync=sync)

    ratio = timings["aape_plugin"].median / timings["timm"].median

    results = {
        "machine": machine(),
        "settings": vars(args) | {"out": str(args.out), "device": str(device)},
        "seconds": {k: v.seconds for k, v in timings.items()},
        "parameters": {"aape_plugin": n_ours, "timm": n_theirs},
        "ratio": ratio,
    }

    m = results["machine"]
    spread = {k: (min(v.seconds), max(v.seconds)) for k, v in timings.items()}
    rows = [
        [name, f"{n:,}", f"{timings[name].median * 1000:.0f}", f"{spread[name][0] * 1000:.0f}-{spread[name][1] * 1000:.0f}"]
        for name, n in (("aape_plugin", n_ours), ("timm", n_theirs))
    ]
    verdict = "meets" if ratio <= TARGET else f"misses by {100 * (ratio - 1):.1f}%"

    text = f"""# Encoder speed: aape_plugin's ViT-B vs. timm's VisionTransformer

Command: `python -m benchmarks.encoder --repeats {args.repeats}` (written by it; `make bench` runs it).
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads){', ' + m['gpu'] if 'gpu' in m else ''}, device `{device}`; {m['date']}.
Setting: forward + backward, batch {args.batch_size}, 1 x 80 x {args.frames} input, 16 x 16 patches
({(80 // 16) * (args.frames // 16)} tokens + CLS), D 768, 12 layers, 12 heads (plain conv stem on both sides).

{markdown_table(["encoder", "parameters", "median ms", "min-max ms"], rows)}

Ratio aape_plugin / timm of the medians: **{ratio:.3f}** (target <= {TARGET:.2f}: {verdict}).
Both use PyTorch's scaled_dot_product_attention; timm learns its position table, this encoder
uses fixed 2-D sine-cosine positions (hence {n_theirs - n_ours:,} fewer parameters).
"""

    save_report(args.out, text, results)

    return 0


if __name__ == "__main__":
    sys.exit(main())
