"""Runs every benchmark and rewrites ``docs/benchmarks.md`` (``make bench``).

    python -m benchmarks.run [--quick]

Each benchmark writes its own page under ``docs/benchmarks/`` (figures, machine, date, command,
targets); this index collects their headline numbers. Benchmarks are not part of the tests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from benchmarks import encoder, hear_hop, loader, ssl_step, stem
from benchmarks.common import machine, markdown_table

DOCS = Path("docs/benchmarks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for the record)")
    args = parser.parse_args(argv)
    r = 2 if args.quick else None

    stem.main(["--out", str(DOCS / "stem.md")] + (["--repeats", str(r)] if r else []))
    encoder.main(["--out", str(DOCS / "encoder.md")] + (["--repeats", str(r)] if r else []))
    ssl_step.main(["--out", str(DOCS / "ssl_step.md")] + (["--repeats", str(r)] if r else []))
    loader.main(["--out", str(DOCS / "loader.md")] + (["--repeats", str(r)] if r else []))
    hear_hop.main(["--out", str(DOCS / "hear_hop.md")] + (["--repeats", str(r)] if r else []))

    res = {name: json.loads((DOCS / f"{name}.json").read_text()) for name in ("stem", "encoder", "ssl_step", "loader", "hear_hop")}

    def verdict(ok: bool) -> str:
        return "meets" if ok else "misses"

    rows = [
        ["ViT-B encoder step with AaPE / plain stem, time", f"{res['stem']['encoder_time_ratio']:.3f}", "<= 1.10",
         verdict(res["stem"]["encoder_time_ratio"] <= 1.10), "[stem](benchmarks/stem.md)"],
        ["same, memory (activations + params + grads)", f"{res['stem']['encoder_memory_ratio']:.3f}", "<= 1.10",
         verdict(res["stem"]["encoder_memory_ratio"] <= 1.10), "[stem](benchmarks/stem.md)"],
        ["ViT-B encoder / timm VisionTransformer, time", f"{res['encoder']['ratio']:.3f}", "<= 1.00",
         verdict(res["encoder"]["ratio"] <= 1.00), "[encoder](benchmarks/encoder.md)"],
        ["SSL step aape_base / vit_base, time", f"{res['ssl_step']['time_ratio']:.3f}", "<= 1.10",
         verdict(res["ssl_step"]["time_ratio"] <= 1.10), "[ssl_step](benchmarks/ssl_step.md)"],
        ["SSL step aape_base / vit_base, memory", f"{res['ssl_step']['memory_ratio']:.3f}", "<= 1.10",
         verdict(res["ssl_step"]["memory_ratio"] <= 1.10), "[ssl_step](benchmarks/ssl_step.md)"],
        ["training reader / pure FLAC decode, clips/s per worker", f"{res['loader']['ratio_to_decode']['reader, training (random crops)']:.2f}",
         ">= 0.75", verdict(res["loader"]["ratio_to_decode"]["reader, training (random crops)"] >= 0.75), "[loader](benchmarks/loader.md)"],
        ["HEAR timestamp embeddings at 40 ms / native 160 ms hop, time per clip (aape_base)",
         f"{res['hear_hop']['ratio_40_to_160']['aape_base']:.2f}", f"<= {hear_hop.TARGET}",
         verdict(res["hear_hop"]["ratio_40_to_160"]["aape_base"] <= hear_hop.TARGET), "[hear_hop](benchmarks/hear_hop.md)"],
    ]
    m = machine()
    text = f"""# Benchmarks

Command: `make bench` (= `python -m benchmarks.run`), which reruns every benchmark and rewrites
this page and the pages it links. Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}
{'(' + m['gpu'] + ')' if 'gpu' in m else '(no GPU: every figure below is CPU time)'}; {datetime.date.today()}.
Ratios compare variants measured alternately in the same run (medians of repeats), because
the machine is shared and noisy; absolute times are for orientation only.

{markdown_table(["figure", "measured", "target", "verdict", "details"], rows)}

The quality benchmark (AaPE vs. the plain stem on the demo tasks, shift stability) is
`make study`, recorded in `docs/results.md`.
"""
    Path("docs/benchmarks.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
