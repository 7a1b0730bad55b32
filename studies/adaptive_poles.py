"""The adaptive half's screen (``docs/objectives.md``, "The adaptive half"): validation accuracy of
the trained, fixed-pole and modulation-input variants beside the study preset, the random
initialisations and the two no-model rows, with the protocol's rule evaluated on the seeds
measured, as one page rebuilt from its JSON.

    python -m studies.adaptive_poles --screen R/validation.json --stored docs/objectives-visible-screen.json \\
        --docs docs [--adaptivity NAME=docs/adaptivity/FILE.json ...]   # writes docs/adaptive-poles-screen.json and .md
    python -m studies.adaptive_poles --from-docs docs     # rebuilds the page from the JSON

The stored rows (the study preset and the random initialisations, seeds 1-3) come from the
round-5 screen, measured on the same corpus (the corpus is deterministic; ``docs/objectives.md``
records that a rebuilt one reproduces them digit for digit). A new ``--screen`` adds its rows to
those the page already holds (a row measured again replaces the old one).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from studies.common import MODULATION_TASKS, SHORT, TASKS
from studies.objectives import table
from studies.outcomes import model_and_seed

PAGE = "adaptive-poles-screen"
STORED_ROWS = tuple(f"{name}, seed {s}" for s in (1, 2, 3)
                    for name in ("aape_tiny random init", "vit_tiny random init", "alias_visible, 3000 steps"))
REFERENCE = "alias_visible"
CANDIDATES = ("trained_visible", "fixed_poles", "modulation_lambda")
RANDOM = "aape_tiny random init"

MEAN_MARGIN = 1.0
"""The rule: a candidate's three-seed means at most this far below the study preset's (points)."""
TASK_MARGIN = 3.0
"""The rule: no modulation task more than this far below the random initialisation (points)."""

def per_seed(scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[int, Mapping[str, float]]]:
    """``model -> seed -> task accuracies`` for every row named ``MODEL[, N steps], seed S``."""
    found: dict[str, dict[int, Mapping[str, float]]] = {}
    for name, accuracies in scores.items():
        model, seed = model_and_seed(name)
        if seed is not None:
            found.setdefault(model, {})[seed] = accuracies
    return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _group(accuracies: Mapping[str, float], tasks: tuple[str, ...]) -> float:
    return 100 * _mean([accuracies[t] for t in tasks])


def rule(scores: Mapping[str, Mapping[str, float]], adaptivity: Mapping[str, str]) -> tuple[list[str], dict[str, object]]:
    """The protocol's rule for each candidate, on the seeds it shares with the study preset and
    the random initialisation (means over those seeds, points)."""
    models = per_seed(scores)
    lines = ["| candidate | seeds | modulation mean minus study preset | five-task mean minus study preset | "
             + " | ".join(f"{SHORT[t]} minus random init" for t in MODULATION_TASKS) + " | adaptivity (mean rho, trained minus init) | rule |",
             "|" + "---|" * (6 + len(MODULATION_TASKS))]
    data: dict[str, object] = {}
    for candidate in CANDIDATES:
        seeds = sorted(set(models.get(candidate, {})) & set(models.get(REFERENCE, {})) & set(models.get(RANDOM, {})))
        if not seeds:
            continue
        mine = [models[candidate][s] for s in seeds]
        theirs = [models[REFERENCE][s] for s in seeds]
        random = [models[RANDOM][s] for s in seeds]
        mod = _mean([_group(r, MODULATION_TASKS) for r in mine]) - _mean([_group(r, MODULATION_TASKS) for r in theirs])
        five = _mean([_group(r, TASKS) for r in mine]) - _mean([_group(r, TASKS) for r in theirs])
        tasks = {t: 100 * (_mean([r[t] for r in mine]) - _mean([r[t] for r in random])) for t in MODULATION_TASKS}
        accuracy_ok = mod >= -MEAN_MARGIN and five >= -MEAN_MARGIN and min(tasks.values()) >= -TASK_MARGIN
        rho = adaptivity.get(candidate, "not measured")
        if len(seeds) < 3:
            verdict = f"undecided ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}; the rule needs 3)"
        elif candidate == "fixed_poles":
            verdict = "a reference (not adaptive)"
        elif not accuracy_ok:
            verdict = "fails on accuracy"
        else:
            verdict = "passes on accuracy; adaptivity decides"
        lines.append(f"| {candidate} | {', '.join(map(str, seeds))} | {mod:+.1f} | {five:+.1f} | "
                     + " | ".join(f"{tasks[t]:+.1f}" for t in MODULATION_TASKS) + f" | {rho} | {verdict} |")
        data[candidate] = {"seeds": seeds, "modulation_minus_preset": round(mod, 2), "five_minus_preset": round(five, 2),
                           "minus_random_init": {t: round(v, 2) for t, v in tasks.items()}, "accuracy_ok": accuracy_ok}
    return lines, data


def means(scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each model's accuracies averaged over its seeds (no-model rows as they are)."""
    out: dict[str, dict[str, float]] = {}
    for model, seeds in per_seed(scores).items():
        out[f"{model} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"] = {
            t: _mean([r[t] for r in seeds.values()]) for t in (*MODULATION_TASKS, *TASKS)}
    for name, accuracies in scores.items():
        if model_and_seed(name)[1] is None:
            out[name] = dict(accuracies)
    return out


