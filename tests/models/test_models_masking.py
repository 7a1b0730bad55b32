"""Multi-mask: exact ratio, distinct clones, never a fully hidden or fully visible clone."""

import pytest
import torch

from aape_plugin.nn.masking import num_masked_patches, random_patch_masks


@pytest.mark.parametrize("ratio,grid", [(0.75, (5, 38)), (0.7, (5, 6)), (0.8, (5, 6)), (0.99, (5, 6)), (0.01, (5, 6))])
def test_exact_ratio_and_never_fully_masked(ratio: float, grid: tuple[int, int]) -> None:
    torch.manual_seed(0)
    masks = random_patch_masks(8, grid, ratio=ratio, num_clones=4)
    n = grid[0] * grid[1]
    expected = min(max(round(ratio * n), 1), n - 1)
    hidden = (~masks.visible).flatten(1).sum(dim=1)
    assert (hidden == expected).all()
    assert masks.visible.flatten(1).any(dim=1).all()  # something visible in every clone
    assert masks.masked_index.shape == (32, expected)
    # masked_index lists exactly the hidden patches, ascending.
    for row in range(32):
        idx = masks.masked_index[row]
        assert (idx.diff() > 0).all()
        assert set(idx.tolist()) == set((~masks.visible[row].flatten()).nonzero().flatten().tolist())


def test_clones_of_a_clip_differ_and_rows_are_clone_major() -> None:
    torch.manual_seed(1)
    masks = random_patch_masks(4, (5, 38), ratio=0.75, num_clones=16)
    assert masks.clip_index.tolist() == [b for b in range(4) for _ in range(16)]
    flat = masks.visible.flatten(1)
    for b in range(4):
        clones = flat[b * 16 : (b + 1) * 16]
        assert len({tuple(c.tolist()) for c in clones}) == 16


def test_masks_are_uniform_over_positions() -> None:
    torch.manual_seed(2)
    masks = random_patch_masks(512, (5, 6), ratio=0.5, num_clones=4)
    freq = (~masks.visible).float().mean(dim=0)
    assert (freq - 0.5).abs().max() < 0.05


def test_invalid_ratio_is_named() -> None:
    with pytest.raises(ValueError, match="ratio"):
        num_masked_patches(30, 1.0)
    with pytest.raises(ValueError, match="at least 2 patches"):
        num_masked_patches(1, 0.5)


def test_seeded_masks_depend_only_on_each_clips_seed() -> None:
    a = random_patch_masks(3, (5, 6), ratio=0.75, num_clones=4, seeds=[11, 22, 33])
    b = random_patch_masks(2, (5, 6), ratio=0.75, num_clones=4, seeds=[33, 11])
    # Clip with seed 33 is row-block 2 in a and 0 in b; seed 11 is block 0 in a and 1 in b.
    assert torch.equal(a.visible[8:12], b.visible[0:4])
    assert torch.equal(a.visible[0:4], b.visible[4:8])
    assert not torch.equal(a.visible[0:4], a.visible[4:8])
