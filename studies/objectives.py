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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aape_plugin.eval.embedding_cache import weights_digest
from aape_plugin.inference.embedder import EncoderEmbedder, LogMelEmbedder
from aape_plugin.inference.modulation_spectrum import ModulationSpectrumEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder, new_encoder
from studies.common import MODULATION_TASKS, SHORT, TASKS, Job, StudySettings, aape_command, run_jobs, say
from studies.probing import Prober, ProbeScore, load_pool_stats

def model_overrides(*, stem: str | None = None, targets: str) -> str:
    """One ``model.config_overrides`` (a second one would replace the first, not add to it)."""
    parts = ([f"encoder: {{stem: {{{stem}}}}}"] if stem else []) + [f"targets: {{{targets}}}"]
    return "model.config_overrides={" + ", ".join(parts) + "}"


NO_ALIAS = "alias_features: false, alias_visible: false"
"""The objective before round 2: the paper's (the study preset's since rounds 2-4 is the alias target)."""

SUBBAND = "alias_features: true, alias_norm: subband, alias_visible: false"
"""Rounds 3-4's alias target: at the masked patches only (round 5 added the visible ones)."""

VISIBLE = "alias_features: true, alias_norm: subband, alias_visible: true"
"""The study preset's alias target (round 5)."""

TRAINED_LAMBDA = "optimizer.config.lambda_lr_scale=1"

