"""Figure 2 of the paper: spectra and frequency gradients of two-sided, one-sided and Gaussian windows.

Each window ``w`` is modulated to a target frequency ``beta`` (rad/frame), and we look at how
strongly the kernel's response to an input sinusoid at ``omega`` reacts to ``beta``:
``|d |H(omega; beta)| / d beta|``, as a function of the offset ``omega - beta``. Where this
gradient vanishes, an input component cannot pull the kernel's frequency towards itself.

* two-sided: the SBLU kernel ``exp(-Lambda |m|)`` itself, from :func:`sblu_kernel`
  (symmetric; resonances at ``+-beta``);
* one-sided: ``exp(-alpha m) exp(i beta m)`` for ``m >= 0`` (the causal Laplace / state-space
  kernel);
* Gaussian: ``exp(-m^2 / (2 sigma^2)) exp(i beta m)``.

Normalisation (the paper: "window parameters normalised so that the peak gradient magnitude
equals 1"): the one-sided ``alpha`` and the Gaussian ``sigma`` are chosen so that every window
has the same half-power bandwidth as the two-sided one (equal selectivity), and each gradient
curve is divided by its own peak. (Choosing the widths so that the raw peak gradient is 1 forces
near-impulse windows in discrete time and compares nothing useful.) Gradients are exact:
forward-mode automatic differentiation through the kernel generators.

Frequencies are in rad/frame, the kernel's own unit (it runs along log-mel frames); each axis
also shows Hz at the log-mel's 100 frames/s (``Hz = rad/frame x 100 / (2 pi)``), the unit of
Figure 4 (:mod:`aape_plugin.figures.lambda_estimates`).

Run: ``python -m aape_plugin.figures.window_gradients [--out figure2_window_gradients.png]`` (default:
that file in the working directory).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, TypeAlias

import torch
from torch import Tensor
from torch.func import jvp

from aape_plugin.data.features import LogMelConfig
from aape_plugin.nn.sblu_kernel import sblu_frequency_response, sblu_kernel, sblu_tap_offsets

Window: TypeAlias = Literal["two-sided", "one-sided", "gaussian"]

WINDOWS: tuple[Window, ...] = ("two-sided", "one-sided", "gaussian")

FRAMES_PER_SECOND = LogMelConfig().frames_per_second
"""The log-mel frame rate (100/s) at which rad/frame is also given in Hz."""

DEFAULT_OUT = Path("figure2_window_gradients.png")


def to_hz(rad_per_frame: float | Tensor) -> float | Tensor:
    """rad/frame at the log-mel frame rate, in Hz."""
    return rad_per_frame * FRAMES_PER_SECOND / (2 * math.pi)


def to_rad_per_frame(hz: float | Tensor) -> float | Tensor:
    return hz * 2 * math.pi / FRAMES_PER_SECOND


def window_kernel(window: Window, width: float, frequency: Tensor, num_taps: int) -> Tensor:
    """A complex kernel of ``num_taps`` centred taps; ``width`` is ``alpha`` or ``sigma``."""
    m = sblu_tap_offsets(num_taps).double()

    if window == "two-sided":
        decay = torch.full_like(frequency, width)
        return sblu_kernel(decay.float(), frequency.float(), num_taps).to(torch.complex128)

    carrier = torch.exp(1j * frequency.double() * m)

    if window == "one-sided":
        envelope = torch.where(m >= 0, torch.exp(-width * m.clamp(min=0)), torch.zeros_like(m))
    elif window == "gaussian":
        envelope = torch.exp(-(m**2) / (2 * width**2))
    else:
        raise ValueError(f"`window` must be one of {WINDOWS}, but is {window!r} instead.")

    return envelope * carrier


def magnitude_and_gradient(
    window: Window, width: float, frequency: float, omega: Tensor, num_taps: int
) -> tuple[Tensor, Tensor]:
    """``|H(omega)|`` and ``|d|H(omega)| / d beta|`` at ``beta = frequency``, both ``(W,)``."""

    def magnitude(beta: Tensor) -> Tensor:
        kernel = window_kernel(window, width, beta, num_taps)
        return sblu_frequency_response(kernel, omega.double()).abs()

    beta = torch.tensor(frequency, dtype=torch.float64)

    mag, grad = jvp(magnitude, (beta,), (torch.ones_like(beta),))

    return mag, grad.abs()


def half_power_bandwidth(magnitude: Tensor, omega: Tensor) -> float:
    """Width of the region where ``|H|^2`` is at least half its maximum."""
    power = magnitude**2
    inside = omega[power >= power.max() / 2]
    return float(inside.max() - inside.min())


def match_width(
    window: Window, target_bandwidth: float, frequency: float, omega: Tensor, num_taps: int
) -> float:
    """The ``alpha`` (one-sided) or ``sigma`` (Gaussian) with the target half-power bandwidth.

    Bisection in log-width: the bandwidth grows with ``alpha`` and shrinks with ``sigma``.
    """
    lo, hi = (1e-3, 3.0) if window != "gaussian" else (0.3, 500.0)

    for _ in range(60):
        mid = math.sqrt(lo * hi)
        mag, _ = magnitude_and_gradient(window, mid, frequency, omega, num_taps)
        too_wide = half_power_bandwidth(mag, omega) > target_bandwidth
        if too_wide == (window != "gaussian"):
            hi = mid
        else:
            lo = mid

    return math.sqrt(lo * hi)


@dataclass(kw_only=True)
class WindowCurves:
    """Normalised spectra and gradients of one window."""

    window: str
    width: float
    """``alpha`` (1/frame) of the exponential windows, ``sigma`` (frames) of the Gaussian."""
    omega: list[float]
    magnitude: list[float]
    """``|H|`` divided by its peak."""
    gradient: list[float]
    """``|d|H|/d beta|`` divided by its peak."""


def compute_curves(
    *, decay: float = 0.1, frequency: float = 1.2, num_taps: int = 257, num_points: int = 2001
) -> list[WindowCurves]:
    """The three windows' curves, widths matched to the two-sided window of ``decay``."""
    omega = torch.linspace(0.0, math.pi, num_points, dtype=torch.float64)

    mag, _ = magnitude_and_gradient("two-sided", decay, frequency, omega, num_taps)

    bandwidth = half_power_bandwidth(mag, omega)

    curves = []

    for window in WINDOWS:
        if window == "two-sided":
            width = decay
        else:
            width = match_width(window, bandwidth, frequency, omega, num_taps)

        mag, grad = magnitude_and_gradient(window, width, frequency, omega, num_taps)

        curves.append(
            WindowCurves(
                window=window,
                width=width,
                omega=omega.tolist(),
                magnitude=(mag / mag.max()).tolist(),
                gradient=(grad / grad.max()).tolist(),
            )
        )

    return curves


