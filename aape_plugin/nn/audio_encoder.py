"""A spectrogram ViT: patch embedding (plain or AaPE), 2-D positions, CLS token, block stack."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import Module, Parameter

from aape_plugin.nn.patch_embed import AaPEPatchEmbed, PlainPatchEmbed
from aape_plugin.nn.position import sincos_2d
from aape_plugin.nn.vit import LayerOutput, ViTStack


@dataclass
class EncoderOutput:
    """What :class:`AudioEncoder` returns."""

    cls: Tensor | None
    """``(B, D)``: the CLS token after the final norm (``None`` without a CLS token)."""

    patches: Tensor
    """``(B, n, D)``: patch tokens after the final norm, visible patches only when masked,
    in frequency-major grid order (index ``s * P + t``)."""

    grid: tuple[int, int]
    """``(S, P)``: the (subband, time patch) grid of the input."""

    layers: list[Tensor] = field(default_factory=list)
    """Each block's output ``(B, [1 +] n, D)`` before the final norm (or its feed-forward
    output), if asked for."""

    decay: Tensor | None = None
    """``(B, S, P, N)`` SBLU decays of the AaPE stem (``(B*M, n, N)``, visible patches only,
    when masked); ``None`` for the plain stem."""

    frequency: Tensor | None = None
    """SBLU frequencies, shaped like ``decay``."""

    alias: Tensor | None = None
    """The AaPE stem's aliasing features before Patch Fusion, ``(B, S, P, alias_dim)`` (``(B*M,
    n, alias_dim)`` when masked); ``None`` for the plain stem."""


class AudioEncoder(Module):
    """Log-mel ``(B, 1, F, T)`` -> tokens, with optional masking of patches.

    Positions are fixed 2-D sine-cosine embeddings computed for the actual grid, so any
    ``T`` that is a multiple of the patch size works (half the channels encode the subband,
    half the time patch). The CLS token has no position embedding.
    """

    def __init__(
        self,
        stem: PlainPatchEmbed | AaPEPatchEmbed,
        *,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        use_cls: bool = True,
        mask_stem_input: bool = True,
    ) -> None:
        """
        :param stem: the patch embedding; its ``embed_dim`` is the encoder width.
        :param mask_stem_input: when masking, hide the masked patches from the stem too (only
            matters for the AaPE stem, whose aliasing branch looks beyond one patch).
        """
        super().__init__()

        self.stem = stem
        self.dim = stem.embed_dim
        self.patch_size = stem.patch_size
        self.num_mel_bins = stem.num_mel_bins
        self.use_cls = use_cls
        self.mask_stem_input = mask_stem_input

        self.cls_token = Parameter(torch.empty(1, 1, self.dim)) if use_cls else None

        self._pos_cache: dict[tuple[int, int, torch.device, torch.dtype], Tensor] = {}

        self.blocks = ViTStack(
            dim=self.dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path=drop_path,
        )

        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.cls_token is not None:
            torch.nn.init.normal_(self.cls_token, std=0.02)

    def position_embeddings(
        self, num_subbands: int, num_patches: int, device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """``(S, P, D)`` fixed embeddings, cached per grid, device and dtype (not a buffer: they
        are not learned, need no checkpointing, and the grid follows the input length)."""
        key = (num_subbands, num_patches, device, dtype)

        pos = self._pos_cache.get(key)
        if pos is None:
            pos = sincos_2d(num_subbands, num_patches, self.dim, device=device).to(dtype)
            self._pos_cache[key] = pos

        return pos

    def embed(
        self, x: Tensor, index: Tensor | None = None, num_clones: int = 1
    ) -> tuple[Tensor, EncoderOutput]:
        """Stem + positions: ``(B, S*P, D)`` tokens, or ``(B*M, n, D)`` at ``index``.

        The stem runs once per clip unless the kept patches must be the only thing it sees
        (the AaPE stem with ``mask_stem_input``), in which case what it computes across
        patches runs once per clone on the kept patches only (its patch-local parts are shared).
        """
        num_subbands = x.size(2) // self.patch_size
        num_patches = x.size(3) // self.patch_size

        per_clone = index is not None and self.mask_stem_input and isinstance(self.stem, AaPEPatchEmbed)

        if per_clone:
            stem_out = self.stem(x, index, num_clones)
            tokens = stem_out.tokens
        else:
            stem_out = self.stem(x)
            tokens = stem_out.tokens.flatten(1, 2)

        pos = self.position_embeddings(num_subbands, num_patches, x.device, tokens.dtype).flatten(0, 1)

        if per_clone:
            tokens = tokens + pos[index]
        else:
            tokens = tokens + pos

            if index is not None:
                tokens = tokens.repeat_interleave(num_clones, dim=0)
                tokens = tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.size(-1)))

        info = EncoderOutput(
            cls=None,
            patches=tokens,
            grid=(num_subbands, num_patches),
            decay=stem_out.decay,
            frequency=stem_out.frequency,
            alias=stem_out.alias,
        )

        return tokens, info

    def forward(
        self,
        x: Tensor,
        *,
        visible: Tensor | None = None,
        visible_index: Tensor | None = None,
        num_clones: int = 1,
        return_layers: bool = False,
        layer_output: LayerOutput = "residual",
    ) -> EncoderOutput:
        """
        :param x: log-mel ``(B, 1, F, T)``.
        :param visible: optional ``(B*M, S, P)`` boolean of visible patches, the same number
            in every row; only those tokens enter the blocks (as in MAE / M2D students).
        :param visible_index: the same as ``(B*M, n)`` ascending flat indices (``PatchMasks``
            has them): no check and no ``nonzero`` of ``visible``, hence no host sync.
        :param num_clones: ``M`` masks per clip (rows ``b*M .. b*M+M-1`` of ``visible``).
        :param return_layers: also return every block's output (for teacher targets).
        :param layer_output: ``residual`` (the stream after each block) or ``ffn`` (each block's
            feed-forward output before the residual add).
        """
        index = visible_index

        if visible_index is not None:
            if visible_index.size(0) != x.size(0) * num_clones:
                raise ValueError(
                    f"`visible_index` must have {x.size(0)} x {num_clones} rows, but has {visible_index.size(0)}."
                )
        elif visible is not None:
            if visible.size(0) != x.size(0) * num_clones:
                raise ValueError(
                    f"`visible` must have {x.size(0)} x {num_clones} rows, but has {visible.size(0)}."
                )

            counts = visible.flatten(1).sum(dim=1)
            if (counts != counts[0]).any() or counts[0] == 0:
                raise ValueError(
                    "`visible` must keep the same, non-zero number of patches in every row, "
                    f"but keeps {counts.tolist()}."
                )

            index = visible.flatten(1).nonzero()[:, 1].view(visible.size(0), -1)  # ascending

        tokens, out = self.embed(x, index, num_clones)

        if self.cls_token is not None:
            cls = self.cls_token.expand(tokens.size(0), -1, -1).to(tokens.dtype)
            tokens = torch.cat([cls, tokens], dim=1)

        normed, layers = self.blocks(tokens, return_layers=return_layers, layer_output=layer_output)

        offset = 1 if self.cls_token is not None else 0

        out.cls = normed[:, 0] if self.cls_token is not None else None
        out.patches = normed[:, offset:]
        out.layers = layers

        return out
