"""Step 4 of ``docs/objectives.md``, fine-tuning part: low-label fine-tuning (10 clips per class)
of the objective study's models, on the test splits, with intervals over seeds.

    python -m studies.objectives_finetune --out ~/.cache/aape-fairseq2/study-runs/objectives \\
        [--tasks modulation|five|all] [--models frozen_lambda vit_tiny ...] [--jobs 2]
    python -m studies.objectives_finetune --out ... --report-only --docs docs
    python -m studies.objectives_finetune --report-only --docs docs --from-docs

Each run is ``fairseq2 recipe run aape_finetune OUT --preset <task>`` in the study's low-label
regime (:func:`studies.finetuning.few_label_overrides`; the modulation presets do not stretch
time). The learning rate is chosen per (model, task) on the seed-1 runs' validation accuracy
(:func:`studies.finetuning.widening_grid`, the study's grid); seeds 2 and 3 then run at it.
Fine-tuning seed k starts from pre-training seed k, or from the random initialisation of seed k.
The long run (one pre-training run) is fine-tuned with every fine-tuning seed at the rate its
3,000-step model chose: its intervals count fine-tuning seeds and clips, not pre-training seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.common import MODULATION_TASKS, SHORT, TASKS, Job, StudySettings, aape_command, run_jobs, say
from studies.finetuning import FinetuneResult, few_label_overrides, read_finetune_result, widening_grid
from studies.objectives import LONG_RUN, REFERENCE, VARIANTS, VariantRun

RANDOM_SUFFIX = " random init"
LONG_STEPS = LONG_RUN.steps
"""The long run's length: the one :data:`studies.objectives.LONG_RUN` names."""


@dataclass(frozen=True)
class ModelStart:
    """What a fine-tuning run starts from: a variant's (or ``vit_tiny``'s) pre-training run of
    ``steps``, or ``"<arch> random init"``."""

    name: str
    steps: int = 3000

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
        return not self.random and self.steps == LONG_STEPS

    @property
    def label(self) -> str:
        return self.name if self.random else f"{self.name}, {self.steps} steps"

    @property
    def slug(self) -> str:
        return f"{self.arch}_random" if self.random else f"{self.name}_{self.steps}"

    @property
    def grid_start(self) -> ModelStart:
        """Whose seed-1 grid chooses the learning rate (the long run takes its 3,000-step model's)."""
        return ModelStart(self.name) if self.long else self

    def pretraining(self, seed: int) -> VariantRun | None:
        """The pre-training run fine-tuning seed ``seed`` starts from (the long run has one)."""
        if self.random:
            return None
        return VariantRun(self.name, self.steps, 1 if self.long else seed)


def parse_start(text: str) -> ModelStart:
    """``frozen_lambda``, ``frozen_lambda@30000``, ``vit_tiny``, ``aape_tiny random init``."""
    name, _, steps = text.partition("@")
    known = {*VARIANTS, REFERENCE, f"aape_tiny{RANDOM_SUFFIX}", f"{REFERENCE}{RANDOM_SUFFIX}"}
    if name not in known:
        raise ValueError(f"Unknown model {text!r}; known: {sorted(known)} (a pre-trained one may add @STEPS).")
    try:
        return ModelStart(name, int(steps)) if steps else ModelStart(name)
    except ValueError:
        raise ValueError(f"{text!r}: the steps after @ must be an integer.") from None


@dataclass(frozen=True)
class ObjectiveFinetune:
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
            overrides += [f"pretrained.checkpoint={run.folder(root)}", f"pretrained.step={run.steps}"]
        overrides += few_label_overrides(settings, self.task)
        command = aape_command("aape_finetune", str(out), "--preset", self.task, "--no-rich", "--config", *overrides)
        name = f"fine-tune {self.start.label}, {self.task}, 10 per class, lr {self.lr:g}, seed {self.seed}"
        return Job(name, command, out.with_name(out.name + ".log"))


def chosen_lr(root: Path, settings: StudySettings, start: ModelStart, task: str) -> tuple[list[float], float | None]:
    grid = start.grid_start
    return widening_grid(settings, lambda lr: ObjectiveFinetune(grid, task, lr, settings.finetune_seeds[0]).result(root))


