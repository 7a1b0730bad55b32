"""One SSL training step, AaPE vs the plain stem (``aape_base`` vs ``vit_base``, or the tiny pair
the CPU-scale study trains), same recipe, batch and clones, and where the time goes.

Forward + backward of the whole model and criterion (the optimiser step is the same for both
and left out). Variants alternate, medians over repeats. The breakdown times each part
forward + backward on its own, with the inputs it gets in the step.

Run: ``python -m benchmarks.ssl_step [--size base|tiny] [--batch-size N] [--repeats 5] [--out FILE]``
(``make bench`` runs ``base`` at batch 2 into ``ssl_step.md`` and ``tiny`` at batch 16, the study's
batch, into ``ssl_step_tiny.md``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
from aape_plugin.models.archs import ARCHS
from aape_plugin.models.factory import create_aape_model
from aape_plugin.models.ssl_model import AapeSslModel
from aape_plugin.nn.masking import random_patch_masks
from aape_plugin.nn.targets import layer_pooled_targets
from benchmarks.common import machine, markdown_table, save_report, saved_activation_bytes, time_interleaved

TARGETS = {"base": 1.03, "tiny": 1.50}
"""aape / vit step time."""

MEMORY_TARGETS = {"base": 1.10, "tiny": 1.50}
"""aape / vit memory (activations + parameters + gradients; CUDA peak on a GPU)."""


def breakdown(model: AapeSslModel, x: Tensor, repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    config = model.config
    m = config.masking.num_clones

    with torch.no_grad():
        grid = model.teacher(x).grid
        masks = random_patch_masks(x.size(0), grid, ratio=config.masking.ratio, num_clones=m, device=x.device)
        student_out = model.student(x, visible=masks.visible, num_clones=m)
        context = torch.cat([student_out.cls.unsqueeze(1), student_out.patches], dim=1)
        output = model(x)

    index = masks.visible.flatten(1).nonzero()[:, 1].view(masks.visible.size(0), -1)
    criterion = AapeCriterion(AapeCriterionConfig())

    def backward_of(fn: Callable[[], Tensor]) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            fn().float().mean().backward()

        return run

    def teacher() -> None:
        with torch.no_grad():
            out = model.teacher(x, return_layers=True)
            layer_pooled_targets(out.layers, config.targets.num_layers)

    def student_stem() -> Tensor:
        if model.student.mask_stem_input and hasattr(model.student.stem, "lambda_encoder"):
            return model.student.stem(x, index, m).tokens
        return model.student.stem(x).tokens

    def student() -> Tensor:
        out = model.student(x, visible=masks.visible, num_clones=m)
        return out.patches.float().mean() + out.cls.float().mean()

    ctx = context.detach().requires_grad_()
    out_pred = output.predicted_patches.detach().requires_grad_()

    def criterion_part() -> Tensor:
        output.predicted_patches = out_pred
        return criterion(output).total

    fns = {
        "teacher forward (no grad) + targets": teacher,
        "student: stem": backward_of(student_stem),
        "student: stem + ViT blocks": backward_of(student),
        "predictor": backward_of(lambda: model.predictor(ctx, masks.masked_index, grid)),
        "criterion": backward_of(criterion_part),
    }

    timings = time_interleaved(fns, repeats=repeats, sync=sync)

    return {name: t.median for name, t in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ssl_step", description=__doc__)
    parser.add_argument("--size", choices=("base", "tiny"), default="base")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per step (default: 2 for base, 16 for tiny)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/ssl_step.md"))
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (2 if args.size == "base" else 16)
    aape, vit = f"aape_{args.size}", f"vit_{args.size}"
    TARGET, MEMORY_TARGET = TARGETS[args.size], MEMORY_TARGETS[args.size]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)

    models = {arch: create_aape_model(ARCHS[arch]()).to(device).train() for arch in (aape, vit)}

    config = models[aape].config
    x = torch.randn(args.batch_size, 1, 80, config.encoder.num_frames, device=device)
    criterion = AapeCriterion(AapeCriterionConfig())

    def step(model: AapeSslModel) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            criterion(model(x)).total.backward()

        return run

    print(f"timing on {device}, batch {args.batch_size} x {config.masking.num_clones} clones", file=sys.stderr)

    timings = time_interleaved({arch: step(m) for arch, m in models.items()}, repeats=args.repeats, sync=sync)

    memory = {}
    for arch, model in models.items():
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        activations = saved_activation_bytes(lambda: criterion(model(x)).total)
        peak = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step(model)()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        memory[arch] = {"parameters": params, "gradients": grads, "activations": activations,
                        "step": params + grads + activations, "cuda_peak": peak}

    parts = {arch: breakdown(m, x, args.repeats, sync) for arch, m in models.items()}

    time_ratio = timings[aape].median / timings[vit].median
    mem_ratio = memory[aape]["step"] / memory[vit]["step"]

    results = {
        "machine": machine(),
        "settings": {"size": args.size, "archs": [aape, vit], "batch_size": args.batch_size, "num_clones": config.masking.num_clones,
                     "mask_ratio": config.masking.ratio, "repeats": args.repeats, "device": str(device)},
        "seconds": {k: v.seconds for k, v in timings.items()},
        "memory_bytes": memory,
        "breakdown_seconds": parts,
        "time_ratio": time_ratio,
        "target": TARGET,
        "memory_target": MEMORY_TARGET,
        "memory_ratio": mem_ratio,
    }

    mib = 1024**2
    m = results["machine"]
    rows = [
        ["step time (ms, median)", f"{timings[vit].median * 1000:.0f}", f"{timings[aape].median * 1000:.0f}", f"{time_ratio:.3f}x", f"<= {TARGET:.2f}x"],
        ["saved activations (MiB)", f"{memory[vit]['activations'] / mib:.0f}", f"{memory[aape]['activations'] / mib:.0f}",
         f"{memory[aape]['activations'] / memory[vit]['activations']:.3f}x", "-"],
        ["activations + params + grads (MiB)", f"{memory[vit]['step'] / mib:.0f}", f"{memory[aape]['step'] / mib:.0f}", f"{mem_ratio:.3f}x", f"<= {MEMORY_TARGET:.2f}x"],
    ]
    if device.type == "cuda":
        cuda_ratio = memory[aape]["cuda_peak"] / memory[vit]["cuda_peak"]
        rows.append(["CUDA peak allocated (MiB)", f"{memory[vit]['cuda_peak'] / mib:.0f}",
                     f"{memory[aape]['cuda_peak'] / mib:.0f}", f"{cuda_ratio:.3f}x", f"<= {MEMORY_TARGET:.2f}x"])

    part_rows = [[name, f"{parts[vit][name] * 1000:.0f}", f"{parts[aape][name] * 1000:.0f}"] for name in parts[aape]]

    def verdict(ratio: float, target: float) -> str:
        return "meets" if ratio <= target else f"misses by {100 * (ratio / target - 1):.1f}%"

    text = f"""# SSL training step: {aape} vs. {vit}

