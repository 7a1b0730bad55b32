"""Runs a declared experiment (:mod:`studies.experiments`): trains what it needs, measures it and
stores the per-clip outcomes its page is rebuilt from.

    python -m studies.run EXPERIMENT --out R [--jobs 2] [--train-only | --measure-only] [--docs docs]
    python -m studies.run EXPERIMENT --out R --list          # the jobs it would start now, and nothing else
    python -m studies.run ANALYSIS --out R [--jobs 2] [--train-only | --measure-only | --list] [--docs docs]

An ``ANALYSIS`` (:mod:`studies.analyses`: the main study, the stem-part analyses) is run the same
way: the pre-training runs it reads are trained when missing, then its measuring command runs
(``--list`` prints both); the main study's own runner (:mod:`studies.study`) does both itself.

Pre-training runs go to ``R/<variant>_<steps>/seed<k>`` (``aape_pretrain --preset study`` with the
variant's overrides, :class:`studies.variants.VariantRun`), fine-tuning runs to
``R/finetune/few/<start>/<task>/lr<lr>_seed<seed>`` (:mod:`studies.finetune_runs`), probe results
to ``R/<measurements>`` (cached by what they depend on). Every run resumes from its checkpoints and
is skipped once finished; models whose outcomes an earlier reading stored (``reuses``) are neither
trained nor measured.

A probe experiment on a test split never trains in the invocation that reads it: ``--train-only``
trains its models, a plain or ``--measure-only`` invocation reads. A validation screen and a
fine-tuning experiment train, then read (``--measure-only`` reads only). An experiment on the
fresh split refuses an ``AAPE_STUDY_DIR`` that is not the fresh split's folder; one on the old
test splits refuses one that is. ``--docs`` writes the stored outcomes and the page.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from studies.common import MODULATION_TASKS, TASKS, Job, StudySettings, run_jobs, say
from studies.analyses import ANALYSES, Analysis
from studies.experiments import EXPERIMENTS, Experiment, experiment, host_of
from studies.finetune_runs import SETTINGS, ModelStart, parse_start
from studies.variants import VariantRun

ALL_TASKS = (*MODULATION_TASKS, *TASKS)
REPO_DOCS = Path(__file__).resolve().parents[1] / "docs"


def reused_models(exp: Experiment, docs: Path) -> set[str]:
    """The models of ``exp`` whose outcomes the readings it reuses hold."""
    if not exp.reuses:
        return set()
    if exp.split == "validation":  # a screen reuses stored validation accuracies
        rows = {name for reuse in exp.reuses for name in json.loads((docs / f"{reuse}.json").read_text())}
    else:
        from studies.outcomes import load_readings

        rows = set(load_readings(docs, exp.reuses)[0])
    if exp.regime == "finetune":
        labels = {row.rsplit(", seed ", 1)[0] for row in rows}
        return {m for m in exp.models if parse_start(m).label in labels}
    return {m for m in exp.models if any(name in rows for name in exp.row_names(m))}


def own_models(exp: Experiment, docs: Path) -> list[str]:
    """The models this experiment trains and measures itself (the rest are reused)."""
    reused = reused_models(exp, docs)
    return [m for m in exp.models if m not in reused]


def pretraining_runs(exp: Experiment, docs: Path) -> list[VariantRun]:
    """The pre-training runs the experiment's own models start from, seed by seed, then its long runs."""
    if exp.regime == "finetune":
        starts = [parse_start(m) for m in own_models(exp, docs)]
        main = [s.name for s in starts if not s.random and not s.long]
        runs = [VariantRun(name, exp.steps, seed) for seed in exp.seeds for name in main]
        return runs + [run for s in starts if s.long for run in [s.pretraining(1)] if run is not None]
    variants = [m for m in own_models(exp, docs) if not m.endswith(" random init")]
    runs = [VariantRun(v, exp.steps, seed) for seed in exp.seeds for v in variants]
    return runs + ([exp.long_run] if exp.long_run is not None else [])


def finetune_starts(exp: Experiment, docs: Path) -> list[ModelStart]:
    """The fine-tuning experiment's own starts (none for a probe experiment)."""
    return [parse_start(m) for m in own_models(exp, docs)] if exp.regime == "finetune" else []


