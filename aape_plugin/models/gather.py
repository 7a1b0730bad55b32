"""The contrastive term's rows from every data-parallel rank (all-gather with gradient).

Each rank computes the same loss over all ranks' rows. The backward of the all-gather sums,
into each rank's own rows, the gradients every rank computed for them; DDP (and FSDP) then
average over ranks, which leaves exactly the gradient of that one loss. Ranks may hold
different numbers of rows: rows are padded to the longest and cut back after the gather.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor


def contrastive_rows(embeddings: Tensor, clip_index: Tensor, *, across_ranks: bool) -> tuple[Tensor, Tensor]:
    """``(embeddings, clip_index)`` of this rank, or of all ranks when ``across_ranks`` (clip
    indices offset per rank, so that clips of different ranks never count as one).

    Without gradients (validation) every rank keeps its own rows: ranks may run different
    numbers of validation batches there, and a collective would wait for the others.
    """
    if not across_ranks or not embeddings.requires_grad or not dist.is_available() or not dist.is_initialized():
        return embeddings, clip_index

    world = dist.get_world_size()
    if world == 1:
        return embeddings, clip_index

    counts = [torch.zeros(1, dtype=torch.int64, device=embeddings.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([embeddings.size(0)], dtype=torch.int64, device=embeddings.device))
    sizes = [int(c) for c in counts]
    longest = max(sizes)

    pad = longest - embeddings.size(0)
    padded = torch.cat([embeddings, embeddings.new_zeros(pad, *embeddings.shape[1:])]) if pad else embeddings
    rows = dist_fn.all_gather(padded.contiguous())

    index = torch.cat([clip_index, clip_index.new_zeros(pad)]) if pad else clip_index
    indices = [torch.empty_like(index) for _ in range(world)]
    dist.all_gather(indices, index.contiguous())
    stride = max(int(i[:n].max()) + 1 if n else 0 for i, n in zip(indices, sizes))

    return (
        torch.cat([r[:n] for r, n in zip(rows, sizes)]),
        torch.cat([i[:n] + rank * stride for rank, (i, n) in enumerate(zip(indices, sizes))]),
    )
