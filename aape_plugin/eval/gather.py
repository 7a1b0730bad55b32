"""Rows computed on each data-parallel rank, brought together through a fairseq2 gang.

The readers shard clips across ranks; evaluation (probe embeddings, extraction, the test pass of
fine-tuning) needs all of them in one place, and the contrastive term may use every rank's clips
as negatives. Ranks may hold different numbers of rows (the shards differ by one clip, and
unreadable clips are skipped), so tensors are padded to the longest shard (:func:`pad_rows`, the
one padding rule of both, in :mod:`aape_plugin.gang_rows`), exchanged and cut back. Results are in rank order; callers that need
clip order sort by the clip indices (:func:`in_clip_order`).

Two ways to gather, by what the caller needs:

* :func:`gather_rows` with ``to="all"``: every rank gets every row (the probe and the test pass,
  whose rows are small: a few thousand clip embeddings or logits).
* ``to="first"``: only rank 0 gets them, one rank's shard at a time over point-to-point
  messages, each moved to host memory as it arrives: no rank holds another rank's rows on its
  device, and ranks other than 0 hold nothing but their own (extraction, whose frame embeddings
  of a large set are tens of gigabytes).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
from fairseq2.gang import Gang
from torch import Tensor

from aape_plugin.gang_rows import pad_rows, shard_sizes


def gather_rows(gang: Gang, rows: dict[str, Tensor], *, to: Literal["all", "first"] = "all") -> dict[str, Tensor] | None:
    """Every rank's ``rows`` (tensors sharing their first dimension), concatenated in rank
    order, on the CPU; with ``to="first"`` on rank 0 only (others get ``None``). A rank without
    rows passes empty tensors of the right trailing shape."""
    if gang.size == 1:
        return {key: value.cpu() for key, value in rows.items()}

    sizes = {key: value.size(0) for key, value in rows.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"`rows` must share their first dimension, but have {sizes}.")

    counts = shard_sizes(gang, next(iter(sizes.values()), 0))

    if to == "first":
        return _gather_to_first(gang, rows, counts)

    longest = max(counts)
    out = {}
    for key, value in rows.items():
        padded = pad_rows(value.to(gang.device), longest)
        # Ranks one after the other along the first dimension (the layout gloo and NCCL share).
        gathered = torch.empty((gang.size * longest, *value.shape[1:]), dtype=value.dtype, device=gang.device)
        gang.all_gather(gathered, padded.contiguous())
        out[key] = torch.cat([gathered[r * longest : r * longest + n] for r, n in enumerate(counts)]).cpu()
    return out


def _gather_to_first(gang: Gang, rows: dict[str, Tensor], counts: list[int]) -> dict[str, Tensor] | None:
    group = gang.as_process_group()
    first = dist.get_global_rank(group, 0)
    if gang.rank != 0:
        for value in rows.values():
            if value.size(0):
                dist.send(value.to(gang.device).contiguous(), dst=first, group=group)
        return None
    out = {key: [value.cpu()] for key, value in rows.items()}
    for rank in range(1, gang.size):
        if not counts[rank]:
            continue
        source = dist.get_global_rank(group, rank)
        for key, value in rows.items():
            buffer = torch.empty((counts[rank], *value.shape[1:]), dtype=value.dtype, device=gang.device)
            dist.recv(buffer, src=source, group=group)
            out[key].append(buffer.cpu())
    return {key: torch.cat(parts) for key, parts in out.items()}


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
