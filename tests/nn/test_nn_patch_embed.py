"""AaPEPatchEmbed is a drop-in replacement for the plain stem, with clear shape errors."""

import pytest
import torch

from aape_plugin.nn.patch_embed import AaPEPatchEmbed, PlainPatchEmbed
from aape_plugin.nn.patchify import SpectrogramShapeError


@pytest.mark.parametrize("stem_kls", [PlainPatchEmbed, AaPEPatchEmbed])
def test_same_interface_and_shapes(stem_kls: type) -> None:
    stem = stem_kls(embed_dim=96, num_mel_bins=80, patch_size=16)
    out = stem(torch.randn(2, 1, 80, 96))
    assert out.tokens.shape == (2, 5, 6, 96)
    if stem_kls is AaPEPatchEmbed:
        assert out.decay.shape == out.frequency.shape == (2, 5, 6, 8)
    else:
        assert out.decay is None and out.frequency is None


def test_default_hyper_parameters_follow_the_design() -> None:
    stem = AaPEPatchEmbed()
    assert stem.embed_dim == 768 and stem.num_mel_bins == 80 and stem.patch_size == 16
    assert stem.sblu.num_kernels == 8 and stem.sblu.num_taps == 33
    assert stem.sblu.highpass.cutoff == pytest.approx(torch.pi / 16)
    assert stem.lambda_encoder.min_frequency == pytest.approx(torch.pi / 16)
    assert stem.lambda_encoder.max_frequency == pytest.approx(torch.pi)
    out = stem(torch.randn(1, 1, 80, 608))
    assert out.tokens.shape == (1, 5, 38, 768)


def test_gradients_reach_every_parameter() -> None:
    stem = AaPEPatchEmbed(embed_dim=64)
    stem(torch.randn(2, 1, 80, 64)).tokens.square().mean().backward()
    for name, param in stem.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_bfloat16_forward_and_backward_are_finite() -> None:
    stem = AaPEPatchEmbed(embed_dim=64).to(torch.bfloat16)
    x = torch.randn(2, 1, 80, 64, dtype=torch.bfloat16)
    out = stem(x)
    out.tokens.float().square().mean().backward()
    assert torch.isfinite(out.tokens.float()).all()
    assert all(torch.isfinite(p.grad.float()).all() for p in stem.parameters())


@pytest.mark.parametrize("stem_kls", [PlainPatchEmbed, AaPEPatchEmbed])
def test_time_axis_not_a_multiple_of_the_patch_is_explained(stem_kls: type) -> None:
    stem = stem_kls(embed_dim=64)
    with pytest.raises(SpectrogramShapeError, match=r"T=600 .*Crop the time axis to 592 frames or pad it to 608"):
        stem(torch.randn(1, 1, 80, 600))


@pytest.mark.parametrize("stem_kls", [PlainPatchEmbed, AaPEPatchEmbed])
def test_wrong_number_of_mel_bins_is_explained(stem_kls: type) -> None:
    stem = stem_kls(embed_dim=64)
    with pytest.raises(SpectrogramShapeError, match=r"expects 80 mel bins.*got 128 bins"):
        stem(torch.randn(1, 1, 128, 608))
    with pytest.raises(SpectrogramShapeError, match="unsqueeze"):
        stem(torch.randn(1, 80, 608))


def test_meta_construction_then_materialisation_works() -> None:
    with torch.device("meta"):
        stem = AaPEPatchEmbed(embed_dim=64)
    stem = stem.to_empty(device="cpu")
    stem.sblu.highpass.reset_non_persistent_buffers()
    reference = AaPEPatchEmbed(embed_dim=64)
    torch.testing.assert_close(stem.sblu.highpass.taps, reference.sblu.highpass.taps)


def test_kept_tokens_do_not_depend_on_hidden_patches() -> None:
    # In masked pre-training the student's visible tokens must not carry hidden content, even
    # though the high-pass, the SBLU taps and the Lambda Encoder all look beyond one patch.
    g = torch.Generator().manual_seed(0)
    stem = AaPEPatchEmbed(embed_dim=64)
    x = torch.randn(2, 1, 80, 96, generator=g)
    index = torch.stack([torch.randperm(30, generator=g)[:8].sort().values for _ in range(2)])
    visible = torch.zeros(2, 30, dtype=torch.bool)
    visible.scatter_(1, index, True)
    hidden_cells = (~visible).view(2, 5, 6).repeat_interleave(16, 1).repeat_interleave(16, 2)[:, None]
    changed = x + 5 * torch.randn(2, 1, 80, 96, generator=g) * hidden_cells

    a = stem(x, index)
    b = stem(changed, index)
    assert a.tokens.shape == (2, 8, 64) and a.frequency.shape == (2, 8, 8)
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.frequency, b.frequency, atol=1e-6, rtol=1e-6)
    # Without hiding, the same change does leak into the kept tokens.
    rows = torch.arange(2)[:, None]
    full_a = stem(x).tokens.flatten(1, 2)[rows, index]
    full_b = stem(changed).tokens.flatten(1, 2)[rows, index]
    assert (full_a - full_b).abs().max() > 1e-2


def test_plain_stem_index_equals_gathering() -> None:
    stem = PlainPatchEmbed(embed_dim=64)
    x = torch.randn(2, 1, 80, 96)
    index = torch.tensor([[0, 3, 7], [1, 2, 29]])
    full = stem(x).tokens.flatten(1, 2)
    torch.testing.assert_close(stem(x, index).tokens, full[torch.arange(2)[:, None], index])


@pytest.mark.parametrize("context", ["clip", "patch"])
def test_views_of_a_clip_share_its_patch_local_work_and_see_only_their_own_patches(context: str) -> None:
    # stem(x, index, M) runs the conv and projections once per clip; each of the M views must
    # still get exactly what the stem gives that view alone on its own copy of the clip.
    g = torch.Generator().manual_seed(3)
    stem = AaPEPatchEmbed(embed_dim=64, context=context)  # type: ignore[arg-type]
    x = torch.randn(2, 1, 80, 96, generator=g)
    index = torch.stack([torch.randperm(30, generator=g)[:8].sort().values for _ in range(6)])
    shared = stem(x, index, num_clones=3)
    alone = [stem(x[i // 3 : i // 3 + 1], index[i : i + 1]) for i in range(6)]
    torch.testing.assert_close(shared.tokens, torch.cat([a.tokens for a in alone]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared.decay, torch.cat([a.decay for a in alone]), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"`index` must have 2 x 2 rows \(clips x clones\), but has 6"):
        stem(x, index, num_clones=2)


def test_balanced_fusion_gives_both_streams_the_same_variance() -> None:
    from aape_plugin.nn.patch_fusion import PatchFusion

    g = torch.Generator().manual_seed(0)
    standard, alias = torch.randn(4096, 192, generator=g) * 30 + 5, torch.randn(4096, 16, generator=g) * 3 - 1
    for balance, share in ((False, 16 / 208), (True, 0.5)):
        fusion = PatchFusion(192, 16, 192, balance=balance)
        normed = torch.cat([fusion.standard_norm(standard), fusion.alias_norm(alias) * fusion.alias_scale], dim=-1)
        power = normed.pow(2).sum(0)
        assert float(power[192:].sum().detach() / power.sum().detach()) == pytest.approx(share, rel=0.02), balance
        with torch.no_grad():
            expected = fusion.proj(normed)
        torch.testing.assert_close(fusion(standard, alias), expected)
