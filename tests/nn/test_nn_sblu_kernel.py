"""The SBLU kernel against its closed form and its continuous-time meaning."""

import math

import pytest
import torch

from aape_plugin.nn.sblu_kernel import sblu_frequency_response, sblu_kernel, sblu_kernel_parts, sblu_tap_offsets


def closed_form(alpha: float, beta: float, step: float, num_taps: int) -> torch.Tensor:
    """``2 Lambda^-1 sinh(Delta Lambda / 2) exp(-Delta Lambda |k - c|)`` in complex128."""
    lam = complex(alpha, beta)
    c = num_taps // 2
    gain = 2 * torch.sinh(torch.tensor(step * lam / 2, dtype=torch.complex128)) / lam
    m = torch.arange(num_taps, dtype=torch.float64) - c
    return gain * torch.exp(-step * lam * m.abs())


def step_integral(alpha: float, beta: float, lo: float, hi: float, one_sided: bool = False) -> complex:
    """Trapezoid quadrature of exp(-Lambda |t|) (or exp(-Lambda t)) over [lo, hi], float64."""
    t = torch.linspace(lo, hi, 20_001, dtype=torch.float64)
    arg = t if one_sided else t.abs()
    f = torch.exp(-complex(alpha, beta) * arg)
    return complex(torch.trapezoid(f, t))


@pytest.mark.parametrize("alpha,beta,step", [(0.1, 0.5, 1.0), (0.7, 2.9, 1.0), (3.0, 40.0, 0.01), (0.02, 0.25, 2.0)])
def test_kernel_equals_closed_form(alpha: float, beta: float, step: float) -> None:
    k = sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 33, step=step)
    ref = closed_form(alpha, beta, step, 33)
    torch.testing.assert_close(k.to(torch.complex128), ref, rtol=2e-5, atol=1e-7 * step)


def test_kernel_batches_over_any_leading_shape() -> None:
    alpha = torch.rand(2, 3, 4) + 0.05
    beta = torch.rand(2, 3, 4) * 3 + 0.2
    k = sblu_kernel(alpha, beta, 9)
    assert k.shape == (2, 3, 4, 9)
    one = sblu_kernel(alpha[1, 2, 3], beta[1, 2, 3], 9)
    torch.testing.assert_close(k[1, 2, 3], one)


@pytest.mark.parametrize("alpha,beta", [(0.25, 0.4), (1.5, 3.0), (0.05, 2.0)])
def test_off_centre_taps_are_the_step_integral_of_the_bilateral_kernel(alpha: float, beta: float) -> None:
    step = 1.0
    k = sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 11, step=step)
    for idx, m in enumerate(sblu_tap_offsets(11).tolist()):
        if m == 0:
            continue
        a = abs(m) * step
        expected = step_integral(alpha, beta, a - step / 2, a + step / 2)
        assert abs(complex(k[idx]) - expected) < 1e-6 * max(1.0, abs(expected))


@pytest.mark.parametrize("alpha,beta", [(0.25, 0.4), (1.5, 3.0)])
def test_centre_tap_paper_and_exact_variants(alpha: float, beta: float) -> None:
    c = 5
    paper = complex(sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 11)[c])
    exact = complex(sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 11, centre_tap="exact")[c])

    # "exact": the step average of the two-sided kernel exp(-Lambda |t|) over [-1/2, 1/2].
    assert abs(exact - step_integral(alpha, beta, -0.5, 0.5)) < 1e-6
    # "paper": the same factor as the other taps, which is the integral of the one-sided
    # exp(-Lambda t) over the centre step; the two differ by 4 sinh^2(Lambda/4)/Lambda.
    assert abs(paper - step_integral(alpha, beta, -0.5, 0.5, one_sided=True)) < 1e-5
    lam = complex(alpha, beta)
    diff = 4 * complex(torch.sinh(torch.tensor(lam / 4, dtype=torch.complex128))) ** 2 / lam
    assert abs((paper - exact) - diff) < 1e-5

    # Everywhere else the variants agree.
    kp = sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 11)
    ke = sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 11, centre_tap="exact")
    mask = torch.ones(11, dtype=torch.bool)
    mask[c] = False
    torch.testing.assert_close(kp[mask], ke[mask])


