"""Runs every benchmark and rewrites ``docs/benchmarks.md`` (``make bench``).

    python -m benchmarks.run [--quick]

Each benchmark writes its own page under ``docs/benchmarks/`` (figures, machine, date, command,
targets); this index collects their headline numbers. Benchmarks are not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import encoder, fixed_poles, hear_hop, loader, loader_scaling, ssl_step, stem
from benchmarks.common import machine, markdown_table

DOCS = Path("docs/benchmarks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for the record)")
    parser.add_argument("--index-only", action="store_true", help="rewrite this index from the recorded results, run nothing")
    args = parser.parse_args(argv)
    r = 2 if args.quick else None

    if not args.index_only:
        stem.main(["--out", str(DOCS / "stem.md")] + (["--repeats", str(r)] if r else []))
        encoder.main(["--out", str(DOCS / "encoder.md")] + (["--repeats", str(r)] if r else []))
        ssl_step.main(["--out", str(DOCS / "ssl_step.md")] + (["--repeats", str(r)] if r else []))
        ssl_step.main(["--size", "tiny", "--out", str(DOCS / "ssl_step_tiny.md")] + (["--repeats", str(r)] if r else []))
        loader.main(["--out", str(DOCS / "loader.md")] + (["--repeats", str(r)] if r else []))
        loader_scaling.main(["--out", str(DOCS / "loader_scaling.md")] + (["--repeats", str(r)] if r else []))
        hear_hop.main(["--out", str(DOCS / "hear_hop.md")] + (["--repeats", str(r)] if r else []))
        fixed_poles.main(["--out", str(DOCS / "fixed_poles.md")] + (["--repeats", str(r)] if r else []))

    res = {name: json.loads((DOCS / f"{name}.json").read_text()) for name in ("stem", "encoder", "ssl_step", "ssl_step_tiny", "loader", "loader_scaling", "hear_hop")}
    dates = sorted({r["machine"]["date"][:10] for r in res.values()})
    recorded = dates[0] if len(dates) == 1 else f"recorded {dates[0]} to {dates[-1]}"

    def verdict(ok: bool) -> str:
        return "meets" if ok else "misses"

    rows = [
        ["ViT-B encoder step with AaPE / plain stem, time", f"{res['stem']['encoder_time_ratio']:.3f}", "<= 1.10",
         verdict(res["stem"]["encoder_time_ratio"] <= 1.10), "[stem](benchmarks/stem.md)"],
        ["same, memory (activations + params + grads)", f"{res['stem']['encoder_memory_ratio']:.3f}", "<= 1.10",
         verdict(res["stem"]["encoder_memory_ratio"] <= 1.10), "[stem](benchmarks/stem.md)"],
        ["ViT-B encoder / timm VisionTransformer, time", f"{res['encoder']['ratio']:.3f}", "<= 1.00",
         verdict(res["encoder"]["ratio"] <= 1.00), "[encoder](benchmarks/encoder.md)"],
        ["SSL step aape_base / vit_base, time", f"{res['ssl_step']['time_ratio']:.3f}", f"<= {ssl_step.TARGETS['base']}",
         verdict(res["ssl_step"]["time_ratio"] <= ssl_step.TARGETS["base"]), "[ssl_step](benchmarks/ssl_step.md)"],
        ["SSL step aape_base / vit_base, memory", f"{res['ssl_step']['memory_ratio']:.3f}", "<= 1.10",
         verdict(res["ssl_step"]["memory_ratio"] <= 1.10), "[ssl_step](benchmarks/ssl_step.md)"],
        ["SSL step aape_tiny / vit_tiny (the CPU study's models, batch 16 x 4 clones), time", f"{res['ssl_step_tiny']['time_ratio']:.3f}",
         f"<= {ssl_step.TARGETS['tiny']:.2f}", verdict(res["ssl_step_tiny"]["time_ratio"] <= ssl_step.TARGETS["tiny"]), "[ssl_step_tiny](benchmarks/ssl_step_tiny.md)"],
        ["training reader / decoding its crops, clips/s per worker", f"{res['loader']['ratio_to_decode']['reader, training (random crops)']:.2f}",
         f">= {loader.TARGET}", verdict(res["loader"]["ratio_to_decode"]["reader, training (random crops)"] >= loader.TARGET),
         "[loader](benchmarks/loader.md)"],
        ["HEAR timestamp embeddings at 40 ms / native 160 ms hop, time per clip (aape_base)",
         f"{res['hear_hop']['ratio_40_to_160']['aape_base']:.2f}", f"<= {hear_hop.TARGET}",
         verdict(res["hear_hop"]["ratio_40_to_160"]["aape_base"] <= hear_hop.TARGET), "[hear_hop](benchmarks/hear_hop.md)"],
    ]
    scaling = res["loader_scaling"]
    top = max(scaling["clips_per_second"], key=int)
    rows.append([f"training reader with {top} parallel calls, clips/s (efficiency vs. linear)",
                 f"{scaling['clips_per_second'][top]:.0f} ({scaling['efficiency'][top]:.2f})", "-", "-",
                 "[loader_scaling](benchmarks/loader_scaling.md)"])
    consumption = scaling["gpu_consumption"]
    kind = "measured" if consumption["kind"] == "measured" else "estimated"
    rows.append([f"parallel calls per GPU for aape_base (from its {kind} consumption)", str(scaling["calls_per_gpu"]),
                 "-", "-", "[loader_scaling](benchmarks/loader_scaling.md)"])
    gpu = DOCS / "gpu.json"
    gpu_text = (f"GPU figures: [gpu](benchmarks/gpu.md), measured by `make gpu-check` on {json.loads(gpu.read_text())['machine'].get('gpu')}."
                if gpu.is_file() else "GPU figures: not measured yet; `make gpu-check` on a CUDA machine writes them to `docs/benchmarks/gpu.md`.")
    m = machine()
    text = f"""# Benchmarks

