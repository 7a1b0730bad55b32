"""The zero-phase high-pass: symmetric, no delay, attenuates below its cut-off."""

import math

import pytest
import torch

from aape_plugin.nn.highpass import ZeroPhaseHighPass, design_highpass_fir

CUTOFF = math.pi / 16  # the post-patch Nyquist of 16-frame patches


def response(taps: torch.Tensor, omega: float) -> complex:
    m = torch.arange(taps.numel(), dtype=torch.float64) - taps.numel() // 2
    return complex((taps.double() * torch.exp(-1j * omega * m)).sum())


def test_taps_are_symmetric_so_the_response_is_real() -> None:
    taps = design_highpass_fir(CUTOFF, 129)
    torch.testing.assert_close(taps, taps.flip(0))
    for omega in (0.05, 0.2, 0.7, 2.0, 3.1):
        assert abs(response(taps, omega).imag) < 1e-12


def test_attenuates_below_the_cutoff_and_passes_above() -> None:
    taps = design_highpass_fir(CUTOFF, 129)
    assert abs(response(taps, 0.0)) < 1e-12  # exactly no DC
    for omega in (0.01, 0.03, 0.06):
        assert abs(response(taps, omega)) < 2e-3, omega
    assert abs(response(taps, CUTOFF / 2)) < 1e-2  # -40 dB half an octave below the cut-off
    assert abs(abs(response(taps, CUTOFF)) - 0.5) < 0.02  # the -6 dB point
    for omega in (2 * CUTOFF, 0.6, 1.0, 2.0, math.pi):
        assert abs(abs(response(taps, omega)) - 1) < 2e-3, omega


def test_passband_sinusoid_comes_out_unshifted() -> None:
    # Zero phase: a 10 Hz modulation at 100 frames/s keeps its timing (no delay).
    hp = ZeroPhaseHighPass(CUTOFF, 129)
    n = torch.arange(608, dtype=torch.float32)
    omega = 2 * math.pi * 10 / 100
    x = 3.0 + torch.cos(omega * n + 0.4)  # an offset (removed) plus the modulation (kept)
    y = hp(x.view(1, 1, -1)).view(-1)
    interior = slice(80, 528)
    torch.testing.assert_close(y[interior], (x - 3.0)[interior], atol=5e-3, rtol=0)


def test_steady_input_gives_exactly_zero() -> None:
    hp = ZeroPhaseHighPass(CUTOFF, 129)
    x = torch.full((2, 80, 96), -4.2)
    assert hp(x).abs().max() < 1e-5


def test_short_inputs_work() -> None:
    hp = ZeroPhaseHighPass(CUTOFF, 129)
    assert hp(torch.randn(3, 16)).shape == (3, 16)


@pytest.mark.parametrize(
    "cutoff,taps,message",
    [
        (0.0, 129, r"`cutoff` must be in \(0, pi\) rad/sample, but is 0.0 instead"),
        (math.pi, 129, r"`cutoff` must be in \(0, pi\) rad/sample, but is 3.14159"),
        (0.3, 128, r"`num_taps` must be an odd number >= 3, but is 128 instead"),
        (0.3, 1, r"`num_taps` must be an odd number >= 3, but is 1 instead"),
    ],
)
def test_bad_designs_are_named(cutoff: float, taps: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        design_highpass_fir(cutoff, taps)


@pytest.mark.parametrize("num_frames", [5, 16, 96, 608])
def test_matrix_form_equals_the_padded_convolution(num_frames: int) -> None:
    # forward() applies the filter as one (T, T) matrix; it must be the replicate-padded FIR.
    hp = ZeroPhaseHighPass(CUTOFF, 129)
    x = torch.randn(4, 80, num_frames, generator=torch.Generator().manual_seed(num_frames))
    torch.testing.assert_close(hp(x), hp.reference(x), atol=1e-5, rtol=0)
    x64 = x.double()
    torch.testing.assert_close(hp(x64), hp.reference(x64), atol=1e-6, rtol=0)  # reference taps: float32
