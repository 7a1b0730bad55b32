"""The contrastive term's rows from every data-parallel rank (all-gather with gradient).

Each rank computes the same loss over all ranks' rows. The backward of the all-gather sums,
into each rank's own rows, the gradients every rank computed for them; DDP (and FSDP) then
average over ranks, which leaves exactly the gradient of that one loss. Rows are gathered over
the data-parallel gang (not the whole world: with tensor or pipeline parallelism the other
ranks of the world hold the same clips), padded to the longest rank with the same rule as the
evaluation gathers (:func:`aape_plugin.eval.gather.pad_rows`) and cut back.
"""

from __future__ import annotations

import torch
import torch.distributed.nn.functional as dist_fn
from fairseq2.gang import Gang
from torch import Tensor

from aape_plugin.eval.gather import pad_rows, shard_sizes


def contrastive_rows(embeddings: Tensor, clip_index: Tensor, gang: Gang | None) -> tuple[Tensor, Tensor]:
    """``(embeddings, clip_index)`` of this rank, or of all ranks of the data-parallel ``gang``
    (clip indices offset per rank, so that clips of different ranks never count as one).

    Without gradients (validation) every rank keeps its own rows: ranks may run different
    numbers of validation batches there, and a collective would wait for the others.
    """
    if gang is None or gang.size == 1 or not embeddings.requires_grad:
        return embeddings, clip_index

    sizes = shard_sizes(gang, embeddings.size(0))
    longest = max(sizes)
    group = gang.as_process_group()

    rows = dist_fn.all_gather(pad_rows(embeddings, longest).contiguous(), group=group)

    index = pad_rows(clip_index, longest).contiguous()
    indices = [torch.empty_like(index) for _ in range(gang.size)]
    gang.all_gather_to_list(indices, index)
    # Clip indices are 0 .. B-1 on every rank (B clips per rank at most): offset by the longest.
    stride = longest

    return (
        torch.cat([r[:n] for r, n in zip(rows, sizes)]),
        torch.cat([i[:n] + rank * stride for rank, (i, n) in enumerate(zip(indices, sizes))]),
    )
