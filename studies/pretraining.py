"""The study's pre-training runs: the main 3,000-step runs (4 seeds per stem) and one 30,000-step
run per stem for the pre-training-length curve.

Each is ``fairseq2 recipe run aape_pretrain OUT --preset study`` with the steps, seed and schedule
set on the command line; re-running continues from its last checkpoint. Warm-up is a tenth of the
run, the learning rate decays and the EMA ramps over the whole run (the recipe ties the EMA
schedule to ``regime.num_steps``), so the 30,000-step run is a schedule of its own: its
checkpoint at step 3,000 is *not* a 3,000-step run (its learning rate is still near its peak and
its EMA near its start), and the report says which each point is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studies.common import Job, aape_command


@dataclass(frozen=True)
class PretrainRun:
    arch: str
    steps: int
    seed: int

    def folder(self, root: Path) -> Path:
        return root / f"{self.arch}_{self.steps}" / f"seed{self.seed}"

    @property
    def keep_every(self) -> int:
        """Checkpoints kept (every 500 steps up to 3,000-step runs, else every 1,000)."""
        return 500 if self.steps <= 3000 else 1000

    def has_step(self, root: Path, step: int | None = None) -> bool:
        return (self.folder(root) / "checkpoints" / f"step_{step or self.steps}").is_dir()

    def job(self, root: Path) -> Job:
        out = self.folder(root)
        command = aape_command(
            "aape_pretrain", str(out), "--preset", "study", "--no-rich", "--model-arch", self.arch, "--config",
            f"common.seed={self.seed}", f"regime.num_steps={self.steps}",
            f"lr_scheduler.config.num_warmup_steps={self.steps // 10}",
            f"regime.checkpoint_every_n_steps={self.keep_every}", f"regime.keep_checkpoint_every_n_steps={self.keep_every}",
            "common.torch.num_threads=1",
        )
        return Job(f"pre-train {self.arch} {self.steps} steps seed {self.seed}", command, out.with_suffix(".log"))

    def label(self) -> str:
        return f"{self.arch}, {self.steps} steps, seed {self.seed}"


def train_rows(folder: Path) -> list[dict[str, float]]:
    """The metric rows of a run (``metrics/train.jsonl``), in step order."""
    path = folder / "metrics" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return sorted(rows, key=lambda r: r["Step"])


def train_hours(folder: Path) -> float:
    """Training time of a run, from its last metric row (resumed runs included)."""
    rows = train_rows(folder)
    return float(rows[-1]["Total Time"]) / 3600 if rows else 0.0


HEALTH_KEYS = ("Masked Token Loss", "Contrastive Loss", "Target Clip Spread", "Target Position Share", "Teacher Rank",
               "Student Rank", "Prediction Cosine", "Global R²")
"""The representation-health metrics the report shows (``docs/design.md`` explains each)."""


def health_at(folder: Path, step: int, window: int = 5) -> dict[str, float]:
    """Each health metric averaged over the last ``window`` logged rows up to ``step`` (one row
    is one batch of 16 clips: a single row is noisy)."""
    rows = [r for r in train_rows(folder) if r["Step"] <= step][-window:]
    return {k: sum(float(r[k]) for r in rows) / len(rows) for k in HEALTH_KEYS if rows and all(k in r for r in rows)}
