"""Low-label fine-tuning of the experiments' models: which ``aape_finetune`` runs a cell needs,
from which start, and what the finished ones give.

Each run is ``fairseq2 recipe run aape_finetune OUT --preset <task>`` in the study's low-label
regime (:func:`studies.finetuning.few_label_overrides`; the modulation presets do not stretch
time), in ``ROOT/finetune/few/<start>/<task>/lr<lr>_seed<seed>``. The learning rate is chosen per
(model, task) on the seed-1 runs' validation accuracy (:func:`studies.finetuning.widening_grid`,
the study's grid, widened at most three times); the other seeds then run at it. Fine-tuning seed k
starts from pre-training seed k, or from the random initialisation of seed k. A longer run (one
pre-training run, ``VARIANT@STEPS``) is fine-tuned with every seed at the rate its 3,000-step model
chose: its intervals count fine-tuning seeds and clips, not pre-training seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.common import Job, StudySettings, aape_command
from studies.finetuning import FinetuneResult, few_label_overrides, read_finetune_result, widening_grid
from studies.variants import RANDOM_SUFFIX, REFERENCE, VariantRun, finetune_overrides, known_models

MAIN_STEPS = 3000
"""The pre-training length of the experiments' main runs (seeds 1-3)."""

SETTINGS = StudySettings(finetune_lr_widen=3)
"""The study's grid, widened until validation's choice is interior (``docs/protocol.md``), at most
three times; a choice still at an end is flagged on the page."""


@dataclass(frozen=True)
class ModelStart:
    """What a fine-tuning run starts from: a variant's (or ``vit_tiny``'s) pre-training run of
    ``steps``, or ``"<arch> random init"``."""

    name: str
    steps: int = MAIN_STEPS

    @property
    def random(self) -> bool:
        return self.name.endswith(RANDOM_SUFFIX)

    @property
    def arch(self) -> str:
        if self.random:
            return self.name.removesuffix(RANDOM_SUFFIX)
        return REFERENCE if self.name == REFERENCE else "aape_tiny"

    @property
    def long(self) -> bool:
        return not self.random and self.steps != MAIN_STEPS

    @property
    def label(self) -> str:
        """The model's name on the page and in the stored outcomes (``, seed k`` follows)."""
        return self.name if self.random else f"{self.name}, {self.steps} steps"

    @property
    def slug(self) -> str:
        return f"{self.arch}_random" if self.random else f"{self.name}_{self.steps}"

    @property
    def grid_start(self) -> ModelStart:
        """Whose seed-1 grid chooses the learning rate (a long run takes its 3,000-step model's)."""
        return ModelStart(self.name) if self.long else self

    def pretraining(self, seed: int) -> VariantRun | None:
        """The pre-training run fine-tuning seed ``seed`` starts from (a long run has one)."""
        if self.random:
            return None
        return VariantRun(self.name, self.steps, 1 if self.long else seed)


def parse_start(text: str) -> ModelStart:
    """``frozen_lambda``, ``frozen_lambda@30000``, ``vit_tiny``, ``aape_tiny random init``."""
    name, _, steps = text.partition("@")
    known = set(known_models())
    if name not in known:
        raise ValueError(f"Unknown model {text!r}; known: {sorted(known)} (a pre-trained one may add @STEPS).")
    try:
        return ModelStart(name, int(steps)) if steps else ModelStart(name)
    except ValueError:
        raise ValueError(f"{text!r}: the steps after @ must be an integer.") from None


