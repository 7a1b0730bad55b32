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
QUOTED_IN = ("README.md", "docs/design.md")


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


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Bullet points: what pre-training gives under fine-tuning and the probe, AaPE against the
    plain stem, shift stability, the length curve, and the budget."""
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
                lines.append(text + ".")
    shift = results.get("shift", {}).get("claims", {})
    pre = shift.get("aape_tiny, pre-trained minus vit_tiny, pre-trained, frame cosine, mean over tasks")
    rnd = shift.get("aape_tiny, random init minus vit_tiny, random init, frame cosine, mean over tasks")
    if pre:
        text = f"- **Shift stability** (frame-token cosine under sub-patch shifts, AaPE minus plain): pre-trained {Interval(**pre).describe(1.0, 3)}"
        if rnd:
            text += f", random init {Interval(**rnd).describe(1.0, 3)}"
        lines.append(text + ".")
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
        for arch, points in curve.items():
            along = [p for p in points if "fine-tuning, 10 per class" in p]
            if len(along) > 1:
                growth.append(f"`{arch}` " + ", ".join(f"{100 * p['fine-tuning, 10 per class']['estimate']:+.1f}" for p in along))
                steps = ", ".join(f"{p['step']:,}" for p in along)
        if growth:
            text += f". Fine-tuning gap (10 per class) at steps {steps}: " + "; ".join(growth)
        for regime, section in sorted(results.get("curve_end", {}).items()):
            mean = _claim(section, f"AaPE minus plain stem (both at step {long_steps:,}), mean over the five tasks")
            freq = _claim(section, f"AaPE minus plain stem (both at step {long_steps:,}), pitch and instrument")
            if mean:
                text += (f". AaPE minus the plain stem, both fine-tuned ({regime}) from step {long_steps:,}: {mean} on the mean, "
                         f"{freq} on pitch and instrument")
        lines.append(text + ".")
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


def block(results: dict[str, Any]) -> str:
    return "\n".join([BEGIN, *summary_lines(results), END])


def update_generated_blocks(results: dict[str, Any], repo: Path) -> None:
    """Rewrites the study-summary block of every file in :data:`QUOTED_IN` that has one."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    for name in QUOTED_IN:
        path = repo / name
        if path.is_file():
            text = path.read_text()
            if BEGIN in text:
                path.write_text(pattern.sub(lambda _: block(results), text))


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
