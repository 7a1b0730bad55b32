"""Why AaPE's tokens move more than the plain stem's under sub-patch shifts: shift stability on
the modulation tasks, per part of the encoder, per modulation rate, and under control.

    python -m studies.shift_parts [--seeds 1 2 3] [--docs docs]

For the random initialisations of ``aape_tiny`` and ``vit_tiny`` (the given seeds), the mean
frame-token cosine between each clip's window and the same window moved by 1-15 frames
(``aape_plugin/eval/shift_stability.py``), for each part: ``standard`` (the conv tokens, the
plain stem's only stream), ``alias`` (the Adaptive SBLU's features), ``fused`` (Patch Fusion's
output) and ``output`` (the encoder). Where a part's cosine drops, that part is what moves.

Three readings: the modulation group's test clips (the study's shift-stability clips) with the
encoders' 96-frame window, as ``docs/modulation.md`` measured it; the same with an 80-frame
window, which no shift pads (the clips are 100 frames long); and controlled amplitude
modulation at the study's rates of a steady harmonic tone or a band of noise, 1 s (padded, as the
corpus) or 2 s (not padded). ``--docs`` writes ``DOCS/shift-parts.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from aape_plugin.corpora.modulation import MODULATION_RATES, amplitude_modulate, harmonic_tone, noise_band
from aape_plugin.data.study_corpus import study_dir
from aape_plugin.eval.shift_stability import shift_stability
from aape_plugin.inference.embedder import Embedder, EncoderEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, new_encoder
from studies.common import MODULATION_TASKS, SHORT, StudySettings, say
from studies.probing import load_pool_stats, shift_clips
from studies.stem_probe import StemEmbedder

PARTS = {"aape_tiny": ("standard", "alias", "fused", "output"), "vit_tiny": ("standard", "output")}

_RATE = re.compile(r"_(\d+)hz\.\w+$")


def rate_of(path: str) -> int:
    """The modulation rate (Hz) a study clip's file name ends with (``..._13hz.flac``)."""
    found = _RATE.search(path)
    if found is None:
        raise ValueError(f"{path!r} does not name its modulation rate (``_<rate>hz.<ext>``).")
    return int(found.group(1))


def part_embedders(seed: int) -> list[tuple[str, Embedder]]:
    """``("<arch> <part>", embedder)`` for the random initialisations of the given seed."""
    stats = load_pool_stats()
    out: list[tuple[str, Embedder]] = []
    for arch, parts in PARTS.items():
        loaded = new_encoder(arch, seed=seed)
        encoder, frames = loaded.encoder, loaded.config.encoder.num_frames
        for part in parts:
            embedder = EncoderEmbedder(encoder, stats, num_frames=frames) if part == "output" else \
                StemEmbedder(encoder, stats, part=part, num_frames=frames)
            out.append((f"{arch} {part}", embedder))
    return out


def cosines(embedder: Embedder, logmels: list[torch.Tensor], window: int) -> list[float]:
    """Per clip, the mean frame-token cosine over shifts of 1 .. p-1 frames."""
    return shift_stability(embedder, logmels, window=window).frame_cosine_per_clip.round(6).tolist()  # type: ignore[arg-type]


def measure(seeds: list[int], window: int) -> dict[str, dict[str, dict[str, object]]]:
    """``{"<arch> <part>": {task: {"clips": [...], "cosine": [per clip, mean over seeds]}}}`` on
    the modulation group's test clips (the study's shift-stability clips)."""
    corpus = study_dir().resolve()
    per_seed: dict[str, list[dict[str, tuple[list[str], list[float]]]]] = defaultdict(list)
    for seed in seeds:
        for row, embedder in part_embedders(seed):
            found = {}
            for task, (clips, logmels) in shift_clips(StudySettings(), embedder, MODULATION_TASKS).items():
                found[task] = ([str(Path(c).relative_to(corpus)) for c in clips], cosines(embedder, logmels, window))
            per_seed[row].append(found)
    rows: dict[str, dict[str, dict[str, object]]] = {}
    for row, found in per_seed.items():
        rows[row] = {}
        for task in MODULATION_TASKS:
            clips = found[0][task][0]
            rows[row][task] = {"clips": clips, "cosine": np.mean([f[task][1] for f in found], axis=0).round(6).tolist()}
    return rows


CARRIERS = ("harmonic", "noise")

WINDOWS = (96, 80)
"""The encoders' input (the corpus's 1 s clips are 100 frames: shifts beyond 4 frames read the
zero padding after their end) and the longest whole-patch window no shift pads."""


