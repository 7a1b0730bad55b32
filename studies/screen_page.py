"""The page of a validation screen: validation accuracy of the converged probe per run and its
means over seeds, with the screen's rule (:class:`studies.experiments.ScreenRule`) evaluated on
the seeds measured. The stored form is the page's own JSON: ``{"scores": {encoder: {task:
accuracy}}, "adaptivity": {candidate: text}, "note": text}``."""

from __future__ import annotations

from collections.abc import Mapping

from studies.common import MODULATION_TASKS, SHORT, TASKS
from studies.experiments import Experiment, ScreenRule
from studies.outcomes import model_and_seed
from studies.probe_measure import validation_table


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


def rule(scores: Mapping[str, Mapping[str, float]], adaptivity: Mapping[str, str], screen: ScreenRule) -> tuple[list[str], dict[str, object]]:
    """The rule for each candidate, on the seeds it shares with the reference and the random
    initialisation (means over those seeds, points)."""
    models = per_seed(scores)
    lines = ["| candidate | seeds | modulation mean minus study preset | five-task mean minus study preset | "
             + " | ".join(f"{SHORT[t]} minus random init" for t in MODULATION_TASKS) + " | adaptivity (mean rho, trained minus init) | rule |",
             "|" + "---|" * (6 + len(MODULATION_TASKS))]
    data: dict[str, object] = {}
    for candidate in screen.candidates:
        seeds = sorted(set(models.get(candidate, {})) & set(models.get(screen.reference, {})) & set(models.get(screen.random, {})))
        if not seeds:
            continue
        mine = [models[candidate][s] for s in seeds]
        theirs = [models[screen.reference][s] for s in seeds]
        random = [models[screen.random][s] for s in seeds]
        mod = _mean([_group(r, MODULATION_TASKS) for r in mine]) - _mean([_group(r, MODULATION_TASKS) for r in theirs])
        five = _mean([_group(r, TASKS) for r in mine]) - _mean([_group(r, TASKS) for r in theirs])
        tasks = {t: 100 * (_mean([r[t] for r in mine]) - _mean([r[t] for r in random])) for t in MODULATION_TASKS}
        accuracy_ok = mod >= -screen.mean_margin and five >= -screen.mean_margin and min(tasks.values()) >= -screen.task_margin
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


def render(document: Mapping[str, object], experiment: Experiment) -> str:
    """The page (Markdown) from the screen's stored JSON."""
    assert experiment.rule is not None, f"{experiment.name} declares no screen rule"
    screen = experiment.rule
    scores: Mapping[str, Mapping[str, float]] = document["scores"]  # type: ignore[assignment]
    adaptivity: Mapping[str, str] = document.get("adaptivity", {})  # type: ignore[assignment]
    body = [experiment.head + "## Means over the pre-training seeds measured", "", validation_table(means(scores)), "",
            "## The rule, on the seeds measured", "",
            f"Means over the seeds each candidate shares with the study preset (`{screen.reference}`) and the random initialisation, "
            f"points. The rule: modulation and five-task means at most {screen.mean_margin:g} below the study preset, no modulation "
            f"task more than {screen.task_margin:g} below the random initialisation, and estimates that follow the AM rate better "
            "than the initialisation's (paired interval above zero); it is read on seeds 1-3 only.", ""]
    lines, _ = rule(scores, adaptivity, screen)
    body += lines + ["", "## Every run", "", validation_table(scores), ""]
    note = str(document.get("note", ""))
    return "\n".join(body + ([note, ""] if note else []))


def merged(old: Mapping[str, object], stored_rows: Mapping[str, Mapping[str, float]],
           measured: Mapping[str, Mapping[str, float]]) -> dict[str, object]:
    """The screen's JSON with new rows: the reused rows first, then the rows the page already
    holds, then the measured ones (a row measured again replaces the old one)."""
    old_scores: Mapping[str, Mapping[str, float]] = old.get("scores", {})  # type: ignore[assignment]
    scores = dict(stored_rows) | {k: v for k, v in old_scores.items() if k not in stored_rows} | dict(measured)
    return {"scores": scores, "adaptivity": dict(old.get("adaptivity", {})), "note": old.get("note", "")}  # type: ignore[call-overload]
