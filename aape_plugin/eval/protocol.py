"""Which clips train, select and test a probe: the task's own splits, or leave-one-fold-out."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from aape_plugin.data.errors import AudioDataError

_FOLD = re.compile(r"^(fold)?_?\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """A subset of one split's clips."""

    split: str
    rows: tuple[int, ...] | None = None
    """Row numbers in the split's clip list; ``None``: all of them."""


@dataclass(frozen=True)
class Round:
    name: str
    train: tuple[Part, ...]
    valid: tuple[Part, ...]
    test: tuple[Part, ...]


def fold_splits(splits: list[str]) -> list[str]:
    """The splits named like folds (``fold1``, ``1``, ``fold_3``), in numeric order."""
    folds = [s for s in splits if _FOLD.match(s)]
    return sorted(folds, key=lambda s: int(re.sub(r"\D", "", s)))


def held_out_valid(labels: list[object], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Rows kept for training and rows held out for early stopping (EVAR: 10% of train),
    stratified when every class has at least two clips, so that each class stays in train."""
    rows = np.arange(len(labels))
    strat: list[object] | None = labels
    counts: dict[object, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    if min(counts.values()) < 2 or any(isinstance(lab, tuple) for lab in labels):
        strat = None
    n_valid = max(1, int(round(fraction * len(rows))))
    if strat is not None:
        n_valid = max(n_valid, len(counts))
    train, valid = train_test_split(rows, test_size=n_valid, random_state=seed, stratify=strat)
    return sorted(train.tolist()), sorted(valid.tolist())


def plan_rounds(
    splits: list[str],
    labels_of: dict[str, list[object]],
    *,
    folds: list[str] | None,
    valid_fraction: float,
    seed: int,
) -> list[Round]:
    """``train``/``valid``/``test`` splits give one round (valid held out from train if
    missing); fold splits give one round per fold (the others train, a held-out part of them
    selects). The test data never selects anything."""
    folds = folds if folds is not None else fold_splits(splits)

    if folds:
        missing = [f for f in folds if f not in splits]
        if missing:
            raise AudioDataError(f"The folds {missing} are not splits of the task (splits: {splits}).")
        rounds = []
        for test_fold in folds:
            rest = [f for f in folds if f != test_fold]
            pooled = [(f, i) for f in rest for i in range(len(labels_of[f]))]
            keep, hold = held_out_valid([labels_of[f][i] for f, i in pooled], valid_fraction, seed)

            def parts(selected: list[int]) -> tuple[Part, ...]:
                by_split: dict[str, list[int]] = {}
                for k in selected:
                    f, i = pooled[k]
                    by_split.setdefault(f, []).append(i)
                return tuple(Part(f, tuple(rows)) for f, rows in by_split.items())

            rounds.append(Round(test_fold, parts(keep), parts(hold), (Part(test_fold),)))
        return rounds

    if "train" not in splits or "test" not in splits:
        raise AudioDataError(
            f"A probe needs `train` and `test` splits (and ideally `valid`), or fold splits "
            f"(fold1, fold2, ...); the task has {splits}."
        )

    if "valid" in splits:
        return [Round("test", (Part("train"),), (Part("valid"),), (Part("test"),))]

    keep, hold = held_out_valid(labels_of["train"], valid_fraction, seed)
    return [Round("test", (Part("train", tuple(keep)),), (Part("train", tuple(hold)),), (Part("test"),))]


def per_class_subset(labels: list[object], per_class: int, seed: int) -> list[int]:
    """Rows of at most ``per_class`` clips of each class (all of a class that has fewer), drawn
    with ``seed``: the low-label regime. The same labels, count and seed always give the same
    rows, so every model is trained on the same clips (the study records them).

    Single-label tasks only: with several labels per clip "clips per class" is not defined.
    """
    if per_class < 1:
        raise AudioDataError(f"`train_per_class` must be >= 1, but is {per_class}.")
    if any(isinstance(label, (tuple, list)) for label in labels):
        raise AudioDataError("`train_per_class` needs a single-label task; this one has several labels per clip.")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        by_class.setdefault(str(label), []).append(row)
    chosen: list[int] = []
    for name in sorted(by_class):
        rows = by_class[name]
        chosen += [rows[i] for i in sorted(rng.permutation(len(rows))[:per_class])]
    return sorted(chosen)


def limit_train(rounds: list[Round], labels_of: dict[str, list[object]], per_class: int, seed: int) -> list[Round]:
    """``rounds`` with each round's training clips cut to :func:`per_class_subset` of them
    (validation and test clips unchanged)."""
    out = []
    for rnd in rounds:
        pooled = [(part.split, row) for part in rnd.train
                  for row in (part.rows if part.rows is not None else range(len(labels_of[part.split])))]
        keep = per_class_subset([labels_of[split][row] for split, row in pooled], per_class, seed)
        by_split: dict[str, list[int]] = {}
        for k in keep:
            split, row = pooled[k]
            by_split.setdefault(split, []).append(row)
        out.append(Round(rnd.name, tuple(Part(s, tuple(rows)) for s, rows in by_split.items()), rnd.valid, rnd.test))
    return out
