"""The study's headline numbers as sentences, generated from ``docs/results.json``.

The README and ``docs/design.md`` quote them between ``<!-- study-summary:begin -->`` and
``<!-- study-summary:end -->``; ``make study`` rewrites those blocks, and a test checks that they
say what ``results.json`` says (no hand copies to drift).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aape_plugin.eval.bootstrap import Interval

BEGIN, END = "<!-- study-summary:begin -->", "<!-- study-summary:end -->"
QUOTED_IN = ("docs/design.md",)
IN_SHORT = "### In short: the five-task study"
"""The heading of the study's own summary in ``docs/results.md`` (below the current findings)."""


def _claim(section: dict[str, Any], what: str) -> str | None:
    found = section.get("claims", {}).get(what)
    return None if found is None else Interval(**found).describe()


def _seeds(section: dict[str, Any], arch: str, results: dict[str, Any]) -> str:
    """`` (1 seed)`` where a comparison has fewer seeds than the study plans (a cell still running)."""
    planned = len(results.get("settings", {}).get("finetune_seeds", ())) if "chosen_lr" in section else 0
    counts = [len(per_task) for label in (f"{arch}, pre-trained", f"{arch}, random init")
              for per_task in section.get("test", {}).get(label, {}).values()]
    if not counts or min(counts) >= planned:
        return ""
    return f" ({min(counts)} seed{'s' if min(counts) > 1 else ''} so far)"


def summary_lines(results: dict[str, Any], budget_check: dict[str, Any] | None = None) -> list[str]:
    """Bullet points: what pre-training gives under fine-tuning and the probe, AaPE against the
    plain stem, shift stability, the length curve, and the budget. ``budget_check``: the
    contents of ``docs/budget-check.json`` (the budget check run on its own, both arms 3x
    longer), which then replaces the study page's own, older budget-check line."""
    lines = []
    for protocol, key in (("Fine-tuning", "finetune"), ("Linear probe", "probe")):
        for regime, section in sorted(results.get(key, {}).items()):  # as results.json orders them
            parts = []
            for arch in ("aape_tiny", "vit_tiny"):
                claim = _claim(section, f"{arch}: pre-trained minus random init, mean over the five tasks")
                if claim:
                    parts.append(f"`{arch}` {claim}" + _seeds(section, arch, results))
            aape_vs_plain = _claim(section, "AaPE minus plain stem (both pre-trained), mean over the five tasks")
            freq = _claim(section, "AaPE minus plain stem (both pre-trained), pitch and instrument")
            if parts:
                text = f"- **{protocol}, {regime}**: pre-trained minus random initialisation, mean over the five tasks, points: " + "; ".join(parts)
                if aape_vs_plain:
                    text += f". AaPE minus the plain stem (both pre-trained): {aape_vs_plain} on the mean, {freq} on pitch and instrument"
                plateau = results.get("finetune_plateau")
                if key == "finetune" and regime == "10 per class" and plateau:
                    text += (f". Caveat: at this budget the random initialisations were still learning ({plateau['best_at_last_validation']} "
                             f"of {plateau['runs']} of their runs scored best at their last validation; see the budget check)")
                lines.append(text + ".")
    shift = results.get("shift", {}).get("claims", {})
    pre = shift.get("aape_tiny, pre-trained minus vit_tiny, pre-trained, frame cosine, mean over tasks")
    rnd = shift.get("aape_tiny, random init minus vit_tiny, random init, frame cosine, mean over tasks")
    if pre:
        text = f"- **Shift stability** (frame-token cosine under sub-patch shifts, AaPE minus plain): pre-trained {Interval(**pre).describe(1.0, 3)}"
        if rnd:
            text += f", random init {Interval(**rnd).describe(1.0, 3)}"
        lines.append(text + "; the alias branch is what moves, on steady tones; on noise carriers the sign flips "
                     "(`docs/shift-stability.md`).")
    curve = results.get("curve", {})
    reached = results.get("long_runs", {})
    if reached:
        parts = []
        for arch, points in curve.items():
            measured = [p for p in points if "probe, all labels" in p]
            if measured:
                last = measured[-1]
                seeds = last.get("seeds", {})
                quoted = [f"{column} {Interval(**last[column]).describe()}" + (f" ({seeds[column]} fine-tuning seeds)" if seeds.get(column, 1) > 1 else "")
                          for column in sorted(last) if column.startswith(("probe", "fine-tuning"))]
                parts.append(f"`{arch}` at step {last['step']:,}: " + ", ".join(quoted))
        long_steps = results.get("settings", {}).get("long_steps", 30_000)
        if all(steps >= long_steps for steps in reached.values()):
            text = f"- **Length curve** (one {long_steps:,}-step run per stem, both finished)"
        else:
            text = (f"- **Length curve** (one {long_steps:,}-step run per stem, so far at steps "
                    + ", ".join(f"{reached[a]:,} (`{a}`)" for a in sorted(reached)) + ")")
        if parts:
            text += "; gap to random initialisation at the last measured checkpoint, mean over tasks, points: " + "; ".join(parts)
        growth = []
        column = "fine-tuning, 10 per class"
        for arch, points in curve.items():
            along = [p for p in points if column in p]
            if len(along) > 1:
                growth.append(f"`{arch}` " + ", ".join(
                    f"{100 * p[column]['estimate']:+.1f}" + _ft_seeds(p.get("seeds", {}).get(column, 1)) for p in along))
                steps = ", ".join(f"{p['step']:,}" for p in along)
        if growth:
            text += f". Fine-tuning gap (10 per class; fine-tuning seeds in brackets) at steps {steps}: " + "; ".join(growth)
        for regime, section in sorted(results.get("curve_end", {}).items()):
            mean = _claim(section, f"AaPE minus plain stem (both at step {long_steps:,}), mean over the five tasks")
            freq = _claim(section, f"AaPE minus plain stem (both at step {long_steps:,}), pitch and instrument")
            if mean:
                text += (f". AaPE minus the plain stem, both fine-tuned ({regime}) from step {long_steps:,}: {mean} on the mean, "
                         f"{freq} on pitch and instrument")
        lines.append(text + ".")
    if budget_check is not None and budget_check.get("budget_check", {}).get("claims"):
        lines.append(_budget_check_line(budget_check, results.get("settings", {}).get("long_steps", 30_000)))
        check: dict[str, Any] = {}
    else:
        check = results.get("budget_check", {})
    if check.get("claims"):
        factor = check["factor"]
        long_steps = results.get("settings", {}).get("long_steps", 30_000)
        starts = ((", random init", " random init at the normal budget"), (", pre-trained", " pre-trained (main runs)"),
                  (f", {long_steps:,} steps", f" at step {long_steps:,}"),
                  (f", {long_steps:,} steps, {factor}x steps", f" at step {long_steps:,} fine-tuned {factor}x longer"))
        parts = []
        for arch in ("aape_tiny", "vit_tiny"):  # a fixed order (results.json sorts its keys)
            for start, name in starts:
                found = check["claims"].get(f"{arch}{start} minus {arch}, random init, {factor}x steps, mean over the five tasks")
                if found:
                    parts.append(f"`{arch}`{name} {Interval(**found).describe()}")
        lines.append(f"- **Budget check** (random initialisations fine-tuned {factor}x longer, 10 per class; each minus its arch's "
                     f"longer-trained random init, mean over the five tasks, points): " + "; ".join(parts) + ".")
    budget = results.get("budget_hours")
    if budget:
        lines.append(f"- **Budget** on 2 CPU cores so far: {budget['pretrain']:.1f} h of pre-training, {budget['finetune']:.1f} h of "
                     f"fine-tuning and {budget.get('measure', 0.0):.1f} h of probes and shift measurements (process hours, from the "
                     "runs' logs and the stored results).")
    return lines