def test_small_step_limit() -> None:
    # With Lambda fixed in continuous units, h[m] / Delta -> exp(-Lambda |m Delta|), and the
    # SBLU sum converges to the continuous integral  int exp(-Lambda |tau|) u(tau) d tau  with a
    # second-order error (midpoint rule): halving Delta divides the error by about 4.
    alpha, beta = 2.0, 9.0
    lam = complex(alpha, beta)

    def u(t: torch.Tensor) -> torch.Tensor:
        return torch.cos(3.0 * t) + 0.5 * torch.sin(7.0 * t + 0.3)

    half_width = 4.0
    t = torch.linspace(-half_width, half_width, 400_001, dtype=torch.float64)
    target = complex(torch.trapezoid(torch.exp(-lam * t.abs()) * u(t), t))

    errors, tap_errors = [], []
    for step in (0.1, 0.05, 0.025):
        num_taps = 2 * round(half_width / step) + 1
        k = sblu_kernel(torch.tensor(alpha), torch.tensor(beta), num_taps, step=step, centre_tap="exact")
        k = k.to(torch.complex128)
        taps_t = sblu_tap_offsets(num_taps).double() * step
        off_centre = taps_t != 0
        # h[m] / Delta = sinh(z)/z * exp(-Lambda |t_m|), z = Delta Lambda / 2: |sinh(z)/z - 1|
        # is about |Delta Lambda|^2 / 24.
        rel = (k[off_centre] / step / torch.exp(-lam * taps_t[off_centre].abs()) - 1).abs().max()
        assert rel <= abs(step * lam) ** 2 / 20
        tap_errors.append(float(rel))
        errors.append(abs(complex((k * u(taps_t)).sum()) - target))

    for errs in (errors, tap_errors):
        assert errs[0] / errs[1] > 3.0 and errs[1] / errs[2] > 3.0
    assert errors[2] < 1e-3


def test_zero_pole_is_finite_with_finite_gradients() -> None:
    alpha = torch.tensor([0.0, 1e-6], requires_grad=True)
    beta = torch.tensor([0.0, 1e-6], requires_grad=True)
    for centre_tap in ("paper", "exact"):
        k = sblu_kernel(alpha, beta, 7, step=0.5, centre_tap=centre_tap)
        # Lambda -> 0: every tap tends to the step, Delta.
        torch.testing.assert_close(k.real, torch.full((2, 7), 0.5), rtol=1e-4, atol=1e-6)
        k.abs().sum().backward()
        assert torch.isfinite(alpha.grad).all() and torch.isfinite(beta.grad).all()


def test_kernel_is_symmetric_in_k_minus_c() -> None:
    k = sblu_kernel(torch.rand(16) + 0.01, torch.rand(16) * math.pi, 33)
    torch.testing.assert_close(k, k.flip(-1))


def half_power_width(response: torch.Tensor, omega: torch.Tensor) -> float:
    power = response.abs() ** 2
    above = omega[power >= power.max() / 2]
    return float(above.max() - above.min())


@pytest.mark.parametrize("beta", [0.6, 1.5, 2.5])
def test_response_peaks_at_plus_minus_beta_with_width_set_by_alpha(beta: float) -> None:
    omega = torch.linspace(-math.pi, math.pi, 20_001, dtype=torch.float64)
    widths = []
    for alpha in (0.05, 0.1, 0.2):
        k = sblu_kernel(torch.tensor(alpha), torch.tensor(beta), 255)  # long: no truncation
        h = sblu_frequency_response(k, omega)
        for sign in (1, -1):
            side = omega * sign > 0
            peak = float(omega[side][h[side].abs().argmax()])
            assert abs(peak - sign * beta) < alpha / 4, (alpha, beta, peak)
        positive = omega > 0
        widths.append(half_power_width(h[positive], omega[positive]))
    # A resonance of a pole at distance alpha from the unit circle is about 2 alpha wide at
    # half power; doubling alpha doubles the width.
    for alpha, width in zip((0.05, 0.1, 0.2), widths):
        assert 0.8 < width / (2 * alpha) < 1.25, (alpha, width)