Command: `make bench` (= `python -m benchmarks.run`), which reruns every benchmark and rewrites
this page and the pages it links. Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}
{'(' + m['gpu'] + ')' if 'gpu' in m else '(no GPU: every figure below is CPU time)'}; {recorded}.
Ratios compare variants measured alternately in the same run (medians of repeats), because
the machine is shared and noisy; absolute times are for orientation only.

{markdown_table(["figure", "measured", "target", "verdict", "details"], rows)}

{gpu_text}

## The GPU check (`make gpu-check`)

One command for the figures only a GPU gives, sized to fit one 10-minute call on one H100 or
H200, start-up included. Its parts run in separate processes, each with a time limit, in this
order (expected times on one H100/H200; each process spends about 10 s starting torch and CUDA):

| part | what | expected | limit |
|---|---|---|---|
| step | `aape_base` and `vit_base` pre-training steps at 12 clips x 16 clones in bf16 (clipping, AdamW, EMA included): step time, clips/s, `torch.cuda.max_memory_allocated`, AaPE / plain ratios, host syncs of a step that does not publish metrics | ~20 s per arch | 120 s each |
| pretrain | `python -m aape_plugin recipe run aape_pretrain` on the demo data, 40 steps in bf16 on the GPU | ~45 s | 150 s |
| extract | `aape_extract` of the demo audio with `aape_base`: rank 0's peak device memory | ~30 s | 90 s |
| reader | the training reader with 1, 2, 4, ... parallel calls up to the cores, next to the measured consumption | ~60 s | 120 s |
| ddp | the pretrain part under `torchrun` on 2 GPUs (only with 2 GPUs) | ~60 s | 150 s |
| compile | the step part with the family's `torch.compile` (inductor); its first step includes compilation | ~1-2 min per arch | 150 s each |

About 5.5 minutes with one GPU, 6.5 with two. Whatever happens, no part starts once 540 s are
spent and a running one is stopped there; a part that does not fit is skipped and the page
says so, which leaves a minute of the ten for start-up and writing `docs/benchmarks/gpu.md`.
Without CUDA the command says it needs a GPU and writes nothing; `python -m benchmarks.gpu
--cpu --out FILE` runs the same code on the CPU (the tests do).

The quality study (fine-tuning and probes with all labels and few, the pre-training-length
curve, shift stability, AaPE against the plain stem) is `make study` (`studies/`), recorded in
`docs/results.md`.
"""
    Path("docs/benchmarks.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
