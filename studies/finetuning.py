"""The fine-tuning arm: the paper's primary protocol, with all labels and with few.

Each run is ``fairseq2 recipe run aape_finetune OUT --preset study_<task>`` (train on random
0.95 s crops, validate and test whole clips; the validation split picks the checkpoint, the test
split is scored once with it, per clip). Four models start it: pre-trained ``aape_tiny`` and
``vit_tiny`` (the main 3,000-step runs; fine-tuning seed k starts from pre-training seed k) and
both at random initialisation (initialisation seed k, normalised with the same pool statistics).

The grid is the same for every model: the learning rates of :class:`StudySettings` x the steps
at which validation is measured within a run. For each (model, task, label regime) the seed-1
runs at every learning rate are compared on validation and the best one is run for the other
seeds. Whether the longest budget is long enough for the random initialisations (which learn
slower) is checked on their validation curves (:func:`late_gain`), and reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studies.common import ARCHS, TASKS, Job, StudySettings, aape_command
from studies.pretraining import PretrainRun

REGIMES = ("all labels", "10 per class")


@dataclass(frozen=True)
class Start:
    """What a fine-tuning run starts from: a random initialisation, a main pre-training run (the
    seed follows the fine-tuning seed), or a checkpoint of a long run (the curve)."""

    arch: str
    kind: str
    """``random``, ``main`` or ``curve``."""

    step: int | None = None
    """The long run's checkpoint (``curve``)."""

    @property
    def key(self) -> str:
        return {"random": f"{self.arch}_random", "main": f"{self.arch}_pretrained"}.get(self.kind, f"{self.arch}_long_step{self.step}")

    @property
    def label(self) -> str:
        if self.kind == "random":
            return f"{self.arch}, random init"
        if self.kind == "main":
            return f"{self.arch}, pre-trained"
        return f"{self.arch}, long run at step {self.step}"

    def run(self, settings: StudySettings, seed: int) -> PretrainRun | None:
        if self.kind == "random":
            return None
        if self.kind == "main":
            return PretrainRun(self.arch, settings.main_steps, seed)
        return PretrainRun(self.arch, settings.long_steps, 1)


MAIN_STARTS = tuple(Start(arch, kind) for arch in ARCHS for kind in ("main", "random"))


@dataclass
class FinetuneResult:
    test: float
    valid: float
    """The best validation accuracy (of the checkpoint tested)."""
    best_step: int
    curve: list[tuple[int, float]]
    """(step, validation accuracy) of every validation."""
    clips: list[str]
    correct: list[int]
    """Per test clip (in ``clips`` order): 1 if right."""


@dataclass(frozen=True)
class FinetuneRun:
    start: Start
    task: str
    regime: str
    lr: float
    seed: int
    budget: int = 1
    """Steps as a multiple of the regime's budget (> 1: the budget check, low labels only)."""

    def folder(self, root: Path) -> Path:
        slug = "all" if self.regime == REGIMES[0] else "few"
        longer = f"_x{self.budget}" if self.budget != 1 else ""
        return root / "finetune" / slug / self.start.key / self.task / f"lr{self.lr:g}_seed{self.seed}{longer}"

    def finished(self, root: Path) -> bool:
        return (self.folder(root) / "results.json").is_file()

    def ready(self, root: Path, settings: StudySettings) -> bool:
        run = self.start.run(settings, self.seed)
        return run is None or run.has_step(root, self.start.step)

    def job(self, root: Path, settings: StudySettings, pool_stats: Path) -> Job:
        out = self.folder(root)
        overrides = [f"model.arch={self.start.arch}", f"common.seed={self.seed}", f"optimizer.config.lr={self.lr:g}"]
        run = self.start.run(settings, self.seed)
        if run is None:
            overrides.append(f"dataset.stats_file={pool_stats}")  # the statistics the pre-trained models normalise with
        else:
            overrides += [f"pretrained.checkpoint={run.folder(root)}", f"pretrained.step={self.start.step or run.steps}"]
        if self.budget != 1 and self.regime == REGIMES[0]:
            raise ValueError(f"The budget check runs in the low-label regime only, not with {self.regime}.")
        if self.regime != REGIMES[0]:
            overrides += few_label_overrides(settings, self.task, self.budget)
        command = aape_command("aape_finetune", str(out), "--preset", self.task, "--no-rich", "--config", *overrides)
        longer = f", {self.budget}x steps" if self.budget != 1 else ""
        name = f"fine-tune {self.start.label}, {self.task}, {self.regime}{longer}, lr {self.lr:g}, seed {self.seed}"
        return Job(name, command, out.with_name(out.name + ".log"))

    def result(self, root: Path) -> FinetuneResult | None:
        return read_finetune_result(self.folder(root))


