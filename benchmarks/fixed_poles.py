"""Cost of the adaptive estimate: the AaPE stem with the Lambda Encoder (``adaptive: true``, the
paper) against the fixed-pole arm (``adaptive: false``: one learned pole set per subband), and
the plain conv stem for scale.

Forward + backward of the stem alone, batch 8, 80 x 608 log-mel, D = 768 (``aape_base``'s stem),
and of ``aape_tiny``'s stem (80 x 96, D = 128). Variants alternate (A B C A B C ...) and the
medians of the repeats are compared, so that load on a shared machine hits all alike.

Run: ``python -m benchmarks.fixed_poles [--repeats 9] [--out docs/benchmarks/fixed_poles.md]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aape_plugin.models.archs import ARCHS
from aape_plugin.models.factory import create_encoder
from benchmarks.common import machine, markdown_table, save_report, time_interleaved
from benchmarks.stem import param_bytes, train_step


FROZEN = "adaptive, Lambda Encoder without gradients"
"""The adaptive stem with its Lambda Encoder's parameters excluded from back-propagation: what a
frozen Lambda Encoder (the ``study`` preset's) could cost. The recipes freeze it with a learning
rate of 0 and still back-propagate into it, so their frozen step costs what the adaptive one does."""


def stems(arch: str) -> dict[str, torch.nn.Module]:
    """The stems of ``arch``'s configuration, as the model factory builds them."""
    out = {}
    for name, kind, adaptive in (("adaptive (paper)", "aape", True), (FROZEN, "aape", True), ("fixed poles", "aape", False),
                                 ("plain", "plain", True)):
        config = ARCHS[arch]().encoder
        config.stem.kind, config.stem.adaptive = kind, adaptive
        torch.manual_seed(0)
        out[name] = create_encoder(config, drop_path=0.0).stem
        if name == FROZEN:
            out[name].lambda_encoder.requires_grad_(False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fixed_poles", description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/fixed_poles.md"))
    args = parser.parse_args(argv)

    results: dict[str, object] = {"machine": machine(), "repeats": args.repeats, "settings": {}}
    sections = []
    for arch, frames in (("aape_base", 608), ("aape_tiny", 96)):
        torch.manual_seed(0)
        x = torch.randn(8, 1, 80, frames)
        models = stems(arch)
        print(f"timing {arch}'s stems, {args.repeats} repeats", file=sys.stderr)
        timings = time_interleaved({name: train_step(m, x) for name, m in models.items()}, repeats=args.repeats)
        medians = {name: 1000 * t.median for name, t in timings.items()}
        adaptive = medians["adaptive (paper)"]
        rows = [[name, f"{ms:.1f}", f"{ms / adaptive:.3f}x", f"{param_bytes(models[name]) / 2**20:.2f}"] for name, ms in medians.items()]
        sections.append(f"### `{arch}`'s stem, batch 8, 80 x {frames}\n\n"
                        + markdown_table(["stem", "ms per step (median)", "/ adaptive", "parameters (MiB)"], rows))
        results["settings"][arch] = {"frames": frames, "ms": medians}  # type: ignore[index]

    m = results["machine"]
    text = (
        "# The adaptive estimate's cost: Lambda Encoder against fixed poles\n\n"
        f"Command: `python -m benchmarks.fixed_poles --repeats {args.repeats}`. Machine: {m['cpu']}, torch {m['torch']}, "  # type: ignore[index]
        f"device `cpu`; {m['date']}.\n"  # type: ignore[index]
        "One training step of the stem alone (forward + backward, loss = mean of the tokens). Medians of interleaved repeats.\n"
        f"`{FROZEN}`: the Lambda Encoder's parameters excluded from back-propagation; the recipes freeze it with a learning\n"
        "rate of 0 (`optimizer.config.lambda_lr_scale: 0.0`) and still back-propagate into it, so their frozen step costs\n"
        "what the adaptive one does.\n\n"
        + "\n\n".join(sections) + "\n"
    )
    save_report(args.out, text, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
