"""Rows computed on each data-parallel rank, gathered onto every rank.

The readers shard clips across ranks; evaluation (probe embeddings, extraction, the test pass
of fine-tuning) needs all of them in one place. Ranks may hold different numbers of rows (the
shards differ by one clip, and unreadable clips are skipped), so each tensor is padded to the
longest shard, all-gathered through the gang (on its device: NCCL needs CUDA tensors) and cut
back. The result is in rank order; callers that need clip order sort by the clip indices.
"""

from __future__ import annotations

import torch
from fairseq2.gang import Gang
from torch import Tensor


def gather_rows(gang: Gang, rows: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every rank's ``rows`` (tensors sharing their first dimension), concatenated in rank
    order, on the CPU. A rank without rows passes empty tensors of the right trailing shape."""
    if gang.size == 1:
        return rows

    sizes = {key: value.size(0) for key, value in rows.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"`rows` must share their first dimension, but have {sizes}.")

    count = torch.tensor([next(iter(sizes.values()), 0)], device=gang.device, dtype=torch.int64)
    counts = torch.zeros(gang.size, device=gang.device, dtype=torch.int64)
    gang.all_gather(counts, count)
    counts_list = counts.tolist()
    longest = max(counts_list)

    out = {}
    for key, value in rows.items():
        padded = torch.zeros((longest, *value.shape[1:]), dtype=value.dtype, device=gang.device)
        padded[: value.size(0)] = value
        # Ranks one after the other along the first dimension (the layout gloo and NCCL share).
        gathered = torch.empty((gang.size * longest, *value.shape[1:]), dtype=value.dtype, device=gang.device)
        gang.all_gather(gathered, padded)
        out[key] = torch.cat([gathered[r * longest : r * longest + n] for r, n in enumerate(counts_list)]).cpu()
    return out


def in_clip_order(rows: dict[str, Tensor], key: str = "indices") -> dict[str, Tensor]:
    """``rows`` sorted by their clip index (the order of the clip list, whatever the sharding)."""
    order = torch.argsort(rows[key])
    return {name: value[order] for name, value in rows.items()}


def gather_objects(gang: Gang, obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable, small: e.g. the clips a rank skipped), in rank order,
    on every rank: one broadcast from each rank in turn (fairseq2's gangs have no object
    all-gather)."""
    if gang.size == 1:
        return [obj]
    out = []
    for rank in range(gang.size):
        holder = [obj if rank == gang.rank else None]
        gang.broadcast_objects(holder, source_rank=rank)
        out.append(holder[0])
    return out