def read_finetune_result(out: Path) -> FinetuneResult | None:
    """What an ``aape_finetune`` run wrote (``None`` until it has finished)."""
    if not (out / "results.json").is_file():
        return None
    payload = json.loads((out / "results.json").read_text())
    predictions = payload["predictions"]["test"]
    rows = (json.loads(line) for line in (out / "metrics" / "valid.jsonl").read_text().splitlines() if line.strip())
    curve = [(int(r["Step"]), float(r["Accuracy"])) for r in rows]
    return FinetuneResult(
        test=float(payload["summary"]["mean"]), valid=max(v for _, v in curve), best_step=int(payload["best_step"]), curve=curve,
        clips=predictions["clips"], correct=[int(p == y) for p, y in zip(predictions["predicted"], predictions["labels"])],
    )


def lr_grid(root: Path, settings: StudySettings, start: Start, task: str, regime: str) -> tuple[list[float], float | None]:
    """The learning rates the cell's seed-1 runs need so far (the grid, extended by its ratio past
    an end that validation picks, at most ``finetune_lr_widen`` times, once the runs it has
    finished say so) and the chosen one: the best seed-1 validation score, ties to the smaller
    rate (``None`` until every seed-1 run the grid needs has finished)."""
    return widening_grid(settings, lambda lr: FinetuneRun(start, task, regime, lr, settings.finetune_seeds[0]).result(root))


def widening_grid(settings: StudySettings, seed1_result: Callable[[float], FinetuneResult | None]) -> tuple[list[float], float | None]:
    """:func:`lr_grid` for any cell, given its seed-1 result at a learning rate (``None`` until
    that run has finished)."""
    lrs = sorted(settings.finetune_lrs)
    ratio = lrs[-1] / lrs[-2] if len(lrs) > 1 else 3.0
    widened = 0
    while True:
        scores = {}
        for lr in lrs:
            result = seed1_result(lr)
            if result is None:
                return lrs, None
            scores[lr] = result.valid
        best = max(scores, key=lambda lr: (scores[lr], -lr))
        if widened == settings.finetune_lr_widen or lrs[0] < best < lrs[-1]:
            return lrs, best
        if best == lrs[-1]:
            lrs.append(float(f"{lrs[-1] * ratio:.2g}"))
        else:
            lrs.insert(0, float(f"{lrs[0] / ratio:.2g}"))
        widened += 1


def few_label_overrides(settings: StudySettings, task: str, budget: int = 1) -> list[str]:
    """The ``aape_finetune`` overrides of the low-label regime: the fixed 10-per-class draw, the
    task's step budget (times ``budget``), validation every 50 steps."""
    steps = settings.few_label_steps(task) * budget
    return [f"dataset.train_per_class={settings.per_class}", f"dataset.subset_seed={settings.subset_seed}",
            f"regime.num_steps={steps}", "regime.validate_every_n_steps=50", "regime.checkpoint_every_n_steps=50",
            "regime.publish_metrics_every_n_steps=50", f"lr_scheduler.config.num_warmup_steps={steps // 10}"]


def grid_lrs(root: Path, settings: StudySettings, start: Start, task: str, regime: str) -> list[float]:
    """The learning rates of :func:`lr_grid`."""
    return lr_grid(root, settings, start, task, regime)[0]


def chosen_lr(root: Path, settings: StudySettings, start: Start, task: str, regime: str) -> float | None:
    """The chosen learning rate of :func:`lr_grid`."""
    return lr_grid(root, settings, start, task, regime)[1]


def main_runs(root: Path, settings: StudySettings, start: Start, task: str, regime: str) -> list[FinetuneRun]:
    """Every run a (start, task, regime) cell needs that can be named now: the seed-1 grid
    (extended past an end validation picks), then the other seeds at the chosen learning rate."""
    first = settings.finetune_seeds[0]
    lrs, lr = lr_grid(root, settings, start, task, regime)
    runs = [FinetuneRun(start, task, regime, rate, first) for rate in lrs]
    if lr is not None:
        runs += [FinetuneRun(start, task, regime, lr, seed) for seed in settings.finetune_seeds[1:]]
    return runs


