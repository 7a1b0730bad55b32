"""One comparison table from several evaluation runs (their ``results.json``), and the paired
differences between their models on the same test clips.

    python -m aape_plugin.eval.report RUN_DIR [RUN_DIR ...] [--label RUN_DIR=NAME ...] [--out report.md]

Rows are models, columns tasks; cells are the score in percent, with +- the standard deviation
over seeds and folds when a run has several. Below the table, for every task and every two
models measured on it, the difference (first listed minus second, in points) with a 95%
interval computed from the per-clip test predictions every run stores:

* one run per model (one pre-training seed each): the paired bootstrap over the test clips
  (:mod:`aape_plugin.eval.bootstrap`); it holds the clips' sampling variation only, not how a
  second pre-training seed would move either model, and the line says so;
* several runs of a model (its pre-training seeds: runs given the same ``--label``): the
  interval of :mod:`aape_plugin.eval.seed_interval` (variation over seeds plus the paired
  variation over clips, Student's t), the one ``docs/protocol.md`` states differences with.

Two runs are paired only when they scored the same test clips in the same order; otherwise the
pair is refused in one line, which says where their clip lists part. Multi-label tasks (mAP)
store no per-clip predictions and get no interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aape_plugin.eval.bootstrap import Interval, check_same_clips, paired_bootstrap
from aape_plugin.eval.seed_interval import seed_t_interval


class ReportError(Exception):
    """A run folder or file the report cannot use; the message names it and what was expected."""


def load_results(runs: list[Path]) -> list[dict]:
    results = []
    for run in runs:
        path = run / "results.json" if run.is_dir() else run
        if not path.is_file():
            raise ReportError(f"{path} does not exist: expected the OUTPUT_DIR of an evaluation run (aape_linear_probe or aape_finetune).")
        try:
            payload = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as ex:
            raise ReportError(f"{path} is not valid JSON ({ex}); expected the results.json of an evaluation run.") from None
        if not isinstance(payload, dict) or not {"task", "model", "metric", "summary"} <= set(payload):
            raise ReportError(f"{path} is not the results.json of an evaluation run (it lacks task, model, metric or summary).")
        results.append(payload | {"_path": str(path)})
    return results


@dataclass(frozen=True)
class ClipScores:
    """One run's test outcome per clip: 1 right, 0 wrong, averaged over its probe seeds."""

    clips: list[str]
    correct: np.ndarray


def clip_scores(result: dict) -> ClipScores | None:
    """The per-clip outcomes stored in ``result`` (the test clips of every round, in the stored
    order); ``None`` when it stored none (multi-label tasks, runs written before predictions
    were stored)."""
    predictions = result.get("predictions")
    if not predictions:
        return None
    # aape_finetune: {"test": {clips, labels, predicted: [...]}}; aape_linear_probe: one entry per
    # round (fold), {round: {"test": {clips, labels, predicted: [[...] per probe seed]}}}.
    rounds = [predictions] if "clips" in predictions.get("test", {}) else list(predictions.values())
    clips: list[str] = []
    correct: list[np.ndarray] = []
    for entry in rounds:
        test = entry["test"]
        labels = np.asarray(test["labels"])
        predicted = np.asarray(test["predicted"])
        if predicted.ndim == 1:
            predicted = predicted[None]
        clips += list(test["clips"])
        correct.append((predicted == labels[None]).mean(axis=0))
    return ClipScores(clips, np.concatenate(correct))


def _model_labels(results: list[dict], labels: dict[str, str]) -> list[str]:
    """The model name of each run: its ``--label`` (by run folder or file), else the run's own."""
    names = []
    for r in results:
        path = Path(r["_path"])
        names.append(labels.get(str(path.parent), labels.get(str(path), r["model"])))
    return names


def _arms(results: list[dict], names: list[str]) -> dict[tuple[str, str], list[dict]]:
    """The runs of each (model, task), refusing the same model measured twice (the same weights
    and statistics would count as two seeds)."""
    arms: dict[tuple[str, str], list[dict]] = {}
    for r, name in zip(results, names):
        runs = arms.setdefault((name, r["task"]), [])
        for other in runs:
            if r.get("model_key") == other.get("model_key"):
                raise ReportError(
                    f"{other['_path']} and {r['_path']} evaluate the same model ({name}) on {r['task']}: give one of them, "
                    f"or tell them apart with --label RUN_DIR=NAME.")
        runs.append(r)
    return arms


