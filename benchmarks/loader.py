"""Data loader throughput: the full reader against pure decoding of the same audio, per worker.

Files: 10 s, 44.1 kHz, 16-bit FLAC made of real demo audio (notes, keywords and drums
concatenated and resampled), the AudioSet-like case. Per worker = one decoding thread and one
torch thread (the reader's two stages). Compared, alternating, medians over repeats:

* crop decode: libsndfile decodes exactly the 6.08 s crops the training reader keeps (the same
  offsets, one open of each file, the samples as the file stores them: int16 here), one after
  the other: the reader's first stage alone, the decode limit of a cropping reader, and the
  target's base;
* whole-file decode: libsndfile decodes each whole file to float32 (the limit of a reader that
  does not crop);
* reader, training: the project's reader (decode -> resample to 16 kHz -> log-mel -> normalise
  -> batch of 16), random 608-frame crops: only the crop is decoded and resampled;
* two threads, no pipeline: the same two stages in two plain Python threads joined by a queue,
  no batching: what running decode and front end side by side costs on the machine by itself
  (a reference for the reader, which adds fairseq2's pipeline and batching);
* reader, whole clips: the same without cropping (``crop="none"``), i.e. all 10 s resampled.

Run: ``python -m benchmarks.loader [--files 96] [--repeats 15] [--out docs/benchmarks/loader.md]``
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from aape_plugin.data.clip_loader import ClipLoader
from aape_plugin.data.clips import ClipEntry
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.reader import AudioReaderOptions, create_audio_reader
from aape_plugin.data.stats import FeatureStats
from benchmarks.common import machine, markdown_table, save_report, time_interleaved

TARGET = 0.90
DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def make_files(folder: Path, count: int) -> list[Path]:
    """``count`` 10 s 44.1 kHz FLAC files of real audio."""
    sources = sorted(DEMO.glob("*/*.flac"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        picks = rng.choice(len(sources), size=10, replace=False)
        wave = np.concatenate([soundfile.read(str(sources[j]), dtype="float32")[0] for j in picks])
        wave = torchaudio.functional.resample(torch.from_numpy(wave), 16_000, 44_100).numpy()
        path = folder / f"clip{i:03d}.flac"
        soundfile.write(str(path), wave, 44_100, subtype="PCM_16")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loader", description=__doc__)
    parser.add_argument("--files", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/loader.md"))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)

    stats = FeatureStats.load(DEMO / "stats.json")

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), args.files)
        entries = [ClipEntry(p) for p in paths]
        gangs = create_fake_gangs(CPU)

        def pure_decode() -> None:
            for p in paths:
                soundfile.read(str(p), dtype="float32")

        # The training reader's stage 1 with its own crop offsets (seed 0, epoch 0): exactly the
        # samples it decodes.
        cropper = ClipLoader(LogMelConfig(), stats, num_frames=608, crop="random", seed=0)

        def crop_decode() -> None:
            for i, p in enumerate(paths):
                assert cropper.decode({"path": str(p), "index": i})["ok"]

        def two_threads() -> None:
            # The same two stages in two plain threads through a queue, no batching: what
            # running them side by side costs on this machine, apart from the data pipeline.
            handoff: queue.Queue = queue.Queue(4)

            def produce() -> None:
                for i, p in enumerate(paths):
                    handoff.put(cropper.decode({"path": str(p), "index": i}))
                handoff.put(None)

            thread = threading.Thread(target=produce)
            thread.start()
            while (example := handoff.get()) is not None:
                assert cropper.features(example)["ok"]
            thread.join()

        def epoch(crop: str):  # one reader, one epoch per call (as in training)
            options = AudioReaderOptions(batch_size=16, num_frames=608, crop=crop, num_parallel_calls=1, num_prefetch=1, seed=0)  # type: ignore[arg-type]
            reader = create_audio_reader(entries, gangs, LogMelConfig(), stats, options)

            def run() -> None:
                n = sum(b.batch_size for group in reader for b in group)
                assert n == len(paths)
                reader.reset()

            return run

        timings = time_interleaved(
            {"crop decode": crop_decode, "reader, training (random crops)": epoch("random"),
             "two threads, no pipeline (reference)": two_threads, "whole-file decode": pure_decode,
             "reader, whole clips": epoch("none")},
            repeats=args.repeats,
        )

    rate = {name: args.files / t.median for name, t in timings.items()}
    # Each repeat times the variants back to back: the ratio is taken within a repeat, then the
    # median over repeats (a slow stretch of a shared machine slows both sides of one ratio).
    decode = timings["crop decode"].seconds
    ratios = {name: statistics.median(d / t for d, t in zip(decode, timing.seconds)) for name, timing in timings.items()}

    results = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)},
               "seconds": {k: v.seconds for k, v in timings.items()}, "clips_per_second": rate, "ratio_to_decode": ratios}

    m = results["machine"]
    rows = [[name, f"{r:.1f}", f"{ratios[name]:.2f}", f">= {TARGET}" if name.startswith("reader, training") else "-"] for name, r in rate.items()]
    reader_threads = "uses one decoding and one torch thread per worker, in a pipeline (its two stages)"
    main_ratio = ratios["reader, training (random crops)"]
    verdict = "meets" if main_ratio >= TARGET else f"misses (at {main_ratio:.2f})"

    text = f"""# Data loader throughput vs. the decode limit

Command: `python -m benchmarks.loader --files {args.files} --repeats {args.repeats}` (written by it; `make bench` runs it).
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}; {m['date']}. One worker: one decode thread,
one torch thread. {args.files} files of 10 s, 44.1 kHz, 16-bit FLAC (real demo audio); medians of
{args.repeats} alternating repeats (ratios: median over repeats of the ratio within a repeat).

{markdown_table(["", "clips/s per worker", "ratio to crop decode", "target"], rows)}

The training reader {verdict} the target of {TARGET} of the crop-aware decode limit: it decodes
only the 6.08 s crop it uses (libsndfile seeks in FLAC), opens each file once and takes the
samples as the file stores them (int16), and {reader_threads}, so that the front end (float
conversion, resampling, log-mel) of one clip runs while the next is decoded. Two busy threads
decode more slowly than one thread alone on this machine: the same two stages in two plain
threads through a queue, without fairseq2's pipeline or batching, reach {ratios["two threads, no pipeline (reference)"]:.2f}
of the decode limit, against the reader's {main_ratio:.2f}. The whole-clip reader
(evaluation of long clips) pays decoding and resampling of all 10 s and is shown for honesty.
Scale with `num_parallel_calls` (threads per stage; `docs/benchmarks/loader_scaling.md`).
"""

    save_report(args.out, text, results)

    return 0


if __name__ == "__main__":
    sys.exit(main())
