"""A study root part-way through an experiment, written as the runs leave it (paths only), so
that what the runner names next can be checked without training anything."""

from __future__ import annotations

import json
from pathlib import Path


def finish_pretraining(root: Path, variant: str, steps: int, seed: int) -> None:
    (root / f"{variant}_{steps}" / f"seed{seed}" / "checkpoints" / f"step_{steps}").mkdir(parents=True)


def finish_finetuning(root: Path, slug: str, task: str, lr: float, seed: int, valid: float) -> None:
    out = root / "finetune" / "few" / slug / task / f"lr{lr:g}_seed{seed}"
    (out / "metrics").mkdir(parents=True)
    (out / "metrics" / "valid.jsonl").write_text(json.dumps({"Step": 50, "Accuracy": valid}) + "\n")
    (out / "results.json").write_text(json.dumps({"summary": {"mean": valid}, "best_step": 50, "predictions": {
        "test": {"clips": ["a.flac", "b.flac"], "labels": [0, 1], "predicted": [0, 1]}}}))


def fill_partially(root: Path) -> None:
    """Pre-training seeds 1-2 of every variant and the long runs finished (seed 3 not); on the
    AM-rate task, the seed-1 grid of ``frozen_lambda``, ``alias_subband``, ``alias_visible`` and
    ``trained_visible`` finished with the largest rate best (the grid widens), and that of
    ``aape_tiny``'s random initialisation finished and widened once to an interior choice (the
    other seeds follow)."""
    variants = ("default", "frozen_lambda", "alias_subband", "alias_visible", "trained_visible", "fixed_poles",
                "modulation_lambda", "vit_tiny")
    for variant in variants:
        for seed in (1, 2):
            finish_pretraining(root, variant, 3000, seed)
    for variant in ("frozen_lambda", "alias_subband", "alias_visible"):
        finish_pretraining(root, variant, 30_000, 1)
    task = "study_am_rate"
    for variant in ("frozen_lambda", "alias_subband", "alias_visible", "trained_visible"):
        finish_finetuning(root, f"{variant}_3000", task, 1e-3, 1, 0.5)
        finish_finetuning(root, f"{variant}_3000", task, 3e-3, 1, 0.6)
    for lr, valid in ((1e-3, 0.7), (3e-3, 0.6), (0.00033, 0.4)):
        finish_finetuning(root, "aape_tiny_random", task, lr, 1, valid)
