"""The SBLU (Structured Bilateral Laplace Unit) kernel, generated from its parameters.

For a complex pole ``Lambda = alpha + i beta`` (decay ``alpha > 0``, angular frequency
``beta``), a step ``Delta`` and ``K`` taps centred at ``c = K // 2``, the unit computes

    y[n] = 2 C Lambda^-1 sinh(Delta Lambda / 2) * sum_k exp(-Delta Lambda |k - c|) B u[n + k - c]

so the depthwise kernel applied between the projections ``B`` and ``C`` is

    h[m] = 2 sinh(Delta Lambda / 2) / Lambda * exp(-Delta Lambda |m|),   m = k - c.

Why this form: for ``m != 0`` the factor ``2 sinh(Delta Lambda / 2) / Lambda`` makes ``h[m]``
the exact integral of the continuous two-sided (bilateral) Laplace kernel ``exp(-Lambda |t|)``
over the step ``|m| Delta +- Delta / 2``, so the discrete unit is a step-averaged sampling of
a continuous band-pass filter whose response peaks at ``+-beta`` with a width set by
``alpha``. At the centre tap the published formula keeps the same factor (``centre_tap="paper"``,
the default); the exact step average there is ``2 (1 - exp(-Delta Lambda / 2)) / Lambda``
(``centre_tap="exact"``). The two differ by ``4 sinh^2(Delta Lambda / 4) / Lambda`` at ``m = 0``
only, i.e. by a frequency-independent offset of the response, which is small for
``|Delta Lambda| << 1`` and grows towards ``2 / |Lambda|`` as ``Delta beta -> pi``.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch
from torch import Tensor

CentreTap: TypeAlias = Literal["paper", "exact"]

# Below this |z| the ratios sinh(z)/z and (1 - exp(-z))/z are taken from their Taylor series:
# the direct quotient is 0/0 at z = 0 and loses precision near it.
_SERIES_BELOW = 1e-3


def _sinh_over(z: Tensor) -> Tensor:
    """``sinh(z) / z`` for complex ``z``, finite (and with finite gradients) at ``z = 0``."""
    small = z.abs() < _SERIES_BELOW
    z_safe = torch.where(small, torch.ones_like(z), z)
    series = 1 + z * z / 6
    return torch.where(small, series, torch.sinh(z_safe) / z_safe)


def _one_minus_exp_neg_over(z: Tensor) -> Tensor:
    """``(1 - exp(-z)) / z`` for complex ``z``, finite (and with finite gradients) at ``z = 0``."""
    small = z.abs() < _SERIES_BELOW
    z_safe = torch.where(small, torch.ones_like(z), z)
    series = 1 - z / 2 + z * z / 6
    return torch.where(small, series, (1 - torch.exp(-z_safe)) / z_safe)


def _check_kernel_args(decay: Tensor, frequency: Tensor, step: float, centre_tap: str) -> None:
    if decay.shape != frequency.shape:
        raise ValueError(
            f"`decay` and `frequency` must have the same shape, but have {tuple(decay.shape)} "
            f"and {tuple(frequency.shape)} instead."
        )

    if step <= 0.0:
        raise ValueError(f"`step` must be positive, but is {step} instead.")

    if centre_tap not in ("paper", "exact"):
        raise ValueError(f"`centre_tap` must be 'paper' or 'exact', but is {centre_tap!r} instead.")


def sblu_tap_offsets(num_taps: int, *, device: torch.device | None = None) -> Tensor:
    """The signed tap offsets ``m = k - c`` for ``k = 0 .. K-1`` and ``c = K // 2``."""
    if num_taps < 1 or num_taps % 2 == 0:
        raise ValueError(
            f"`num_taps` must be a positive odd number so that the kernel is centred, "
            f"but is {num_taps} instead."
        )

    centre = num_taps // 2

    return torch.arange(num_taps, device=device, dtype=torch.float32) - centre


