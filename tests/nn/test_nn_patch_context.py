"""The patch-local aliasing analysis (``context="patch"``): nothing outside a patch reaches it,
so a masked student computes exactly what the full-input stem computes at its visible patches."""

import math

import pytest
import torch

from aape_plugin.nn.adaptive_sblu import AdaptiveSBLU
from aape_plugin.nn.patch_embed import AaPEPatchEmbed


def poles(batch: int, s: int, p: int, n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    decay = 0.05 + torch.rand(batch, s, p, n, generator=g)
    freq = math.pi / 16 + (math.pi - math.pi / 16) * torch.rand(batch, s, p, n, generator=g)
    return decay, freq


def test_patch_features_ignore_everything_outside_the_patch() -> None:
    torch.manual_seed(0)
    sblu = AdaptiveSBLU(context="patch")
    x = torch.randn(2, 1, 80, 96)
    decay, freq = poles(2, 5, 6)
    y = torch.randn_like(x)
    y[..., 32:48] = x[..., 32:48]  # only time patch 2 is shared
    a, b = sblu(x, decay, freq), sblu(y, decay, freq)
    assert torch.allclose(a[:, :, 2], b[:, :, 2], atol=1e-6)
    assert not torch.allclose(a[:, :, 1], b[:, :, 1], atol=1e-3)
    # The clip context does look beyond the patch.
    clip = AdaptiveSBLU(context="clip")
    clip.load_state_dict(sblu.state_dict())
    assert not torch.allclose(clip(x, decay, freq)[:, :, 2], clip(y, decay, freq)[:, :, 2], atol=1e-3)


def test_patch_local_highpass_removes_the_patch_mean_exactly() -> None:
    sblu = AdaptiveSBLU(context="patch")
    steady = torch.randn(1, 1, 80, 1).expand(1, 1, 80, 96)  # a different steady level per bin
    ramp_per_patch = torch.arange(6.0).repeat_interleave(16)  # constant within each patch
    x = steady + ramp_per_patch
    assert sblu.remove_patch_mean(x.squeeze(1)).abs().max() < 1e-5
    decay, freq = poles(1, 5, 6)
    # Nothing but DC in every patch: only the bias of C remains, the same for any such input.
    out = sblu(x, decay, freq)
    assert torch.allclose(out, sblu(torch.zeros_like(x), decay, freq), atol=1e-5)


def test_patch_local_analysis_still_responds_to_in_band_modulation() -> None:
    """A 25 Hz (pi/2 rad/frame) tremolo inside the patch: the kernel tuned to it responds more
    than one tuned an octave and a half away (the band-pass survives the local window)."""
    sblu = AdaptiveSBLU(context="patch", num_kernels=1, out_dim=2)
    with torch.no_grad():
        sblu.in_proj.weight.fill_(1.0 / 16)
        sblu.out_weight.zero_()
        sblu.out_weight[:, 0, 0] = 1.0  # Re
        sblu.out_weight[:, 1, 1] = 1.0  # Im
        sblu.out_bias.zero_()
    t = torch.arange(96.0)
    x = torch.cos(math.pi / 2 * t).expand(1, 1, 80, 96).contiguous()
    decay = torch.full((1, 5, 6, 1), 0.2)
    tuned = sblu(x, decay, torch.full((1, 5, 6, 1), math.pi / 2))
    off = sblu(x, decay, torch.full((1, 5, 6, 1), math.pi / 2 / 2.8))
    assert (tuned.norm(dim=-1) > 2 * off.norm(dim=-1)).all()


@pytest.mark.parametrize("adaptive", [False, True])
def test_masked_student_sees_what_the_full_stem_sees(adaptive: bool) -> None:
    torch.manual_seed(1)
    stem = AaPEPatchEmbed(embed_dim=32, alias_dim=16, lambda_dim=16, lambda_depth=1, lambda_num_heads=2,
                          adaptive=adaptive, context="patch").eval()
    x = torch.randn(2, 1, 80, 96)
    index = torch.tensor([[0, 3, 7, 12, 20, 29], [1, 2, 9, 15, 22, 28]])
    full = stem(x).tokens.flatten(1, 2)
    masked = stem(x, index)
    expected = full.gather(1, index.unsqueeze(-1).expand(-1, -1, 32))
    if not adaptive:
        # Fixed poles: the student's visible tokens are exactly the full-input ones.
        assert torch.allclose(masked.tokens, expected, atol=1e-5)
    else:
        # Input-dependent poles see only the visible patches (like the ViT itself), so they
        # may differ; given the same poles, the aliasing features are the same.
        full_decay, full_freq = stem.lambda_encoder(x)
        d = full_decay.flatten(1, 2).gather(1, index.unsqueeze(-1).expand(-1, -1, 8))
        f = full_freq.flatten(1, 2).gather(1, index.unsqueeze(-1).expand(-1, -1, 8))
        assert torch.allclose(stem.sblu(x, d, f, index),
                              stem.sblu(x, full_decay, full_freq).flatten(1, 2).gather(1, index.unsqueeze(-1).expand(-1, -1, 16)),
                              atol=1e-5)
    # Hidden patches never matter: change them and the student's tokens stay.
    y = x.clone()
    hidden = torch.ones(2, 30, dtype=torch.bool)
    hidden.scatter_(1, index, False)
    cells = hidden.view(2, 5, 1, 6, 1).expand(-1, -1, 16, -1, 16).reshape(2, 1, 80, 96)
    y[cells] = torch.randn(int(cells.sum()))
    assert torch.allclose(stem(y, index).tokens, masked.tokens, atol=1e-5)


def test_unknown_context_is_named() -> None:
    with pytest.raises(ValueError, match="`context` must be 'clip' or 'patch', but is 'frame'"):
        AdaptiveSBLU(context="frame")  # type: ignore[arg-type]
