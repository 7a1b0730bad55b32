"""The Adaptive SBLU: exactness of the per-patch filtering, band selectivity, robustness."""

import math

import pytest
import torch

from aape_plugin.nn.adaptive_sblu import AdaptiveSBLU
from aape_plugin.nn.lambda_encoder import LambdaEncoder


def direct_filter(u: torch.Tensor, kernels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The obvious per-frame sum  z[n] = sum_k h_{patch(n)}[k] u[n + k - c], zero outside."""
    batch, subbands, channels, frames = u.shape
    num_taps = kernels.size(-1)
    c = num_taps // 2
    out = torch.zeros(batch, subbands, channels, frames, dtype=torch.complex128)
    for n in range(frames):
        h = kernels[:, :, n // patch_size, :, :].to(torch.complex128)  # (B, S, N, K)
        for k in range(num_taps):
            t = n + k - c
            if 0 <= t < frames:
                out[..., n] += h[..., k] * u[..., t].double()
    return out


def poles(shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    decay = torch.rand(shape, generator=generator) * 0.8 + 0.02
    frequency = math.pi / 16 + torch.rand(shape, generator=generator) * (math.pi - math.pi / 16)
    return decay, frequency


@pytest.mark.parametrize("patch_size,num_taps,frames", [(16, 33, 64), (8, 9, 40), (4, 15, 12)])
def test_filtering_equals_the_direct_reference(patch_size: int, num_taps: int, frames: int) -> None:
    g = torch.Generator().manual_seed(0)
    sblu = AdaptiveSBLU(num_mel_bins=2 * patch_size, patch_size=patch_size, num_kernels=3, num_taps=num_taps)
    u = torch.randn(2, 2, 3, frames, generator=g)
    decay, frequency = poles((2, 2, frames // patch_size, 3), g)
    parts = sblu.kernels(decay, frequency)  # (B, S, P, N, 2, K): real and imaginary taps
    kernels = torch.complex(parts[..., 0, :], parts[..., 1, :])  # (B, S, P, N, K)

    fast = sblu.filter(sblu.segments(u), parts.flatten(1, 2))  # (B, S*P, N, 2, p)
    fast = fast.view(2, 2, frames // patch_size, 3, 2, patch_size)
    fast = torch.complex(fast[..., 0, :], fast[..., 1, :])  # (B, S, P, N, p)
    fast = fast.permute(0, 1, 3, 2, 4).flatten(-2).to(torch.complex128)  # (B, S, N, T)

    torch.testing.assert_close(fast, direct_filter(u, kernels, patch_size), atol=2e-5, rtol=1e-5)


def averaging_sblu(patch_size: int = 16) -> AdaptiveSBLU:
    """An SBLU whose B projection averages the bins of each subband (to read its response)."""
    sblu = AdaptiveSBLU(num_mel_bins=80, patch_size=patch_size, num_kernels=8)
    with torch.no_grad():
        sblu.in_proj.weight.fill_(1.0 / patch_size)
        sblu.out_bias.zero_()
    return sblu


def band_power(sblu: AdaptiveSBLU, x: torch.Tensor, decay: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
    """Mean |z|^2 per (subband, kernel) over the interior patches (no edge effects)."""
    u = sblu.in_proj(sblu.highpass(x.squeeze(1))).view(1, 5, 8, -1)
    z = sblu.filter(sblu.segments(u), sblu.kernels(decay, frequency).flatten(1, 2))  # (1, S*P, N, 2, p)
    power = z.square().sum(dim=-2).mean(dim=-1).view(5, -1, 8)  # (S, P, N)
    return power[:, 4:-4].mean(dim=1)  # (S, N)


def tremolo_logmel(rate_hz: float, frames: int = 608, subband: int = 2) -> torch.Tensor:
    """A log-mel of a steady harmonic tone whose loudness in one subband wobbles at rate_hz."""
    n = torch.arange(frames, dtype=torch.float32)
    bins = torch.arange(80, dtype=torch.float32)
    steady = -6.0 + 3.0 * torch.cos(bins / 3.0)  # a harmonic-looking spectral envelope
    x = steady[:, None].expand(80, frames).clone()
    x[16 * subband : 16 * (subband + 1)] += 1.5 * torch.cos(2 * math.pi * rate_hz / 100 * n)
    return x.view(1, 1, 80, frames)


def test_tremolo_response_peaks_at_the_matching_kernel_and_falls_off_with_detuning() -> None:
    sblu = averaging_sblu()
    omega = 2 * math.pi * 10 / 100  # a 10 Hz tremolo at 100 frames/s, rad/frame
    ratios = torch.tensor([0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.6, 2.0])
    shape = (1, 5, 38, 8)
    frequency = (omega * ratios).view(1, 1, 1, 8).expand(shape)
    decay = torch.full(shape, 0.1)  # a 33-tap window decaying to exp(-1.6) at its ends

    power = band_power(sblu, tremolo_logmel(10.0), decay, frequency)

    modulated = power[2]
    assert int(modulated.argmax()) == 3  # the kernel tuned to 10 Hz
    assert (modulated[:4].diff() > 0).all() and (modulated[3:].diff() < 0).all()
    assert modulated[3] > 10 * modulated[0] and modulated[3] > 10 * modulated[-1]
    # The other subbands only carry the steady tone, which the high-pass removes.
    others = torch.cat([power[:2], power[3:]])
    assert others.max() < 1e-6 * modulated.max()


def test_steady_tone_gives_near_zero_response() -> None:
    sblu = averaging_sblu()
    x = tremolo_logmel(10.0)
    x[:, :, 32:48] = x[:, :, 32:48, :1]  # remove the tremolo: every bin constant in time
    shape = (1, 5, 38, 8)
    decay, frequency = poles(shape, torch.Generator().manual_seed(1))
    assert band_power(sblu, x, decay, frequency).max() < 1e-9
    features = sblu(x, decay, frequency)
    assert features.max() < 2 * math.sqrt(sblu.pool_eps)


def test_patch_features_hardly_change_under_sub_patch_shifts() -> None:
    # The RMS pooling reports band power per patch, so shifting a tremolo by a few frames
    # (less than a patch) leaves the features nearly unchanged, unlike a sample of the signal.
    torch.manual_seed(2)
    sblu = AdaptiveSBLU(num_mel_bins=80, num_kernels=8)
    x = tremolo_logmel(12.5)
    shape = (1, 5, 38, 8)
    decay = torch.full(shape, 0.05)
    frequency = torch.full(shape, 2 * math.pi * 12.5 / 100)
    base = sblu(x, decay, frequency)[:, :, 4:-4]
    for shift in (1, 3, 5, 7):
        shifted = sblu(torch.roll(x, shift, dims=-1), decay, frequency)[:, :, 4:-4]
        cos = torch.nn.functional.cosine_similarity(base.flatten(), shifted.flatten(), dim=0)
        assert cos > 0.999, (shift, float(cos))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_are_finite_at_extreme_poles(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    sblu = AdaptiveSBLU(num_mel_bins=32, num_kernels=4).to(dtype)
    enc = LambdaEncoder(num_kernels=4)
    lo, hi = enc.min_frequency, enc.max_frequency
    x = torch.randn(2, 1, 32, 64, generator=g).to(dtype).requires_grad_()
    shape = (2, 2, 4, 4)
    decay = torch.tensor([enc.min_decay, enc.max_decay, enc.min_decay, enc.max_decay])
    frequency = torch.tensor([lo, lo, hi, hi])
    decay = decay.expand(shape).clone().requires_grad_()
    frequency = frequency.expand(shape).clone().requires_grad_()

    sblu(x, decay, frequency).float().sum().backward()

    for grad in [x.grad, decay.grad, frequency.grad] + [p.grad for p in sblu.parameters()]:
        assert grad is not None and torch.isfinite(grad.float()).all()


def test_runs_under_bfloat16_autocast() -> None:
    sblu = AdaptiveSBLU(num_mel_bins=32, num_kernels=4)
    x = torch.randn(2, 1, 32, 64)
    decay, frequency = poles((2, 2, 4, 4), torch.Generator().manual_seed(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sblu(x, decay, frequency)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in sblu.parameters())


def test_pole_shape_mismatch_is_named() -> None:
    sblu = AdaptiveSBLU(num_mel_bins=32, num_kernels=4)
    with pytest.raises(ValueError, match=r"\(1, 2, 4, 4\)"):
        sblu(torch.randn(1, 1, 32, 64), torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))


@pytest.mark.parametrize("context", ["clip", "patch"])
@pytest.mark.parametrize("num_clones", [1, 3])
def test_computing_only_some_patches_equals_gathering_from_all(context: str, num_clones: int) -> None:
    # With an index, only those patches are computed, for each of M views of a clip, and the
    # others are hidden: the result is the full computation on the input with the hidden
    # patches zeroed (with the patch-local context, zeroing them changes nothing visible).
    g = torch.Generator().manual_seed(5)
    sblu = AdaptiveSBLU(num_mel_bins=80, num_kernels=8, context=context)  # type: ignore[arg-type]
    x = torch.randn(3, 1, 80, 96, generator=g)
    views = 3 * num_clones
    decay, frequency = poles((views, 5, 6, 8), g)
    index = torch.stack([torch.randperm(30, generator=g)[:7].sort().values for _ in range(views)])
    hidden = torch.ones(views, 30).scatter_(1, index, 0.0).bool().view(views, 5, 1, 6, 1)
    x_views = x.repeat_interleave(num_clones, 0)
    zeroed = x_views.view(views, 5, 16, 6, 16).masked_fill(hidden, 0.0).view(views, 1, 80, 96)
    full = sblu(zeroed, decay, frequency).flatten(1, 2)  # (views, 30, out)
    rows = torch.arange(views)[:, None]
    part = sblu(x, decay.flatten(1, 2)[rows, index], frequency.flatten(1, 2)[rows, index], index, num_clones)
    torch.testing.assert_close(part, full[rows, index], atol=1e-5, rtol=1e-5)
    if context == "patch":
        unzeroed = sblu(x_views, decay, frequency).flatten(1, 2)
        torch.testing.assert_close(part, unzeroed[rows, index], atol=1e-5, rtol=1e-5)
