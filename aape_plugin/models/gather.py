"""The contrastive term's rows from every data-parallel rank (all-gather with gradient).

Each rank computes the same loss over all ranks' rows. The backward of the all-gather sums,
into each rank's own rows, the gradients every rank computed for them; DDP (and FSDP) then
average over ranks, which leaves exactly the gradient of that one loss. Rows are gathered over
the data-parallel gang (not the whole world: with tensor or pipeline parallelism the other
ranks of the world hold the same clips).

No value is read back to the host, so a training step does not wait for the device: instead
of exchanging how many rows each rank has, every rank pads its rows to ``max_rows`` (the
configured batch times the clones, known before the step) with the padding rule of
:func:`aape_plugin.gang_rows.pad_rows`, and a validity mask travels with them; the loss leaves
the padding out (:func:`aape_plugin.losses.multi_mask_contrastive_loss`).
"""

from __future__ import annotations

from typing import Any

import torch
from fairseq2.gang import Gang, ReduceOperation
from torch import Tensor

from aape_plugin.gang_rows import pad_rows


class _AllGatherWithGradient(torch.autograd.Function):
    """Every rank's rows, concatenated in rank order; backward: the sum over ranks of the
    gradients for this rank's rows (an all-reduce of the whole gradient, then this rank's slice).

    Written here because ``torch.distributed.nn.functional.all_gather`` cannot run backward on
    a gloo subgroup (its all-to-all scatters from the group's rank numbers as if they were global
    ones), and a data-parallel gang smaller than the world is exactly such a group.
    """

    @staticmethod
    def forward(ctx: Any, rows: Tensor, gang: Gang) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(rows) for _ in range(gang.size)]
        gang.all_gather_to_list(parts, rows.contiguous())
        ctx.gang = gang
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        gang: Gang = ctx.gang
        total = grad.contiguous().clone()
        gang.all_reduce(total, ReduceOperation.SUM)
        rows = total.size(0) // gang.size
        return total[gang.rank * rows : (gang.rank + 1) * rows], None


def contrastive_rows(embeddings: Tensor, clip_index: Tensor, gang: Gang | None, max_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(embeddings, clip_index, valid)`` of this rank (``valid`` is ``None``: all rows are
    real), or of all ranks of the data-parallel ``gang``, each padded to ``max_rows`` rows
    (``valid`` marks the real ones; clip indices offset per rank, so that clips of different
    ranks never count as one).

    Without gradients (validation) every rank keeps its own rows: ranks may run different
    numbers of validation batches there, and a collective would wait for the others.
    """
    if gang is None or gang.size == 1 or not embeddings.requires_grad:
        return embeddings, clip_index, None

    rows = embeddings.size(0)
    if max_rows is None or rows > max_rows:
        raise ValueError(f"Gathering negatives needs `max_rows` >= the {rows} rows of this rank (the batch size times the "
                         f"clones), but it is {max_rows}.")

    gathered = _AllGatherWithGradient.apply(pad_rows(embeddings, max_rows), gang)

    # Clip indices are 0 .. B-1 on every rank (B <= max_rows clips): offset by max_rows per rank.
    valid = torch.ones(rows, dtype=torch.int64, device=clip_index.device)
    meta = torch.stack([pad_rows(clip_index.to(torch.int64), max_rows), pad_rows(valid, max_rows)]).contiguous()
    metas = [torch.empty_like(meta) for _ in range(gang.size)]
    gang.all_gather_to_list(metas, meta)

    offsets = torch.arange(gang.size, device=meta.device, dtype=torch.int64).repeat_interleave(max_rows) * max_rows
    everyone = torch.cat(metas, dim=1)

    return gathered, everyone[0] + offsets, everyone[1].bool()
