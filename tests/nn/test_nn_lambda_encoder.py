"""The Lambda Encoder keeps its poles in the alias-prone band, positive, and input-dependent."""

import math

import pytest
import torch

from aape_plugin.nn.lambda_encoder import LambdaEncoder


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e3, 1e5])
def test_poles_stay_in_band_for_any_input(scale: float) -> None:
    g = torch.Generator().manual_seed(0)
    enc = LambdaEncoder(num_kernels=8)
    with torch.no_grad():  # large head weights saturate the constraints
        enc.decay_head.weight.normal_(0, 50.0, generator=g)
        enc.frequency_head.weight.normal_(0, 50.0, generator=g)
    x = torch.randn(4, 1, 80, 96, generator=g) * scale
    decay, frequency = enc(x)
    assert decay.shape == frequency.shape == (4, 5, 6, 8)
    assert (decay > 0).all() and (decay <= enc.max_decay).all()
    assert (frequency >= math.pi / 16).all() and (frequency <= math.pi).all()
    # Saturation really happened at both ends, so the bounds were exercised.
    assert frequency.min() < math.pi / 16 + 1e-3 and frequency.max() > math.pi - 1e-3


def test_initial_kernels_spread_over_the_band() -> None:
    torch.manual_seed(0)
    enc = LambdaEncoder(num_kernels=8)
    decay, frequency = enc(torch.zeros(1, 1, 80, 96))
    mean_freq = frequency.mean(dim=(0, 1, 2))
    assert (mean_freq.diff() > 0).all()
    assert mean_freq[0] < 0.3 and mean_freq[-1] > 2.3
    torch.testing.assert_close(decay.mean(), torch.tensor(0.25), atol=0.05, rtol=0)


def test_estimates_depend_on_the_input_and_vary_over_time() -> None:
    g = torch.Generator().manual_seed(1)
    enc = LambdaEncoder(num_kernels=8)
    a = torch.randn(1, 1, 80, 96, generator=g)
    b = torch.randn(1, 1, 80, 96, generator=g) * 3
    da, fa = enc(a)
    db, fb = enc(b)
    assert (da - db).abs().max() > 1e-3 and (fa - fb).abs().max() > 1e-3
    assert fa.std(dim=2).mean() > 1e-4  # across time patches of one clip


def test_static_variant_ignores_the_input() -> None:
    enc = LambdaEncoder(num_kernels=8, adaptive=False, num_subbands=5)
    da, fa = enc(torch.randn(2, 1, 80, 96))
    db, fb = enc(torch.randn(2, 1, 80, 96) * 5)
    torch.testing.assert_close(da, db)
    torch.testing.assert_close(fa, fb)
    assert da.shape == (2, 5, 6, 8)
    assert not hasattr(enc, "transformer")


def test_invalid_settings_are_named() -> None:
    with pytest.raises(ValueError, match="frequency band"):
        LambdaEncoder(min_frequency=1.0, max_frequency=0.5)
    with pytest.raises(ValueError, match="decays"):
        LambdaEncoder(init_decay=50.0)
    with pytest.raises(ValueError, match="num_subbands"):
        LambdaEncoder(adaptive=False)


