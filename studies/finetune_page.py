"""The page of a fine-tuning experiment: test accuracy per model (means over fine-tuning seeds),
paired differences per task group, and the learning rates chosen on seed 1's validation accuracy.
Built from anything with ``test``, ``clips`` and ``correct`` per ``"<label>, seed k"`` and task:
finished runs, or the stored per-clip outcomes (:mod:`studies.outcomes`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studies.common import MODULATION_TASKS, SHORT, TASKS
from studies.experiments import Experiment
from studies.finetune_runs import parse_start
from studies.outcomes import seed_difference

GROUPS = {"modulation group": MODULATION_TASKS, "five tasks": TASKS}


def label(model: str) -> str:
    """A declared model's label on the page: ``frozen_lambda@30000`` -> ``frozen_lambda, 30000 steps``."""
    return parse_start(model).label


def order(experiment: Experiment) -> tuple[str, ...]:
    return tuple(label(m) for m in experiment.models)


def _model_order(name: str, rows: tuple[str, ...]) -> tuple[int, str]:
    return (rows.index(name), name) if name in rows else (len(rows), name)


def choices_table(chosen: Mapping[str, Mapping[str, Mapping[str, Any]]], experiment: Experiment) -> str:
    rows = order(experiment)
    tasks = [t for t in (*MODULATION_TASKS, *TASKS) if any(t in v for v in chosen.values())]
    lines = ["| model | " + " | ".join(SHORT[t] for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for model in sorted(chosen, key=lambda name: _model_order(name, rows)):
        cells = [(f"{chosen[model][t]['lr']:g}" + (" (end)" if chosen[model][t]["at_end"] else "")) if t in chosen[model] else ""
                 for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    ends = sum(c["at_end"] for v in chosen.values() for c in v.values())
    total = sum(len(v) for v in chosen.values())
    return "\n".join(lines) + f"\n\n{ends} of {total} choices are at an end of their grid (widened at most 3 times)."


def report(outcomes: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], experiment: Experiment,
           groups: Mapping[str, tuple[str, ...]] = GROUPS) -> tuple[str, dict[str, object]]:
    """Test accuracy per model (means over fine-tuning seeds) and the paired differences per task
    group (``aape_plugin.eval.seed_interval``); a group is shown once every seed of both models
    has finished every task of it."""
    import numpy as np


    rows = order(experiment)
    labels = sorted({key.rsplit(", seed ", 1)[0] for key in outcomes}, key=lambda name: _model_order(name, rows))
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
    shown_rows: list[tuple[str, list[str]]] = []
    for a, b in ((label(x), label(y)) for x, y in experiment.comparisons):
        cells, shown = [], False
        for group, group_tasks in groups.items():
            complete = all(m in per_model for m in (a, b)) and \
                all(t in r for m in (a, b) for r in per_model[m] for t in group_tasks)
            if not complete:
                cells.append("")
                continue
            interval = seed_difference([(f"{a} seed {s}", r) for s, r in zip(seeds, per_model[a])],
                                       [(f"{b} seed {s}", r) for s, r in zip(seeds, per_model[b])], group_tasks)
            cells.append(interval.describe())
            data["comparisons"][f"{a} - {b}: {group}"] = interval.as_dict()  # type: ignore[index]
            shown = True
        if shown:
            shown_rows.append((f"{a} minus {b}", cells))
    shown_groups = [k for k in range(len(groups)) if any(cells[k] for _, cells in shown_rows)]
    if shown_rows:
        lines += ["", "| a minus b (paired by seed) | " + " | ".join(list(groups)[k] for k in shown_groups) + " |",
                  "|---|" + "---|" * len(shown_groups)]
        lines += [f"| {name} | " + " | ".join(cells[k] for k in shown_groups) + " |" for name, cells in shown_rows]
    return "\n".join(lines), data


def page(outcomes: Mapping[str, Mapping[str, Any]], chosen: Mapping[str, Mapping[str, Mapping[str, Any]]],
         experiment: Experiment) -> tuple[str, dict[str, object]]:
    """The page's tables below its head, and its data (with the choices)."""
    groups = GROUPS
    if experiment.per_task_comparisons:
        groups = {**GROUPS, **{SHORT[t]: (t,) for t in experiment.tasks}}
    text, data = report(outcomes, experiment.seeds, experiment, groups)
    text += "\n\nLearning rates chosen on seed 1's validation accuracy:\n\n" + choices_table(chosen, experiment)
    data["choices"] = chosen
    return text, data