def settings_of(exp: Experiment) -> StudySettings:
    return dataclasses.replace(SETTINGS, finetune_seeds=exp.seeds)


def jobs(exp: Experiment, root: Path, docs: Path, *, pool_stats: Path) -> list[Job]:
    """Every job that can start now: unfinished pre-training runs (unless the experiment's are
    linked in from elsewhere), then the fine-tuning runs whose start exists."""
    from studies.finetune_runs import runs_needed

    pending = [r.job(root) for r in pretraining_runs(exp, docs) if not r.finished(root)] if exp.pretrains else []
    if exp.regime == "finetune":
        settings = settings_of(exp)
        for model in own_models(exp, docs):
            pending += [r.job(root, settings, pool_stats) for r in runs_needed(root, settings, [parse_start(model)], exp.model_tasks(model))
                        if r.result(root) is None and r.ready(root)]
    return pending


def check_split(exp: Experiment) -> None:
    """The fresh split is read only from its own folder, and the old test splits never from it
    (a reading of either would otherwise carry the other's name)."""
    from aape_plugin.data.study_corpus import study_dir

    here = study_dir()
    fresh = (here / "fresh_test").is_dir()
    if exp.split == "fresh" and not fresh:
        raise SystemExit(f"{exp.name}: AAPE_STUDY_DIR must name the fresh test split's folder (python -m "
                         f"aape_plugin.corpora.make_fresh_modulation_test); {here} holds no fresh_test/")
    if exp.split == "test" and fresh:
        raise SystemExit(f"{exp.name} reads the study corpus' test splits: unset AAPE_STUDY_DIR (it names the fresh split's folder, {here})")


def probe(exp: Experiment, root: Path, docs: Path, *, sklearn_check: bool = False) -> dict[str, dict[str, Any]]:
    """The experiment's probe results: its own models measured (or read from the cache), the
    reused ones from their stored readings, on its tasks."""
    from studies.outcomes import load_readings, with_reused
    from studies.probe_measure import probe_scores

    own = own_models(exp, docs)
    variants = [m for m in own if not m.endswith(" random init")]
    runs = [VariantRun(v, exp.steps, seed) for seed in exp.seeds for v in variants] + ([exp.long_run] if exp.long_run else [])
    archs = [m.removesuffix(" random init") for m in own if m.endswith(" random init")]
    measured = probe_scores(root, runs, exp.seeds, random_archs=archs, sklearn_check=sklearn_check, baselines=exp.baselines,
                            tasks=exp.probed_tasks or exp.tasks, folder=root / exp.measurements)
    if exp.reuses and exp.split != "validation":
        reused, _ = load_readings(docs, exp.reuses)
        wanted = {name for m in exp.models for name in exp.row_names(m)}
        measured = with_reused(measured, reused, wanted)  # type: ignore[assignment]
    return {name: {t: per_task[t] for t in exp.tasks if t in per_task} for name, per_task in measured.items()}


def store_outcomes(exp: Experiment, docs: Path, stored: dict[str, Any]) -> None:
    """``DOCS/<outcomes>.json``, keeping the note a page already has under its tables."""
    path = docs / f"{exp.outcomes}.json"
    if path.exists():
        note = json.loads(path.read_text()).get("note")
        if note is not None:
            stored["note"] = note
    path.write_text(json.dumps(stored, indent=1) + "\n")


def render_after(exp: Experiment, docs: Path) -> str:
    """The page the new outcomes belong to (its own, or its host's), rewritten."""
    from studies import render

    page_of = exp if exp.page is not None else host_of(exp.name)
    if page_of is None or not render.stored(page_of, docs):
        return ""
    return render.write(page_of, docs).markdown


