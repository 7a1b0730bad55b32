"""Pre-training that keeps what the stem sees: the Lambda Encoder options, screened on validation.

    python -m studies.objectives --out runs/objectives [--jobs 2] [--steps 3000] [--seeds 1]
    python -m studies.objectives --out runs/objectives --measure-only

Each variant is the study's ``aape_tiny`` pre-training (``--preset study``) with one change of
the options ``docs/design.md`` describes (``docs/objectives.md`` states the protocol and the rule
that picks one); ``vit_tiny`` is trained beside them as the plain-stem reference. Runs resume from
their checkpoints. The measurement probes each run's teacher (and the random initialisations)
on the **validation** splits of the modulation group and of the five study tasks; test splits
are not read here.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from aape_plugin.eval.embedding_cache import weights_digest
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder, new_encoder
from studies.common import MODULATION_TASKS, SHORT, TASKS, Job, StudySettings, aape_command, run_jobs, say
from studies.probing import Prober, load_pool_stats

STEM = "model.config_overrides={encoder: {stem: {%s}}}"

VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "frozen_lambda": ("optimizer.config.lambda_lr_scale=0",),
    "slow_lambda": ("optimizer.config.lambda_lr_scale=0.1",),
    "offsets": (STEM % "pole_mode: offsets",),
    "balanced_fusion": (STEM % "fusion_balance: true",),
    "offsets_balanced": (STEM % "pole_mode: offsets, fusion_balance: true",),
}
"""``aape_tiny`` variants: name -> the ``--config`` overrides that make it."""

REFERENCE = "vit_tiny"


@dataclass(frozen=True)
class VariantRun:
    variant: str
    steps: int
    seed: int

    @property
    def arch(self) -> str:
        return REFERENCE if self.variant == REFERENCE else "aape_tiny"

    def folder(self, root: Path) -> Path:
        return root / f"{self.variant}_{self.steps}" / f"seed{self.seed}"

    def finished(self, root: Path) -> bool:
        return (self.folder(root) / "checkpoints" / f"step_{self.steps}").is_dir()

    def job(self, root: Path) -> Job:
        out = self.folder(root)
        overrides = () if self.variant == REFERENCE else VARIANTS[self.variant]
        command = aape_command(
            "aape_pretrain", str(out), "--preset", "study", "--no-rich", "--model-arch", self.arch, "--config",
            f"common.seed={self.seed}", f"regime.num_steps={self.steps}", f"lr_scheduler.config.num_warmup_steps={self.steps // 10}",
            "regime.checkpoint_every_n_steps=500", "regime.keep_checkpoint_every_n_steps=1000", "common.torch.num_threads=1",
            *overrides,
        )
        return Job(f"pre-train {self.variant} {self.steps} steps seed {self.seed}", command, out.with_suffix(".log"))


def runs_of(steps: int, seeds: list[int], variants: list[str] | None = None) -> list[VariantRun]:
    chosen = variants or [*VARIANTS, REFERENCE]
    unknown = sorted(set(chosen) - {*VARIANTS, REFERENCE})
    if unknown:
        raise ValueError(f"Unknown variant(s) {unknown}; known: {[*VARIANTS, REFERENCE]}.")
    return [VariantRun(v, steps, s) for s in seeds for v in chosen]


def measure(root: Path, runs: list[VariantRun], seeds: list[int]) -> dict[str, dict[str, float]]:
    """Validation accuracy of the converged probe (all labels) per encoder and task."""
    stats = load_pool_stats()
    prober = Prober(StudySettings(), root / "measurements", tasks=(*MODULATION_TASKS, *TASKS))
    encoders: list[tuple[str, torch.nn.Module, int]] = []
    for seed in seeds:
        for arch in ("aape_tiny", REFERENCE):
            loaded = new_encoder(arch, seed=seed)
            encoders.append((f"{arch} random init, seed {seed}", loaded.encoder, loaded.config.encoder.num_frames))
    for run in runs:
        if run.finished(root):
            loaded = load_encoder(run.folder(root), weights="teacher")
            encoders.append((f"{run.variant}, {run.steps} steps, seed {run.seed}", loaded.encoder, loaded.config.encoder.num_frames))
    out = {}
    for name, encoder, frames in encoders:
        key = {"kind": "aape", "weights": weights_digest(encoder), "stats": [stats.mean, stats.std]}
        scores = prober.probe(name, EncoderEmbedder(encoder, stats, num_frames=frames), key, per_class=None)
        if scores is not None:
            out[name] = {task: score.valid for task, score in scores.items()}
    return out


def table(scores: dict[str, dict[str, float]]) -> str:
    tasks = (*MODULATION_TASKS, *TASKS)
    lines = ["| encoder | " + " | ".join(SHORT[t] for t in tasks) + " | modulation mean | five-task mean |",
             "|" + "---|" * (len(tasks) + 3)]
    for name, per_task in scores.items():
        mod = sum(per_task[t] for t in MODULATION_TASKS) / len(MODULATION_TASKS)
        five = sum(per_task[t] for t in TASKS) / len(TASKS)
        lines.append(f"| {name} | " + " | ".join(f"{100 * per_task[t]:.1f}" for t in tasks) + f" | {100 * mod:.1f} | {100 * five:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.objectives", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/objectives"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=None, help="only these variants (default: all and vit_tiny)")
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    ensure_fairseq2()
    runs = runs_of(args.steps, args.seeds, args.variants)
    if not args.measure_only:
        failed = run_jobs(lambda: [r.job(args.out) for r in runs if not r.finished(args.out)], jobs=args.jobs)
        if failed:
            say(f"{len(failed)} run(s) failed: " + "; ".join(failed))
        if args.train_only:
            return 1 if failed else 0
    torch.set_num_threads(args.threads)
    scores = measure(args.out, runs, args.seeds)
    (args.out / "validation.json").write_text(json.dumps(scores, indent=1) + "\n")
    say("validation accuracy %, converged probe, all labels:\n" + table(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
