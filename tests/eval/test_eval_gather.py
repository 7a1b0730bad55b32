"""Gathering rows across ranks (gloo processes): every rank, or rank 0 alone, and the
contrastive negatives over the data-parallel gang only.

What a rank holds is measured, not inferred: each process reads its own peak resident memory
(``VmHWM``, reset through ``/proc/self/clear_refs``) around the gather, with rows large enough
(64 MiB per rank) to stand out from the interpreter's noise."""

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fairseq2.device import CPU
from fairseq2.gang import FakeGang, ProcessGroupGang, create_parallel_gangs

from aape_plugin.eval.gather import gather_rows
from aape_plugin.gang_rows import pad_rows
from aape_plugin.losses import multi_mask_contrastive_loss
from aape_plugin.models.gather import contrastive_rows

BIG_ROWS = 64 << 20
"""Bytes of rows each rank holds in the memory test."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


def reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak_kb()


def start(rank: int, world: int, port: int) -> ProcessGroupGang:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    return ProcessGroupGang(dist.group.WORLD, CPU)


def gather_worker(rank: int, port: int, out: Path) -> None:
    gang = start(rank, 2, port)
    try:
        # Rank 0 has 3 rows, rank 1 has 2 (uneven shards), each row says whose it is.
        n = 3 - rank
        rows = {"x": torch.full((n, 4), float(rank)) + torch.arange(n)[:, None] / 10, "i": torch.arange(n) + 10 * rank}
        everyone = gather_rows(gang, rows)
        first = gather_rows(gang, rows, to="first")

        # What each rank holds while extraction gathers 64 MiB from every rank to rank 0.
        big = {"x": torch.full((BIG_ROWS // 4096, 1024), float(rank)), "i": torch.arange(BIG_ROWS // 4096) + rank * 10**6}
        dist.barrier()
        before = reset_peak()
        gathered = gather_rows(gang, big, to="first")
        grew_kb = peak_kb() - before
        received = None if gathered is None else (gathered["x"][BIG_ROWS // 4096:] == 1.0).all().item()
        del gathered
        torch.save({"everyone": everyone, "first": first, "grew_kb": grew_kb, "received": received}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_rank_zero_alone_gets_the_rows_and_the_others_hold_only_their_own(tmp_path: Path) -> None:
    mp.spawn(gather_worker, args=(free_port(), tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    expected_x = torch.cat([torch.zeros(3, 4) + torch.arange(3)[:, None] / 10, torch.ones(2, 4) + torch.arange(2)[:, None] / 10])
    for got in (r0["everyone"], r1["everyone"], r0["first"]):
        torch.testing.assert_close(got["x"], expected_x)
        assert got["i"].tolist() == [0, 1, 2, 10, 11]
    assert r1["first"] is None
    # Rank 0 received rank 1's 64 MiB (the measurement sees a gather); rank 1 held nothing more
    # than a few MiB beyond its own rows: an all-gather that drops the rows afterwards would show
    # at least the 64 MiB of rank 0's rows here.
    mib = BIG_ROWS >> 10
    assert r0["received"] and r0["grew_kb"] > 0.9 * mib, r0["grew_kb"]
    assert r1["grew_kb"] < 0.25 * mib, r1["grew_kb"]


def own_rows(rank: int) -> torch.Tensor:
    return torch.randn(2 + rank % 2, 4, generator=torch.Generator().manual_seed(rank))


def negatives_worker(rank: int, port: int, out: Path) -> None:
    root = start(rank, 4, port)
    try:
        gangs = create_parallel_gangs(root, tp_size=2)  # data-parallel gangs {0, 2} and {1, 3}
        # Each rank holds 2 + rank % 2 rows (uneven across the gang), drawn from its own seed.
        embeddings = own_rows(rank).requires_grad_()
        n = embeddings.size(0)
        rows, clips, valid = contrastive_rows(embeddings, torch.arange(n) // 2, gangs.dp, max_rows=4)  # two clones per clip
        real = rows[valid]
        loss = multi_mask_contrastive_loss(rows, clips, 0.1, valid)
        loss.backward()
        torch.save({"dp_rank": gangs.dp.rank, "dp_size": gangs.dp.size, "real": real.detach(), "rows": rows.shape[0],
                    "clips": clips[valid], "grad": embeddings.grad, "loss": loss.detach()}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_negatives_come_from_the_data_parallel_gang_alone(tmp_path: Path) -> None:
    mp.spawn(negatives_worker, args=(free_port(), tmp_path), nprocs=4, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(4)]
    own = {r: own_rows(r) for r in range(4)}
    for rank, got in enumerate(results):
        assert got["dp_size"] == 2
        group = [r for r in range(4) if r % 2 == rank % 2]  # the ranks of this rank's data-parallel gang
        # Exactly the rows of the data-parallel gang, in its rank order: over the world (4 ranks)
        # there would be rows of the other gang too.
        torch.testing.assert_close(got["real"], torch.cat([own[r] for r in group]))
        assert got["rows"] == 2 * 4  # padded to max_rows per rank, no sizes exchanged
        assert got["clips"].tolist() == [c // 2 + 4 * i for i, r in enumerate(group) for c in range(2 + r % 2)]
        # The loss over the real rows alone, on every rank of the gang alike; each rank's rows get
        # the gradients both ranks computed for them (DDP then averages: the gradient of one loss).
        together = torch.cat([own[r] for r in group]).requires_grad_()
        alone = multi_mask_contrastive_loss(together, got["clips"], 0.1)
        alone.backward()
        torch.testing.assert_close(got["loss"], alone.detach())
        start = sum(2 + r % 2 for r in group if r < rank)
        torch.testing.assert_close(got["grad"], 2 * together.grad[start : start + own[rank].size(0)])
        assert got["grad"].abs().sum() > 0


def test_padding_is_one_rule_and_one_rank_keeps_its_rows() -> None:
    x = torch.arange(6.0).view(3, 2)
    assert pad_rows(x, 3) is x
    padded = pad_rows(x, 5)
    assert padded.shape == (5, 2) and padded[3:].abs().sum() == 0 and torch.equal(padded[:3], x)
    alone, clips, valid = contrastive_rows(x.clone().requires_grad_(), torch.arange(3), FakeGang(CPU), max_rows=4)
    assert alone.shape == (3, 2) and valid is None and clips.tolist() == [0, 1, 2]
