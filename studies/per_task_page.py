"""The page of a probe experiment on one task group: test accuracy per model (means over seeds,
the no-model rows beside them) and the paired differences for the group and for each of its
tasks (a group mean can hide a sign change), from per-clip outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studies.common import SHORT
from studies.experiments import Experiment
from studies.outcomes import model_and_seed, seed_difference
from studies.probe_measure import NO_MODEL


def report(scores: Mapping[str, Mapping[str, Any]], experiment: Experiment) -> tuple[str, dict[str, object]]:
    """The tables from per-encoder, per-task outcomes on the experiment's tasks; a comparison
    is shown when both models share at least two seeds (paired by seed number)."""
    import numpy as np

    tasks, group_name = experiment.tasks, experiment.group_name
    grouped: dict[str, dict[int, Mapping[str, Any]]] = {}
    for name, per_task in scores.items():
        model, seed = model_and_seed(name)
        grouped.setdefault(model, {})[seed or 0] = per_task
    order = [*experiment.models, *NO_MODEL]
    lines = ["| model | seeds | " + " | ".join(SHORT[t] for t in tasks) + f" | {group_name.removesuffix(' group')} mean |",
             "|" + "---|" * (3 + len(tasks))]
    for model in [m for m in order if m in grouped]:
        runs = list(grouped[model].values())
        cells = [100 * float(np.mean([r[t].test for r in runs])) for t in tasks]
        seeds = "no model" if model in NO_MODEL else str(len(runs))
        lines.append(f"| {model} | {seeds} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {np.mean(cells):.1f} |")
    groups = {group_name: tasks, **{SHORT[t]: (t,) for t in tasks}}
    lines += ["", "| a minus b | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    data: dict[str, object] = {"models": {m: len(v) for m, v in grouped.items()}, "comparisons": {}}
    for a, b in experiment.comparisons:
        shared = sorted(set(grouped.get(a, {})) & set(grouped.get(b, {})))
        if len(shared) < 2:
            continue
        cells = []
        seeded = {m: [(f"{m} seed {s}", grouped[m][s]) for s in shared] for m in (a, b)}
        for group, group_tasks in groups.items():
            interval = seed_difference(seeded[a], seeded[b], group_tasks)
            cells.append(interval.describe())
            data["comparisons"][f"{a} - {b}: {group}"] = {**interval.as_dict(), "seeds": shared}  # type: ignore[index]
        lines.append(f"| {a} minus {b} ({len(shared)} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines), data
