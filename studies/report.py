"""``docs/results.md``, ``docs/results.json`` and the study's figures, from what exists on disk.

Everything the page states is computed here from the runs and measurements; the README's and the
design notes' study numbers are generated from ``results.json`` (:mod:`studies.summary`), so the
three never disagree.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aape_plugin.eval.bootstrap import Interval, check_same_clips, paired_bootstrap
from benchmarks.common import machine, markdown_table
from studies.common import ARCHS, FREQUENCY_TASKS, SHORT, TASKS, StudySettings
from studies.finetuning import (CURVE_REGIMES, MAIN_STARTS, REGIMES, FinetuneResult, Start, cell_results, chosen_lr, curve_seeds,
                                late_gain, lr_grid, seed_results)
from studies.pretraining import HEALTH_KEYS, PretrainRun, health_at, train_hours, train_rows
from studies.figures import CURVE_COLUMNS, plot_curve
from studies.probing import ProbeScore, measurement_hours
from studies.summary import IN_SHORT, update_generated_blocks

ProbeGroup = list[dict[str, ProbeScore]]


@dataclass
class Measurements:
    """What :func:`studies.study.measure` found: per (model group, label regime) one probe result
    per seed, per model group one shift-stability result per seed."""

    settings: StudySettings
    probes: dict[tuple[str, str], ProbeGroup] = field(default_factory=dict)
    shift: dict[str, list[dict[str, dict[str, list]]]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- per-clip data


def probe_matrix(group: ProbeGroup, tasks: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
    return {t: (group[0][t].clips, np.array([s[t].correct for s in group])) for t in tasks}


def finetune_matrix(group: list[dict[str, FinetuneResult]], tasks: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
    return {t: (group[0][t].clips, np.array([s[t].correct for s in group])) for t in tasks}


def shift_matrix(group: list[dict[str, dict[str, list]]], tasks: Sequence[str], measure: str) -> dict[str, tuple[list[str], np.ndarray]]:
    return {t: (group[0][t]["clips"], np.array([s[t][measure] for s in group])) for t in tasks}


def compare(a: dict[str, tuple[list[str], np.ndarray]], b: dict[str, tuple[list[str], np.ndarray]], names: tuple[str, str]) -> Interval:
    """The paired hierarchical interval of ``a - b`` (clip lists checked equal first)."""
    for task in a:
        check_same_clips([(f"{names[0]} on {task}", a[task][0]), (f"{names[1]} on {task}", b[task][0])])
    return paired_bootstrap({t: v[1] for t, v in a.items()}, {t: v[1] for t, v in b.items()})


def mean_over_tasks(values: dict[str, np.ndarray]) -> list[float]:
    """Per seed (row), the mean over tasks of the per-clip mean."""
    return [float(np.mean([v[i].mean() for v in values.values()])) for i in range(len(next(iter(values.values()))))]


def cell(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.fmean(values):.{digits}f} +- {scale * statistics.stdev(values):.{digits}f}"


def score_rows(groups: dict[str, dict[str, np.ndarray]]) -> list[list[str]]:
    """Table rows: model, seeds, each task, pitch+instrument, mean (accuracy %, mean +- std over seeds)."""
    rows = []
    for name, per_task in groups.items():
        seeds = len(next(iter(per_task.values())))
        row = [name, str(seeds)] + [cell([float(r.mean()) for r in per_task[t]]) for t in TASKS]
        row += [cell(mean_over_tasks({t: per_task[t] for t in FREQUENCY_TASKS})), cell(mean_over_tasks(per_task))]
        rows.append(row)
    return rows


HEADER = ["model", "seeds", *(SHORT[t] for t in TASKS), "pitch+instr.", "mean"]


def few_label_steps_text(settings: StudySettings) -> str:
    """``300 steps (650 for pitch: at least 40\nepochs)``, from the settings."""
    default = settings.few_label_steps("")
    longer = ", ".join(f"{steps} for {SHORT[task]}" for task, steps in settings.low_label_steps)
    return f"{default} steps" + (f" ({longer}: at least 40\nepochs)" if longer else "")


PRETRAINING = ("the `study` preset as it stood for these runs (2026-11): Lambda Encoder trained, no alias-feature target, i.e. "
               "the paper's objective; the preset's frozen Lambda Encoder and alias-feature target came later (`docs/objectives.md`)")
"""What the runs under ``runs/study/`` were pre-trained with (the page's heading says it): change it
with the preset when the study is run again."""



# ------------------------------------------------------------------------------------------ report


def write_report(root: Path, docs: Path, found: Measurements) -> dict[str, Any]:
    settings = found.settings
    results: dict[str, Any] = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()},
                               "tasks": list(TASKS)}
    sections: list[str] = []
    short: list[str] = []

    # ---- fine-tuning
    ft_groups = {(start.label, regime): cell_results(root, settings, start, regime) for regime in REGIMES for start in MAIN_STARTS}
    results["finetune"] = {}
    ft_text = []
    for regime in REGIMES:
        groups = {start.label: finetune_matrix(ft_groups[(start.label, regime)], TASKS) for start in MAIN_STARTS if ft_groups[(start.label, regime)]}
        if not groups:
            ft_text.append(f"### {regime}\n\nNot run yet.\n")
            continue
        table = markdown_table(HEADER, score_rows({k: {t: v[1] for t, v in g.items()} for k, g in groups.items()}))
        claims, claim_data = claims_for(groups, regime)
        results["finetune"][regime] = {
            "test": {k: {t: [float(r.mean()) for r in v[1]] for t, v in g.items()} for k, g in groups.items()},
            "claims": claim_data,
            "chosen_lr": {start.label: {t: chosen_lr(root, settings, start, t, regime) for t in TASKS} for start in MAIN_STARTS},
        }
        ft_text.append(f"### {regime}\n\n{table}\n\n" + "\n".join(claims) + "\n")
    lr_rows, plateau = [], []
    for regime in REGIMES:
        for start in MAIN_STARTS:
            cells = []
            for task in TASKS:
                grid, lr = lr_grid(root, settings, start, task, regime)
                cells.append("-" if lr is None else f"{lr:g}" + (" (end)" if lr in (grid[0], grid[-1]) else ""))
            lr_rows.append([regime, start.label] + cells)
            if start.kind == "random":
                for per_task in ft_groups[(start.label, regime)]:
                    plateau += per_task.values()
    plateau_line = "no random-initialisation runs finished yet."
    if plateau:
        plateau_line, results["finetune_plateau"] = plateau_summary(plateau)
    sections.append(f"""## Fine-tuning (the paper's primary protocol)

Test accuracy (%), mean +- std over fine-tuning seeds (seed k starts from pre-training seed k, or
from the random initialisation of seed k). Each (model, task, label regime) uses the learning rate
of the grid {list(settings.finetune_lrs)} (extended by 3x past an end that validation picks, at most
{settings.finetune_lr_widen} time(s)) whose seed-1 run scored best on validation, and within
a run the checkpoint that validation picks (the grid's steps axis). All labels: 400-1,000 steps
of 32 random 0.95 s crops (8-33 epochs); 10 per class: {few_label_steps_text(settings)}. Intervals: paired
bootstrap, one draw of seeds per model for all tasks, then the test clips.

{chr(10).join(ft_text)}
Learning rates chosen on validation ("end": the end of the extended grid, which could not widen further):

{markdown_table(["regime", "model", *(SHORT[t] for t in TASKS)], lr_rows)}

Was the budget long enough for the random initialisations (which learn slower)? {plateau_line}
""")

    # ---- linear probe
    results["probe"] = {}
    probe_text = []
    for regime in REGIMES:
        groups = {g: probe_matrix(found.probes[(g, regime)], TASKS) for g in
                  [f"{a}, pre-trained" for a in ARCHS] + [f"{a}, random init" for a in ARCHS] + ["log-mel statistics"]
                  if found.probes.get((g, regime))}
        if not groups:
            continue
        table = markdown_table(HEADER, score_rows({k: {t: v[1] for t, v in g.items()} for k, g in groups.items()}))
        claims, claim_data = claims_for(groups, regime)
        results["probe"][regime] = {"test": {k: {t: [float(r.mean()) for r in v[1]] for t, v in g.items()} for k, g in groups.items()},
                                    "claims": claim_data}
        probe_text.append(f"### {regime}\n\n{table}\n\n" + "\n".join(claims) + "\n")
    checks = probe_checks(found)
    results["probe_checks"] = checks
    sections.append(f"""## Linear probe (frozen encoders)

The converged probe (L2 logistic regression by L-BFGS, penalty chosen on validation from the grid
{list(settings.penalties)}, widened by up to {settings.widen} decades past an end that validation picks), on the
same clips; "10 per class" trains it on the same subsets as fine-tuning. Teacher encoders;
mean +- std over pre-training (or initialisation) seeds.

{chr(10).join(probe_text)}
**The probe converged.** {checks['fits']} fits: {checks['not_converged']} stopped before the gradient
tolerance; the largest final gradient was {checks['max_gradient_ratio']:.2g} x the tolerance. The chosen penalty
was an end of the widened grid in {checks['at_edge']} of them. Against scikit-learn's `LogisticRegression`
solving the same objective to the same tolerance over the same penalties (seed-1 encoders and
log-mel, all labels): largest test difference {checks['sklearn_max_points']:.2f} points over {checks['sklearn_pairs']} (model, task) pairs.
""")

    # ---- shift stability
    shift_text, shift_data = shift_section(found)
    results["shift"] = shift_data
    sections.append(shift_text)

    # ---- pre-training length curve
    curve_text, curve_data, curve_end_data = curve_section(root, docs, found)
    results["curve"] = curve_data
    results["curve_end"] = curve_end_data
    budget_text, results["budget_check"] = budget_check(root, settings)
    sections.append(curve_text + budget_text)

    # ---- health and budget
    main_runs = [PretrainRun(a, settings.main_steps, s) for a in ARCHS for s in settings.main_seeds]
    done = [r for r in main_runs if r.has_step(root)]
    health_rows = []
    for arch in ARCHS:
        values = [health_at(r.folder(root), r.steps) for r in done if r.arch == arch]
        if values:
            health_rows.append([f"{arch}, {settings.main_steps} steps"] + [f"{statistics.fmean(v[k] for v in values):.3f}" for k in HEALTH_KEYS])
    sections.append(f"## Representation health at the end of the main runs\n\nMean over seeds of the last five logged batches "
                    f"(`metrics/train.jsonl`; `docs/design.md` says what each means).\n\n{markdown_table(['run', *HEALTH_KEYS], health_rows)}\n")

    long_runs = [PretrainRun(a, settings.long_steps, 1) for a in ARCHS]
    pretrain_h = sum(train_hours(r.folder(root)) for r in main_runs + long_runs)
    finetune_h = finetune_hours(root)
    measure_h, timed, stored = measurement_hours(root / "measurements")
    results["budget_hours"] = {"pretrain": pretrain_h, "finetune": finetune_h, "measure": measure_h,
                               "measure_results_timed": timed, "measure_results": stored}
    results["long_runs"] = last_logged_steps(root, long_runs)

    # ---- in short
    short = in_short(results, docs)
    m = machine()
    text = f"""# Results: AaPE and the plain stem on the study corpus (CPU scale)

## The five-task study ({m['date'][:10]}): where pre-training pays, and how it grows

Pre-trained with {PRETRAINING}. Command: `make study` (= `python -m studies.study`), which rewrites this page, `docs/results.json`
and `docs/figures/study_*.png` from the runs and measurements under `runs/study/` (everything
resumes). Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}; {m['date']}. Budget on this
machine so far: {pretrain_h:.1f} h of pre-training, {finetune_h:.1f} h of fine-tuning (from the runs' logs) and
{measure_h:.1f} h of probing and shift measurements (the {timed} of the {stored}
stored results that record their time; the others were measured before results did). Each
process used one thread; runs shared the 2 cores three or four at a time, so these are wall-clock
hours of a process with about half a core.

**Setting.** `aape_tiny` and `vit_tiny` (D 128, 4 layers, 80 x 96 log-mel, 4 mask clones;
identical but for the stem) pre-trained with the `study` preset (16 clips per step) on the study
corpus' unlabelled pool (`make study-corpus`: 4.5 h of real audio from Debian packages, no clip or
source of any validation or test group): {len(settings.main_seeds)} seeds x {settings.main_steps} steps per stem, and one
{settings.long_steps}-step run per stem for the length curve. Five tasks with 302-920 test clips each, every split
by source (instrument, voice, kit, word): see `docs/data.md`. Every choice (learning rates,
checkpoints, penalties) was made on validation splits, before each model's test score was read.

{IN_SHORT}

{chr(10).join(short)}

{chr(10).join(sections)}
**What this does not say.** A 0.9M-parameter encoder pre-trained for minutes to hours on 4.5 hours
of audio is not AudioSet pre-training of ViT-B; the keyword task is synthetic speech; the
language task is one speaker per language. The numbers judge the recipe and the implementation
at small scale, not the paper's claims at its scale.
"""
    docs.mkdir(parents=True, exist_ok=True)
    from studies.modulation_section import section, splice

    text = splice(text, section(docs))  # the objective study's section, from what docs/ publishes
    from studies import findings

    text = findings.splice(text, findings.section(docs))  # the current findings first, from the same
    (docs / "results.md").write_text(text)
    (docs / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    update_generated_blocks(results, docs.parent)
    findings.write_all(docs, docs.parent / "README.md")
    print(text)
    return results


def claims_for(groups: dict[str, dict[str, tuple[list[str], np.ndarray]]], regime: str) -> tuple[list[str], dict[str, Any]]:
    """The differences the study states for one protocol and regime, with intervals."""
    pairs = []
    for arch in ARCHS:
        pairs.append((f"{arch}, pre-trained", f"{arch}, random init", TASKS, f"{arch}: pre-trained minus random init, mean over the five tasks"))
    pairs += [
        ("aape_tiny, pre-trained", "vit_tiny, pre-trained", TASKS, "AaPE minus plain stem (both pre-trained), mean over the five tasks"),
        ("aape_tiny, pre-trained", "vit_tiny, pre-trained", FREQUENCY_TASKS, "AaPE minus plain stem (both pre-trained), pitch and instrument"),
        ("aape_tiny, random init", "vit_tiny, random init", FREQUENCY_TASKS, "AaPE minus plain stem (both random), pitch and instrument"),
    ]
    pairs += [("aape_tiny, pre-trained", "aape_tiny, random init", (t,), f"aape_tiny: pre-trained minus random init on {SHORT[t]}") for t in TASKS]
    lines, data = [], {}
    for a, b, tasks, what in pairs:
        if a in groups and b in groups:
            interval = compare({t: groups[a][t] for t in tasks}, {t: groups[b][t] for t in tasks}, (a, b))
            lines.append(f"- {what}, points: {interval.describe()}.")
            data[what] = interval.as_dict()
    return lines, data


def probe_checks(found: Measurements) -> dict[str, Any]:
    scores = [s for group in found.probes.values() for per_seed in group for s in per_seed.values()]
    sklearn = [abs(s.test - s.sklearn_test) for s in scores if s.sklearn_test is not None]
    tolerance = 1e-4
    return {
        "fits": len(scores),
        "not_converged": sum(not s.converged for s in scores),
        "max_gradient_ratio": max((s.gradient / (tolerance * s.penalty) for s in scores), default=0.0),
        "at_edge": sum(s.penalty_at_edge for s in scores),
        "sklearn_pairs": len(sklearn),
        "sklearn_max_points": 100 * max(sklearn, default=0.0),
    }


def shift_section(found: Measurements) -> tuple[str, dict[str, Any]]:
    groups = {g: v for g, v in found.shift.items() if "long run" not in g}
    if not groups:
        return "## Shift stability\n\nNot measured yet.\n", {}
    rows, data = [], {"mean": {}, "claims": {}}
    for name, per_seed in groups.items():
        frame = shift_matrix(per_seed, TASKS, "frame_cosine")
        clip = shift_matrix(per_seed, TASKS, "clip_cosine")
        rows.append([name, str(len(per_seed)), cell(mean_over_tasks({t: v[1] for t, v in frame.items()}), 1.0, 3),
                     cell(mean_over_tasks({t: v[1] for t, v in clip.items()}), 1.0, 3)]
                    + [cell([float(r.mean()) for r in frame[t][1]], 1.0, 3) for t in TASKS])
        data["mean"][name] = {"frame": mean_over_tasks({t: v[1] for t, v in frame.items()}),
                              "clip": mean_over_tasks({t: v[1] for t, v in clip.items()})}
    lines = []
    for a, b in (("aape_tiny, pre-trained", "vit_tiny, pre-trained"), ("aape_tiny, random init", "vit_tiny, random init"),
                 ("aape_tiny, pre-trained", "aape_tiny, random init"), ("vit_tiny, pre-trained", "vit_tiny, random init")):
        if a in groups and b in groups:
            for measure in ("frame_cosine", "clip_cosine"):
                interval = compare(shift_matrix(groups[a], TASKS, measure), shift_matrix(groups[b], TASKS, measure), (a, b))
                what = f"{a} minus {b}, {measure.replace('_', ' ')}, mean over tasks"
                lines.append(f"- {what}: {interval.describe(scale=1.0, digits=3)}.")
                data["claims"][what] = interval.as_dict()
    n = found.settings.shift_clips
    text = f"""## Shift stability (the aliasing test)

How much an encoder's output moves when its input moves by less than a patch: for {n} test clips
per task (spread over each test split), a 96-frame window at offset 0 and at offsets 1-15
frames; the cosine between shifted and unshifted frame tokens (token j against token j) and clip
embeddings, centred by the mean unshifted embedding, averaged over the 15 shifts. 1 = unmoved.
Intervals: paired bootstrap over seeds (one draw for all tasks) and clips.

{markdown_table(["model", "seeds", "frame cosine", "clip cosine", *(f"frame, {SHORT[t]}" for t in TASKS)], rows)}

{chr(10).join(lines)}
"""
    return text, data


def paired_seeds(root: Path, settings: StudySettings, curve: Start, baseline: Start, regime: str
                 ) -> tuple[list[dict[str, FinetuneResult]], list[dict[str, FinetuneResult]]]:
    """Results of the curve start and ``baseline`` for the fine-tuning seeds of the curve's step
    that both have finished on every task, row k of one paired with row k of the other."""
    seeds = curve_seeds(settings, curve.step)
    mine, theirs = (seed_results(root, settings, s, regime, seeds) for s in (curve, baseline))
    common = [seed for seed in mine if seed in theirs]
    return [mine[s] for s in common], [theirs[s] for s in common]


def curve_section(root: Path, docs: Path, found: Measurements) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The gap to random initialisation along the long runs, per protocol, with health (per stem),
    and the long runs' ends compared (:func:`curve_end`)."""
    settings = found.settings
    data: dict[str, Any] = {}
    rows = []
    columns = CURVE_COLUMNS
    for arch in ARCHS:
        random_probe = {r: found.probes.get((f"{arch}, random init", r), [])[:1] for r in REGIMES}
        long = PretrainRun(arch, settings.long_steps, 1)
        for step in settings.curve_steps:
            group = f"{arch}, long run at step {step}"
            point: dict[str, Any] = {"step": step, "health": health_at(long.folder(root), step) if long.has_step(root, step) else {}}
            for regime in REGIMES:
                probe = found.probes.get((group, regime), [])
                if probe and random_probe[regime]:
                    point[f"probe, {regime}"] = compare(probe_matrix(probe, TASKS), probe_matrix(random_probe[regime], TASKS),
                                                        (group, "random")).as_dict()
                ft, random_ft = paired_seeds(root, settings, Start(arch, "curve", step), Start(arch, "random"), regime) \
                    if regime in CURVE_REGIMES else ([], [])
                if ft:
                    point[f"fine-tuning, {regime}"] = compare(finetune_matrix(ft, TASKS), finetune_matrix(random_ft, TASKS),
                                                              (group, "random")).as_dict()
                    point.setdefault("seeds", {})[f"fine-tuning, {regime}"] = len(ft)
            shift = found.shift.get(group)
            random_shift = found.shift.get(f"{arch}, random init", [])[:1]
            if shift and random_shift:
                point["shift, frame cosine"] = compare(shift_matrix(shift, TASKS, "frame_cosine"), shift_matrix(random_shift, TASKS, "frame_cosine"),
                                                       (group, "random")).as_dict()
            data.setdefault(arch, []).append(point)
            measured = [k for k in point if k not in ("step", "health", "seeds")]
            if measured or point["health"]:
                def gap(key: str, p: dict = point) -> str:
                    if key not in p:
                        return "-"
                    seeds = p.get("seeds", {}).get(key, 1)
                    return Interval(**p[key]).describe() + (f" ({seeds} seeds)" if seeds > 1 else "")
                rows.append([arch, f"{step:,}"] + [gap(k) for k in columns]
                            + [f"{point['health'].get(k, float('nan')):.2f}" for k in ("Teacher Rank", "Target Clip Spread")])
    figure = plot_curve(docs, data, settings)
    end_text, end_data = curve_end(root, settings)
    header = ["stem", "step", *columns, "teacher rank", "target spread"]
    text = f"""## How the gain grows with pre-training length

One {settings.long_steps:,}-step run per stem (seed 1; warm-up, learning-rate decay and EMA ramp laid out over
{settings.long_steps:,} steps), measured at its checkpoints: steps 1,000-10,000 are points *inside* that schedule
(learning rate still high, EMA early), not runs of that length; the last is the run's end. Each
cell: the gap to the random initialisation of the same seed, mean over the five tasks, points,
with a paired bootstrap interval over test clips; at steps {", ".join(f"{x:,}" for x in settings.curve_seeded_steps)} the checkpoint is also fine-tuned
with fine-tuning seeds {", ".join(map(str, settings.finetune_seeds[1:]))} (against random initialisations {", ".join(map(str, settings.finetune_seeds[1:]))}), and the fine-tuning
interval resamples those seeds too (marked "n seeds"; the pre-training seed is 1 throughout). Fine-tuning
along the curve is in the low-label regime only (where pre-training pays first; all labels cost
five times as much), at the learning rate the main pre-trained runs chose per task. Health: the run's
teacher effective rank and target spread at that step (last five logged batches).

{markdown_table(header, rows) if rows else "No checkpoint of the long runs measured yet."}

{f"![gap to random initialisation against pre-training steps](figures/{figure})" if figure else ""}
{end_text}"""
    return text, data, end_data


def budget_check(root: Path, settings: StudySettings) -> tuple[str, dict[str, Any]]:
    """Random initialisations fine-tuned ``budget_check_factor`` times longer (low labels): how
    much the longer schedule gives them, and whether the pre-trained models' lead survives it."""
    factor, regime = settings.budget_check_factor, REGIMES[1]
    groups: dict[str, dict[str, tuple[list[str], np.ndarray]]] = {}
    lines, claims = [], {}
    for arch in ARCHS:
        longer = seed_results(root, settings, Start(arch, "random"), regime, budget=factor)
        if not longer:
            continue
        others = {f"{arch}, random init": seed_results(root, settings, Start(arch, "random"), regime),
                  f"{arch}, pre-trained": seed_results(root, settings, Start(arch, "main"), regime),
                  f"{arch}, {settings.long_steps:,} steps": seed_results(root, settings, Start(arch, "curve", settings.long_steps), regime,
                                                                           curve_seeds(settings, settings.long_steps))}
        label = f"{arch}, random init, {factor}x steps"
        groups[label] = finetune_matrix(list(longer.values()), TASKS)
        end = f"{arch}, {settings.long_steps:,} steps, {factor}x steps"
        others[end] = seed_results(root, settings, Start(arch, "curve", settings.long_steps), regime,
                                   curve_seeds(settings, settings.long_steps), budget=factor)
        for name, results in others.items():
            common = [seed for seed in longer if seed in results]
            if not common:
                continue
            groups.setdefault(name, finetune_matrix([results[k] for k in common], TASKS))
            mine, theirs = finetune_matrix([results[k] for k in common], TASKS), finetune_matrix([longer[k] for k in common], TASKS)
            what = f"{name} minus {label}, mean over the five tasks"
            interval = compare(mine, theirs, (name, label))
            claims[what] = interval.as_dict()
            lines.append(f"- {what} ({len(common)} seed{'s' if len(common) > 1 else ''}), points: {interval.describe()}.")
    if not groups:
        return "", {}
    steps = ", ".join(f"{factor * settings.few_label_steps(t):,} for {SHORT[t]}" for t in dict(settings.low_label_steps))
    text = f"""
**Budget check.** Random initialisations learn slower, so a short fine-tuning schedule could
flatter pre-training. The random initialisations and the long runs' last checkpoints were also
fine-tuned {factor} times longer with 10 per class ({factor * settings.few_label_steps(""):,} steps; {steps}), every seed, each at
the rate it uses at the normal budget; the checkpoint is again the one validation picks. Test
accuracy (%), mean +- std over seeds; differences pair seeds by number:

{markdown_table(HEADER, score_rows({k: {t: v[1] for t, v in g.items()} for k, g in groups.items()}))}

{chr(10).join(lines)}
"""
    return text, {"factor": factor, "claims": claims,
                  "test": {k: {t: [float(r.mean()) for r in v[1]] for t, v in g.items()} for k, g in groups.items()}}


def curve_end(root: Path, settings: StudySettings) -> tuple[str, dict[str, Any]]:
    """Both long runs at their last step, fine-tuned: test scores beside their random
    initialisations, and AaPE minus the plain stem (fine-tuning seeds paired by number)."""
    step = settings.long_steps
    lines, data, text = [], {}, ""
    for regime in CURVE_REGIMES:
        aape, vit = paired_seeds(root, settings, Start("aape_tiny", "curve", step), Start("vit_tiny", "curve", step), regime)
        if not aape:
            continue
        groups: dict[str, dict[str, tuple[list[str], np.ndarray]]] = {}
        for arch in ARCHS:
            mine, random = paired_seeds(root, settings, Start(arch, "curve", step), Start(arch, "random"), regime)
            groups[f"{arch}, {step:,} steps"] = finetune_matrix(mine, TASKS)
            groups[f"{arch}, random init"] = finetune_matrix(random, TASKS)
        claims = {}
        for tasks, what in ((TASKS, "mean over the five tasks"), (FREQUENCY_TASKS, "pitch and instrument")):
            interval = compare({t: finetune_matrix(aape, TASKS)[t] for t in tasks}, {t: finetune_matrix(vit, TASKS)[t] for t in tasks},
                               (f"aape_tiny at {step}", f"vit_tiny at {step}"))
            claims[f"AaPE minus plain stem (both at step {step:,}), {what}"] = interval.as_dict()
            lines.append(f"- AaPE minus plain stem (both at step {step:,}), {what}, points: {interval.describe()}.")
        data[regime] = {"seeds": len(aape), "test": {k: {t: [float(r.mean()) for r in v[1]] for t, v in g.items()} for k, g in groups.items()},
                        "claims": claims}
        table = markdown_table(HEADER, score_rows({k: {t: v[1] for t, v in g.items()} for k, g in groups.items()}))
        text += f"""
At the end of the long runs, fine-tuned with {regime} (test accuracy %, mean +- std over fine-tuning
seeds; the random initialisations are those of the same seed numbers):

{table}

{chr(10).join(lines)}
"""
    return text, data


def finetune_hours(root: Path) -> float:
    total = 0.0
    for path in (root / "finetune").rglob("train.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            total += float(rows[-1].get("Total Time", 0.0))
    return total / 3600


def in_short(results: dict[str, Any], docs: Path) -> list[str]:
    from studies.summary import published_budget_check, summary_lines

    return summary_lines(results, published_budget_check(docs))


def last_logged_steps(root: Path, runs: Sequence[PretrainRun]) -> dict[str, int]:
    """Each pre-training run's last logged step, by arch (0: not started): where a long run stands."""
    return {r.arch: max((row["Step"] for row in train_rows(r.folder(root))), default=0) for r in runs}


def plateau_summary(runs: Sequence[FinetuneResult]) -> tuple[str, dict[str, Any]]:
    """Whether the fine-tuning budget was long enough for ``runs`` (random initialisations, which
    learn slower): what the last third of each run added to validation accuracy, and how many
    scored best at their last validation."""
    gains = [late_gain(r) for r in runs]
    at_end = sum(r.best_step == r.curve[-1][0] for r in runs)
    line = (f"over {len(runs)} fine-tuning runs of random initialisations, the last third of the run added "
            f"{100 * statistics.fmean(gains):.2f} points of validation accuracy on average (largest "
            f"{100 * max(gains):.1f}); {at_end} of them scored best at their last validation.")
    return line, {"runs": len(runs), "mean_late_gain": statistics.fmean(gains), "max_late_gain": max(gains),
                  "best_at_last_validation": at_end}


def write_budget_page(root: Path, docs: Path, settings: StudySettings, command: str) -> dict[str, Any]:
    """``budget-check.md`` and ``.json`` in ``docs``: the budget check alone, from a run folder that
    the budget lane filled (``--lane budget``) before, or instead of, the rest of the study. The
    study's own page (``results.md``) is left as it is: it reports the folder it was made from."""
    text, data = budget_check(root, settings)
    if not data:
        raise FileNotFoundError(f"No budget-check run has finished under {root}; run the budget lane first ({command}).")
    longer = [result for arch in ARCHS for per_task in seed_results(root, settings, Start(arch, "random"), REGIMES[1],
                                                                     budget=settings.budget_check_factor).values()
              for result in per_task.values()]
    plateau_line, plateau = plateau_summary(longer)
    long_runs = [PretrainRun(a, settings.long_steps, 1) for a in ARCHS]
    main_runs = [PretrainRun(a, settings.main_steps, settings.main_seeds[0]) for a in ARCHS]
    hours = {"pretrain": sum(train_hours(r.folder(root)) for r in main_runs + long_runs), "finetune": finetune_hours(root)}
    steps = last_logged_steps(root, long_runs)
    m = machine()
    page = f"""# Budget check: pre-training against random initialisation, both fine-tuned longer

Command: `{command}`
(its `--train-only` form runs what this page needs; see `python -m studies.study --help`), which
writes this page and `budget-check.json` beside it from the runs under `{root.name}/`.
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}; {m['date']}. Budget on this machine:
{hours['pretrain']:.1f} h of pre-training, {hours['finetune']:.1f} h of fine-tuning (process hours, one thread each).
Long runs' last logged step: {", ".join(f"`{a}` {s:,}" for a, s in steps.items() if s) or "none yet"}.

This is the budget check of `results.md`, run on its own: the random initialisation and the long
run's end fine-tuned {settings.budget_check_factor} times longer than the study's low-label budget, so that
a short schedule cannot flatter pre-training. Each start takes the learning rate its seed-1
grid chose at the normal budget (the long run takes the first main run's); rows that the
budget lane does not run (other seeds at the normal budget) show the seeds that exist. The long
run is one pre-training run (seed 1): its seeds here are fine-tuning seeds, and its intervals
count those and the test clips, not pre-training seeds.
{text}
Was {settings.budget_check_factor}x long enough for the random initialisations? {plateau_line[0].upper() + plateau_line[1:]}
"""
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "budget-check.md").write_text(page)
    results = {"budget_check": data, "budget_hours": hours, "long_runs": steps, "longer_plateau": plateau}
    (docs / "budget-check.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(page)
    return results
