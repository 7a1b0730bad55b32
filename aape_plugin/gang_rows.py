"""Rows of tensors spread over the ranks of a fairseq2 gang: the one padding rule and the
shard sizes, shared by the evaluation gathers (``eval/gather.py``) and the contrastive
negatives (``models/gather.py``), which both pad every rank's rows to a common length before a
collective and cut them back after."""

from __future__ import annotations

import torch
from fairseq2.gang import Gang
from torch import Tensor


def pad_rows(value: Tensor, length: int) -> Tensor:
    """``value`` with zero rows appended up to ``length`` rows (unchanged when it has them)."""
    missing = length - value.size(0)
    if missing <= 0:
        return value
    return torch.cat([value, value.new_zeros(missing, *value.shape[1:])])


def shard_sizes(gang: Gang, num_rows: int) -> list[int]:
    """The number of rows on every rank of ``gang``, in rank order (on every rank). It reads the
    counts back to the host: for evaluation, not for a training step."""
    count = torch.tensor([num_rows], device=gang.device, dtype=torch.int64)
    counts = torch.zeros(gang.size, device=gang.device, dtype=torch.int64)
    gang.all_gather(counts, count)
    return [int(c) for c in counts.tolist()]