def read(exp: Experiment, root: Path, docs: Path | None, reuse_docs: Path) -> str:
    """Measures (probe) or collects (fine-tuning) and, with ``docs``, stores the outcomes and the page."""
    from aape_plugin.data.study_corpus import study_dir
    from studies.outcomes import load, store

    if exp.regime == "finetune":
        from studies.finetune_page import order, page
        from studies.finetune_runs import choices, results, reused_readings

        settings, starts = settings_of(exp), finetune_starts(exp, reuse_docs)
        found: Mapping[str, Any] = results(root, settings, starts, ALL_TASKS)
        chosen: Mapping[str, Any] = choices(root, settings, starts, ALL_TASKS)
        if exp.reuses:
            found, chosen = reused_readings(reuse_docs, exp.reuses, order(exp), found, chosen)
        stored = {**store(found, corpus=study_dir().resolve()), "choices": chosen}
        if docs is None:
            return page(load(json.loads(json.dumps(stored))), chosen, exp)[0]
        store_outcomes(exp, docs, stored)
        return render_after(exp, docs)
    scores = probe(exp, root, reuse_docs)
    if exp.split == "validation":
        from studies.probe_measure import validation_table

        valid = {name: {t: s.valid for t, s in per_task.items()} for name, per_task in scores.items()}
        (root / "validation.json").write_text(json.dumps(valid, indent=1) + "\n")
        if docs is not None and exp.outcomes is not None:
            from studies.screen_page import merged

            path = docs / f"{exp.outcomes}.json"
            old = json.loads(path.read_text()) if path.exists() else {}
            earlier: dict[str, Any] = {}
            for reuse in exp.reuses:
                earlier |= json.loads((reuse_docs / f"{reuse}.json").read_text())
            reusable = reused_models(exp, reuse_docs)
            reused = [m for m in exp.models if m in reusable]
            kept = {name: earlier[name] for k in range(len(exp.seeds)) for m in reused
                    for name in [exp.row_names(m)[k]] if name in earlier}
            path.write_text(json.dumps(merged(old, kept, valid), indent=1) + "\n")
            render_after(exp, docs)
        return "validation accuracy %, converged probe, all labels:\n" + validation_table(valid)
    stored = store(scores, corpus=study_dir().resolve())  # clips named relative to the corpus, as reused readings name them
    if docs is None:
        from studies.render import tables_of

        return tables_of(exp, load(stored))[0]
    store_outcomes(exp, docs, stored)
    return render_after(exp, docs)


def narrowed(exp: Experiment, models: list[str] | None, seeds: list[int] | None, *, random_init: bool = True,
             baselines: bool = False) -> Experiment:
    """``exp`` with only some of its pre-trained models (the random initialisations stay unless
    ``random_init`` is false or they are named) or seeds, or with the no-model rows added (an
    unknown model or seed is named with the declared ones)."""
    if models:
        unknown = [m for m in models if m not in exp.models]
        if unknown:
            raise ValueError(f"{exp.name} declares no model {unknown}; it declares: {', '.join(exp.models)}.")
        exp = dataclasses.replace(exp, models=tuple(m for m in exp.models if m in models or (random_init and m.endswith(" random init"))))
    if not random_init:
        exp = dataclasses.replace(exp, models=tuple(m for m in exp.models if not m.endswith(" random init") or m in (models or ())))
    if seeds:
        unknown_seeds = [s for s in seeds if s not in exp.seeds]
        if unknown_seeds:
            raise ValueError(f"{exp.name} declares no seed {unknown_seeds}; it declares: {list(exp.seeds)}.")
        exp = dataclasses.replace(exp, seeds=tuple(s for s in exp.seeds if s in seeds))
    return exp if not baselines else dataclasses.replace(exp, baselines=True)


EXPERIMENT_ONLY = ("models", "seeds", "no_random_init", "baselines", "sklearn_check")
"""Options that narrow or check a declared experiment; an analysis is run whole."""