VARIANTS: dict[str, tuple[str, ...]] = {
    # Each variant spells out everything the study preset has changed since it was run: the
    # Lambda Encoder was trained in round 1 (the preset freezes it since), and there was no
    # alias target (the preset's since rounds 2-5).
    "default": (TRAINED_LAMBDA, model_overrides(targets=NO_ALIAS)),
    "frozen_lambda": ("optimizer.config.lambda_lr_scale=0", model_overrides(targets=NO_ALIAS)),
    "slow_lambda": ("optimizer.config.lambda_lr_scale=0.1", model_overrides(targets=NO_ALIAS)),
    "offsets": (TRAINED_LAMBDA, model_overrides(stem="pole_mode: offsets", targets=NO_ALIAS)),
    "balanced_fusion": (TRAINED_LAMBDA, model_overrides(stem="fusion_balance: true", targets=NO_ALIAS)),
    "offsets_balanced": (TRAINED_LAMBDA, model_overrides(stem="pole_mode: offsets, fusion_balance: true", targets=NO_ALIAS)),
    # Round 2 (docs/objectives.md): a target that includes the alias stream.
    "alias_target": (model_overrides(targets="alias_features: true, alias_norm: patch, alias_visible: false"),),
    "alias_target_trained": (TRAINED_LAMBDA, model_overrides(targets="alias_features: true, alias_norm: patch, alias_visible: false")),
    # Round 3: the same target without the subband's fixed pattern (the study preset's since).
    "alias_subband": (model_overrides(targets=SUBBAND),),
    "alias_subband_light": (model_overrides(targets=SUBBAND), "criterion.config.alias_weight=0.3"),
    # Round 4: a heavier weight.
    "alias_subband_heavy": (model_overrides(targets=SUBBAND), "criterion.config.alias_weight=3"),
    # Round 5: the student's own output tokens also predict the targets at the visible patches
    # (the study preset's since).
    "alias_visible": (model_overrides(targets=VISIBLE),),
    # The study preset with the Lambda Encoder trained, as the paper trains it; and the fixed-pole
    # arm (one learned pole set per subband, no input dependence) under the same schedule: what
    # the input-dependent estimate adds is the difference between the two.
    "trained_visible": (TRAINED_LAMBDA, model_overrides(targets=VISIBLE)),
    "fixed_poles": (TRAINED_LAMBDA, model_overrides(stem="adaptive: false", targets=VISIBLE)),
    # A trained Lambda Encoder whose tokens also see each patch's modulation spectrum.
    "modulation_lambda": (TRAINED_LAMBDA, model_overrides(stem="lambda_modulation_input: true", targets=VISIBLE)),
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


def measure(root: Path, runs: list[VariantRun], seeds: list[int], *, random_init: bool = True,
            baselines: bool = False) -> dict[str, dict[str, float]]:
    """Validation accuracy of the converged probe (all labels) per encoder and task (with
    ``baselines``, also the log-mel statistics and the modulation spectrum, no model)."""
    return {name: {task: score.valid for task, score in scores.items()}
            for name, scores in probe_scores(root, runs, seeds, random_init=random_init, baselines=baselines).items()}


def probe_scores(root: Path, runs: list[VariantRun], seeds: list[int], *, random_init: bool = True,
                 sklearn_check: bool = False, baselines: bool = False, tasks: tuple[str, ...] = (*MODULATION_TASKS, *TASKS),
                 folder: Path | None = None) -> dict[str, dict[str, ProbeScore]]:
    """The stored (or new) probe results per encoder name and task (with ``random_init``, also
    those of both architectures' random initialisations of ``seeds``; with ``sklearn_check``,
    each probe also fits scikit-learn's logistic regression, tuned on validation, on the same
    features: ``ProbeScore.sklearn_test``), kept in ``folder`` (``root/measurements``)."""
    stats = load_pool_stats()
    prober = Prober(StudySettings(), folder or root / "measurements", tasks=tasks)
    encoders: list[tuple[str, torch.nn.Module, int]] = []
    for seed in seeds if random_init else []:
        for arch in ("aape_tiny", REFERENCE):
            loaded = new_encoder(arch, seed=seed)
            encoders.append((f"{arch} random init, seed {seed}", loaded.encoder, loaded.config.encoder.num_frames))
    for run in runs:
        if run.finished(root):
            loaded = load_encoder(run.folder(root), weights="teacher")
            encoders.append((f"{run.variant}, {run.steps} steps, seed {run.seed}", loaded.encoder, loaded.config.encoder.num_frames))
    out = {}
    if baselines:  # the no-model rows: what the input features alone give the same probe
        for name, embedder, kind in (("log-mel statistics", LogMelEmbedder(stats), "logmel"),
                                     ("modulation spectrum", ModulationSpectrumEmbedder(stats), "modspec")):
            scores = prober.probe(name, embedder, {"kind": kind, "stats": [stats.mean, stats.std]}, per_class=None, sklearn_check=sklearn_check)
            if scores is not None:
                out[name] = scores
    for name, encoder, frames in encoders:
        key = {"kind": "aape", "weights": weights_digest(encoder), "stats": [stats.mean, stats.std]}
        scores = prober.probe(name, EncoderEmbedder(encoder, stats, num_frames=frames), key, per_class=None, sklearn_check=sklearn_check)
        if scores is not None:
            out[name] = scores
    return out


@dataclass(frozen=True)
class TestPlan:
    """One test reading of ``docs/objectives.md``: which pre-trained models (3,000 steps, the
    seeds given), which paired comparisons, which long run and where the page goes."""

    variants: tuple[str, ...]
    comparisons: tuple[tuple[str, str], ...]
    """Seeds pair by number (the same data order, and for the same architecture the same initialisation)."""
    long_run: VariantRun
    long_comparisons: tuple[str, ...]
    """What the long run is compared with (its one run against the other model's seeds, unpaired:
    the interval counts their seeds and the clips, not the long run's own pre-training seed)."""
    page: str
    """``DOCS/<page>.md`` and ``.json``; the per-clip outcomes go to ``DOCS/<outcomes>.json``."""
    outcomes: str
    head: str
    reuses: tuple[str, ...] = ()
    """Earlier readings' ``DOCS/<outcomes>.json`` whose stored outcomes stand in for the models
    not measured here (their runs were scored and published before): the random
    initialisations, and any variant whose runs this machine does not hold."""


RANDOM_AAPE = "aape_tiny random init"

STEP4 = TestPlan(
    variants=("default", "frozen_lambda", REFERENCE),
    comparisons=(
        ("frozen_lambda", "default"),
        ("frozen_lambda", REFERENCE),
        ("default", REFERENCE),
        ("frozen_lambda", RANDOM_AAPE),
        ("default", RANDOM_AAPE),
        (REFERENCE, "vit_tiny random init"),
    ),
    long_run=VariantRun("frozen_lambda", 30_000, 1),
    long_comparisons=(RANDOM_AAPE, "frozen_lambda", REFERENCE),
    page="objectives-test",
    outcomes="objectives-outcomes",
    head="""# Pre-training that keeps what the stem sees: step 4, the probe on test

Generated by `python -m studies.objectives --test --docs docs` from the per-clip outcomes in
`docs/objectives-outcomes.json` (`--from-docs` rebuilds this page from them alone; a test checks it
does, byte for byte). The protocol is `docs/objectives.md`: these are the models it names, 3,000
steps of the study's pre-training, pre-training seeds 1-3, the converged linear probe with all
labels. Test accuracy %, means over seeds; then paired differences (seeds pair by number: the same
data order, and for one architecture the same initialisation), points, with the 95% interval of
`aape_plugin/eval/seed_interval.py` (Student's t over seeds, plus the paired clip variance; `a tie
within ±2 points` when it holds zero and stays within 2 points of it, `inconclusive` when it holds
zero and reaches further). The 30,000-step row is one pre-training run of the chosen setup: its
comparisons count the other model's seeds and the clips, not its own pre-training seed. Low-label
fine-tuning, step 4's other half, is `docs/objectives-finetune.md`.

""",
)
"""Step 4 (``docs/objectives.md``): the Lambda Encoder options."""

ALIAS_TARGET = TestPlan(
    variants=("alias_subband", "frozen_lambda", REFERENCE),
    comparisons=(
        ("alias_subband", "frozen_lambda"),
        ("alias_subband", RANDOM_AAPE),
        ("alias_subband", REFERENCE),
        ("frozen_lambda", RANDOM_AAPE),
    ),
    long_run=VariantRun("alias_subband", 30_000, 1),
    long_comparisons=(RANDOM_AAPE, "alias_subband", REFERENCE),
    page="objectives-alias-test",
    outcomes="objectives-alias-outcomes",
    head="""# Pre-training that keeps what the stem sees: the alias target, the probe on test

Generated by `python -m studies.objectives --test --round 2 --docs docs` from the per-clip outcomes
in `docs/objectives-alias-outcomes.json` (`--from-docs` rebuilds this page from them alone). The
protocol is rounds 2-4 of `docs/objectives.md`: the alias-feature target they chose on validation
(`alias_subband`) against the objective before it (`frozen_lambda`), the random initialisation and
the plain stem; 3,000 steps of the study's pre-training, pre-training seeds 1-3, the converged
linear probe with all labels. Test accuracy %, means over seeds; then paired differences (seeds pair
by number), points, with the 95% interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2
points` when it holds zero and stays within 2 points of it, `inconclusive` when it holds zero and
reaches further). A 30,000-step row, when present, is one pre-training run: its comparisons count
the other model's seeds and the clips, not its own pre-training seed. Low-label fine-tuning is
`docs/objectives-alias-finetune.md`.

""",
)
"""Rounds 2-4 (``docs/objectives.md``): the alias-feature target they chose."""

ALIAS_VISIBLE = TestPlan(
    variants=("alias_visible", "alias_subband", REFERENCE),
    comparisons=(
        ("alias_visible", "alias_subband"),
        ("alias_visible", RANDOM_AAPE),
        ("alias_visible", REFERENCE),
    ),
    long_run=VariantRun("alias_visible", 30_000, 1),
    long_comparisons=(RANDOM_AAPE, "alias_visible", REFERENCE),
    page="objectives-visible-test",
    outcomes="objectives-visible-outcomes",
    reuses=("objectives-alias-outcomes",),
    head="""# Pre-training that keeps what the stem sees: the encoder's own alias target, the probe on test

Generated by `python -m studies.objectives --test --round 3 --docs docs` from the per-clip outcomes
in `docs/objectives-visible-outcomes.json` (`--from-docs` rebuilds this page from them alone). The
protocol is round 5 of `docs/objectives.md`: `alias_visible` (the student's output tokens also
predict the alias targets at the visible patches), chosen on validation, against `alias_subband`
(the default it replaces), the random initialisation and the plain stem; 3,000 steps of the study's
pre-training, pre-training seeds 1-3, the converged linear probe with all labels. The rows of
`alias_subband`, `vit_tiny` and the random initialisations are the stored outcomes of rounds 2-4
(`docs/objectives-alias-outcomes.json`): the same test clips, scored then. Test accuracy %, means
over seeds; then paired differences (seeds pair by number), points, with the 95% interval of
`aape_plugin/eval/seed_interval.py` (`a tie within ±2 points` when it holds zero and stays within 2
points of it, `inconclusive` when it holds zero and reaches further). A 30,000-step row, when
present, is one pre-training run: its comparisons count the other model's seeds and the clips, not
its own pre-training seed. Low-label fine-tuning is `docs/objectives-visible-finetune.md`.

""",
)
"""Round 5 (``docs/objectives.md``): the encoder's own tokens predict the alias targets too."""

PLANS = {1: STEP4, 2: ALIAS_TARGET, 3: ALIAS_VISIBLE}

LONG_RUN = STEP4.long_run
"""Step 4's long run: the chosen setup, one pre-training run (more seeds are the study's next version)."""


def test_scores(root: Path, steps: int, seeds: list[int], plan: TestPlan = STEP4, docs: Path | None = None
                ) -> Mapping[str, Mapping[str, Any]]:
    """The probe results a plan compares (stored ones; new ones are measured); the long run's
    once it has finished. With ``plan.reuses``, the models those stored readings hold come from
    them (``docs``: where they are, by default the repository's ``docs/``) and only the rest is
    measured here."""
    if not plan.reuses:
        return probe_scores(root, [*runs_of(steps, seeds, list(plan.variants)), plan.long_run], seeds)
    from studies.outcomes import load_readings, with_reused

    reused, _ = load_readings(docs or Path(__file__).resolve().parents[1] / "docs", plan.reuses)
    wanted = {f"{m}, {steps} steps, seed {s}" for m in plan.variants for s in seeds} | \
        {f"{arch} random init, seed {s}" for arch in ("aape_tiny", REFERENCE) for s in seeds}
    fresh = [v for v in plan.variants if not any(f"{v}, {steps} steps, seed {s}" in reused for s in seeds)]
    measured = probe_scores(root, [*runs_of(steps, seeds, fresh), plan.long_run], seeds, random_init=False)
    return with_reused(measured, reused, wanted)


def test_report(scores: Mapping[str, Mapping[str, Any]], steps: int, seeds: list[int], plan: TestPlan = STEP4) -> tuple[str, dict[str, object]]:
    """A plan's probe reading: test accuracy per model (means over seeds) and the paired
    differences with :func:`aape_plugin.eval.seed_interval.seed_t_interval` on the modulation
    group, the five tasks and pitch + instrument. ``scores``: per encoder name and task,
    anything with ``test``, ``clips`` and ``correct`` (a :class:`ProbeScore`, or a stored
    :class:`studies.outcomes.Outcome`): the page can be rebuilt from ``docs/``."""
    import numpy as np

    from aape_plugin.eval.bootstrap import check_same_clips
    from aape_plugin.eval.seed_interval import seed_t_interval
    from studies.common import FREQUENCY_TASKS

    models: dict[str, list[Mapping[str, Any]]] = {}
    for model in plan.variants:
        models[model] = [scores[f"{model}, {steps} steps, seed {s}"] for s in seeds if f"{model}, {steps} steps, seed {s}" in scores]
    for arch in ("aape_tiny", REFERENCE):
        models[f"{arch} random init"] = [scores[f"{arch} random init, seed {s}"] for s in seeds]
    long_run = plan.long_run
    long_name = f"{long_run.variant}, {long_run.steps} steps"
    if f"{long_name}, seed {long_run.seed}" in scores:
        models[long_name] = [scores[f"{long_name}, seed {long_run.seed}"]]
    groups = {"modulation group": MODULATION_TASKS, "five tasks": TASKS, "pitch + instrument": FREQUENCY_TASKS}
    lines = ["| model | seeds | " + " | ".join(SHORT[t] for t in (*MODULATION_TASKS, *TASKS)) + " |",
             "|" + "---|" * (2 + len(MODULATION_TASKS) + len(TASKS))]
    for model, per_seed in models.items():
        if not per_seed:
            continue
        cells = [f"{100 * float(np.mean([r[t].test for r in per_seed])):.1f}" for t in (*MODULATION_TASKS, *TASKS)]
        lines.append(f"| {model} | {len(per_seed)} | " + " | ".join(cells) + " |")
    lines += ["", "| a minus b | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    data: dict[str, object] = {"models": {m: len(v) for m, v in models.items()}, "comparisons": {}}
    for a, b in plan.comparisons:
        n = min(len(models[a]), len(models[b]))
        if n < 2:
            continue
        cells = []
        for group, tasks in groups.items():
            for t in tasks:
                check_same_clips([(f"{m} seed {k + 1}", models[m][k][t].clips) for m in (a, b) for k in range(n)])
            pa = {t: np.array([models[a][k][t].correct for k in range(n)]) for t in tasks}
            pb = {t: np.array([models[b][k][t].correct for k in range(n)]) for t in tasks}
            interval = seed_t_interval(pa, pb, paired=True)
            cells.append(interval.describe())
            data["comparisons"][f"{a} - {b}: {group}"] = {**interval.as_dict(), "seeds": n}  # type: ignore[index]
        lines.append(f"| {a} minus {b} ({n} seeds) | " + " | ".join(cells) + " |")
    if long_name in models:
        for b in plan.long_comparisons:
            cells = []
            for group, tasks in groups.items():
                pa = {t: np.array([r[t].correct for r in models[long_name]]) for t in tasks}
                pb = {t: np.array([r[t].correct for r in models[b]]) for t in tasks}
                interval = seed_t_interval(pa, pb, paired=False)
                cells.append(interval.describe())
                data["comparisons"][f"{long_name} - {b}: {group}"] = {**interval.as_dict(), "seeds": [1, len(models[b])]}  # type: ignore[index]
            lines.append(f"| {long_name} (one run) minus {b} ({len(models[b])} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines), data


def table(scores: dict[str, dict[str, float]]) -> str:
    tasks = (*MODULATION_TASKS, *TASKS)
    lines = ["| encoder | " + " | ".join(SHORT[t] for t in tasks) + " | modulation mean | five-task mean |",
             "|" + "---|" * (len(tasks) + 3)]
    for name, per_task in scores.items():
        mod = sum(per_task[t] for t in MODULATION_TASKS) / len(MODULATION_TASKS)
        five = sum(per_task[t] for t in TASKS) / len(TASKS)
        lines.append(f"| {name} | " + " | ".join(f"{100 * per_task[t]:.1f}" for t in tasks) + f" | {100 * mod:.1f} | {100 * five:.1f} |")
    return "\n".join(lines)


def sklearn_table(scores: Mapping[str, Mapping[str, ProbeScore]]) -> str:
    tasks = (*MODULATION_TASKS, *TASKS)
    lines = ["| encoder | " + " | ".join(SHORT[t] for t in tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for name, per_task in scores.items():
        cells = [f"{100 * per_task[t].test:.1f} / " + ("-" if per_task[t].sklearn_test is None else f"{100 * per_task[t].sklearn_test:.1f}")
                 for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_test_page(args: argparse.Namespace, *, ensure_measured: bool) -> str:
    from studies.outcomes import load, store
    from aape_plugin.data.study_corpus import study_dir

    plan = PLANS[args.round]
    docs: Path | None = args.docs
    outcomes_file = docs / f"{plan.outcomes}.json" if docs is not None else None
    if ensure_measured:
        measured = test_scores(args.out, args.steps, args.seeds, plan, docs)
        # Through the stored form: clips named relative to the corpus, as the reused readings name them.
        stored = store(measured, corpus=study_dir().resolve())
        scores: Mapping[str, Mapping[str, Any]] = load(stored)
        if outcomes_file is not None:
            outcomes_file.write_text(json.dumps(stored, indent=1) + "\n")
    else:
        if outcomes_file is None:
            raise SystemExit("--from-docs needs --docs")
        scores = load(json.loads(outcomes_file.read_text()))
    text, data = test_report(scores, args.steps, args.seeds, plan)
    if docs is not None:
        (docs / f"{plan.page}.md").write_text(plan.head + text + "\n")
        (docs / f"{plan.page}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return text


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
    parser.add_argument("--test", action="store_true", help="step 4, probe part: test accuracy and paired intervals (reads test)")
    parser.add_argument("--docs", type=Path, default=None,
                        help="with --test: write DOCS/objectives-test.md and the per-clip outcomes DOCS/objectives-outcomes.json")
    parser.add_argument("--from-docs", action="store_true",
                        help="with --test and --docs: rebuild DOCS/objectives-test.md from the stored outcomes alone")
    parser.add_argument("--round", type=int, choices=sorted(PLANS), default=1,
                        help="with --test: which reading of docs/objectives.md (1: step 4, 2: the alias-feature target of "
                             "rounds 2-4, 3: the encoder's own alias target of round 5)")
    parser.add_argument("--no-random-init", action="store_true", help="with --measure-only or --sklearn-check: leave out the random initialisations")
    parser.add_argument("--sklearn-check", action="store_true",
                        help="with --measure-only: also fit scikit-learn's logistic regression on the same features and "
                             "print both test accuracies (is the probe converged?)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baselines", action="store_true",
                        help="with the validation measurement: also the no-model rows (log-mel statistics, modulation spectrum)")
    args = parser.parse_args(argv)

    if args.from_docs:
        if not args.test or args.docs is None:
            parser.error("--from-docs needs --test and --docs")
        text = write_test_page(args, ensure_measured=False)
        say("test accuracy %, converged probe, all labels; paired differences, points [95% interval over seeds and clips]:\n" + text)
        return 0
    ensure_fairseq2()
    runs = runs_of(args.steps, args.seeds, args.variants)
    if not args.measure_only and not args.test and not args.sklearn_check:  # readings and checks never train
        failed = run_jobs(lambda: [r.job(args.out) for r in runs if not r.finished(args.out)], jobs=args.jobs)
        if failed:
            say(f"{len(failed)} run(s) failed: " + "; ".join(failed))
        if args.train_only:
            return 1 if failed else 0
    torch.set_num_threads(args.threads)
    if args.test:
        text = write_test_page(args, ensure_measured=True)
        say("test accuracy %, converged probe, all labels; paired differences, points [95% interval over seeds and clips]:\n" + text)
        return 0
    if args.sklearn_check:
        checked = probe_scores(args.out, runs, args.seeds, random_init=not args.no_random_init, sklearn_check=True, baselines=args.baselines)
        say("test accuracy %, the study's probe / scikit-learn's logistic regression (each tuned on validation):\n"
            + sklearn_table(checked))
        return 0
    scores = measure(args.out, runs, args.seeds, random_init=not args.no_random_init, baselines=args.baselines)
    (args.out / "validation.json").write_text(json.dumps(scores, indent=1) + "\n")
    say("validation accuracy %, converged probe, all labels:\n" + table(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
