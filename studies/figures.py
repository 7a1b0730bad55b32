"""The study's figures, drawn with matplotlib from stored data alone (no run, no encoder).

``make study`` draws them after its page, and ``python -m studies.findings --docs docs`` redraws
them from ``docs/``: the comparisons of the current findings with their intervals, the modulation
rates along pre-training, and the length curve of ``docs/results.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aape_plugin.eval.bootstrap import Interval
from studies.common import MODULATION_TASKS, SHORT, StudySettings
from studies.findings import COLUMNS, PAPER, PROBE, RANDOM, SEEDS, STUDY_PRESET, Finding
from studies.finetuning import CURVE_REGIMES, REGIMES
from studies.outcomes import load_readings

CURVE_COLUMNS = [f"probe, {r}" for r in REGIMES] + [f"fine-tuning, {r}" for r in CURVE_REGIMES]
"""What the length curve measures at each checkpoint (its table's columns and its figure's panels)."""



def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_intervals(docs: Path, rows: Sequence[tuple[Finding, Mapping[str, Interval | None]]]) -> str | None:
    """One panel per column, one line per finding: the estimate and its 95% interval, the tie band shaded."""
    from aape_plugin.eval.bootstrap import TIE_MARGIN

    if not rows:
        return None

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(3.0 * len(COLUMNS), 0.45 * len(rows) + 1.6), sharey=True,
                             constrained_layout=True)
    ys = np.arange(len(rows))[::-1]
    for ax, column in zip(axes, COLUMNS):
        ax.axvspan(-100 * TIE_MARGIN, 100 * TIE_MARGIN, color="0.85", label="tie margin (±2 points)")
        ax.axvline(0.0, color="black", lw=0.8)
        for y, (finding, cells) in zip(ys, rows):
            found = cells[column]
            if found is None:
                continue
            colour = "tab:green" if finding.fine_tuned else "tab:red" if finding.a.startswith(PAPER) else "tab:blue"
            ax.errorbar(100 * found.estimate, y, xerr=[[100 * (found.estimate - found.low)], [100 * (found.high - found.estimate)]],
                        fmt="o", color=colour, capsize=3, ms=4)
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("points (95% interval)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(ys, [f.label.replace("`", "") + ("" if f.reading == "fine-tuned" else f" ({f.reading.removeprefix('fine-tuned, ')})")
                            for f, _ in rows], fontsize=7)
    axes[-1].legend(fontsize=6, loc="upper right")
    fig.suptitle("aape_tiny on the study corpus' test splits: a minus b, test accuracy points", fontsize=10)
    return _save(fig, docs, "findings_intervals.png")


def plot_erosion(docs: Path) -> str | None:
    """Per modulation task, test accuracy along pre-training: one run of the round-1 frozen
    objective at its checkpoints (encoder output and the alias branch's features,
    ``docs/modulation.json``), the study preset (seeds 1-3 at 3k, one run at 30k) and ``vit_tiny``."""
    stem_file = docs / "modulation.json"
    if not stem_file.is_file() or not all((docs / f"{name}.json").is_file() for name in PROBE[1:]):
        return None
    rows = {(r["encoder"], r["part"]): r for r in json.loads(stem_file.read_text())["rows"]}
    outcomes, _ = load_readings(docs, PROBE[1:])
    steps = ["init", "1k", "3k", "10k", "30k"]
    along = ["aape_tiny, random init seed 1"] + [f"aape_tiny frozen Lambda Encoder, 30k run at {s}" for s in steps[1:]]

    def mean(model: str, seeds: Sequence[int], task: str) -> list[float]:
        return [100 * outcomes[f"{model}, seed {s}"][task].test for s in seeds]

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(MODULATION_TASKS), figsize=(4.2 * len(MODULATION_TASKS), 4.2), sharey=True, layout="constrained")
    x = np.arange(len(steps))
    for ax, task in zip(axes, MODULATION_TASKS):
        for part, style, name in (("output", "o-", "encoder output"), ("alias", "s--", "alias branch's features")):
            ys = [100 * rows[(e, part)][task]["test"] if (e, part) in rows else np.nan for e in along]
            ax.plot(x, ys, style, color="tab:orange", label=f"frozen Lambda Encoder, no alias target (one run): {name}")
        study = [mean(RANDOM, SEEDS, task), mean(f"{STUDY_PRESET}, 3000 steps", SEEDS, task), mean(f"{STUDY_PRESET}, 30000 steps", (1,), task)]
        at = [0, 2, 4]
        ax.errorbar(at, [np.mean(v) for v in study], yerr=[[np.mean(v) - min(v) for v in study], [max(v) - np.mean(v) for v in study]],
                    fmt="o-", color="tab:blue", capsize=3, label="study preset, encoder output (seeds 1-3; 30k: one run)")
        vit = [mean("vit_tiny random init", SEEDS, task), mean("vit_tiny, 3000 steps", SEEDS, task)]
        ax.errorbar([0, 2], [np.mean(v) for v in vit], yerr=[[np.mean(v) - min(v) for v in vit], [max(v) - np.mean(v) for v in vit]],
                    fmt="o:", color="0.4", capsize=3, label="vit_tiny, encoder output (seeds 1-3)")
        ax.axhline(100 / 7, color="black", lw=0.6, ls=":")
        ax.set_xticks(x, steps)
        ax.set_title(SHORT[task], fontsize=9)
        ax.set_xlabel("pre-training steps")
    axes[0].set_ylabel("test accuracy % (probe; chance 14.3)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=2)
    fig.suptitle("Modulation rates along pre-training (bars: range over seeds)", fontsize=10)
    return _save(fig, docs, "findings_modulation_erosion.png")


def plot_length_curve(docs: Path) -> str | None:
    """The length curve of ``docs/results.json`` (the study page's figure), redrawn from it."""
    if not (docs / "results.json").is_file():
        return None
    results = json.loads((docs / "results.json").read_text())
    return plot_curve(docs, results.get("curve", {}), StudySettings())


def _save(fig, docs: Path, name: str) -> str:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    (docs / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(docs / "figures" / name, dpi=110)
    plt.close(fig)
    return name



def plot_curve(docs: Path, data: dict[str, Any], settings: StudySettings) -> str | None:
    """Gap to random against steps (log axis), one panel per protocol, health alongside."""
    if not any(len(p) > 2 for points in data.values() for p in points):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = CURVE_COLUMNS
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.6), constrained_layout=True)
    colours = {"aape_tiny": "tab:red", "vit_tiny": "tab:blue"}
    for ax, key in zip(axes, panels):
        for arch, points in data.items():
            xs = [p["step"] for p in points if key in p]
            if not xs:
                continue
            est = [100 * p[key]["estimate"] for p in points if key in p]
            lo = [100 * p[key]["low"] for p in points if key in p]
            hi = [100 * p[key]["high"] for p in points if key in p]
            ax.plot(xs, est, "o-", color=colours[arch], label=arch)
            ax.fill_between(xs, lo, hi, color=colours[arch], alpha=0.15)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("pre-training steps")
        ax.set_ylabel("gap to random init (points)")
    ax = axes[-1]
    for arch, points in data.items():
        xs = [p["step"] for p in points if p["health"]]
        ax.plot(xs, [p["health"]["Teacher Rank"] for p in points if p["health"]], "o-", color=colours[arch], label=f"{arch} teacher rank")
        ax.plot(xs, [10 * p["health"]["Target Clip Spread"] for p in points if p["health"]], "s--", color=colours[arch],
                label=f"{arch} target spread x10")
    ax.set_xscale("log")
    ax.set_title("representation health", fontsize=9)
    ax.set_xlabel("pre-training steps")
    ax.legend(fontsize=6)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Gap to random initialisation along one {settings.long_steps:,}-step run per stem (95% intervals over test clips)", fontsize=10)
    name = "study_length_curve.png"
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(docs / "figures" / name, dpi=110)
    plt.close(fig)
    return name