def controlled_clips(carrier: str, seconds: float, per_rate: int = 12, seed: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """Amplitude modulation (depth 0.9, random phase) at the study's rates of a steady harmonic
    tone (f0 110-440 Hz) or a band of noise (500-4000 Hz): named ``<carrier>_<k>_<rate>hz``."""
    rng = np.random.default_rng(seed)
    names, waves = [], []
    for rate in MODULATION_RATES:
        for k in range(per_rate):
            if carrier == "harmonic":
                wave = harmonic_tone(rng, seconds, f0=float(rng.uniform(110, 440)), num_partials=12, tilt_db=6.0)
            else:
                wave = noise_band(rng, seconds, low_hz=500, high_hz=4000)
            wave = amplitude_modulate(wave, rate, depth=0.9, phase=float(rng.uniform(0, 2 * np.pi)))
            names.append(f"{carrier}_{k}_{rate:g}hz.wav")
            waves.append(0.1 * wave / np.abs(wave).max())
    return names, waves


def measure_controlled(seeds: list[int]) -> dict[str, dict[str, dict[str, object]]]:
    """``{"<arch> <part>": {"<carrier>, <seconds> s": {"clips", "cosine"}}}`` (per clip, the mean
    over seeds): 1 s clips (as the corpus's: shifts beyond 4 frames read the zero padding after
    the clip's end) and 2 s clips (no padding), both with the encoders' 96-frame window."""
    per_seed: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    names_of: dict[str, list[str]] = {}
    for seed in seeds:
        embedders = part_embedders(seed)
        for carrier in CARRIERS:
            for seconds in (1.0, 2.0):
                condition = f"{carrier}, {seconds:g} s"
                names, waves = controlled_clips(carrier, seconds)
                names_of[condition] = names
                for row, embedder in embedders:
                    logmels = [embedder.normalised_logmel(torch.from_numpy(w).float()) for w in waves]
                    per_seed[row][condition].append(cosines(embedder, logmels, embedder.num_frames))  # type: ignore[attr-defined]
    return {row: {c: {"clips": names_of[c], "cosine": np.mean(v, axis=0).round(6).tolist()} for c, v in conditions.items()}
            for row, conditions in per_seed.items()}


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """The mean over clips with a normal 95% interval (clips are the units here: the seeds are
    averaged per clip first, so the interval says how sure the mean is over these clips)."""
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values))
    return float(values.mean()), float(values.mean()) - half, float(values.mean()) + half


PAIRS = (("aape_tiny output", "vit_tiny output"), ("aape_tiny alias", "aape_tiny standard"),
         ("aape_tiny fused", "aape_tiny standard"), ("aape_tiny output", "aape_tiny fused"))
"""The paired differences a table states (the conv streams of the two archs are the same module
at one initialisation seed, so ``vit_tiny standard`` is ``aape_tiny standard``)."""


def report(rows: dict[str, dict[str, dict[str, object]]], *, by_rate: bool = True) -> str:
    """The mean cosine per part and column (a task or a controlled condition), the paired
    differences of :data:`PAIRS`, and with ``by_rate`` one table per column by modulation rate."""
    parts = [f"{arch} {part}" for arch, ps in PARTS.items() for part in ps]
    columns = list(rows[parts[0]])
    heads = [SHORT.get(c, c) for c in columns]
    lines = ["| part | " + " | ".join(heads) + " |", "|" + "---|" * (1 + len(columns))]
    for row in parts:
        lines.append(f"| {row} | " + " | ".join(f"{np.mean(rows[row][c]['cosine']):.3f}" for c in columns) + " |")
    lines += ["", "| a minus b (paired over clips, 95% interval) | " + " | ".join(heads) + " |", "|" + "---|" * (1 + len(columns))]
    for a, b in PAIRS:
        cells = []
        for c in columns:
            mean, low, high = mean_interval(np.asarray(rows[a][c]["cosine"]) - np.asarray(rows[b][c]["cosine"]))
            cells.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"| {a} minus {b} | " + " | ".join(cells) + " |")
    if by_rate:
        for c, head in zip(columns, heads):
            clips: list[str] = rows[parts[0]][c]["clips"]  # type: ignore[assignment]
            rates = sorted({rate_of(name) for name in clips})
            lines += ["", f"By rate, {head} (clips per rate: " + ", ".join(f"{r} Hz {sum(rate_of(n) == r for n in clips)}" for r in rates) + "):", "",
                      "| part | " + " | ".join(f"{r} Hz" for r in rates) + " |", "|" + "---|" * (1 + len(rates))]
            for row in parts:
                grouped = defaultdict(list)
                for name, value in zip(rows[row][c]["clips"], rows[row][c]["cosine"]):  # type: ignore[call-overload]
                    grouped[rate_of(name)].append(value)
                lines.append(f"| {row} | " + " | ".join(f"{np.mean(grouped[r]):.3f}" for r in rates) + " |")
    return "\n".join(lines)