CURVE_REGIMES = (REGIMES[1],)
"""The label regimes the length curve fine-tunes in: few labels only (where pre-training pays
first, and a fifth of the all-labels cost); the curve's probes cover both regimes."""


def curve_runs(root: Path, settings: StudySettings, arch: str, task: str, regime: str) -> list[FinetuneRun]:
    """The long run's checkpoints, fine-tuned at the learning rate the main pre-trained model of
    the same arch chose for this task and regime (in :data:`CURVE_REGIMES`): once each, or with
    every fine-tuning seed at ``settings.curve_seeded_steps``."""
    if regime not in CURVE_REGIMES:
        return []
    lr = chosen_lr(root, settings, Start(arch, "main"), task, regime)
    if lr is None:
        return []
    return [FinetuneRun(Start(arch, "curve", step), task, regime, lr, seed) for step in settings.curve_steps for seed in curve_seeds(settings, step)]


def budget_runs(root: Path, settings: StudySettings, arch: str, task: str) -> list[FinetuneRun]:
    """The budget check on ``task``: ``arch``'s random initialisation and its long run's last
    checkpoint, fine-tuned with low labels for ``budget_check_factor`` times the steps, every
    fine-tuning seed, each at the rate it uses at the normal budget."""
    regime, runs = REGIMES[1], []
    if settings.budget_check_factor == 1:
        return []
    for start, lr_start in ((Start(arch, "random"), Start(arch, "random")), (Start(arch, "curve", settings.long_steps), Start(arch, "main"))):
        lr = chosen_lr(root, settings, lr_start, task, regime)
        if lr is not None:
            runs += [FinetuneRun(start, task, regime, lr, seed, settings.budget_check_factor) for seed in settings.finetune_seeds]
    return runs


def curve_seeds(settings: StudySettings, step: int) -> tuple[int, ...]:
    """Fine-tuning seeds of the long run's checkpoint at ``step`` (all at the seeded steps)."""
    return settings.finetune_seeds if step in settings.curve_seeded_steps else settings.finetune_seeds[:1]


def cell_results(root: Path, settings: StudySettings, start: Start, regime: str, seeds: tuple[int, ...] | None = None
                 ) -> list[dict[str, FinetuneResult]]:
    """Per fine-tuning seed that has finished every task, the results at the chosen learning
    rates (curve starts use the rates of the main pre-trained model of their arch)."""
    return list(seed_results(root, settings, start, regime, seeds).values())


def seed_results(root: Path, settings: StudySettings, start: Start, regime: str, seeds: tuple[int, ...] | None = None,
                 budget: int = 1) -> dict[int, dict[str, FinetuneResult]]:
    """:func:`cell_results` keyed by fine-tuning seed (a seed missing a task is left out), so
    that two cells can be paired seed by seed (``budget``: the runs of the budget check)."""
    lr_start = start if start.kind != "curve" else Start(start.arch, "main")
    lrs = {task: chosen_lr(root, settings, lr_start, task, regime) for task in TASKS}
    out = {}
    for seed in seeds or settings.finetune_seeds:
        per_task = {}
        for task, lr in lrs.items():
            result = None if lr is None else FinetuneRun(start, task, regime, lr, seed, budget).result(root)
            if result is not None:
                per_task[task] = result
        if len(per_task) == len(TASKS):
            out[seed] = per_task
    return out


def late_gain(result: FinetuneResult) -> float:
    """How much validation accuracy the last third of a run added over its first two thirds
    (about 0: the budget was long enough; clearly positive: still learning at the end)."""
    last = result.curve[-1][0]
    early = [v for s, v in result.curve if s <= 2 * last / 3]
    return max(v for _, v in result.curve) - (max(early) if early else 0.0)


def correct_matrix(per_seed: list[dict[str, FinetuneResult]]) -> dict[str, np.ndarray]:
    """Per task, ``(seeds, clips)`` of 1/0 (the clips are checked equal across seeds)."""
    from aape_plugin.eval.bootstrap import check_same_clips

    out = {}
    for task in TASKS:
        check_same_clips([(f"seed {i + 1} on {task}", r[task].clips) for i, r in enumerate(per_seed)])
        out[task] = np.array([r[task].correct for r in per_seed])
    return out