def test_response_with_default_taps_still_peaks_near_beta() -> None:
    # The stem's K = 33 truncates slow decays; the peak stays within a bin of beta.
    omega = torch.linspace(0, math.pi, 4001, dtype=torch.float64)
    # (Near pi the resonance at +beta merges with the image of -beta at 2 pi - beta, so the
    # discrete response peaks between them; that is why the band stops at pi.)
    for beta in (0.6, 1.0, 2.4):
        k = sblu_kernel(torch.tensor(0.25), torch.tensor(beta), 33)
        h = sblu_frequency_response(k, omega).abs()
        assert abs(float(omega[h.argmax()]) - beta) < 0.1
    # When the decay is comparable to the frequency the resonance moves towards
    # sqrt(beta^2 - alpha^2), as for the continuous kernel 2 Lambda / (Lambda^2 + omega^2).
    k = sblu_kernel(torch.tensor(0.25), torch.tensor(0.3), 255)
    peak = float(omega[sblu_frequency_response(k, omega).abs().argmax()])
    assert abs(peak - math.sqrt(0.3**2 - 0.25**2)) < 0.03


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="odd"):
        sblu_kernel(torch.tensor(1.0), torch.tensor(1.0), 32)
    with pytest.raises(ValueError, match="same shape"):
        sblu_kernel(torch.ones(2), torch.ones(3), 5)
    with pytest.raises(ValueError, match="centre_tap"):
        sblu_kernel(torch.ones(2), torch.ones(2), 5, centre_tap="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("centre_tap", ["paper", "exact"])
@pytest.mark.parametrize("step", [1.0, 0.5])
def test_real_parts_equal_the_complex_closed_form(centre_tap: str, step: float) -> None:
    # The stem applies sblu_kernel_parts (real arithmetic, half the taps mirrored): it must be
    # the closed form, across the whole pole range the Lambda Encoder can produce.
    g = torch.Generator().manual_seed(0)
    decay = torch.cat([torch.tensor([1e-3, 1e-4, 20.0]), torch.rand(200, generator=g) * 3])
    frequency = torch.cat([torch.tensor([math.pi / 16, math.pi, 1e-4]), math.pi * torch.rand(200, generator=g)])
    want = sblu_kernel(decay, frequency, 33, step=step, centre_tap=centre_tap)  # type: ignore[arg-type]
    got = sblu_kernel_parts(decay, frequency, 33, step=step, centre_tap=centre_tap)  # type: ignore[arg-type]
    assert got.shape == (203, 2, 33) and got.dtype == torch.float32
    torch.testing.assert_close(got[:, 0], want.real, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(got[:, 1], want.imag, atol=2e-6, rtol=1e-5)


def test_real_parts_have_the_same_gradients() -> None:
    g = torch.Generator().manual_seed(1)
    a1 = (torch.rand(50, generator=g) * 2 + 1e-3).requires_grad_()
    b1 = (math.pi * torch.rand(50, generator=g)).requires_grad_()
    a2, b2 = a1.detach().clone().requires_grad_(), b1.detach().clone().requires_grad_()
    w = torch.randn(50, 2, 33, generator=g)
    (torch.view_as_real(sblu_kernel(a1, b1, 33)).transpose(-1, -2) * w).sum().backward()
    (sblu_kernel_parts(a2, b2, 33) * w).sum().backward()
    torch.testing.assert_close(a2.grad, a1.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b2.grad, b1.grad, atol=1e-4, rtol=1e-4)
