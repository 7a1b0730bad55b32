"""Where pre-training pays, and how it grows: the study of ``docs/results.md`` (``make study``).

On the study corpus (``make study-corpus``), ``aape_tiny`` and ``vit_tiny`` (the same model with
the plain conv stem) are pre-trained with the ``study`` preset: 4 seeds x 3,000 steps each (the
main runs) and one 30,000-step run each (the pre-training-length curve, measured at its 1k, 3k,
10k and 30k checkpoints). Every pre-trained encoder and its random initialisation is then

* fine-tuned (the paper's primary protocol) with all labels and with 10 clips per class, over one
  learning-rate grid, each model taking its best rate on validation (:mod:`studies.finetuning`);
* linear-probed with the converged probe, with all labels and on the same 10-per-class subsets;
* measured for shift stability (how much its embeddings move under sub-patch time shifts).

Differences are stated with paired bootstrap intervals that draw one set of pre-training seeds
for all tasks, then the clips. The page, ``docs/results.json`` and the figures are rewritten
from what exists; everything resumes (finished runs, embeddings and measurements are reused).

    python -m studies.study                 # everything (make study); resumes
    python -m studies.study --train-only    # pre-training and fine-tuning runs only
    python -m studies.study --no-train      # measure and report what exists (beside --train-only)
    python -m studies.study --report-only   # rewrite the page from what is already measured
    python -m studies.study --from-docs     # rewrite what docs/ alone gives: summaries, sections, figures

On a machine that cannot run everything soon, the budget check (``aape_tiny`` pre-trained for
30,000 steps against its random initialisation, both fine-tuned 3x longer) goes first with two
invocations side by side:

    python -m studies.study --train-only --arch aape_tiny --lane long --jobs 1
    python -m studies.study --train-only --arch aape_tiny --lane budget --jobs 2
    python -m studies.study --report-only --arch aape_tiny --lane budget   # docs/budget-check.md
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from aape_plugin.eval.embedding_cache import weights_digest
from aape_plugin.inference.embedder import EncoderEmbedder, LogMelEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder, new_encoder
from studies.common import ARCHS, TASKS, Job, StudySettings, run_jobs, say
from studies.finetuning import MAIN_STARTS, REGIMES, FinetuneRun, budget_runs, curve_runs, main_runs
from studies.pretraining import PretrainRun
from studies.probing import Prober, load_pool_stats, pool_stats_file
from studies.report import Measurements, write_budget_page, write_report


LANES = ("all", "long", "rest", "budget")
"""What one invocation schedules: everything; the long pre-training runs only; everything else;
or only what the budget check stands on (:func:`budget_lane_needs`)."""


def pretrain_runs(settings: StudySettings, archs: tuple[str, ...] = ARCHS) -> list[PretrainRun]:
    """Main runs first, then the long ones (the order jobs start in)."""
    main = [PretrainRun(arch, settings.main_steps, seed) for seed in settings.main_seeds for arch in archs]
    return main + [PretrainRun(arch, settings.long_steps, 1) for arch in archs]


def budget_lane_needs(run: FinetuneRun, settings: StudySettings) -> bool:
    """Whether the budget check's decisive comparison (the long run's end minus the random
    initialisation, both fine-tuned longer) stands on ``run``: the longer runs themselves and the
    seed-1 low-label grids that choose their rates (the random initialisation's, and the first
    main run's, whose rate the long run's fine-tuning takes). For a machine that cannot run the
    whole study soon; the normal-budget seeds come with the rest."""
    if run.regime != REGIMES[1]:
        return False
    if run.budget != 1:
        return True
    return run.start.kind in ("random", "main") and run.seed == settings.finetune_seeds[0]


def job_priority(run: FinetuneRun, settings: StudySettings) -> tuple[int, ...]:
    """Few labels before all labels (five times cheaper, and where pre-training pays first);
    within a regime every model's seed-1 runs before any other seed (one seed of every
    comparison first): the grids (``aape_tiny`` first), then the length curve from its longest
    checkpoint down; the longer budget check after the rest of its regime, one arch at a time
    (``aape_tiny`` first: random initialisations, then the long run's end)."""
    regime = REGIMES[::-1].index(run.regime)
    if run.budget != 1:
        return (regime, 1, ARCHS.index(run.start.arch), run.start.kind == "curve", run.seed)
    return (regime, 0, run.seed != settings.finetune_seeds[0], run.start.kind == "curve", -(run.start.step or 0), ARCHS.index(run.start.arch))


def pending_jobs(root: Path, settings: StudySettings, pool_stats: Path, lane: str = "all",
                 archs: tuple[str, ...] = ARCHS) -> list[Job]:
    """What can run now, in priority order: the main pre-training runs, the fine-tuning runs in
    :func:`job_priority` order, the long runs (whose checkpoints the curve's fine-tuning waits
    for). ``lane`` (one of :data:`LANES`) picks the long pre-training runs only (``long``),
    everything else (``rest``), what the budget check needs but the long runs (``budget``) or
    all: two invocations with a lane each keep the long runs going beside the fine-tuning.
    ``archs`` limits every run to those architectures."""
    if lane not in LANES:
        raise ValueError(f"lane must be one of {', '.join(LANES)}, not {lane!r}")
    runs = [run for run in pretrain_runs(settings, archs) if not run.has_step(root)]
    long = [run.job(root) for run in runs if run.steps == settings.long_steps]
    if lane == "long":
        return long
    short = [run for run in runs if run.steps != settings.long_steps]
    if lane == "budget":
        short = [run for run in short if run.seed == settings.main_seeds[0]]
    finetune: list[FinetuneRun] = []
    for regime in REGIMES:
        for task in TASKS:
            for start in MAIN_STARTS:
                if start.arch in archs:
                    finetune += main_runs(root, settings, start, task, regime)
            for arch in archs:
                finetune += curve_runs(root, settings, arch, task, regime)
                if regime == REGIMES[1]:
                    finetune += budget_runs(root, settings, arch, task)
    if lane == "budget":
        finetune = [run for run in finetune if budget_lane_needs(run, settings)]
    finetune.sort(key=lambda run: job_priority(run, settings))
    jobs = [run.job(root) for run in short]
    ready = [run.job(root, settings, pool_stats) for run in finetune if not run.finished(root) and run.ready(root, settings)]
    return jobs + ready + (long if lane == "all" else [])


def measure(root: Path, settings: StudySettings, *, threads: int, measure_new: bool = True) -> Measurements:
    """Probes (both regimes) and shift stability of every encoder that exists (``measure_new=False``:
    only what is already stored, skipping encoders not yet measured)."""
    torch.set_num_threads(threads)
    stats = load_pool_stats()
    prober = Prober(settings, root / "measurements", measure_new=measure_new)
    found = Measurements(settings)

    def encoder_key(encoder: torch.nn.Module) -> dict[str, object]:
        return {"kind": "aape", "weights": weights_digest(encoder), "stats": [stats.mean, stats.std]}

    def measure_encoder(group: str, name: str, encoder: torch.nn.Module, num_frames: int, *, check: bool) -> None:
        embedder = EncoderEmbedder(encoder, stats, num_frames=num_frames)
        key = encoder_key(encoder)
        every = prober.probe(name, embedder, key, per_class=None, sklearn_check=check)
        few = prober.probe(name, embedder, key, per_class=settings.per_class)
        shift = prober.shift(name, embedder, key)
        if every is None or few is None or shift is None:
            say(f"not measured yet (left out): {name}")
            return
        found.probes.setdefault((group, "all labels"), []).append(every)
        found.probes.setdefault((group, "10 per class"), []).append(few)
        found.shift.setdefault(group, []).append(shift)

    def main_and_random(arch: str, seed: int) -> None:
        run = PretrainRun(arch, settings.main_steps, seed)
        if run.has_step(root):
            loaded = load_encoder(run.folder(root), weights="teacher")
            measure_encoder(f"{arch}, pre-trained", run.label(), loaded.encoder, loaded.config.encoder.num_frames, check=seed == 1)
        loaded = new_encoder(arch, seed=seed)
        measure_encoder(f"{arch}, random init", f"random {arch} seed {seed}", loaded.encoder, loaded.config.encoder.num_frames,
                        check=False)

    # Seed 1 of every group and the length curve first (one seed of every comparison), then the
    # other seeds; each group's list holds its seeds in order.
    for arch in ARCHS:
        main_and_random(arch, settings.main_seeds[0])
        long = PretrainRun(arch, settings.long_steps, 1)
        for step in settings.curve_steps:
            if long.has_step(root, step):
                loaded = load_encoder(long.folder(root), weights="teacher", step=step)
                measure_encoder(f"{arch}, long run at step {step}", f"{long.label()} at step {step}", loaded.encoder,
                                loaded.config.encoder.num_frames, check=False)
    for arch in ARCHS:
        for seed in settings.main_seeds[1:]:
            main_and_random(arch, seed)

    logmel = LogMelEmbedder(stats)
    for regime, per_class in (("all labels", None), ("10 per class", settings.per_class)):
        scores = prober.probe("log-mel statistics", logmel, {"kind": "logmel", "stats": [stats.mean, stats.std]}, per_class=per_class,
                              sklearn_check=per_class is None)
        if scores is not None:
            found.probes[("log-mel statistics", regime)] = [scores]
    return found


def rewrite_from_docs(docs: Path) -> None:
    """The parts of ``DOCS/results.md``, the README and the design notes that the published data
    give, and the figures, without the runs (the rest of the page reports runs that may not be here)."""
    import json

    from studies import findings
    from studies.modulation_section import section, splice
    from studies.summary import refresh_in_short, update_generated_blocks

    refresh_in_short(docs)
    page = docs / "results.md"
    page.write_text(splice(page.read_text(), section(docs)))
    update_generated_blocks(json.loads((docs / "results.json").read_text()), docs.parent)
    figures = findings.write_all(docs, docs.parent / "README.md")
    say(f"{page}: summary, modulation section and current findings rewritten from {docs}; figures: {', '.join(figures)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/study"), help="runs and measurements (resumable)")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="where results.md/.json and the figures go")
    parser.add_argument("--jobs", type=int, default=3,
                        help="runs at once, one thread each (3 on 2 cores keeps both busy while one run reads data)")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch threads of the probes (1 beside running jobs: small matrix products on 2 busy cores "
                             "run many times slower with 2 threads)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--train-only", action="store_true", help="pre-train and fine-tune; measure and report nothing")
    mode.add_argument("--no-train", action="store_true", help="measure and report what exists; start no run")
    mode.add_argument("--report-only", action="store_true",
                      help="rewrite the page from the measurements already stored (minutes); start and measure nothing")
    mode.add_argument("--from-docs", action="store_true",
                      help="rewrite only what the published data in DOCS give (no runs needed): the five-task summary, "
                           "the modulation section, the current findings, the README's table and the figures")
    parser.add_argument("--lane", choices=LANES, default="all",
                        help="only the long pre-training runs, everything else (two invocations side by side), or only "
                             "what the budget check needs but the long runs (the decisive comparison first; its page is "
                             "DOCS/budget-check.md)")
    parser.add_argument("--arch", choices=ARCHS, action="append", dest="archs",
                        help="run only this architecture's runs (repeatable; default: all); the page reports what exists")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.from_docs:
        rewrite_from_docs(args.docs)
        return 0
    ensure_fairseq2()
    settings = StudySettings()
    root = args.out
    if not (args.no_train or args.report_only):
        pool_stats = pool_stats_file()
        failed = run_jobs(lambda: pending_jobs(root, settings, pool_stats, args.lane, tuple(args.archs or ARCHS)), jobs=args.jobs)
        if failed:
            say(f"{len(failed)} run(s) failed; their logs say why: " + "; ".join(failed))
        if args.train_only:
            return 1 if failed else 0
    if args.lane == "budget":  # its own page: the study's page reports the whole study's folder
        archs = "".join(f" --arch {a}" for a in args.archs or ())
        try:
            write_budget_page(root, args.docs, settings, f"python -m studies.study --lane budget{archs} --out {root}")
        except FileNotFoundError as error:
            say(str(error))
            return 1
        return 0
    found = measure(root, settings, threads=args.threads, measure_new=not args.report_only)
    write_report(root, args.docs, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
