"""Cost of the AaPE stem: alone, and in front of a ViT-B encoder, against the plain conv stem.

Forward + backward of one training step (loss = mean of the outputs), batch 8, 80 x 608
log-mel, D = 768, 12 layers, 12 heads. Variants alternate (A B A B ...) and the medians of the
repeats are compared, so that load on a shared machine hits both alike. Memory: the bytes of
activations autograd saves for the backward pass (exact on CPU), plus parameters, and the CUDA
high-water mark when a GPU is present.

Run: ``python -m benchmarks.stem [--repeats 7] [--out docs/benchmarks/stem.md]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import Module

from aape_plugin.nn.audio_encoder import AudioEncoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed, PlainPatchEmbed
from benchmarks.common import machine, markdown_table, save_report, saved_activation_bytes, time_interleaved

TARGET = 1.10


def step_fn(model: Module, x: Tensor) -> Callable[[], Tensor]:
    def loss() -> Tensor:
        out = model(x)
        if hasattr(out, "patches"):  # encoder
            return out.patches.float().mean() + out.cls.float().mean()
        return out.tokens.float().mean()  # stem

    return loss


def train_step(model: Module, x: Tensor) -> Callable[[], None]:
    loss = step_fn(model, x)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        loss().backward()

    return run


def param_bytes(model: Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def cuda_peak(model: Module, x: Tensor) -> int | None:
    if x.device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    train_step(model, x)()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def stem_breakdown(stem: AaPEPatchEmbed, x: Tensor, repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median forward+backward seconds of each part of the AaPE stem on its own inputs."""
    with torch.no_grad():
        decay, frequency = stem.lambda_encoder(x)
        standard = stem.proj(x).permute(0, 2, 3, 1)
        alias = stem.sblu(x, decay, frequency)

    def part(fn: Callable[[], Tensor]) -> Callable[[], None]:
        def run() -> None:
            stem.zero_grad(set_to_none=True)
            fn().float().mean().backward()

        return run

    d = decay.clone().requires_grad_()
    f = frequency.clone().requires_grad_()
    s = standard.clone().requires_grad_()
    a = alias.clone().requires_grad_()

    def lambda_part() -> Tensor:
        dd, ff = stem.lambda_encoder(x)
        return dd.sum() + ff.sum()

    fns = {
        "conv patch projection": part(lambda: stem.proj(x)),
        "lambda encoder": part(lambda_part),
        "adaptive SBLU": part(lambda: stem.sblu(x, d, f)),
        "patch fusion": part(lambda: stem.fusion(s, a)),
    }

    timings = time_interleaved(fns, repeats=repeats, sync=sync)

    return {name: t.median for name, t in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stem", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=608)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/stem.md"))
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)

    x = torch.randn(args.batch_size, 1, 80, args.frames, device=device)

    plain_stem = PlainPatchEmbed().to(device)
    aape_stem = AaPEPatchEmbed().to(device)
    plain_enc = AudioEncoder(PlainPatchEmbed()).to(device)
    aape_enc = AudioEncoder(AaPEPatchEmbed()).to(device)

    print(f"timing on {device}, {args.repeats} repeats, batch {args.batch_size}, 80 x {args.frames}", file=sys.stderr)

    stems = time_interleaved(
        {"plain": train_step(plain_stem, x), "aape": train_step(aape_stem, x)}, repeats=args.repeats, sync=sync
    )
    encoders = time_interleaved(
        {"plain": train_step(plain_enc, x), "aape": train_step(aape_enc, x)}, repeats=args.repeats, sync=sync
    )

    memory = {}
    for name, model in [("plain stem", plain_stem), ("aape stem", aape_stem), ("plain encoder", plain_enc), ("aape encoder", aape_enc)]:
        activations = saved_activation_bytes(step_fn(model, x))
        memory[name] = {
            "activations": activations,
            "parameters": param_bytes(model),
            "step": activations + 2 * param_bytes(model),  # + gradients
            "cuda_peak": cuda_peak(model, x),
        }

    breakdown = stem_breakdown(aape_stem, x, args.repeats, sync)

    enc_time_ratio = encoders["aape"].median / encoders["plain"].median
    enc_mem_ratio = memory["aape encoder"]["step"] / memory["plain encoder"]["step"]
    cuda_ratio = None
    if memory["aape encoder"]["cuda_peak"]:
        cuda_ratio = memory["aape encoder"]["cuda_peak"] / memory["plain encoder"]["cuda_peak"]

    results = {
        "machine": machine(),
        "settings": {"batch_size": args.batch_size, "frames": args.frames, "repeats": args.repeats, "device": str(device)},
        "stem_seconds": {k: v.seconds for k, v in stems.items()},
        "encoder_seconds": {k: v.seconds for k, v in encoders.items()},
        "memory_bytes": memory,
        "aape_stem_breakdown_seconds": breakdown,
        "encoder_time_ratio": enc_time_ratio,
        "encoder_memory_ratio": enc_mem_ratio,
        "encoder_cuda_peak_ratio": cuda_ratio,
    }

    mib = 1024**2
    ms = 1000

    rows_time = [
        ["stem alone", f"{stems['plain'].median * ms:.1f}", f"{stems['aape'].median * ms:.1f}", f"{stems['aape'].median / stems['plain'].median:.2f}x", "-"],
        ["stem + ViT-B encoder", f"{encoders['plain'].median * ms:.0f}", f"{encoders['aape'].median * ms:.0f}", f"{enc_time_ratio:.3f}x", f"<= {TARGET:.2f}x"],
    ]
    rows_mem = []
    for what in ("stem", "encoder"):
        p, a = memory[f"plain {what}"], memory[f"aape {what}"]
        rows_mem.append([
            f"{what}: saved activations", f"{p['activations'] / mib:.1f}", f"{a['activations'] / mib:.1f}",
            f"{a['activations'] / max(p['activations'], 1):.3f}x", "-",
        ])
        rows_mem.append([
            f"{what}: activations + params + grads", f"{p['step'] / mib:.1f}", f"{a['step'] / mib:.1f}",
            f"{a['step'] / p['step']:.3f}x", f"<= {TARGET:.2f}x" if what == "encoder" else "-",
        ])
    if cuda_ratio is not None:
        rows_mem.append(["encoder: CUDA peak allocated", f"{memory['plain encoder']['cuda_peak'] / mib:.0f}",
                         f"{memory['aape encoder']['cuda_peak'] / mib:.0f}", f"{cuda_ratio:.3f}x", f"<= {TARGET:.2f}x"])

    total_parts = sum(breakdown.values())
    rows_parts = [[name, f"{sec * ms:.1f}", f"{100 * sec / total_parts:.0f}%"] for name, sec in breakdown.items()]

    m = results["machine"]
    verdict_time = "meets" if enc_time_ratio <= TARGET else f"misses (by {100 * (enc_time_ratio / TARGET - 1):.1f}%)"
    verdict_mem = "meets" if enc_mem_ratio <= TARGET else f"misses (by {100 * (enc_mem_ratio / TARGET - 1):.1f}%)"

    text = f"""# Stem cost: AaPE vs. plain patch embedding

Command: `python -m benchmarks.stem --repeats {args.repeats}` (written by it; `make bench` runs it).
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads){', ' + m['gpu'] if 'gpu' in m else ''}, device `{device}`; {m['date']}.
Setting: one training step (forward + backward), batch {args.batch_size}, log-mel 80 x {args.frames}
(5 x {args.frames // 16} patches), D = 768; encoder = ViT-B (12 layers, 12 heads) with CLS token.
Medians of {args.repeats} interleaved repeats.

## Time (ms per step)

{markdown_table(["", "plain", "AaPE", "AaPE / plain", "target"], rows_time)}

The encoder step with AaPE {verdict_time} the target of {TARGET:.2f}x in time.

## Memory (MiB)

{markdown_table(["", "plain", "AaPE", "AaPE / plain", "target"], rows_mem)}

The encoder step with AaPE {verdict_mem} the target of {TARGET:.2f}x in memory (activations saved for
backward + parameters + gradients; optimiser state adds about 2x the parameters on both sides).

## Where the AaPE stem's time goes (forward + backward of each part alone)

{markdown_table(["part", "ms", "share"], rows_parts)}
"""

    save_report(args.out, text, results)

    return 0


if __name__ == "__main__":
    sys.exit(main())
