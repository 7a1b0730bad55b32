"""What the encoders keep of modulation rates, part by part: the erosion, measured.

    python -m studies.modulation --out runs/modulation [--run NAME=RUN_FOLDER[@STEP] ...] [--seeds 1 2 3]

For each encoder (random initialisations of ``aape_tiny`` and ``vit_tiny`` of the given seeds,
the log-mel statistics baseline, and every ``--run``'s teacher at its last or given step) the
converged linear probe (all labels; penalty chosen on validation) on the modulation group, and for
AaPE encoders also on each part of the stem: ``standard`` (the conv tokens), ``alias`` (the
Adaptive SBLU's features) and ``fused`` (Patch Fusion's output). Where the rate is lost (never
there, in the branch, in the fusion, or in the ViT) is read off the rows. Results are cached like
the study's probes (``OUT/measurements``) and written to ``OUT/modulation.json``; the table is
printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from aape_plugin.eval.embedding_cache import weights_digest
from aape_plugin.inference.embedder import EncoderEmbedder, LogMelEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder, new_encoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed
from studies.common import MODULATION_TASKS, SHORT, StudySettings, say
from studies.probing import Prober, load_pool_stats
from studies.stem_probe import StemEmbedder

PARTS = ("standard", "alias", "fused")


def measure(out: Path, encoders: list[tuple[str, torch.nn.Module, int]], *, parts: bool = True,
            shift: bool = False, layers: bool = False) -> list[dict[str, object]]:
    """One row per (encoder, part): valid and test accuracy per modulation task; with ``shift``,
    one more row per encoder (part ``shift``) with the mean frame-token cosine under sub-patch
    shifts of each task's test clips (``eval/shift_stability.py``) in place of accuracies."""
    stats = load_pool_stats()
    prober = Prober(StudySettings(), out / "measurements", tasks=MODULATION_TASKS)
    rows: list[dict[str, object]] = []

    def record(name: str, part: str, scores: dict | None) -> None:
        if scores is None:
            return
        rows.append({"encoder": name, "part": part, **{t: {"valid": s.valid, "test": s.test, "penalty": s.penalty,
                                                            "penalty_at_edge": s.penalty_at_edge}
                                                        for t, s in scores.items()}})

    logmel = LogMelEmbedder(stats)
    record("log-mel statistics", "-", prober.probe("log-mel statistics", logmel, {"kind": "logmel", "stats": [stats.mean, stats.std]},
                                                   per_class=None))
    for name, encoder, num_frames in encoders:
        key = {"kind": "aape", "weights": weights_digest(encoder), "stats": [stats.mean, stats.std]}
        embedder = EncoderEmbedder(encoder, stats, num_frames=num_frames)
        record(name, "output", prober.probe(name, embedder, key, per_class=None))
        if shift:
            found = prober.shift(name, embedder, key)
            if found is not None:
                rows.append({"encoder": name, "part": "shift", **{t: {"valid": float("nan"), "test": sum(v["frame_cosine"]) / len(v["frame_cosine"])}
                                                                  for t, v in found.items()}})
        chosen = [p for p in PARTS if parts and (p == "standard" or isinstance(encoder.stem, AaPEPatchEmbed))]
        if layers:
            chosen += [f"layer{k}" for k in range(1, len(encoder.blocks.blocks) + 1)]  # type: ignore[union-attr]
        if chosen:
            for part in chosen:
                embedder = StemEmbedder(encoder, stats, part=part, num_frames=num_frames)
                record(name, part, prober.probe(f"{name} ({part})", embedder, {**key, "part": part}, per_class=None))
    return rows


