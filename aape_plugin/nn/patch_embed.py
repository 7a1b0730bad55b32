"""Patch embeddings for log-mel spectrograms: the plain conv stem and the AaPE stem.

Both take ``(B, 1, F, T)`` and return tokens ``(B, F/p, T/p, D)`` in a
:class:`PatchEmbedOutput`, so either can be put in front of the same ViT (the plain one is
the ablation without AaPE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import Conv2d, Module

from aape_plugin.nn.adaptive_sblu import AdaptiveSBLU, AliasContext
from aape_plugin.nn.lambda_encoder import LambdaEncoder
from aape_plugin.nn.patch_fusion import PatchFusion
from aape_plugin.nn.patchify import check_spectrogram_shape, gather_patches
from aape_plugin.nn.sblu_kernel import CentreTap


@dataclass
class PatchEmbedOutput:
    """What a patch embedding returns."""

    tokens: Tensor
    """``(B, F/p, T/p, D)``: one embedding per (subband, time patch)."""

    decay: Tensor | None = None
    """``(B, F/p, T/p, N)``: the estimated SBLU decays (1/frame); ``None`` for the plain stem."""

    frequency: Tensor | None = None
    """``(B, F/p, T/p, N)``: the estimated SBLU frequencies (rad/frame); ``None`` for plain."""

    alias: Tensor | None = None
    """``(B, F/p, T/p, alias_dim)``: the aliasing features before Patch Fusion; ``None`` for plain."""


def _init_patch_conv(conv: Conv2d) -> None:
    # Xavier on the conv seen as a linear map of the flattened patch (as ViT/MAE do).
    torch.nn.init.xavier_uniform_(conv.weight.view(conv.weight.size(0), -1))
    if conv.bias is not None:
        torch.nn.init.zeros_(conv.bias)


class PlainPatchEmbed(Module):
    """The standard ViT stem: a ``p x p`` convolution with stride ``p``."""

    def __init__(self, *, embed_dim: int = 768, num_mel_bins: int = 80, patch_size: int = 16) -> None:
        super().__init__()

        self.embed_dim = embed_dim
        self.num_mel_bins = num_mel_bins
        self.patch_size = patch_size

        self.proj = Conv2d(1, embed_dim, patch_size, stride=patch_size)

        _init_patch_conv(self.proj)

    def forward(self, x: Tensor, index: Tensor | None = None, num_clones: int = 1) -> PatchEmbedOutput:
        """
        :param x: log-mel ``(B, 1, F, T)``.
        :param index: optional ``(B*M, n)`` flat indices ``s * P + t`` of the patches to embed,
            for ``M = num_clones`` masked views of each clip.
        :returns: tokens ``(B, F/p, T/p, D)``, or ``(B*M, n, D)`` with ``index``.
        """
        check_spectrogram_shape(
            x, num_mel_bins=self.num_mel_bins, patch_size=self.patch_size, owner=type(self).__name__
        )

        tokens = self.proj(x).permute(0, 2, 3, 1)

        if index is not None:
            tokens = gather_patches(tokens.flatten(1, 2), index, num_clones)

        return PatchEmbedOutput(tokens)


class AaPEPatchEmbed(Module):
    """Aliasing-aware Patch Embedding: a drop-in replacement for :class:`PlainPatchEmbed`.

    Standard conv patch tokens are kept and augmented with aliasing-focused features: the
    :class:`LambdaEncoder` estimates, from the log-mel patches, a decay and a frequency for each
    of ``N`` kernels per subband and time patch; the :class:`AdaptiveSBLU` analyses the
    high-passed subbands with those kernels; :class:`PatchFusion` merges both streams.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 768,
        num_mel_bins: int = 80,
        patch_size: int = 16,
        num_kernels: int = 8,
        num_taps: int = 33,
        alias_dim: int = 64,
        highpass_taps: int | None = None,
        step: float = 1.0,
        centre_tap: CentreTap = "paper",
        lambda_dim: int = 64,
        lambda_depth: int = 2,
        lambda_num_heads: int = 4,
        lambda_mlp_ratio: float = 2.0,
        min_decay: float = 1e-3,
        max_decay: float = 20.0,
        init_decay: float = 0.25,
        min_frequency: float | None = None,
        max_frequency: float = math.pi,
        adaptive: bool = True,
        context: AliasContext = "clip",
        pole_mode: str = "free",
        decay_range: float = 4.0,
        fusion_balance: bool = False,
        lambda_modulation_input: bool = False,
    ) -> None:
        """
        :param embed_dim: ``D``, the ViT width.
        :param num_mel_bins: ``F`` (80: 16 kHz, 50-8000 Hz log-mel).
        :param patch_size: ``p`` (16: a 5 x 38 grid for 80 x 608 inputs).
        :param num_kernels: ``N`` SBLU kernels per subband.
        :param num_taps: ``K`` taps per kernel, centred (33: one patch and its neighbours).
        :param alias_dim: aliasing features per patch before fusion.
        :param highpass_taps: zero-phase high-pass length; ``None`` means ``8p + 1``.
        :param step: the SBLU step ``Delta`` in frames.
        :param centre_tap: ``"paper"`` (published formula) or ``"exact"`` (exact step average).
        :param lambda_dim: Lambda Encoder width.
        :param lambda_depth: Lambda Encoder layers.
        :param lambda_num_heads: Lambda Encoder attention heads.
        :param lambda_mlp_ratio: Lambda Encoder feed-forward ratio.
        :param min_decay: decay floor (``softplus(.) + min_decay``), 1/frame.
        :param max_decay: decay cap, 1/frame.
        :param init_decay: decay at initialisation, 1/frame.
        :param min_frequency: lower band edge in rad/frame; ``None``: ``pi / p``.
        :param max_frequency: upper band edge in rad/frame.
        :param adaptive: ``False`` replaces the Lambda Encoder by learned, input-independent
            decays and frequencies per subband and kernel (an ablation).
        :param context: what the aliasing analysis of a patch looks at: ``clip`` (its
            neighbours too) or ``patch`` (its own frames only; see :class:`AdaptiveSBLU`).
        :param pole_mode: ``free`` or ``offsets`` (bounded offsets around fixed, spread centres;
            see :class:`LambdaEncoder`).
        :param decay_range: with ``offsets``, the factor decays may move from ``init_decay``.
        :param fusion_balance: both streams bring the same variance into Patch Fusion (see
            :class:`PatchFusion`).
        :param lambda_modulation_input: the Lambda Encoder's tokens also see each patch's
            modulation spectrum (see :class:`LambdaEncoder`; a project option).
        """
        super().__init__()

        self.embed_dim = embed_dim
        self.num_mel_bins = num_mel_bins
        self.patch_size = patch_size
        self.adaptive = adaptive

        self.proj = Conv2d(1, embed_dim, patch_size, stride=patch_size)

        _init_patch_conv(self.proj)

        self.lambda_encoder = LambdaEncoder(
            patch_size=patch_size,
            num_kernels=num_kernels,
            dim=lambda_dim,
            depth=lambda_depth,
            num_heads=lambda_num_heads,
            mlp_ratio=lambda_mlp_ratio,
            min_decay=min_decay,
            max_decay=max_decay,
            init_decay=init_decay,
            min_frequency=min_frequency,
            max_frequency=max_frequency,
            adaptive=adaptive,
            num_subbands=num_mel_bins // patch_size,
            pole_mode=pole_mode,
            decay_range=decay_range,
            modulation_input=lambda_modulation_input,
        )

        self.sblu = AdaptiveSBLU(
            num_mel_bins=num_mel_bins,
            patch_size=patch_size,
            num_kernels=num_kernels,
            num_taps=num_taps,
            out_dim=alias_dim,
            highpass_taps=highpass_taps,
            step=step,
            centre_tap=centre_tap,
            context=context,
        )

        self.fusion = PatchFusion(embed_dim, alias_dim, embed_dim, balance=fusion_balance)

    def forward(self, x: Tensor, index: Tensor | None = None, num_clones: int = 1) -> PatchEmbedOutput:
        """
        :param x: log-mel ``(B, 1, F, T)``.
        :param index: optional ``(B*M, n)`` flat indices ``s * P + t`` (ascending) of the patches
            the model may see, for ``M = num_clones`` masked views of each clip (masked
            pre-training; rows ``b*M .. b*M+M-1`` belong to clip ``b``). Only those are embedded,
            and nothing else of the input reaches them: they alone enter the Lambda Encoder's
            attention, and with ``context="clip"`` (where the high-pass and the SBLU taps reach
            into neighbours) the other patches are zeroed (the normalised mean) before the
            aliasing analysis. What is patch-local (the conv, the Lambda Encoder's patch
            projection, the SBLU's input projection) runs once per clip and is shared by its views.
        :returns: tokens ``(B, F/p, T/p, D)`` and poles ``(B, F/p, T/p, N)``; with ``index``,
            ``(B*M, n, D)`` and ``(B*M, n, N)``.
        """
        check_spectrogram_shape(
            x, num_mel_bins=self.num_mel_bins, patch_size=self.patch_size, owner=type(self).__name__
        )

        if index is not None and index.size(0) != x.size(0) * num_clones:
            raise ValueError(
                f"`index` must have {x.size(0)} x {num_clones} rows (clips x clones), but has {index.size(0)}."
            )

        standard = self.proj(x).permute(0, 2, 3, 1)  # (B, S, P, D)

        if index is not None:
            standard = gather_patches(standard.flatten(1, 2), index, num_clones)

        decay, frequency = self.lambda_encoder(x, index, num_clones)

        alias = self.sblu(x, decay, frequency, index, num_clones)

        return PatchEmbedOutput(self.fusion(standard, alias), decay, frequency, alias)
