"""The Adaptive SBLU: per-patch band-pass analysis of the alias-prone band of each subband."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Conv1d, Module

from aape_plugin.nn.highpass import ZeroPhaseHighPass
from aape_plugin.nn.sblu_kernel import CentreTap, sblu_kernel


class AdaptiveSBLU(Module):
    """Aliasing-focused features of a log-mel spectrogram, one vector per patch.

    For each subband (a row of ``p`` mel bins, aligned with one row of patches):

    1. **Zero-phase high-pass** along time (cut-off at the post-patch Nyquist ``pi / p``
       rad/frame): keeps only the modulations that patching with stride ``p`` would alias.
    2. **B**: a grouped pointwise projection, the subband's ``p`` bins -> ``N`` channels.
    3. **Adaptive depthwise convolution**: channel ``n`` of time patch ``j`` is filtered with the
       complex SBLU kernel of pole ``Lambda[s, j, n]`` estimated by the Lambda Encoder. Every
       frame of patch ``j`` uses that patch's kernel; its ``K`` taps reach into the neighbours.
    4. **C**: a grouped pointwise projection of ``[Re, Im]`` (``2N`` channels) -> ``out_dim``.
    5. **Patch pooling**: root mean square over the ``p`` frames of each patch. The band-pass
       output oscillates at the alias-prone frequency itself, so sampling it once per patch would
       alias again; its mean power over a patch does not depend on where in the patch the
       oscillation starts (for a sinusoid, exactly so when the patch spans whole periods of the
       squared signal) and is safe to represent at the patch rate.

    Memory-efficient formulation of step 3. Because the kernel changes from patch to patch,
    the filtering is not one convolution, and the obvious way (im2col: a ``K``-tap window for
    every frame) would hold ``K = 33`` copies of the input. Here the zero-padded sequence is cut
    into overlapping per-patch segments of ``p + 2c`` frames (a strided view, copied once:
    ``(p + 2c) / p = 3`` times the input at the defaults), and one grouped ``conv1d`` with one
    group per (clip, subband, channel, patch) and two output channels (real and imaginary
    kernel) produces exactly the ``p`` outputs of every segment. This is exact (it equals the
    per-frame sum ``sum_k h[k - c] u[n + k - c]``, tested against a direct implementation) and
    the kernels themselves are generated from ``Lambda`` in closed form, never learned per tap.
    """

    def __init__(
        self,
        *,
        num_mel_bins: int = 80,
        patch_size: int = 16,
        num_kernels: int = 8,
        num_taps: int = 33,
        out_dim: int = 64,
        highpass_taps: int | None = None,
        step: float = 1.0,
        centre_tap: CentreTap = "paper",
        pool_eps: float = 1e-6,
    ) -> None:
        """
        :param num_mel_bins: ``F``; a multiple of ``patch_size``.
        :param patch_size: ``p``; subbands are ``p`` mel bins, patches ``p`` frames.
        :param num_kernels: ``N`` SBLU kernels per subband.
        :param num_taps: ``K`` (odd), centred at ``c = K // 2``.
        :param out_dim: aliasing features per patch.
        :param highpass_taps: length of the zero-phase high-pass; ``None`` means ``8p + 1``.
        :param step: ``Delta`` of the SBLU, in frames.
        :param centre_tap: ``"paper"`` or ``"exact"``, see :func:`sblu_kernel`.
        :param pool_eps: added under the square root of the patch pooling.
        """
        super().__init__()

        if num_mel_bins % patch_size != 0:
            raise ValueError(
                f"`num_mel_bins` must be a multiple of `patch_size` ({patch_size}), but is "
                f"{num_mel_bins} instead."
            )

        if num_taps < 1 or num_taps % 2 == 0:
            raise ValueError(f"`num_taps` must be a positive odd number, but is {num_taps} instead.")

        if highpass_taps is None:
            highpass_taps = 8 * patch_size + 1

        self.num_mel_bins = num_mel_bins
        self.patch_size = patch_size
        self.num_subbands = num_mel_bins // patch_size
        self.num_kernels = num_kernels
        self.num_taps = num_taps
        self.out_dim = out_dim
        self.step = step
        self.centre_tap: CentreTap = centre_tap
        self.pool_eps = pool_eps

        self.highpass = ZeroPhaseHighPass(math.pi / patch_size, highpass_taps)

        s = self.num_subbands

        self.in_proj = Conv1d(s * patch_size, s * num_kernels, 1, groups=s, bias=False)

        self.out_proj = Conv1d(s * 2 * num_kernels, s * out_dim, 1, groups=s)

    def kernels(self, decay: Tensor, frequency: Tensor) -> Tensor:
        """The complex kernels ``(B, S, P, N, K)`` of poles ``(B, S, P, N)``."""
        return sblu_kernel(
            decay, frequency, self.num_taps, step=self.step, centre_tap=self.centre_tap
        )

    def filter(self, u: Tensor, kernels: Tensor) -> Tensor:
        """Per-patch adaptive depthwise filtering (step 3).

        :param u: ``(B, S, N, T)`` real sequences, ``T = P * p``.
        :param kernels: ``(B, S, P, N, K)`` complex kernels, one per time patch.
        :returns: ``(B, S, N, P, 2, p)``: real and imaginary outputs, per patch and frame.
        """
        batch_size, num_subbands, num_kernels, num_frames = u.shape

        p = self.patch_size
        c = self.num_taps // 2
        num_patches = num_frames // p

        padded = F.pad(u, (c, c))

        segments = padded.unfold(-1, p + 2 * c, p)  # (B, S, N, P, p + 2c), a view

        num_groups = batch_size * num_subbands * num_kernels * num_patches

        segments = segments.reshape(1, num_groups, p + 2 * c)

        weight = kernels.permute(0, 1, 3, 2, 4)  # (B, S, N, P, K)

        weight = torch.stack([weight.real, weight.imag], dim=-2).to(u.dtype)  # (..., 2, K)

        weight = weight.reshape(num_groups * 2, 1, self.num_taps)

        out = F.conv1d(segments, weight, groups=num_groups)  # (1, 2G, p)

        return out.view(batch_size, num_subbands, num_kernels, num_patches, 2, p)

    def forward(self, x: Tensor, decay: Tensor, frequency: Tensor) -> Tensor:
        """
        :param x: log-mel ``(B, 1, F, T)``.
        :param decay: ``(B, F/p, T/p, N)`` in 1/step.
        :param frequency: ``(B, F/p, T/p, N)`` in rad/step.
        :returns: aliasing features ``(B, F/p, T/p, out_dim)``.
        """
        batch_size, _, num_bins, num_frames = x.shape

        p = self.patch_size
        s = self.num_subbands
        n = self.num_kernels
        num_patches = num_frames // p

        expected = (batch_size, s, num_patches, n)
        if decay.shape != expected or frequency.shape != expected:
            raise ValueError(
                f"`decay` and `frequency` must have shape {expected} for an input of shape "
                f"{tuple(x.shape)}, but have {tuple(decay.shape)} and {tuple(frequency.shape)}."
            )

        hp = self.highpass(x.squeeze(1))  # (B, F, T)

        u = self.in_proj(hp).view(batch_size, s, n, num_frames)  # B

        z = self.filter(u, self.kernels(decay, frequency))  # (B, S, N, P, 2, p)

        # [Re | Im] channels of each subband next to each other for the grouped C.
        z = z.permute(0, 1, 4, 2, 3, 5).reshape(batch_size, s * 2 * n, num_frames)

        y = self.out_proj(z).view(batch_size, s, self.out_dim, num_patches, p)  # C

        power = y.float().square().mean(dim=-1)

        features = (power + self.pool_eps).sqrt().to(y.dtype)  # (B, S, out_dim, P)

        return features.permute(0, 1, 3, 2)