def table(rows: list[dict[str, object]]) -> str:
    head = "| encoder | part | " + " | ".join(f"{SHORT[t]} (valid / test)" for t in MODULATION_TASKS) + " |"
    lines = [head, "|" + "---|" * (2 + len(MODULATION_TASKS))]
    for row in rows:
        if row["part"] == "shift":
            cells = [f"cosine {row[t]['test']:.3f}" for t in MODULATION_TASKS]  # type: ignore[index]
        else:
            cells = [f"{100 * row[t]['valid']:.1f} / {100 * row[t]['test']:.1f}" for t in MODULATION_TASKS]  # type: ignore[index]
        lines.append(f"| {row['encoder']} | {row['part']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kernel_trajectories(runs: list[tuple[str, Path]], steps: tuple[int, ...] = (50, 1000, 3000, 10_000, 30_000)) -> str:
    """Per run, each kernel's median pole (Hz / decay per frame) at a few steps, from the run's
    ``metrics/train.jsonl`` (``stem_k<n>_*``, recorded on publishing steps). A run measured at
    several checkpoints is listed once, under the name of its first without ``" at <step>"``."""
    lines = []
    seen: set[Path] = set()
    for name, folder in runs:
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        if sum(f.resolve() == folder.resolve() for _, f in runs) > 1:
            name = name.rsplit(" at ", 1)[0]
        path = folder / "metrics" / "train.jsonl"
        if not path.is_file():
            continue
        rows = {r["Step"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}
        kernels = sorted({int(k.split()[2]) for r in rows.values() for k in r if k.startswith("Stem Kernel ") and k.endswith("Frequency Hz")})
        if not kernels:
            continue
        if not lines:
            lines = ["| run | step | " + " | ".join(f"kernel {n}" for n in kernels) + " |", "|" + "---|" * (2 + len(kernels))]
        for step in steps:
            row = rows.get(step)
            if row is not None:
                cells = [f"{row[f'Stem Kernel {n} Frequency Hz']:.1f} Hz / {row[f'Stem Kernel {n} Decay']:.2f}" for n in kernels]
                lines.append(f"| {name} | {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_page(docs: Path, rows: list[dict[str, object]], trajectories: str, command: str) -> None:
    """``docs/modulation.json`` (what was measured, with the command, commit, date and the kernels'
    trajectories) and ``docs/modulation.md``, which :func:`page` rebuilds from the JSON alone."""
    import datetime
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    stored = {"command": command, "commit": commit, "date": str(datetime.date.today()), "rows": rows, "trajectories": trajectories}
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "modulation.json").write_text(json.dumps(stored, indent=1) + "\n")
    (docs / "modulation.md").write_text(page(stored))


def page(stored: dict[str, object]) -> str:
    """``docs/modulation.md`` from the stored ``docs/modulation.json``."""
    text = [
        "# What the encoders keep of modulation rates",
        "",
        f"Generated by `{stored['command']}` at commit {stored['commit']} on {stored['date']} (`studies/modulation.py`; data in",
        "`docs/modulation.json`). The modulation group (`docs/data.md`): three tasks whose only label",
        "is a rate of 4-38 Hz (7 classes, chance 14.3%). Converged linear probe on clip embeddings (all",
        "labels; penalty chosen on validation); accuracy % on validation / test. `standard`, `alias` and",
        "`fused` probe the stem's parts (the conv tokens, the Adaptive SBLU's features, Patch Fusion's",
        "output); `output` the encoder. One pre-training seed and one initialisation seed per row: a",
        "row is a measurement, not an interval (the study's page gives intervals over seeds).",
        "",
        table(stored["rows"]),  # type: ignore[arg-type]
        "",
    ]
    if stored["trajectories"]:
        text += ["## The kernels along pre-training", "",
                 "Median over patches and subbands of each kernel's frequency and decay (1/frame), from the",
                 "runs' metrics.", "", str(stored["trajectories"]), ""]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.modulation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/modulation"))
    parser.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER[@STEP]",
                        help="a pre-training run (teacher weights) to measure; repeatable")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1], help="random initialisations to measure")
    parser.add_argument("--no-parts", action="store_true", help="probe encoder outputs only")
    parser.add_argument("--shift", action="store_true", help="also measure shift stability on the modulation tasks")
    parser.add_argument("--layers", action="store_true", help="also probe each ViT block's output (what the targets are made of)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--docs", type=Path, default=None, help="also write DOCS/modulation.md and .json")
    args = parser.parse_args(argv)

    ensure_fairseq2()
    torch.set_num_threads(args.threads)
    encoders: list[tuple[str, torch.nn.Module, int]] = []
    folders: list[tuple[str, Path]] = []
    for seed in args.seeds:
        for arch in ("aape_tiny", "vit_tiny"):
            loaded = new_encoder(arch, seed=seed)
            encoders.append((f"{arch}, random init seed {seed}", loaded.encoder, loaded.config.encoder.num_frames))
    for spec in args.run:
        name, _, where = spec.partition("=")
        folder, _, step = where.partition("@")
        if not name or not folder:
            parser.error(f"--run takes NAME=FOLDER[@STEP], got {spec!r}")
        loaded = load_encoder(folder, weights="teacher", step=int(step) if step else None)
        encoders.append((name, loaded.encoder, loaded.config.encoder.num_frames))
        folders.append((name, Path(folder)))
    rows = measure(args.out, encoders, parts=not args.no_parts, shift=args.shift, layers=args.layers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "modulation.json").write_text(json.dumps(rows, indent=1) + "\n")
    say("probe accuracy %, all labels (penalty chosen on validation):\n" + table(rows))
    if args.docs is not None:
        command = "python -m studies.modulation " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
        write_page(args.docs, rows, kernel_trajectories(folders), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