def test_poles_are_float32_under_bfloat16_autocast() -> None:
    # Zero head weights: the poles are the head biases through the constraints, whatever the
    # (bfloat16) Transformer computes. Biases that bfloat16 rounds (8 bits of mantissa) would
    # move the frequencies by up to ~1e-2 rad/frame; computed in float32 they do not move.
    g = torch.Generator().manual_seed(0)
    enc = LambdaEncoder(num_kernels=8)
    with torch.no_grad():
        for head in (enc.decay_head, enc.frequency_head):
            head.weight.zero_()
            head.bias.copy_(torch.randn(8, generator=g) * 2)
    x = torch.randn(2, 1, 80, 96, generator=g)
    decay, frequency = enc(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        decay_bf16, frequency_bf16 = enc(x)
    assert decay_bf16.dtype == frequency_bf16.dtype == torch.float32
    torch.testing.assert_close(frequency_bf16, frequency, rtol=0, atol=1e-6)
    torch.testing.assert_close(decay_bf16, decay, rtol=0, atol=1e-6)


def test_offsets_keep_each_kernel_in_its_slot_and_its_decay_in_range() -> None:
    g = torch.Generator().manual_seed(3)
    free, offsets = LambdaEncoder(num_kernels=8), LambdaEncoder(num_kernels=8, pole_mode="offsets", decay_range=4.0)
    centres = offsets.centre_frequency
    ratio = offsets.slot_ratio
    assert ratio == pytest.approx(float(centres[1] / centres[0])) and ratio == pytest.approx((math.pi / (math.pi / 16)) ** (1 / 8))
    # The same centres as the free mode's initial spread: with zero head weights, the same poles.
    with torch.no_grad():
        for enc in (free, offsets):
            enc.decay_head.weight.zero_()
            enc.frequency_head.weight.zero_()
    x = torch.randn(2, 1, 80, 96, generator=g)
    (df, ff), (do, fo) = free(x), offsets(x)
    torch.testing.assert_close(fo, ff, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(do, df, rtol=1e-4, atol=1e-4)
    # Saturated heads (huge weights, any input): every kernel within a half-slot of its centre,
    # never crossing a neighbour, and decays within init_decay / 4 .. init_decay * 4.
    with torch.no_grad():
        offsets.decay_head.weight.normal_(0, 50.0, generator=g)
        offsets.frequency_head.weight.normal_(0, 50.0, generator=g)
    decay, frequency = offsets(torch.randn(4, 1, 80, 96, generator=g) * 100)
    low, high = centres / math.sqrt(ratio), centres * math.sqrt(ratio)
    assert ((frequency >= low * (1 - 1e-5)) & (frequency <= high * (1 + 1e-5))).all()
    assert frequency.min() < low[0] * 1.01 and frequency.max() > high[-1] * 0.99  # the bounds were reached
    assert (decay >= 0.25 / 4 - 1e-6).all() and (decay <= 0.25 * 4 + 1e-6).all()
    assert decay.min() < 0.0626 and decay.max() > 0.999


def test_offsets_learn_and_rebuild_their_centres_after_the_meta_device() -> None:
    enc = LambdaEncoder(num_kernels=8, pole_mode="offsets")
    decay, frequency = enc(torch.randn(1, 1, 80, 32))
    (frequency.sum() + decay.sum()).backward()
    assert enc.frequency_head.weight.grad.abs().sum() > 0 and enc.decay_head.bias.grad.abs().sum() > 0
    with torch.device("meta"):
        meta = LambdaEncoder(num_kernels=8, pole_mode="offsets")
    meta.to_empty(device="cpu")
    meta.reset_parameters()
    torch.testing.assert_close(meta.centre_frequency, enc.centre_frequency)
    with pytest.raises(ValueError, match="pole_mode"):
        LambdaEncoder(pole_mode="anywhere")
    with pytest.raises(ValueError, match="must lie within"):
        LambdaEncoder(pole_mode="offsets", decay_range=200.0)


def test_modulation_input_peaks_at_the_rate_of_each_rows_envelope() -> None:
    # Rows of one patch whose envelopes swing k times per patch (16 frames): the spectrum the
    # tokens receive peaks at DFT bin k (rate k / 16 per frame, 6.25 k Hz at 100 frames/s),
    # whatever the rows' level and phase.
    enc = LambdaEncoder(num_kernels=8, modulation_input=True)
    frames = torch.arange(16.0)
    g = torch.Generator().manual_seed(2)
    for k in range(1, 8):
        level, phase = torch.randn(16, 1, generator=g) * 3, torch.rand(16, 1, generator=g) * 2 * math.pi
        rows = level + torch.cos(2 * math.pi * k * frames / 16 + phase)
        spectrum = enc.modulation_spectrum(rows.flatten())  # frequency-major patch
        assert spectrum.shape == (8,) and int(spectrum.argmax()) == k - 1
    flat = enc.modulation_spectrum(torch.full((256,), 4.0))
    torch.testing.assert_close(flat, torch.full((8,), math.log(1e-4)))  # a constant envelope has no modulation


def test_modulation_input_reaches_the_poles_and_learns() -> None:
    torch.manual_seed(0)
    enc = LambdaEncoder(num_kernels=8, modulation_input=True)
    x = torch.randn(2, 1, 80, 64)
    decay, frequency = enc(x)
    (frequency.sum() + decay.sum()).backward()
    assert enc.modulation_proj.weight.grad.abs().sum() > 0
    # With the patch projection silenced, only the modulation spectrum tells a swinging
    # envelope (rate 1/4 per frame) from a flat one: the poles still differ.
    with torch.no_grad():
        enc.patch_proj.weight.zero_()
        _, swinging = enc(torch.cos(math.pi * torch.arange(64.0) / 2).expand(1, 1, 80, 64).contiguous())
        _, flat = enc(torch.zeros(1, 1, 80, 64))
    assert (swinging - flat).abs().max() > 1e-4
    with torch.device("meta"):
        meta = LambdaEncoder(num_kernels=8, modulation_input=True)
    meta.to_empty(device="cpu")
    meta.reset_parameters()
    torch.testing.assert_close(meta.modulation_window, enc.modulation_window)
    assert not hasattr(LambdaEncoder(num_kernels=8), "modulation_proj")
