"""Can the training reader feed a GPU? Its clips/s with 1, 2, 4, ... parallel calls, next to
what one GPU consumes.

The reader is the one ``aape_pretrain`` uses (decode the crop -> resample to 16 kHz -> log-mel
-> normalise -> batches of 12), on the files of ``benchmarks.loader`` (10 s, 44.1 kHz FLAC of
real demo audio, the AudioSet-like case), random 608-frame crops. ``num_parallel_calls`` is
``dataset.num_parallel_calls`` of the recipes: clips decoded at once by one rank. Each torch
operation runs on one thread, so a call is one core's work. The call counts alternate (A B C
A B C ...), medians over repeats.

What one GPU consumes comes from ``docs/benchmarks/gpu.json`` when ``make gpu-check`` has
measured it; until then it is an estimate, derived on the page from the floating-point
operations of one training step (counted here with ``torch.utils.flop_counter``) and the
published peak of an H100/H200.

Run: ``python -m benchmarks.loader_scaling [--max-calls N] [--files 96] [--repeats 3] [--out docs/benchmarks/loader_scaling.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.reader import AudioReaderOptions, create_audio_reader
from aape_plugin.data.stats import FeatureStats
from benchmarks.common import machine, markdown_table, save_report
from benchmarks.loader import DEMO, make_files

BATCH_SIZE = 12
"""Clips per batch and GPU in the ``audioset_base`` preset."""

PEAK_BF16_FLOPS = 989e12
"""Dense bf16 tensor-core peak of an H100 SXM and of an H200 (the same chip's compute), from
NVIDIA's data sheets."""

MFU_RANGE = (0.15, 0.40)
"""Assumed share of that peak a training step reaches (model FLOPs utilisation): about 0.4 is
good for a ViT-B in bf16 with fused kernels; the AaPE stem's many small per-clone operations,
the masking gathers and the EMA update pull it lower."""

GPU_JSON = Path("docs/benchmarks/gpu.json")


def call_counts(limit: int) -> list[int]:
    """1, 2, 4, ... up to ``limit`` (and ``limit`` itself)."""
    counts = [1]
    while counts[-1] * 2 <= limit:
        counts.append(counts[-1] * 2)
    if counts[-1] != limit:
        counts.append(limit)
    return counts


@dataclass
class ReaderRate:
    clips_per_second: float
    """Wall-clock throughput (what a GPU sees; needs as many free cores as calls)."""
    cpu_seconds_per_clip: float
    """CPU time of the whole process per clip (all threads): what a clip costs whatever the load."""


def reader_rates(paths: list[Path], calls: list[int], repeats: int) -> dict[int, ReaderRate]:
    """One epoch of the training reader over ``paths`` per number of parallel calls, the
    counts alternating, medians over ``repeats`` (after one warm-up epoch each)."""
    stats = FeatureStats.load(DEMO / "stats.json")
    entries = [ClipEntry(p) for p in paths]
    gangs = create_fake_gangs(CPU)
    readers = {k: create_audio_reader(entries, gangs, LogMelConfig(), stats, AudioReaderOptions(
        batch_size=BATCH_SIZE, num_frames=608, crop="random", num_parallel_calls=k, num_prefetch=max(2, k // 2), seed=0)) for k in calls}

    def epoch(k: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        n = sum(b.batch_size for group in readers[k] for b in group)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert n == len(paths), (n, len(paths))
        readers[k].reset()
        return wall, cpu

    for k in calls:
        epoch(k)
    samples: dict[int, list[tuple[float, float]]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k in calls:
            samples[k].append(epoch(k))
    return {k: ReaderRate(len(paths) / statistics.median(w for w, _ in s), statistics.median(c for _, c in s) / len(paths))
            for k, s in samples.items()}


def flops_per_clip(arch: str = "aape_base") -> float:
    """Floating-point operations of one pre-training step per clip (teacher forward, student
    and predictor forward and backward, criterion), counted on the CPU for one clip."""
    from torch.utils.flop_counter import FlopCounterMode

    from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
    from aape_plugin.models.archs import ARCHS
    from aape_plugin.models.factory import create_aape_model

    torch.manual_seed(0)
    model = create_aape_model(ARCHS[arch]()).train()
    x = torch.randn(1, 1, 80, model.config.encoder.num_frames)
    criterion = AapeCriterion(AapeCriterionConfig())
    with FlopCounterMode(display=False) as counter:
        criterion(model(x, mask_seeds=[0])).total.backward()
    return float(counter.get_total_flops())


def gpu_consumption() -> dict[str, object]:
    """Clips/s one GPU consumes in ``aape_base`` pre-training: measured by ``make gpu-check``
    when it has run, else the estimate from FLOPs and the published peak."""
    if GPU_JSON.is_file():
        measured = json.loads(GPU_JSON.read_text())
        step = measured.get("step", {}).get("aape_base", {})
        if step.get("clips_per_second"):
            return {"kind": "measured", "clips_per_second": step["clips_per_second"], "gpu": measured["machine"].get("gpu"),
                    "source": str(GPU_JSON)}
    flops = flops_per_clip("aape_base")
    low, high = (PEAK_BF16_FLOPS * mfu / flops for mfu in MFU_RANGE)
    return {"kind": "estimate", "flops_per_clip": flops, "peak_flops": PEAK_BF16_FLOPS, "mfu_range": list(MFU_RANGE),
            "clips_per_second": [low, high]}


def calls_needed(cpu_seconds_per_clip: float, consumption: float) -> int:
    """Parallel calls per GPU that cover ``consumption`` with a margin of 1.5x when each call
    has a core: one call then reads ``1 / cpu_seconds_per_clip`` clips/s."""
    return max(1, math.ceil(1.5 * consumption * cpu_seconds_per_clip))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loader_scaling", description=__doc__)
    parser.add_argument("--max-calls", type=int, default=os.cpu_count() or 1, help="default: the number of cores")
    parser.add_argument("--files", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/loader_scaling.md"))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    calls = call_counts(args.max_calls)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), args.files)
        rates = reader_rates(paths, calls, args.repeats)

    consumption = gpu_consumption()
    need = consumption["clips_per_second"]
    upper = need if isinstance(need, float) else need[1]
    # Per call with a core to itself: from the CPU time a clip costs with one call (the
    # wall-clock rate also depends on what else the machine runs).
    per_core = 1.0 / rates[1].cpu_seconds_per_clip
    calls_for_gpu = calls_needed(rates[1].cpu_seconds_per_clip, upper)

    load = (load_before, os.getloadavg()[0])
    wall = {k: r.clips_per_second for k, r in rates.items()}
    results = {"machine": machine(), "load_average": list(load), "settings": vars(args) | {"out": str(args.out), "calls": calls},
               "rates": {str(k): asdict(r) for k, r in rates.items()}, "clips_per_second": {str(k): v for k, v in wall.items()},
               "efficiency": {str(k): wall[k] / (k * wall[1]) for k in calls}, "clips_per_second_per_core": per_core,
               "gpu_consumption": consumption, "calls_per_gpu": calls_for_gpu}

    m = results["machine"]
    rows = [[str(k), f"{wall[k]:.0f}", f"{wall[k] / (k * wall[1]):.2f}", f"{1000 * rates[k].cpu_seconds_per_clip:.1f}"] for k in calls]

    if consumption["kind"] == "measured":
        gpu_text = (f"One {consumption['gpu']} consumes **{upper:.0f} clips/s** in `aape_base` pre-training at 12 clips x 16 "
                    f"clones in bf16 (measured by `make gpu-check`, `{consumption['source']}`).")
    else:
        low, high = need  # type: ignore[misc]
        gpu_text = f"""**Estimate, not a measurement** (no GPU was available; `make gpu-check` measures it and this
page then uses the measured figure). One `aape_base` pre-training step costs
{consumption['flops_per_clip'] / 1e9:.0f} GFLOP per clip (teacher forward, student and predictor forward and backward, the
criterion; counted with `torch.utils.flop_counter` on one clip with its 16 clones). An H100 SXM or H200
peaks at 989 TFLOP/s in dense bf16 (NVIDIA's data sheets); a step of this model reaches perhaps
{MFU_RANGE[0]:.0%} to {MFU_RANGE[1]:.0%} of it (model FLOPs utilisation: about 40% is good for a ViT-B with fused kernels, the
AaPE stem's small per-clone operations, the masking gathers and the EMA update pull it lower).
One GPU then consumes about **{low:.0f} to {high:.0f} clips/s** (989e12 x utilisation / FLOPs per clip)."""

    text = f"""# Training reader throughput vs. parallel calls, and what one GPU consumes

Command: `python -m benchmarks.loader_scaling --max-calls {args.max_calls} --files {args.files} --repeats {args.repeats}` (written by it; `make bench` runs it).
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}; {m['date']}. Reader of `aape_pretrain`: {args.files} files of 10 s,
44.1 kHz, 16-bit FLAC (real demo audio), random 608-frame crops, batches of {BATCH_SIZE}, one torch thread per call;
medians of {args.repeats} alternating repeats. Calls beyond the number of free cores cannot scale: this
machine has {m['cpu_count']} cores, and its 1-minute load average was {load[0]:.1f} before and {load[1]:.1f} after the
run (other work shares them), so read the efficiency of the larger counts with care.

{markdown_table(["parallel calls", "clips/s (wall)", "efficiency vs. linear", "CPU ms per clip"], rows)}

The CPU time a clip costs (all threads of the process, per clip read) depends less on the load
than the wall-clock rate does, though it still rises when other processes share the cores and
their caches (`docs/benchmarks/loader.md` has the rate on a quieter machine). From it, one call
with a core of its own reads 1000 / {1000 * rates[1].cpu_seconds_per_clip:.1f} = **{per_core:.0f} clips/s** here. Whether the
wall-clock rate grows with the calls needs free cores (and is held back by the part of each
clip's work that holds Python's GIL); `make gpu-check` measures it on the GPU machine's cores,
up to their number.

## What one GPU consumes

{gpu_text}

## How many calls per GPU

At {per_core:.0f} clips/s per call with a core of its own, {upper:.0f} clips/s (the upper end) with a margin
of 1.5x needs **{calls_for_gpu} parallel call(s) per GPU** (`dataset.num_parallel_calls`, per rank), each with
a free core. The `audioset_base` preset sets 8 per rank (64 decoding threads on an 8-GPU node).
AudioSet as commonly downloaded is 10 s clips at 44.1 or 48 kHz, in FLAC or other formats;
formats slower to decode (e.g. MP3/Opus) lower the per-call rate. `make gpu-check` measures
the reader on the GPU machine's own cores, next to the measured consumption.
"""
    save_report(args.out, text, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