def run_analysis(analysis: Analysis, args: argparse.Namespace) -> int:
    """Trains the runs ``analysis`` reads (those missing), then runs its measuring command."""
    import importlib

    mode = "train" if args.train_only else "measure" if args.measure_only else "all"
    command = [sys.executable, "-m", analysis.module, *analysis.argv(args.out, args.docs, mode=mode)]
    pending = [] if analysis.trains_itself else [r.job(args.out) for r in analysis.runs() if not r.finished(args.out)]
    if args.list:
        for job in pending:
            print(f"{job.name}: {' '.join(job.command)}")
        print(f"{analysis.name}: {' '.join(command)}")
        return 0
    from aape_plugin.inference.loading import ensure_fairseq2

    ensure_fairseq2()
    if pending and not args.measure_only:
        failed = run_jobs(lambda: [r.job(args.out) for r in analysis.runs() if not r.finished(args.out)], jobs=args.jobs)
        if failed:
            say(f"{len(failed)} run(s) failed: " + "; ".join(failed))
            return 1
    if args.train_only and not analysis.trains_itself:
        return 0
    missing = [str(r.folder(args.out)) for r in analysis.runs() if not r.finished(args.out)]
    if missing:
        say(f"{analysis.name} reads runs that are not finished: " + ", ".join(missing))
        return 1
    say(f"{analysis.name}: {' '.join(command[1:])}")
    return int(importlib.import_module(analysis.module).main(command[3:]) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", metavar="EXPERIMENT", help=f"one of: {', '.join([*EXPERIMENTS, *ANALYSES])}")
    parser.add_argument("--out", type=Path, required=True, help="the runs' root")
    parser.add_argument("--jobs", type=int, default=2)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--train-only", action="store_true")
    mode.add_argument("--measure-only", action="store_true")
    mode.add_argument("--list", action="store_true", help="print the jobs that would start now; train and measure nothing")
    mode.add_argument("--sklearn-check", action="store_true",
                      help="probe: also fit scikit-learn's logistic regression on the same features and print both test "
                           "accuracies (is the probe converged?); never trains, stores nothing")
    parser.add_argument("--docs", type=Path, default=None, help="write DOCS/<outcomes>.json and the page")
    parser.add_argument("--models", nargs="+", default=None,
                        help="only these of the experiment's pre-trained models (its random initialisations stay)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="only these of the experiment's seeds")
    parser.add_argument("--no-random-init", action="store_true", help="leave out the random initialisations")
    parser.add_argument("--baselines", action="store_true", help="probe: also the no-model rows (log-mel statistics, modulation spectrum)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the measurement")
    args = parser.parse_args(argv)
    if args.experiment in ANALYSES:
        given = [f"--{name.replace('_', '-')}" for name in EXPERIMENT_ONLY if getattr(args, name) not in (None, False)]
        if given:
            parser.error(f"{args.experiment} is an analysis, run whole: {', '.join(given)} narrow or check a declared experiment")
        return run_analysis(ANALYSES[args.experiment], args)
    if args.experiment not in EXPERIMENTS:
        parser.error(f"Unknown experiment {args.experiment!r}; known: {', '.join(EXPERIMENTS)}; analyses: {', '.join(ANALYSES)}.")
    try:
        exp = narrowed(experiment(args.experiment), args.models, args.seeds, random_init=not args.no_random_init,
                       baselines=args.baselines)
    except ValueError as error:
        parser.error(str(error))
    reuse_docs = args.docs or REPO_DOCS
    if args.list:
        for job in jobs(exp, args.out, reuse_docs, pool_stats=Path("<pool statistics>")):
            print(f"{job.name}: {' '.join(job.command)}")
        return 0
    check_split(exp)
    from aape_plugin.inference.loading import ensure_fairseq2

    ensure_fairseq2()
    reads_test = exp.regime == "probe" and exp.split != "validation"
    trains = args.train_only or not (args.measure_only or args.sklearn_check or reads_test)
    if trains:
        if not exp.pretrains:
            missing = [str(r.folder(args.out)) for r in pretraining_runs(exp, reuse_docs) if not r.finished(args.out)]
            if missing:
                say(f"{exp.name} links its pre-training runs into {args.out}; not there yet: " + ", ".join(missing))
        stats = None
        if exp.regime == "finetune":
            from studies.probing import pool_stats_file

            stats = pool_stats_file()
        failed = run_jobs(lambda: jobs(exp, args.out, reuse_docs, pool_stats=stats or Path()), jobs=args.jobs)
        if failed:
            say(f"{len(failed)} run(s) failed: " + "; ".join(failed))
        if args.train_only:
            return 1 if failed else 0
    import torch

    torch.set_num_threads(args.threads)
    if args.sklearn_check:
        if exp.regime != "probe":
            parser.error(f"--sklearn-check checks the probe; {exp.name} fine-tunes")
        from studies.probe_measure import sklearn_table

        say("test accuracy %, the study's probe / scikit-learn's logistic regression (each tuned on validation):\n"
            + sklearn_table(probe(exp, args.out, reuse_docs, sklearn_check=True), exp.tasks))
        return 0
    say(f"{exp.name}:\n" + read(exp, args.out, args.docs, reuse_docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