def sblu_kernel(
    decay: Tensor,
    frequency: Tensor,
    num_taps: int,
    *,
    step: float = 1.0,
    centre_tap: CentreTap = "paper",
) -> Tensor:
    """Generates SBLU kernels for a batch of complex poles at once.

    :param decay: ``alpha``, any shape, positive; in units of 1 / (unit of ``step``).
    :param frequency: ``beta``, same shape as ``decay``; angular frequency in rad / (unit of
        ``step``). With ``step=1`` and one step per spectrogram frame, ``beta`` is in rad/frame.
    :param num_taps: ``K``, odd; the kernel is centred on tap ``c = K // 2``.
    :param step: ``Delta``, the sampling step.
    :param centre_tap: ``"paper"`` uses the published factor at every tap; ``"exact"`` uses
        the exact step average of ``exp(-Lambda |t|)`` at the centre tap (see module docstring).

    :returns: complex64 kernels of shape ``decay.shape + (K,)``, tap ``k`` at index ``k``.
        Computed in float32 whatever the input dtype (complex bfloat16 does not exist, and the
        exponentials need the range); cast the real and imaginary parts where they are used.
    """
    _check_kernel_args(decay, frequency, step, centre_tap)

    offsets = sblu_tap_offsets(num_taps, device=decay.device).abs()

    with torch.autocast(device_type=decay.device.type, enabled=False):
        lam = torch.complex(decay.float(), frequency.float()).unsqueeze(-1)  # (..., 1)

        half_step = 0.5 * step * lam

        # 2 sinh(Delta Lambda / 2) / Lambda == Delta * sinh(z) / z with z = Delta Lambda / 2,
        # which stays finite as Lambda -> 0 (where the gain tends to Delta).
        gain = step * _sinh_over(half_step)

        kernel = gain * torch.exp(-step * lam * offsets)

        if centre_tap == "exact":
            centre = num_taps // 2

            # 2 (1 - exp(-Delta Lambda / 2)) / Lambda == Delta * (1 - exp(-z)) / z.
            exact_centre = step * _one_minus_exp_neg_over(half_step)

            mask = torch.zeros(num_taps, dtype=torch.bool, device=decay.device)
            mask[centre] = True

            kernel = torch.where(mask, exact_centre, kernel)

    return kernel


def sblu_frequency_response(kernel: Tensor, omega: Tensor) -> Tensor:
    """The DTFT ``H(omega) = sum_m h[m] exp(-i omega m)`` of centred kernels.

    :param kernel: ``(..., K)`` complex kernels, as returned by :func:`sblu_kernel`.
    :param omega: ``(W,)`` angular frequencies in rad/sample.

    :returns: ``(..., W)`` complex responses.
    """
    offsets = sblu_tap_offsets(kernel.size(-1), device=kernel.device)

    phases = torch.exp(-1j * omega.float().unsqueeze(-1) * offsets)  # (W, K)

    return kernel @ phases.transpose(0, 1).to(kernel.dtype)


def sblu_kernel_parts(
    decay: Tensor,
    frequency: Tensor,
    num_taps: int,
    *,
    step: float = 1.0,
    centre_tap: CentreTap = "paper",
) -> Tensor:
    """The kernels of :func:`sblu_kernel` as real and imaginary parts, ``(..., 2, K)`` float32.

    The same closed form, written for speed where the kernels are applied: the gain is complex
    but there is one per pole, while the taps are ``exp(-Delta alpha |m|)`` times ``cos`` and
    ``sin`` of ``Delta beta |m|`` in real arithmetic, computed for ``|m| = 0 .. c`` only and
    mirrored (the kernel is symmetric in ``m``). Equal to :func:`sblu_kernel` up to float32
    rounding (tested).
    """
    _check_kernel_args(decay, frequency, step, centre_tap)

    offsets = sblu_tap_offsets(num_taps, device=decay.device)[num_taps // 2 :]  # |m| = 0 .. c

    with torch.autocast(device_type=decay.device.type, enabled=False):
        alpha, beta = decay.float(), frequency.float()

        half_step = 0.5 * step * torch.complex(alpha, beta)

        gain = step * _sinh_over(half_step)  # (...,) complex: one per pole

        gain_re, gain_im = gain.real.unsqueeze(-1), gain.imag.unsqueeze(-1)

        envelope = torch.exp(-step * alpha.unsqueeze(-1) * offsets)  # (..., c + 1)

        phase = step * beta.unsqueeze(-1) * offsets

        cos, sin = torch.cos(phase), torch.sin(phase)

        # gain * exp(-i phase) * envelope, split into real and imaginary parts.
        real = envelope * (gain_re * cos + gain_im * sin)
        imag = envelope * (gain_im * cos - gain_re * sin)

        if centre_tap == "exact":
            centre = step * _one_minus_exp_neg_over(half_step)

            real = torch.cat([centre.real.unsqueeze(-1), real[..., 1:]], dim=-1)
            imag = torch.cat([centre.imag.unsqueeze(-1), imag[..., 1:]], dim=-1)

        half = torch.stack([real, imag], dim=-2)  # (..., 2, c + 1), tap |m|

    return torch.cat([half[..., 1:].flip(-1), half], dim=-1)  # (..., 2, K), tap k = m + c