def runs_needed(root: Path, settings: StudySettings, starts: Sequence[ModelStart], tasks: Sequence[str]) -> list[ObjectiveFinetune]:
    """Every run that can be named now: each (3,000-step or random) start's seed-1 grid, then
    every seed at the chosen rate (the long run: once its 3,000-step model has chosen)."""
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


@dataclass(frozen=True)
class FinetunePlan:
    """One fine-tuning reading of ``docs/objectives.md``: its comparisons (paired by fine-tuning
    seed; for 3,000-step and random starts also the pre-training or initialisation seed; a long
    run is one pre-training run), the order of its rows, its page and its default models."""

    comparisons: tuple[tuple[str, str], ...]
    order: tuple[str, ...]
    page: str
    outcomes: str
    head: str
    models: tuple[str, ...]
    reuses: tuple[str, ...] = ()
    """Earlier readings' ``DOCS/<outcomes>.json`` whose stored outcomes (and learning-rate
    choices) stand in for the models of :attr:`order` not run here."""


GROUPS = {"modulation group": MODULATION_TASKS, "five tasks": TASKS}


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


def choices_table(chosen: Mapping[str, Mapping[str, Mapping[str, Any]]], plan: FinetunePlan | None = None) -> str:
    tasks = [t for t in (*MODULATION_TASKS, *TASKS) if any(t in v for v in chosen.values())]
    lines = ["| model | " + " | ".join(SHORT[t] for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for model in sorted(chosen, key=lambda label: _model_order(label, plan or STEP4)):
        cells = [(f"{chosen[model][t]['lr']:g}" + (" (end)" if chosen[model][t]["at_end"] else "")) if t in chosen[model] else ""
                 for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    ends = sum(c["at_end"] for v in chosen.values() for c in v.values())
    total = sum(len(v) for v in chosen.values())
    return "\n".join(lines) + f"\n\n{ends} of {total} choices are at an end of their grid (widened at most 3 times)."


def report(outcomes: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], plan: FinetunePlan | None = None) -> tuple[str, dict[str, object]]:
    """Test accuracy per model (means over fine-tuning seeds) and the paired differences per task
    group (``aape_plugin.eval.seed_interval``), from anything with ``test``, ``clips`` and
    ``correct`` per ``"<label>, seed k"`` and task; a group is shown once every seed of both
    models has finished every task of it."""
    import numpy as np

    from aape_plugin.eval.bootstrap import check_same_clips
    from aape_plugin.eval.seed_interval import seed_t_interval

    plan = plan or STEP4
    labels = sorted({key.rsplit(", seed ", 1)[0] for key in outcomes}, key=lambda label: _model_order(label, plan))
    tasks = [t for t in (*MODULATION_TASKS, *TASKS) if any(t in v for v in outcomes.values())]
    per_model = {m: [outcomes.get(f"{m}, seed {s}", {}) for s in seeds] for m in labels}
    lines = ["| model | " + " | ".join(SHORT[t] for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for model in labels:
        cells = []
        for t in tasks:
            done = [r[t].test for r in per_model[model] if t in r]
            partial = "" if len(done) == len(seeds) else f" ({len(done)} seed{'s' if len(done) > 1 else ''})"
            cells.append(f"{100 * float(np.mean(done)):.1f}{partial}" if done else "")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    data: dict[str, object] = {"seeds": list(seeds), "comparisons": {}}
    rows: list[tuple[str, list[str]]] = []
    for a, b in plan.comparisons:
        cells, shown = [], False
        for group, group_tasks in GROUPS.items():
            complete = all(m in per_model for m in (a, b)) and \
                all(t in r for m in (a, b) for r in per_model[m] for t in group_tasks)
            if not complete:
                cells.append("")
                continue
            for t in group_tasks:
                check_same_clips([(f"{m} seed {s}", r[t].clips) for m in (a, b) for s, r in zip(seeds, per_model[m])])
            pa = {t: np.array([r[t].correct for r in per_model[a]]) for t in group_tasks}
            pb = {t: np.array([r[t].correct for r in per_model[b]]) for t in group_tasks}
            interval = seed_t_interval(pa, pb, paired=True)
            cells.append(interval.describe())
            data["comparisons"][f"{a} - {b}: {group}"] = interval.as_dict()  # type: ignore[index]
            shown = True
        if shown:
            rows.append((f"{a} minus {b}", cells))
    shown_groups = [k for k in range(len(GROUPS)) if any(cells[k] for _, cells in rows)]
    if rows:
        lines += ["", "| a minus b (paired by seed) | " + " | ".join(list(GROUPS)[k] for k in shown_groups) + " |",
                  "|---|" + "---|" * len(shown_groups)]
        lines += [f"| {name} | " + " | ".join(cells[k] for k in shown_groups) + " |" for name, cells in rows]
    return "\n".join(lines), data


def _model_order(label: str, plan: FinetunePlan) -> tuple[int, str]:
    return (plan.order.index(label), label) if label in plan.order else (len(plan.order), label)


STEP4 = FinetunePlan(
    comparisons=(
        ("frozen_lambda, 3000 steps", "aape_tiny random init"),
        ("frozen_lambda, 3000 steps", f"{REFERENCE}, 3000 steps"),
        ("frozen_lambda, 3000 steps", "default, 3000 steps"),
        (f"{REFERENCE}, 3000 steps", f"{REFERENCE} random init"),
        (f"frozen_lambda, {LONG_STEPS} steps", "aape_tiny random init"),
        (f"frozen_lambda, {LONG_STEPS} steps", f"{REFERENCE}, 3000 steps"),
        (f"frozen_lambda, {LONG_STEPS} steps", "frozen_lambda, 3000 steps"),
    ),
    order=("aape_tiny random init", f"{REFERENCE} random init", "default, 3000 steps", "frozen_lambda, 3000 steps",
           f"{REFERENCE}, 3000 steps", f"frozen_lambda, {LONG_STEPS} steps"),
    page="objectives-finetune",
    outcomes="objectives-finetune-outcomes",
    head="""# Pre-training that keeps what the stem sees: step 4, low-label fine-tuning on test

Generated by `python -m studies.objectives_finetune --report-only --docs docs` from the per-clip
outcomes in `docs/objectives-finetune-outcomes.json` (`--from-docs` rebuilds this page from them
alone; a test checks it does, byte for byte). The protocol is `docs/objectives.md`: the
`aape_finetune` recipe with 10 training clips per class (the study's low-label regime; the
modulation presets do not stretch time), the learning rate chosen per model and task on seed 1's
validation accuracy, the checkpoint by validation within each run, test scored once. Validation here
is the task's whole validation split, more labels than the 10 per class a model trains on, as in the
study so far (`docs/protocol.md` asks for 10 per class; not implemented yet). Fine-tuning seed k
starts from pre-training seed k (or the random initialisation of seed k); the 30,000-step row is one
pre-training run fine-tuned with seeds 1-3, so its intervals count fine-tuning seeds and clips only.
Test accuracy %, means over seeds; paired differences in points with the 95% interval of
`aape_plugin/eval/seed_interval.py` (`a tie within ±2 points` when it holds zero and stays within 2
points of it, `inconclusive` when it holds zero and reaches further). An empty cell: not every run
of it has finished.

""",
    models=("frozen_lambda", REFERENCE, f"aape_tiny{RANDOM_SUFFIX}", f"{REFERENCE}{RANDOM_SUFFIX}", "default",
            f"frozen_lambda@{LONG_STEPS}"),
)
"""Step 4: the Lambda Encoder options."""

ALIAS_TARGET = FinetunePlan(
    comparisons=(
        ("alias_subband, 3000 steps", "frozen_lambda, 3000 steps"),
        ("alias_subband, 3000 steps", "aape_tiny random init"),
        ("alias_subband, 3000 steps", f"{REFERENCE}, 3000 steps"),
        ("frozen_lambda, 3000 steps", "aape_tiny random init"),
        (f"alias_subband, {LONG_STEPS} steps", "aape_tiny random init"),
        (f"alias_subband, {LONG_STEPS} steps", f"{REFERENCE}, 3000 steps"),
        (f"alias_subband, {LONG_STEPS} steps", "alias_subband, 3000 steps"),
    ),
    order=("aape_tiny random init", "frozen_lambda, 3000 steps", "alias_subband, 3000 steps", f"{REFERENCE}, 3000 steps",
           f"alias_subband, {LONG_STEPS} steps"),
    page="objectives-alias-finetune",
    outcomes="objectives-alias-finetune-outcomes",
    head="""# Pre-training that keeps what the stem sees: the alias target, low-label fine-tuning on test

Generated by `python -m studies.objectives_finetune --round 2 --report-only --docs docs` from the
per-clip outcomes in `docs/objectives-alias-finetune-outcomes.json` (`--from-docs` rebuilds this
page from them alone). The protocol is rounds 2-4 of `docs/objectives.md`, fine-tuned exactly as
step 4 (`docs/objectives-finetune.md`, whose runs of the other models it reuses): 10 training clips
per class, the learning rate chosen per model and task on seed 1's validation accuracy, test scored
once. Test accuracy %, means over fine-tuning seeds; paired differences in points with the 95%
interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2 points` when it holds zero and
stays within 2 points of it, `inconclusive` when it holds zero and reaches further). An empty cell:
not every run of it has finished.

""",
    models=("alias_subband", "frozen_lambda", f"aape_tiny{RANDOM_SUFFIX}", REFERENCE, f"alias_subband@{LONG_STEPS}"),
)
"""Rounds 2-4: the alias-feature target they chose."""

ALIAS_VISIBLE = FinetunePlan(
    comparisons=(
        ("alias_visible, 3000 steps", "alias_subband, 3000 steps"),
        ("alias_visible, 3000 steps", "aape_tiny random init"),
        ("alias_visible, 3000 steps", f"{REFERENCE}, 3000 steps"),
        (f"alias_visible, {LONG_STEPS} steps", "aape_tiny random init"),
        (f"alias_visible, {LONG_STEPS} steps", f"{REFERENCE}, 3000 steps"),
        (f"alias_visible, {LONG_STEPS} steps", "alias_visible, 3000 steps"),
    ),
    order=("aape_tiny random init", "alias_subband, 3000 steps", "alias_visible, 3000 steps", f"{REFERENCE}, 3000 steps",
           f"alias_visible, {LONG_STEPS} steps"),
    page="objectives-visible-finetune",
    outcomes="objectives-visible-finetune-outcomes",
    reuses=("objectives-alias-finetune-outcomes",),
    head="""# Pre-training that keeps what the stem sees: the encoder's own alias target, low-label fine-tuning on test

Generated by `python -m studies.objectives_finetune --round 3 --report-only --docs docs` from the
per-clip outcomes in `docs/objectives-visible-finetune-outcomes.json` (`--from-docs` rebuilds this
page from them alone). The protocol is round 5 of `docs/objectives.md`, fine-tuned exactly as rounds
2-4: 10 training clips per class, the learning rate chosen per model and task on seed 1's validation
accuracy, test scored once. The rows of `alias_subband`, `vit_tiny` and the random initialisation
are the stored outcomes of rounds 2-4 (`docs/objectives-alias-finetune-outcomes.json`): the same
test clips, fine-tuned and scored then. Test accuracy %, means over fine-tuning seeds; paired
differences in points with the 95% interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2
points` when it holds zero and stays within 2 points of it, `inconclusive` when it holds zero and
reaches further). An empty cell: not every run of it has finished.

""",
    models=("alias_visible", f"alias_visible@{LONG_STEPS}"),
)
"""Round 5: the encoder's own tokens predict the alias targets too."""

PLANS = {1: STEP4, 2: ALIAS_TARGET, 3: ALIAS_VISIBLE}


def write_page(docs: Path, outcomes: Mapping[str, Mapping[str, Any]], seeds: Sequence[int],
               chosen: Mapping[str, Mapping[str, Mapping[str, Any]]], plan: FinetunePlan | None = None) -> str:
    plan = plan or STEP4
    text, data = report(outcomes, seeds, plan)
    text += "\n\nLearning rates chosen on seed 1's validation accuracy:\n\n" + choices_table(chosen, plan)
    data["choices"] = chosen
    (docs / f"{plan.page}.md").write_text(plan.head + text + "\n")
    (docs / f"{plan.page}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return text


def reused_readings(docs: Path, plan: FinetunePlan, found: Mapping[str, Mapping[str, Any]],
                    chosen: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> tuple[dict[str, Mapping[str, Any]], dict[str, Any]]:
    """``found`` and ``chosen`` completed from the plan's stored readings, for the models of its
    :attr:`FinetunePlan.order` they lack."""
    from studies.outcomes import load_readings, with_reused

    stored_outcomes, stored_choices = load_readings(docs, plan.reuses)
    wanted = {key for key in stored_outcomes if key.rsplit(", seed ", 1)[0] in plan.order}
    merged_choices = {label: c for label, c in stored_choices.items() if label in plan.order and label not in chosen}
    merged_choices.update(chosen)
    return with_reused(found, stored_outcomes, wanted), merged_choices


SETTINGS = StudySettings(finetune_lr_widen=3)
"""The study's grid, widened until validation's choice is interior (``docs/protocol.md``), at most
three times; a choice still at an end is flagged on the page."""

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.objectives_finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/objectives"))
    parser.add_argument("--tasks", choices=("modulation", "five", "all"), default="modulation")
    parser.add_argument("--round", type=int, choices=sorted(PLANS), default=1,
                        help="which reading of docs/objectives.md (1: step 4, 2: the alias-feature target of rounds 2-4, "
                             "3: the encoder's own alias target of round 5)")
    parser.add_argument("--models", nargs="+", default=None,
                        help="in order of priority (default: the round's models)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--docs", type=Path, default=None, help="write DOCS/objectives-finetune.md and its per-clip outcomes")
    parser.add_argument("--from-docs", action="store_true", help="with --docs: rebuild the page from the stored outcomes alone")
    args = parser.parse_args(argv)
    plan = PLANS[args.round]
    try:
        starts = [parse_start(m) for m in (args.models or plan.models)]
    except ValueError as error:
        parser.error(str(error))
    tasks = {"modulation": MODULATION_TASKS, "five": TASKS, "all": (*MODULATION_TASKS, *TASKS)}[args.tasks]
    settings = SETTINGS
    outcomes_file = args.docs / f"{plan.outcomes}.json" if args.docs is not None else None

    if args.from_docs:
        if outcomes_file is None:
            parser.error("--from-docs needs --docs")
        from studies.outcomes import load

        stored = json.loads(outcomes_file.read_text())
        say("test accuracy %, low-label fine-tuning:\n" + write_page(args.docs, load(stored), settings.finetune_seeds, stored["choices"], plan))
        return 0

    from aape_plugin.inference.loading import ensure_fairseq2

    ensure_fairseq2()
    if not args.report_only:
        from studies.probing import pool_stats_file

        stats = pool_stats_file()
        failed = run_jobs(lambda: [r.job(args.out, settings, stats) for r in runs_needed(args.out, settings, starts, tasks)
                                   if r.result(args.out) is None and r.ready(args.out)], jobs=args.jobs)
        if failed:
            say(f"{len(failed)} run(s) failed: " + "; ".join(failed))
    found = results(args.out, settings, starts, (*MODULATION_TASKS, *TASKS))
    if outcomes_file is not None:
        from aape_plugin.data.study_corpus import study_dir
        from studies.outcomes import load, store

        chosen = choices(args.out, settings, starts, (*MODULATION_TASKS, *TASKS))
        if plan.reuses:
            found, chosen = reused_readings(args.docs, plan, found, chosen)
        stored = {**store(found, corpus=study_dir().resolve()), "choices": chosen}
        outcomes_file.write_text(json.dumps(stored, indent=1) + "\n")
        text = write_page(args.docs, load(json.loads(outcomes_file.read_text())), settings.finetune_seeds, chosen, plan)
    else:
        text = report(found, settings.finetune_seeds, plan)[0]
    say("test accuracy %, low-label fine-tuning:\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