def _ft_seeds(count: int) -> str:
    return f" ({count} seed{'s' if count > 1 else ''})"


def _budget_check_line(data: dict[str, Any], long_steps: int) -> str:
    """The budget check of ``docs/budget-check.md``: both arms fine-tuned longer, with the seed
    counts behind each interval and whether the longer budget had plateaued."""
    check = data["budget_check"]
    factor = check["factor"]
    parts = []
    for claim, found in sorted(check["claims"].items()):
        a = claim.split(" minus ")[0]
        seeds = min(len(v) for v in check["test"][a].values())
        one_run = f", one pre-training run, {seeds} fine-tuning seeds" if str(long_steps) in a.replace(",", "") else f", {seeds} seed{'s' if seeds > 1 else ''}"
        parts.append(f"{a} {Interval(**found).describe()}{one_run}")
    text = (f"- **Budget check** (`docs/budget-check.md`: fine-tuned {factor}x longer with 10 per class, each minus the random "
            f"initialisation fine-tuned {factor}x longer, mean over the five tasks, points): " + "; ".join(parts) + ". "
            f"The {long_steps:,}-step model is one pre-training run: its interval counts fine-tuning seeds and test clips, not "
            "pre-training seeds, and the learning rates of the longer runs are those chosen at the normal budget")
    plateau = data.get("longer_plateau")
    if plateau:
        text += (f"; {plateau['best_at_last_validation']} of {plateau['runs']} longer random-initialisation runs scored best at their "
                 f"last validation (the last third added {100 * plateau['mean_late_gain']:.1f} points on average)")
    return text + "."


def block(results: dict[str, Any], budget_check: dict[str, Any] | None = None) -> str:
    return "\n".join([BEGIN, *summary_lines(results, budget_check), END])


def published_budget_check(docs: Path) -> dict[str, Any] | None:
    """``docs/budget-check.json``, where the budget check has been run on its own."""
    import json

    check_file = docs / "budget-check.json"
    return json.loads(check_file.read_text()) if check_file.is_file() else None


def published_block(docs: Path) -> str:
    """The block the published ``docs/results.json`` (and ``docs/budget-check.json``, if any) give."""
    import json

    return block(json.loads((docs / "results.json").read_text()), published_budget_check(docs))


def refresh_in_short(docs: Path) -> None:
    """Rewrites the bullet points under :data:`IN_SHORT` of ``docs/results.md`` from the published
    data (the rest of the page reports runs that may no longer exist here)."""
    page = (docs / "results.md").read_text()
    head, rest = page.split(f"{IN_SHORT}\n\n", 1)
    old = rest.split("\n\n", 1)[1]
    (docs / "results.md").write_text(head + f"{IN_SHORT}\n\n" + "\n".join(published_block(docs).splitlines()[1:-1]) + "\n\n" + old)


def update_generated_blocks(results: dict[str, Any], repo: Path) -> None:
    """Rewrites the study-summary block of every file in :data:`QUOTED_IN` that has one."""
    check = published_budget_check(repo / "docs")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    for name in QUOTED_IN:
        path = repo / name
        if path.is_file():
            text = path.read_text()
            if BEGIN in text:
                path.write_text(pattern.sub(lambda _: block(results, check), text))


def quoted_blocks(repo: Path) -> dict[str, str]:
    """The study-summary block as it stands in each file that has one."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    out = {}
    for name in QUOTED_IN:
        path = repo / name
        match = pattern.search(path.read_text()) if path.is_file() else None
        if match:
            out[name] = match.group(0)
    return out
