"""Task metrics: accuracy (single-label) and macro mean average precision (multi-label)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score
from torch import Tensor


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(dim=-1) == labels).float().mean())


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """Macro mAP over the classes that have a positive example (scikit-learn's AP; classes
    without positives have no defined AP and are left out, as is usual for AudioSet)."""
    y = targets.numpy().astype(np.int64)
    s = scores.float().numpy()
    present = y.sum(axis=0) > 0
    if not present.any():
        raise ValueError("mAP needs at least one positive label.")
    return float(average_precision_score(y[:, present], s[:, present], average="macro"))


def score(outputs: Tensor, labels: Tensor, multi_label: bool) -> float:
    return mean_average_precision(outputs, labels) if multi_label else accuracy(outputs, labels)


def metric_name(multi_label: bool) -> str:
    return "mAP" if multi_label else "accuracy"