Command: `python -m benchmarks.ssl_step --size {args.size} --batch-size {args.batch_size} --repeats {args.repeats}` (written by it; `make bench` runs it).
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads){', ' + m['gpu'] if 'gpu' in m else ''}, device `{device}`; {m['date']}.
Setting: forward + backward of model and criterion, {args.batch_size} clips x {config.masking.num_clones} mask clones,
ratio {config.masking.ratio}, 80 x {config.encoder.num_frames} log-mel, {'ViT-B' if args.size == 'base' else 'D ' + str(config.encoder.model_dim) + ', ' + str(config.encoder.num_layers) + '-layer'} student and teacher, predictor
{config.predictor.num_layers} x {config.predictor.dim}. The AaPE student's stem runs once per clone on the visible
patches only (hidden patches must not reach it: its patch-local parts are shared by the clones);
the plain stem once per clip.

{markdown_table(["", vit, aape, "aape / vit", "target"], rows)}

Time: {verdict(time_ratio, TARGET)} the target; memory: {verdict(mem_ratio, MEMORY_TARGET)} the target.

## Where the time goes (ms, each part forward + backward alone, medians)

{markdown_table(["part", vit, aape], part_rows)}

"student: stem + ViT blocks" includes the stem. The difference between the two models is the
stem: per clone for AaPE (Lambda Encoder, high-pass, SBLU, fusion at the visible patches), and
in the teacher's full-clip forward.
"""

    save_report(args.out, text, results)

    return 0


if __name__ == "__main__":
    sys.exit(main())