@dataclass(frozen=True)
class ObjectiveFinetune:
    """One fine-tuning run."""

    start: ModelStart
    task: str
    lr: float
    seed: int

    def folder(self, root: Path) -> Path:
        return root / "finetune" / "few" / self.start.slug / self.task / f"lr{self.lr:g}_seed{self.seed}"

    def result(self, root: Path) -> FinetuneResult | None:
        return read_finetune_result(self.folder(root))

    def ready(self, root: Path) -> bool:
        run = self.start.pretraining(self.seed)
        return run is None or run.finished(root)

    def job(self, root: Path, settings: StudySettings, pool_stats: Path) -> Job:
        out = self.folder(root)
        overrides = [f"model.arch={self.start.arch}", f"common.seed={self.seed}", f"optimizer.config.lr={self.lr:g}"]
        run = self.start.pretraining(self.seed)
        if run is None:
            overrides.append(f"dataset.stats_file={pool_stats}")  # the statistics the pre-trained models normalise with
        else:
            overrides += [f"pretrained.checkpoint={run.folder(root)}", f"pretrained.step={run.steps}", *finetune_overrides(run.variant)]
        overrides += few_label_overrides(settings, self.task)
        command = aape_command("aape_finetune", str(out), "--preset", self.task, "--no-rich", "--config", *overrides)
        name = f"fine-tune {self.start.label}, {self.task}, 10 per class, lr {self.lr:g}, seed {self.seed}"
        return Job(name, command, out.with_name(out.name + ".log"))


def chosen_lr(root: Path, settings: StudySettings, start: ModelStart, task: str) -> tuple[list[float], float | None]:
    """The seed-1 grid the cell needs so far and its choice (``None`` until the grid has finished)."""
    grid = start.grid_start
    return widening_grid(settings, lambda lr: ObjectiveFinetune(grid, task, lr, settings.finetune_seeds[0]).result(root))


def runs_needed(root: Path, settings: StudySettings, starts: Sequence[ModelStart], tasks: Sequence[str]) -> list[ObjectiveFinetune]:
    """Every run that can be named now: each (3,000-step or random) start's seed-1 grid, then
    every seed at the chosen rate (a long run: once its 3,000-step model has chosen)."""
    runs: list[ObjectiveFinetune] = []
    for start in starts:
        for task in tasks:
            lrs, lr = chosen_lr(root, settings, start, task)
            if not start.long:
                runs += [ObjectiveFinetune(start, task, rate, settings.finetune_seeds[0]) for rate in lrs]
            if lr is not None:
                runs += [ObjectiveFinetune(start, task, lr, seed) for seed in settings.finetune_seeds
                         if start.long or seed != settings.finetune_seeds[0]]
    return runs


def results(root: Path, settings: StudySettings, starts: Sequence[ModelStart], tasks: Sequence[str]
            ) -> dict[str, dict[str, FinetuneResult]]:
    """Finished runs at the chosen rates, as ``{"<label>, seed k": {task: result}}``."""
    out: dict[str, dict[str, FinetuneResult]] = {}
    for start in starts:
        for task in tasks:
            lr = chosen_lr(root, settings, start, task)[1]
            if lr is None:
                continue
            for seed in settings.finetune_seeds:
                result = ObjectiveFinetune(start, task, lr, seed).result(root)
                if result is not None:
                    out.setdefault(f"{start.label}, seed {seed}", {})[task] = result
    return out


def choices(root: Path, settings: StudySettings, starts: Sequence[ModelStart], tasks: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model label and task: the grid its seed-1 runs covered, the chosen rate and whether it
    is still an end of the grid (stored beside the outcomes, shown on the page)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for start in starts:
        for task in tasks:
            lrs, lr = chosen_lr(root, settings, start, task)
            if lr is not None:
                out.setdefault(start.label, {})[task] = {"grid": lrs, "lr": lr, "at_end": lr in (lrs[0], lrs[-1])}
    return out


def reused_readings(docs: Path, reuses: tuple[str, ...], order: Sequence[str], found: Mapping[str, Mapping[str, Any]],
                    chosen: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> tuple[dict[str, Mapping[str, Any]], dict[str, Any]]:
    """``found`` and ``chosen`` completed from the stored readings ``reuses``, for the model labels
    of ``order`` they lack."""
    from studies.outcomes import load_readings, with_reused

    stored_outcomes, stored_choices = load_readings(docs, reuses)
    wanted = {key for key in stored_outcomes if key.rsplit(", seed ", 1)[0] in order}
    merged_choices = {label: c for label, c in stored_choices.items() if label in order and label not in chosen}
    merged_choices.update(chosen)
    return with_reused(found, stored_outcomes, wanted), merged_choices
