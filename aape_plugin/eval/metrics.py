"""Task metrics: accuracy (single-label) and macro mean average precision (multi-label).

mAP has one definition everywhere (probe, fine-tuning validation and test): scikit-learn's
average precision per class, averaged over the classes that have a positive example, as
published AudioSet results compute it (AST, M2D, EAT). Counting classes without positives as
0 (torcheval's ``MultilabelAUPRC``) lowers the score of any split that misses some classes.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import Tensor
from torcheval.metrics import MultilabelAUPRC


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


class MeanAveragePrecision(MultilabelAUPRC):
    """:func:`mean_average_precision` as a torcheval metric for fairseq2's metric bags:
    torcheval's state (every score and target, merged across ranks), scored our way."""

    @torch.inference_mode()
    def compute(self) -> Tensor:
        if not self.inputs:
            return torch.tensor(0.0)
        return torch.tensor(mean_average_precision(torch.cat(self.inputs).cpu(), torch.cat(self.targets).cpu()))


def score(outputs: Tensor, labels: Tensor, multi_label: bool) -> float:
    return mean_average_precision(outputs, labels) if multi_label else accuracy(outputs, labels)


def metric_name(multi_label: bool) -> str:
    return "mAP" if multi_label else "accuracy"