def far_gradient_summary(
    curves: Sequence[WindowCurves], frequency: float, *, min_offset: float
) -> dict[str, dict[str, float]]:
    """Mean normalised gradient below and above the target, at offsets beyond ``min_offset``."""
    summary = {}

    for c in curves:
        omega = torch.tensor(c.omega)
        grad = torch.tensor(c.gradient)
        offset = omega - frequency
        below = grad[offset <= -min_offset]
        above = grad[offset >= min_offset]
        summary[c.window] = {
            "below": float(below.mean()) if below.numel() else float("nan"),
            "above": float(above.mean()) if above.numel() else float("nan"),
            "all": float(torch.cat([below, above]).mean()),
        }

    return summary


def draw(curves: Sequence[WindowCurves], frequency: float, out: Path) -> None:
    """Two panels as in the paper: spectra, and gradient magnitude vs. frequency offset."""
    import matplotlib.pyplot as plt

    fig = figure(curves, frequency)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def figure(curves: Sequence[WindowCurves], frequency: float):  # type: ignore[no-untyped-def]
    """The matplotlib figure :func:`draw` saves."""
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt

    fig, (ax_spec, ax_grad) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)

    styles = {"two-sided": "-", "one-sided": "--", "gaussian": ":"}

    for c in curves:
        omega = torch.tensor(c.omega)
        label = f"{c.window} ({'sigma' if c.window == 'gaussian' else 'alpha'}={c.width:.3g})"
        ax_spec.plot(omega, c.magnitude, styles[c.window], label=label)
        ax_grad.semilogy(omega - frequency, torch.tensor(c.gradient).clamp(min=1e-6), styles[c.window], label=c.window)

    ax_spec.axvline(frequency, color="gray", lw=0.8)
    ax_spec.set_xlabel("input frequency omega (rad/frame)")
    ax_spec.set_ylabel("|H(omega)| (peak = 1)")
    ax_spec.set_title(f"Spectra, target beta = {frequency:.2f} rad/frame ({to_hz(frequency):.1f} Hz)")
    ax_spec.legend(fontsize=8)

    ax_grad.set_xlabel("offset omega - beta (rad/frame)")
    for ax, what in ((ax_spec, "omega"), (ax_grad, "omega - beta")):
        top = ax.secondary_xaxis("top", functions=(to_hz, to_rad_per_frame))
        top.set_xlabel(f"{what} (Hz at {FRAMES_PER_SECOND:g} log-mel frames/s)", fontsize=8)
    ax_grad.set_ylabel("|d|H|/d beta| (peak = 1)")
    ax_grad.set_ylim(1e-6, 2)
    ax_grad.set_title("Gradient magnitude w.r.t. frequency")
    ax_grad.legend(fontsize=8)

    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aape_plugin.figures.window_gradients",
        description="Reproduce the paper's Figure 2 from this project's SBLU kernel.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default: {DEFAULT_OUT} in the working directory)")
    parser.add_argument("--decay", type=float, default=0.1, help="two-sided alpha, 1/frame")
    parser.add_argument("--frequency", type=float, default=1.2, help="target beta, rad/frame")
    parser.add_argument("--num-taps", type=int, default=257)
    parser.add_argument("--min-offset", type=float, default=0.5, help="'far' offsets, rad/frame")
    args = parser.parse_args(argv)

    if not 0 < args.frequency < math.pi:
        parser.error(f"--frequency must be in (0, pi) rad/frame, got {args.frequency}")

    curves = compute_curves(decay=args.decay, frequency=args.frequency, num_taps=args.num_taps)

    draw(curves, args.frequency, args.out)

    summary = far_gradient_summary(curves, args.frequency, min_offset=args.min_offset)

    args.out.with_suffix(".json").write_text(
        json.dumps({"settings": vars(args) | {"out": str(args.out)}, "units": "rad/frame",
                    "frames_per_second": FRAMES_PER_SECOND, "frequency_hz": to_hz(args.frequency), "far_gradient": summary,
                    "widths": {c.window: c.width for c in curves}}, indent=2)
    )

    print(f"wrote {args.out} (and {args.out.with_suffix('.json').name})")
    print(f"mean normalised gradient at |omega - beta| >= {args.min_offset} rad/frame:")
    for window, s in summary.items():
        print(f"  {window:10s} below {s['below']:.3g}  above {s['above']:.3g}  all {s['all']:.3g}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
