"""The criterion: the contrastive term by hand, order invariance, weights, the ablation."""

import math

import torch

from aape_plugin.losses import AapeCriterion, AapeCriterionConfig, multi_mask_contrastive_loss
from aape_plugin.models.ssl_model import SslOutput


def test_contrastive_term_equals_a_hand_computed_value() -> None:
    # Two clips, two clones each, 2-D embeddings at angles 0, 30 deg (clip 0) and 90, 180 deg
    # (clip 1); temperature 0.5. Cosines are those of the angle differences.
    angles = [0.0, 30.0, 90.0, 180.0]
    emb = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    clips = torch.tensor([0, 0, 1, 1])
    t = 0.5

    def cos(i: int, j: int) -> float:
        return math.cos(math.radians(angles[i] - angles[j]))

    expected = 0.0
    for i in range(4):
        pos = [j for j in range(4) if j != i and clips[j] == clips[i]]
        denom = sum(math.exp(cos(i, a) / t) for a in range(4) if a != i)
        expected += -sum(math.log(math.exp(cos(i, p) / t) / denom) for p in pos) / len(pos)
    expected /= 4

    got = multi_mask_contrastive_loss(emb * 3.0, clips, t)  # scale does not matter (cosine)
    assert abs(float(got) - expected) < 1e-5
    assert abs(expected - 0.6050) < 1e-4  # worked by hand: (0.183 + 0.414 + 1.551 + 0.272) / 4


def test_contrastive_term_does_not_depend_on_row_order() -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(24, 16, generator=g)
    clips = torch.arange(6).repeat_interleave(4)
    perm = torch.randperm(24, generator=g)
    a = multi_mask_contrastive_loss(emb, clips, 0.1)
    b = multi_mask_contrastive_loss(emb[perm], clips[perm], 0.1)
    torch.testing.assert_close(a, b)


def test_padding_rows_marked_invalid_change_neither_the_loss_nor_its_gradient() -> None:
    # Gathered negatives are padded to a fixed number of rows per rank (no sizes read back):
    # padding rows (zeros, clip index 0 of their rank) must be left out entirely.
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(10, 8, generator=g, requires_grad=True)
    clips = torch.arange(5).repeat_interleave(2)
    padded = torch.cat([emb[:6], torch.zeros(2, 8), emb[6:], torch.zeros(3, 8)])
    padded_clips = torch.cat([clips[:6], torch.zeros(2, dtype=torch.int64), clips[6:], torch.zeros(3, dtype=torch.int64)])
    valid = torch.tensor([True] * 6 + [False] * 2 + [True] * 4 + [False] * 3)
    loss = multi_mask_contrastive_loss(emb, clips, 0.1)
    (grad,) = torch.autograd.grad(loss, emb)
    with_padding = multi_mask_contrastive_loss(padded, padded_clips, 0.1, valid)
    (padded_grad,) = torch.autograd.grad(with_padding, emb)
    torch.testing.assert_close(with_padding, loss)
    torch.testing.assert_close(padded_grad, grad)
    # Without the mask the padding counts (as negatives and as positives of clip 0): the mask matters.
    assert abs(float(multi_mask_contrastive_loss(padded, padded_clips, 0.1)) - float(loss)) > 0.01


def test_contrastive_term_pulls_clones_together() -> None:
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 16, generator=g)
    clips = torch.arange(6).repeat_interleave(4)
    tight = base[clips] + 0.01 * torch.randn(24, 16, generator=g)
    loose = torch.randn(24, 16, generator=g)
    assert multi_mask_contrastive_loss(tight, clips, 0.1) < multi_mask_contrastive_loss(loose, clips, 0.1) - 1.0


def test_single_clone_has_no_positives_and_contributes_nothing() -> None:
    emb = torch.randn(5, 8, requires_grad=True)
    loss = multi_mask_contrastive_loss(emb, torch.arange(5), 0.1)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.count_nonzero(emb.grad) == 0


def fake_output(g: torch.Generator) -> SslOutput:
    return SslOutput(
        predicted_patches=torch.randn(8, 5, 4, generator=g),
        target_patches=torch.randn(8, 5, 4, generator=g),
        predicted_global=torch.randn(8, 4, generator=g),
        target_global=torch.randn(8, 4, generator=g),
        embeddings=torch.randn(8, 3, generator=g),
        clip_index=torch.arange(2).repeat_interleave(4),
        decay=None,
        frequency=None,
    )


def test_total_is_the_weighted_sum_and_the_ablation_is_a_config_change() -> None:
    out = fake_output(torch.Generator().manual_seed(2))
    full = AapeCriterion(AapeCriterionConfig(patch_weight=1.0, global_weight=0.5, contrastive_weight=0.2))(out)
    torch.testing.assert_close(full.total, full.patch + 0.5 * full.global_ + 0.2 * full.contrastive)
    torch.testing.assert_close(full.patch, ((out.predicted_patches - out.target_patches) ** 2).mean())
    no_con = AapeCriterion(AapeCriterionConfig(global_weight=0.5, contrastive_weight=0.0))(out)
    torch.testing.assert_close(no_con.total, full.patch + 0.5 * full.global_)
    assert float(no_con.contrastive) > 0  # still computed and reported


def test_bad_criterion_settings_are_named() -> None:
    import pytest

    with pytest.raises(ValueError, match="temperature"):
        AapeCriterion(AapeCriterionConfig(temperature=0.0))
    with pytest.raises(ValueError, match="contrastive_weight"):
        AapeCriterion(AapeCriterionConfig(contrastive_weight=-1.0))