def comparison_table(results: list[dict], model_names: dict[str, str] | None = None, *, names: list[str] | None = None) -> str:
    names = names or [(model_names or {}).get(r["model"], r["model"]) for r in results]
    tasks = sorted({r["task"] for r in results})
    models = list(dict.fromkeys(names))
    metrics = {r["task"]: r["metric"] for r in results}
    cells: dict[tuple[str, str], str] = {}
    for (model, task), runs in _arms(results, names).items():
        if len(runs) == 1:
            s = runs[0]["summary"]
            cells[(model, task)] = f"{100 * s['mean']:.1f}" + (f" +- {100 * s['std']:.1f}" if s["n"] > 1 else "")
        else:  # several runs (seeds) of one model: their mean and the spread between them
            means = [r["summary"]["mean"] for r in runs]
            cells[(model, task)] = f"{100 * statistics.fmean(means):.1f} +- {100 * statistics.stdev(means):.1f} ({len(runs)} runs)"
    header = "| model | " + " | ".join(f"{t} ({metrics[t]})" for t in tasks) + " |"
    rule = "|---|" + "---|" * len(tasks)
    rows = [f"| {m} | " + " | ".join(cells.get((m, t), "-") for t in tasks) + " |" for m in models]
    return "\n".join([header, rule, *rows])


def _interval_text(interval: Interval) -> str:
    f = "{:+.1f}"
    side = "excludes 0" if interval.excludes_zero else "includes 0"
    return f"{f.format(100 * interval.estimate)} [{f.format(100 * interval.low)}, {f.format(100 * interval.high)}] points (95%, {side})"


def paired_difference(task: str, name_a: str, runs_a: list[dict], name_b: str, runs_b: list[dict]) -> str:
    """One line: ``a`` minus ``b`` on ``task`` with its interval, or why there is none."""
    head = f"- {task}: {name_a} minus {name_b}:"
    scores_a, scores_b = [clip_scores(r) for r in runs_a], [clip_scores(r) for r in runs_b]
    missing = [r["_path"] for r, s in zip([*runs_a, *runs_b], [*scores_a, *scores_b]) if s is None]
    if missing:
        why = "a multi-label task stores no per-clip predictions" if runs_a[0]["metric"] != "accuracy" else "written without per-clip predictions"
        return f"{head} no interval: {missing[0]} has no per-clip predictions ({why})."
    named = [(r["_path"], s.clips) for r, s in zip([*runs_a, *runs_b], [*scores_a, *scores_b])]  # type: ignore[union-attr]
    try:
        check_same_clips(named)
    except ValueError as ex:
        return f"{head} not paired: {ex} Compare runs scored on the same test clips."
    a = np.stack([s.correct for s in scores_a])  # type: ignore[union-attr]
    b = np.stack([s.correct for s in scores_b])  # type: ignore[union-attr]
    clips = a.shape[1]
    if len(runs_a) == 1 and len(runs_b) == 1:
        interval = paired_bootstrap({task: a}, {task: b})
        how = (f"{clips} test clips, paired bootstrap over clips; one run of each model, so how another "
               f"pre-training seed would move them is not in the interval")
    else:
        interval = seed_t_interval({task: a}, {task: b})
        how = f"{clips} test clips, {len(runs_a)} and {len(runs_b)} runs (seeds); seeds and clips, Student's t"
    return f"{head} {_interval_text(interval)}; {how}."


def paired_differences(results: list[dict], names: list[str]) -> list[str]:
    """Every task's pairs of models, each once, in the order the models were first given."""
    arms = _arms(results, names)
    models = list(dict.fromkeys(names))
    lines = []
    for task in sorted({r["task"] for r in results}):
        present = [m for m in models if (m, task) in arms]
        for i, a in enumerate(present):
            for b in present[i + 1:]:
                lines.append(paired_difference(task, a, arms[(a, task)], b, arms[(b, task)]))
    return lines


def report(results: list[dict], labels: dict[str, str] | None = None) -> str:
    """The table and, where two models share a task, their paired differences."""
    names = _model_labels(results, labels or {})
    text = comparison_table(results, names=names)
    lines = paired_differences(results, names)
    if lines:
        text += "\n\nPaired differences (first model minus second, on the same test clips):\n\n" + "\n".join(lines)
    return text


def _label(text: str) -> tuple[str, str]:
    run, sep, name = text.rpartition("=")
    if not sep or not run or not name:
        raise argparse.ArgumentTypeError(f"expected RUN_DIR=NAME, got {text!r}")
    return str(Path(run)), name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.eval.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="OUTPUT_DIRs of aape_linear_probe / aape_finetune runs (or their results.json)")
    parser.add_argument("--label", type=_label, action="append", default=[], metavar="RUN_DIR=NAME",
                        help="the model name of a run in the report; runs with the same name on a task are that model's seeds")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    try:
        text = report(load_results(args.runs), dict(args.label))
    except ReportError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