def write_page(docs: Path, data: dict[str, object], command: str) -> None:
    """``DOCS/shift-parts.json`` (per clip) and ``DOCS/shift-parts.md`` (the tables), rebuilt by
    :func:`page` from the JSON alone."""
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    stored = {"command": command, "commit": commit,
              **{key: compact(value) if key in SECTIONS else value for key, value in data.items()}}  # type: ignore[arg-type]
    (docs / "shift-parts.json").write_text(json.dumps(stored, indent=1) + "\n")
    (docs / "shift-parts.md").write_text(page(stored))


SECTIONS = (*(f"corpus, window {w}" for w in WINDOWS), "controlled")
"""The measured sections of ``shift-parts.json``, each ``{row: {column: {"clips", "cosine"}}}`` in
memory and :func:`compact` on disk."""


def compact(rows: dict[str, dict[str, dict[str, object]]]) -> dict[str, object]:
    """``rows`` with each column's clip list stored once (every row measures the same clips)."""
    first = next(iter(rows.values()))
    clips = {column: cell["clips"] for column, cell in first.items()}
    for row, columns in rows.items():
        for column, cell in columns.items():
            if cell["clips"] != clips[column]:
                raise ValueError(f"{row} measured other clips on {column!r} than {next(iter(rows))}.")
    return {"clips": clips, "cosine": {row: {column: cell["cosine"] for column, cell in columns.items()} for row, columns in rows.items()}}


def expand(stored: dict[str, object]) -> dict[str, dict[str, dict[str, object]]]:
    """The inverse of :func:`compact`."""
    clips: dict[str, list[str]] = stored["clips"]  # type: ignore[assignment]
    cosine: dict[str, dict[str, list[float]]] = stored["cosine"]  # type: ignore[assignment]
    return {row: {column: {"clips": clips[column], "cosine": values} for column, values in columns.items()}
            for row, columns in cosine.items()}


def page(data: dict[str, object]) -> str:
    """``DOCS/shift-parts.md`` from the stored ``shift-parts.json``."""
    seeds = data["seeds"]
    text = ["# Shift stability on the modulation tasks, part by part", "",
            f"Generated by `{data['command']}` at commit {data['commit']} (`studies/shift_parts.py`; per-clip",
            "data in `docs/shift-parts.json`). Mean frame-token cosine between a window and the same",
            "window moved by 1-15 frames (`aape_plugin/eval/shift_stability.py`: tokens centred by their",
            f"mean over clips and patches; higher is more stable), random initialisations, seeds {seeds} (per",
            "clip the mean over seeds). Intervals: 95%, normal, over clips, paired. What the numbers",
            "say is in `docs/shift-stability.md`.", ""]
    for window in WINDOWS:
        text += [f"## The modulation group's test clips, {window}-frame window", "", report(expand(data[f"corpus, window {window}"])), ""]  # type: ignore[arg-type]
    text += ["## Controlled amplitude modulation (a steady harmonic tone or a band of noise)", "",
             "12 clips per rate and condition, depth 0.9, random phase; 96-frame window.", "",
             report(expand(data["controlled"])), ""]  # type: ignore[arg-type]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.shift_parts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--docs", type=Path, default=None, help="also write DOCS/shift-parts.json")
    args = parser.parse_args(argv)

    ensure_fairseq2()
    torch.set_num_threads(args.threads)
    data: dict[str, object] = {"seeds": args.seeds}
    for window in WINDOWS:
        rows = measure(args.seeds, window)
        data[f"corpus, window {window}"] = rows
        say(f"the modulation group's test clips, window {window} frames, seeds {args.seeds}:\n" + report(rows))
    controlled = measure_controlled(args.seeds)
    data["controlled"] = controlled
    say(f"controlled amplitude modulation, seeds {args.seeds}:\n" + report(controlled))
    if args.docs is not None:
        command = "python -m studies.shift_parts " + " ".join(argv if argv is not None else sys.argv[1:])
        write_page(args.docs, data, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
