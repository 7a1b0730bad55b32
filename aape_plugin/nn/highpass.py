"""Zero-phase high-pass filtering of a spectrogram along time."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from aape_plugin.nn.transfer import to_device_async


def design_highpass_fir(cutoff: float, num_taps: int, *, kaiser_beta: float = 8.0) -> Tensor:
    """Designs a symmetric (linear-phase, centred: zero-phase) high-pass FIR filter.

    Windowed-sinc design: a Kaiser-windowed ideal low-pass with cut-off ``cutoff`` (rad/sample),
    normalised to unit DC gain, subtracted from a unit impulse. The DC gain of the result is
    exactly zero, so a steady spectrogram bin gives no response at all. Written here (twenty
    lines) rather than taken from SciPy to keep SciPy out of the runtime dependencies.

    :param cutoff: the -6 dB point, in rad/sample, in ``(0, pi)``.
    :param num_taps: odd filter length; the transition band is about
        ``(kaiser_beta + 1.6) * 2 / (num_taps - 1)`` rad/sample wide (wider for fewer taps).
    :returns: ``(num_taps,)`` float64 taps, symmetric about the centre.
    """
    if not 0.0 < cutoff < math.pi:
        raise ValueError(f"`cutoff` must be in (0, pi) rad/sample, but is {cutoff} instead.")

    if num_taps < 3 or num_taps % 2 == 0:
        raise ValueError(f"`num_taps` must be an odd number >= 3, but is {num_taps} instead.")

    centre = num_taps // 2

    m = torch.arange(num_taps, dtype=torch.float64) - centre

    lowpass = (cutoff / math.pi) * torch.special.sinc(cutoff * m / math.pi)

    lowpass *= torch.kaiser_window(num_taps, periodic=False, beta=kaiser_beta, dtype=torch.float64)

    lowpass /= lowpass.sum()

    highpass = -lowpass

    highpass[centre] += 1.0

    return highpass


class ZeroPhaseHighPass(Module):
    """Applies one symmetric FIR high-pass to every row of ``(..., T)`` along ``T``.

    The filter is centred (no delay) and symmetric, hence zero-phase: it removes slow changes
    of each spectrogram bin (below ``cutoff``) without shifting what remains in time. The ends
    are extended by repeating the edge frames, so a constant input gives exactly zero output.
    """

    taps: Tensor

    def __init__(self, cutoff: float, num_taps: int, *, kaiser_beta: float = 8.0) -> None:
        super().__init__()

        self.cutoff = cutoff
        self.num_taps = num_taps
        self.kaiser_beta = kaiser_beta

        self.register_buffer("taps", torch.empty(num_taps), persistent=False)

        self._matrices: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}

        self.reset_non_persistent_buffers()

    def reset_parameters(self) -> None:
        """No parameters; materialising a meta-device model (fairseq2's ``to_device``) calls
        this, and the taps must be computed then."""
        self.reset_non_persistent_buffers()

    def reset_non_persistent_buffers(self) -> None:
        """Recomputes the taps (also after construction on the meta device)."""
        taps = design_highpass_fir(self.cutoff, self.num_taps, kaiser_beta=self.kaiser_beta)

        self.taps = taps.to(device=self.taps.device, dtype=torch.float32)

    def matrix(self, num_frames: int, *, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The filter as a ``(T, T)`` matrix ``H`` with ``y = x @ H`` along time, edges included.

        Replicate-padding and the FIR are both linear, so the whole map is one matrix; applied
        as one matrix product it is several times faster than a one-channel ``conv1d`` over
        every row (measured in ``docs/benchmarks/stem.md``), on CPU and GPU, and equal up to
        float rounding. Built in float64, cached per length, device and dtype.
        """
        key = (num_frames, device, dtype)

        cached = self._matrices.get(key)
        if cached is not None:
            return cached

        half = self.num_taps // 2

        taps = design_highpass_fir(self.cutoff, self.num_taps, kaiser_beta=self.kaiser_beta)

        out = torch.arange(num_frames).unsqueeze(1)  # y[i] = sum_k taps[k] x[clamp(i + k - half)]
        source = (out + torch.arange(self.num_taps) - half).clamp(0, num_frames - 1)

        matrix = torch.zeros(num_frames, num_frames, dtype=torch.float64)
        matrix.index_put_((source, out.expand_as(source)), taps.expand_as(source), accumulate=True)

        cached = to_device_async(matrix, device, dtype)  # built once per length; no stream sync

        self._matrices[key] = cached

        return cached

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(..., T)``. :returns: the filtered ``(..., T)``."""
        return x @ self.matrix(x.size(-1), device=x.device, dtype=x.dtype)

    def reference(self, x: Tensor) -> Tensor:
        """The same filter as a replicate-padded ``conv1d`` (the definition; tests compare)."""
        shape = x.shape

        rows = x.reshape(-1, 1, shape[-1])

        half = self.num_taps // 2

        rows = F.pad(rows, (half, half), mode="replicate")

        # The taps are symmetric, so conv1d's cross-correlation is the convolution.
        out = F.conv1d(rows, self.taps.to(x.dtype).view(1, 1, -1))

        return out.view(shape)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff:.4f}, num_taps={self.num_taps}, kaiser_beta={self.kaiser_beta}"