def render(document: Mapping[str, object]) -> str:
    scores: Mapping[str, Mapping[str, float]] = document["scores"]  # type: ignore[assignment]
    adaptivity: Mapping[str, str] = document.get("adaptivity", {})  # type: ignore[assignment]
    tasks = (*MODULATION_TASKS, *TASKS)
    head = ["# The adaptive half: the screen on validation", "",
            "Validation accuracy (%) of the converged probe, all labels; 3,000 steps of the `study` preset and its",
            "variants (`docs/objectives.md`, \"The adaptive half\", and its amendment). Generated by",
            f"`python -m studies.adaptive_poles` from `docs/{PAGE}.json`. Per task: " + ", ".join(SHORT[t] for t in tasks) + ".", "",
            "## Means over the pre-training seeds measured", "", table(means(scores)), "",
            "## The rule, on the seeds measured", "",
            f"Means over the seeds each candidate shares with the study preset (`{REFERENCE}`) and the random initialisation, "
            f"points. The rule: modulation and five-task means at most {MEAN_MARGIN:g} below the study preset, no modulation "
            f"task more than {TASK_MARGIN:g} below the random initialisation, and estimates that follow the AM rate better "
            "than the initialisation's (paired interval above zero); it is read on seeds 1-3 only.", ""]
    lines, _ = rule(scores, adaptivity)
    body = head + lines + ["", "## Every run", "", table(scores), ""]
    note = str(document.get("note", ""))
    return "\n".join(body + ([note, ""] if note else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.adaptive_poles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screen", type=Path, help="validation.json of `studies.objectives`")
    parser.add_argument("--stored", type=Path, help="a stored screen with the study preset's and the random initialisations' rows")
    parser.add_argument("--docs", type=Path)
    parser.add_argument("--adaptivity", nargs="*", default=[], metavar="VARIANT=TEXT",
                        help="the adaptivity cell of a candidate (e.g. 'trained_visible=+0.01 [-0.02, +0.04]')")
    parser.add_argument("--note", default=None, help="the paragraph under the tables (default: keep the page's)")
    parser.add_argument("--from-docs", type=Path)
    args = parser.parse_args(argv)
    if args.from_docs:
        document = json.loads((args.from_docs / f"{PAGE}.json").read_text())
        (args.from_docs / f"{PAGE}.md").write_text(render(document))
        return 0
    if not (args.screen and args.stored and args.docs):
        parser.error("give --screen, --stored and --docs, or --from-docs")
    page = args.docs / f"{PAGE}.json"
    old = json.loads(page.read_text()) if page.exists() else {"scores": {}, "note": ""}
    stored = json.loads(args.stored.read_text())
    measured = json.loads(args.screen.read_text())
    scores = {name: stored[name] for name in STORED_ROWS} | {k: v for k, v in old["scores"].items() if k not in STORED_ROWS} | measured
    adaptivity = dict(old.get("adaptivity", {}))
    for item in args.adaptivity:
        variant, _, text = item.partition("=")
        if variant not in CANDIDATES or not text:
            parser.error(f"--adaptivity {item!r}: expected VARIANT=TEXT with VARIANT one of {', '.join(CANDIDATES)}")
        adaptivity[variant] = text
    document = {"scores": scores, "adaptivity": adaptivity, "note": old.get("note", "") if args.note is None else args.note}
    page.write_text(json.dumps(document, indent=1) + "\n")
    (args.docs / f"{PAGE}.md").write_text(render(document))
    print(render(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
