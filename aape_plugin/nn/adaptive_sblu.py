"""The Adaptive SBLU: per-patch band-pass analysis of the alias-prone band of each subband."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Conv1d, Module, Parameter

from aape_plugin.nn.highpass import ZeroPhaseHighPass
from aape_plugin.nn.patchify import gather_patches, index_to_mask
from aape_plugin.nn.sblu_kernel import CentreTap, sblu_kernel_parts

AliasContext = Literal["clip", "patch"]
"""What the aliasing analysis of a patch may look at: ``clip`` (its neighbours too: the 129-tap
high-pass and the 33-tap kernels reach about 4 and 1 patches beyond it) or ``patch`` (the patch's
own frames only)."""


class AdaptiveSBLU(Module):
    """Aliasing-focused features of a log-mel spectrogram, one vector per patch.

    For each subband (a row of ``p`` mel bins, aligned with one row of patches):

    1. **Zero-phase high-pass** along time (cut-off at the post-patch Nyquist ``pi / p``
       rad/frame): keeps only the modulations that patching with stride ``p`` would alias.
    2. **B**: a grouped pointwise projection, the subband's ``p`` bins -> ``N`` channels.
       (Computed before step 1, which it commutes with: both are linear, one along frequency
       within a subband, the other along time; the result is the same, for half the work.)
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
    group per (clip, patch, channel) and two output channels (real and imaginary kernel)
    produces exactly the ``p`` outputs of every segment. Working per patch also lets a masked
    student compute only its visible patches (``index``). This is exact (it equals the
    per-frame sum ``sum_k h[k - c] u[n + k - c]``, tested against a direct implementation) and
    the kernels themselves are generated from ``Lambda`` in closed form, never learned per tap.

    **Context** (``context``). With ``clip`` (the paper's reading) steps 1 and 3 look beyond the
    patch, so what a patch's features say depends on its neighbours; a masked student must then
    either see hidden content through them or see zeros where the teacher (and every downstream
    user) sees audio. With ``patch`` the analysis is local, and identical in pre-training and at
    inference: step 1 becomes the removal of each bin's mean over the patch (within ``p`` frames
    the only component below the post-patch Nyquist ``pi / p`` is DC, since the lowest non-zero
    frequency a ``p``-frame window resolves is ``2 pi / p``), and step 3 filters the patch's
    ``p`` frames zero-padded by ``c`` on each side (zero = the patch mean after step 1).
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
        context: AliasContext = "clip",
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
        :param context: ``clip`` (neighbours reach in) or ``patch`` (the patch alone), see above.
        """
        super().__init__()

        if num_mel_bins % patch_size != 0:
            raise ValueError(
                f"`num_mel_bins` must be a multiple of `patch_size` ({patch_size}), but is "
                f"{num_mel_bins} instead."
            )

        if num_taps < 1 or num_taps % 2 == 0:
            raise ValueError(f"`num_taps` must be a positive odd number, but is {num_taps} instead.")

        if context not in ("clip", "patch"):
            raise ValueError(f"`context` must be 'clip' or 'patch', but is {context!r} instead.")

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
        self.context: AliasContext = context

        self.highpass = ZeroPhaseHighPass(math.pi / patch_size, highpass_taps)

        s = self.num_subbands

        self.in_proj = Conv1d(s * patch_size, s * num_kernels, 1, groups=s, bias=False)

        # C, one (out_dim x 2N) map per subband over [Re_1..Re_N, Im_1..Im_N].
        self.out_weight = Parameter(torch.empty(s, out_dim, 2 * num_kernels))
        self.out_bias = Parameter(torch.empty(s, out_dim))

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``C`` like a (grouped) linear layer: uniform within ``1 / sqrt(2N)``."""
        bound = 1.0 / math.sqrt(2 * self.num_kernels)

        torch.nn.init.uniform_(self.out_weight, -bound, bound)
        torch.nn.init.uniform_(self.out_bias, -bound, bound)

    def kernels(self, decay: Tensor, frequency: Tensor) -> Tensor:
        """The kernels of poles ``(...)`` as real and imaginary taps ``(..., 2, K)``."""
        return sblu_kernel_parts(
            decay, frequency, self.num_taps, step=self.step, centre_tap=self.centre_tap
        )

    def segments(self, u: Tensor) -> Tensor:
        """Cuts ``(B, S, N, T)`` into per-patch segments ``(B, S*P, N, p + 2c)``: patch ``j``'s
        ``p`` frames with the ``c`` frames on each side its kernel taps reach (zero beyond the
        ends). One copy of a strided view: ``(p + 2c) / p`` times the input."""
        batch_size, num_subbands, num_kernels, num_frames = u.shape

        p = self.patch_size
        c = self.num_taps // 2

        windows = F.pad(u, (c, c)).unfold(-1, p + 2 * c, p)  # (B, S, N, P, p + 2c), a view

        return windows.permute(0, 1, 3, 2, 4).flatten(1, 2)  # (B, S*P, N, p + 2c)

    def local_segments(self, u: Tensor) -> Tensor:
        """Like :meth:`segments`, but each patch's ``p`` frames are padded with ``c`` zeros on
        each side instead of its neighbours' frames (``context="patch"``)."""
        batch_size, num_subbands, num_kernels, num_frames = u.shape

        p = self.patch_size
        c = self.num_taps // 2

        patches = u.view(batch_size, num_subbands, num_kernels, num_frames // p, p)

        windows = F.pad(patches, (c, c))  # (B, S, N, P, p + 2c)

        return windows.permute(0, 1, 3, 2, 4).flatten(1, 2)

    def remove_patch_mean(self, x: Tensor) -> Tensor:
        """The patch-local high-pass: each bin minus its mean over the patch's frames."""
        p = self.patch_size

        patches = x.unflatten(-1, (x.size(-1) // p, p))

        return (patches - patches.mean(dim=-1, keepdim=True)).flatten(-2)

    def filter(self, segments: Tensor, kernels: Tensor) -> Tensor:
        """Adaptive depthwise filtering of each segment with its own kernel (step 3).

        :param segments: ``(B, n, N, p + 2c)`` real.
        :param kernels: ``(B, n, N, 2, K)`` real and imaginary taps, one per segment and channel.
        :returns: ``(B, n, N, 2, p)``: real and imaginary outputs at the patch's ``p`` frames.
        """
        batch_size, num_patches, num_kernels, length = segments.shape

        num_groups = batch_size * num_patches * num_kernels

        weight = kernels.to(segments.dtype)

        out = F.conv1d(
            segments.reshape(1, num_groups, length),
            weight.reshape(num_groups * 2, 1, self.num_taps),
            groups=num_groups,
        )  # (1, 2G, p)

        return out.view(batch_size, num_patches, num_kernels, 2, self.patch_size)

    def project(self, z: Tensor, subband: Tensor) -> Tensor:
        """``C``, the grouped pointwise projection of each subband, applied per patch.

        :param z: ``(B, n, N, 2, p)`` filter outputs.
        :param subband: ``(B, n)`` the subband of each patch (which group of ``C`` applies).
        :returns: ``(B, n, out_dim, p)``.
        """
        batch_size, num_patches, num_kernels, _, p = z.shape

        weight, bias = self.out_weight, self.out_bias

        channels = z.transpose(2, 3).reshape(batch_size, num_patches, 2 * num_kernels, p)

        # index_select (backward: index_add) rather than weight[subband] (an accumulating index_put).
        flat = subband.flatten()
        w = weight.index_select(0, flat).view(batch_size, num_patches, *weight.shape[1:])
        b = bias.index_select(0, flat).view(batch_size, num_patches, bias.size(1))

        y = torch.einsum("bnoc,bncp->bnop", w.to(z.dtype), channels)

        return y + b.to(z.dtype).unsqueeze(-1)

    def forward(
        self,
        x: Tensor,
        decay: Tensor,
        frequency: Tensor,
        index: Tensor | None = None,
        num_clones: int = 1,
    ) -> Tensor:
        """
        :param x: log-mel ``(B, 1, F, T)``.
        :param decay: ``(B, F/p, T/p, N)`` in 1/step, or ``(B*M, n, N)`` with ``index``.
        :param frequency: like ``decay``, in rad/step.
        :param index: optional ``(B*M, n)`` flat patch indices ``s * P + t`` (ascending): compute
            only these patches, for ``M = num_clones`` masked views of each clip (rows
            ``b*M .. b*M+M-1`` of clip ``b``). The other patches are hidden: with
            ``context="clip"`` they are zeroed (the normalised mean) before the high-pass and the
            taps reach them.
        :param num_clones: ``M``, masked views per clip (with ``index``).
        :returns: aliasing features ``(B, F/p, T/p, out_dim)``, or ``(B*M, n, out_dim)``.
        """
        batch_size, _, num_bins, num_frames = x.shape

        p = self.patch_size
        s = self.num_subbands
        n = self.num_kernels
        num_patches = num_frames // p

        if index is None:
            expected: tuple[int, ...] = (batch_size, s, num_patches, n)
        else:
            if index.size(0) != batch_size * num_clones:
                raise ValueError(
                    f"`index` must have {batch_size} x {num_clones} rows (clips x clones), but has "
                    f"{index.size(0)}."
                )

            expected = (index.size(0), index.size(1), n)

        if decay.shape != expected or frequency.shape != expected:
            raise ValueError(
                f"`decay` and `frequency` must have shape {expected} for an input of shape "
                f"{tuple(x.shape)}, but have {tuple(decay.shape)} and {tuple(frequency.shape)}."
            )

        # B first: the projection mixes the bins of one subband at each frame and has no bias,
        # so it commutes with the high-pass (linear along time), with the patch-mean removal and
        # with hiding whole patches. Done once per clip, on N channels per subband instead of p.
        u = self.in_proj(x.squeeze(1)).view(batch_size, s, n, num_frames)

        if self.context == "clip":
            if index is not None:  # each masked view hides its own patches from the analysis
                visible = index_to_mask(index, (s, num_patches))  # (B*M, S, P)
                frames = visible.repeat_interleave(p, dim=-1).unsqueeze(2).to(u.dtype)  # (B*M, S, 1, T)
                u = u.repeat_interleave(num_clones, dim=0) * frames

            segments = self.segments(self.highpass(u))  # (rows, S*P, N, L)
        else:
            segments = self.local_segments(self.remove_patch_mean(u))  # (B, S*P, N, L), per clip

        if index is None:
            subband = torch.arange(s, device=x.device).repeat_interleave(num_patches)
            subband = subband.expand(batch_size, -1)
            decay, frequency = decay.flatten(1, 2), frequency.flatten(1, 2)
        else:
            # The clip context has one row per view already (each hides its own patches); the
            # patch context one per clip, shared by the clip's views.
            views_per_row = 1 if self.context == "clip" else num_clones
            segments = gather_patches(segments, index, views_per_row)  # (B*M, n, N, L)
            subband = torch.div(index, num_patches, rounding_mode="floor")

        z = self.filter(segments, self.kernels(decay, frequency))  # (B, n, N, 2, p)

        y = self.project(z, subband)  # C: (B, n, out, p)

        power = y.float().square().mean(dim=-1)

        features = (power + self.pool_eps).sqrt().to(y.dtype)  # (B, n, out)

        if index is None:
            return features.view(batch_size, s, num_patches, self.out_dim)

        return features
