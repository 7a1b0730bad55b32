"""Gathering rows across ranks (two gloo processes): every rank, or rank 0 alone."""

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fairseq2.device import CPU
from fairseq2.gang import FakeGang, ProcessGroupGang

from aape_plugin.eval.gather import gather_rows, pad_rows
from aape_plugin.models.gather import contrastive_rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        gang = ProcessGroupGang(dist.group.WORLD, CPU)
        # Rank 0 has 3 rows, rank 1 has 2 (uneven shards), each row says whose it is.
        n = 3 - rank
        rows = {"x": torch.full((n, 4), float(rank)) + torch.arange(n)[:, None] / 10, "i": torch.arange(n) + 10 * rank}
        everyone = gather_rows(gang, rows)
        first = gather_rows(gang, rows, to="first")
        # The contrastive negatives come from the gang it is given (the data-parallel one), with
        # gradient: over both ranks here, this rank's own rows with a one-rank gang.
        embeddings = rows["x"].clone().requires_grad_()
        both, both_clips = contrastive_rows(embeddings, torch.arange(n), gang)
        both.sum().backward()
        alone, _ = contrastive_rows(embeddings, torch.arange(n), FakeGang(CPU))
        torch.save({"everyone": everyone, "first": first, "negatives": both.detach(), "negative_clips": both_clips,
                    "alone": alone.shape[0], "grad": embeddings.grad}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_rank_zero_alone_gets_the_rows_and_the_others_keep_only_their_own(tmp_path: Path) -> None:
    mp.spawn(worker, args=(free_port(), tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    expected_x = torch.cat([torch.zeros(3, 4) + torch.arange(3)[:, None] / 10, torch.ones(2, 4) + torch.arange(2)[:, None] / 10])
    for got in (r0["everyone"], r1["everyone"], r0["first"]):
        torch.testing.assert_close(got["x"], expected_x)
        assert got["i"].tolist() == [0, 1, 2, 10, 11]
    assert r1["first"] is None  # rank 1 received nothing: no other rank's rows
    for r, own in ((r0, 3), (r1, 2)):
        torch.testing.assert_close(r["negatives"], expected_x)
        assert r["negative_clips"].tolist() == [0, 1, 2, 3, 4] and r["alone"] == own  # clips of rank 1 offset past rank 0's
        # Each rank's rows get the gradients both ranks computed for them (the loss is summed on both).
        torch.testing.assert_close(r["grad"], torch.full((own, 4), 2.0))


def test_padding_is_one_rule() -> None:
    x = torch.arange(6.0).view(3, 2)
    assert pad_rows(x, 3) is x
    padded = pad_rows(x, 5)
    assert padded.shape == (5, 2) and padded[3:].abs().sum() == 0 and torch.equal(padded[:3], x)
