"""The page of a probe experiment on the test splits: test accuracy per model (means over seeds)
and the paired differences on the modulation group, the five tasks and pitch + instrument, with
:func:`aape_plugin.eval.seed_interval.seed_t_interval`; a longer run is compared unpaired. Built
from anything with ``test``, ``clips`` and ``correct`` per encoder name and task (probe results,
or the stored per-clip outcomes): the page can be rebuilt from ``docs/``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studies.common import FREQUENCY_TASKS, MODULATION_TASKS, SHORT, TASKS
from studies.experiments import Experiment
from studies.outcomes import seed_difference

GROUPS = {"modulation group": MODULATION_TASKS, "five tasks": TASKS, "pitch + instrument": FREQUENCY_TASKS}


def report(scores: Mapping[str, Mapping[str, Any]], experiment: Experiment) -> tuple[str, dict[str, object]]:
    import numpy as np

    models: dict[str, list[Mapping[str, Any]]] = {}
    for model in experiment.models:
        names = experiment.row_names(model)
        # A random initialisation is measured with every seed; a pre-trained model may lack some.
        models[model] = [scores[n] for n in names] if model.endswith(" random init") else [scores[n] for n in names if n in scores]
    long_run = experiment.long_run
    long_name = f"{long_run.variant}, {long_run.steps} steps" if long_run else ""
    if long_run is not None and long_run.name in scores:
        models[long_name] = [scores[long_run.name]]
    lines = ["| model | seeds | " + " | ".join(SHORT[t] for t in (*MODULATION_TASKS, *TASKS)) + " |",
             "|" + "---|" * (2 + len(MODULATION_TASKS) + len(TASKS))]
    for model, per_seed in models.items():
        if not per_seed:
            continue
        cells = [f"{100 * float(np.mean([r[t].test for r in per_seed])):.1f}" for t in (*MODULATION_TASKS, *TASKS)]
        lines.append(f"| {model} | {len(per_seed)} | " + " | ".join(cells) + " |")
    lines += ["", "| a minus b | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
    data: dict[str, object] = {"models": {m: len(v) for m, v in models.items()}, "comparisons": {}}
    for a, b in experiment.comparisons:
        n = min(len(models[a]), len(models[b]))
        if n < 2:
            continue
        cells = []
        seeded = {m: [(f"{m} seed {k + 1}", models[m][k]) for k in range(n)] for m in (a, b)}
        for group, tasks in GROUPS.items():
            interval = seed_difference(seeded[a], seeded[b], tasks)
            cells.append(interval.describe())
            data["comparisons"][f"{a} - {b}: {group}"] = {**interval.as_dict(), "seeds": n}  # type: ignore[index]
        lines.append(f"| {a} minus {b} ({n} seeds) | " + " | ".join(cells) + " |")
    if long_name in models:
        for b in experiment.long_comparisons:
            cells = []
            others = [(f"{b} seed {k + 1}", r) for k, r in enumerate(models[b])]
            for group, tasks in GROUPS.items():
                interval = seed_difference([(long_name, models[long_name][0])], others, tasks, paired=False)
                cells.append(interval.describe())
                data["comparisons"][f"{long_name} - {b}: {group}"] = {**interval.as_dict(), "seeds": [1, len(models[b])]}  # type: ignore[index]
            lines.append(f"| {long_name} (one run) minus {b} ({len(models[b])} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines), data
