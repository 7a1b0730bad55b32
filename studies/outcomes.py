"""Per-clip outcomes stored compactly in the repository, so that every interval a page states can
be recomputed from what is published.

A probe's test result is one bit per test clip (right or wrong). ``docs/<page>-outcomes.json``
holds, once, each task's test clips (paths relative to the study corpus, in the order the bits
follow) and, per encoder and task, the validation and test accuracy and the bits packed into
bytes, base64-encoded: about 50 bytes per 400 clips.
"""

from __future__ import annotations

import re

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aape_plugin.eval.bootstrap import Interval


def seed_difference(a: Sequence[tuple[str, Mapping[str, Any]]], b: Sequence[tuple[str, Mapping[str, Any]]],
                    tasks: Sequence[str], *, paired: bool = True) -> Interval:
    """``a`` minus ``b`` over ``tasks`` with :func:`aape_plugin.eval.seed_interval.seed_t_interval`:
    each side one ``(name, per-task outcomes)`` per seed (anything with ``clips`` and
    ``correct``), every side's clips checked to be the same, in the same order, before pairing."""
    from aape_plugin.eval.bootstrap import check_same_clips
    from aape_plugin.eval.seed_interval import seed_t_interval

    for t in tasks:
        check_same_clips([(name, r[t].clips) for name, r in (*a, *b)])
    pa = {t: np.array([r[t].correct for _, r in a]) for t in tasks}
    pb = {t: np.array([r[t].correct for _, r in b]) for t in tasks}
    return seed_t_interval(pa, pb, paired=paired)


_NAME = re.compile(r"^(?P<model>.+?)(?:, \d+ steps)?, seed (?P<seed>\d+)$")


def model_and_seed(name: str) -> tuple[str, int | None]:
    """An encoder's stored name, ``"MODEL[, N steps], seed S"``, as ``(MODEL, S)``; a name
    without a seed (a feature with no model) as ``(name, None)``."""
    match = _NAME.match(name)
    return (match["model"], int(match["seed"])) if match else (name, None)


def pack_bits(bits: list[int]) -> str:
    return base64.b64encode(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()).decode("ascii")


def unpack_bits(text: str, count: int) -> list[int]:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:count].astype(int).tolist()


@dataclass(frozen=True)
class Outcome:
    """What a stored outcome gives back: the scores and the test clips' right/wrong."""

    valid: float
    test: float
    clips: list[str]
    correct: list[int]


def relative(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def store(scores: Mapping[str, Mapping[str, object]], *, corpus: Path | None) -> dict[str, object]:
    """``{encoder: {task: ProbeScore-like}}`` -> the JSON-ready outcomes (clip lists once)."""
    clips: dict[str, list[str]] = {}
    encoders: dict[str, dict[str, dict[str, object]]] = {}
    for name, per_task in scores.items():
        encoders[name] = {}
        for task, score in per_task.items():
            names = [relative(c, corpus) for c in score.clips]  # type: ignore[attr-defined]
            if task not in clips:
                clips[task] = names
            elif clips[task] != names:
                raise ValueError(f"{name}: the test clips of {task} differ from another encoder's; they cannot be paired.")
            encoders[name][task] = {"valid": score.valid, "test": score.test,  # type: ignore[attr-defined]
                                    "correct": pack_bits(score.correct)}  # type: ignore[attr-defined]
    return {"clips": clips, "encoders": encoders}


def load(data: Mapping[str, object]) -> dict[str, dict[str, Outcome]]:
    """The stored outcomes back, per encoder and task."""
    clips: Mapping[str, list[str]] = data["clips"]  # type: ignore[assignment]
    out: dict[str, dict[str, Outcome]] = {}
    for name, per_task in data["encoders"].items():  # type: ignore[attr-defined]
        out[name] = {task: Outcome(v["valid"], v["test"], list(clips[task]), unpack_bits(v["correct"], len(clips[task])))
                     for task, v in per_task.items()}
    return out


def load_readings(docs: Path, names: tuple[str, ...]) -> tuple[dict[str, dict[str, Outcome]], dict[str, object]]:
    """The stored outcomes of the readings ``DOCS/<name>.json``, and the learning-rate choices
    stored beside them (fine-tuning readings have some; probe readings none)."""
    import json

    outcomes: dict[str, dict[str, Outcome]] = {}
    choices: dict[str, object] = {}
    for name in names:
        data = json.loads((docs / f"{name}.json").read_text())
        for encoder, per_task in load(data).items():  # task by task: readings may hold other tasks of one encoder
            outcomes.setdefault(encoder, {}).update(per_task)
        choices.update(data.get("choices", {}))
    return outcomes, choices


def with_reused(measured: Mapping[str, Mapping[str, object]], reused: Mapping[str, Mapping[str, Outcome]],
                wanted: set[str] | None = None) -> dict[str, Mapping[str, object]]:
    """``measured`` plus the stored outcomes of ``reused`` it lacks (those of ``wanted`` names
    only, when given): a later reading compares new models with models whose runs were scored
    and published before (the same test clips; :func:`store` refuses to pair any other)."""
    out: dict[str, Mapping[str, object]] = {name: per_task for name, per_task in reused.items()
                                            if name not in measured and (wanted is None or name in wanted)}
    out.update(measured)
    return out
