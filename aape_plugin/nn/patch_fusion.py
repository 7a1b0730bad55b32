"""Patch Fusion: standard patch tokens + aliasing features -> one embedding per patch."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import LayerNorm, Linear, Module


class PatchFusion(Module):
    """Normalises both streams independently, concatenates them and projects to ``out_dim``.

    Independent normalisation matters: the two streams have unrelated scales (conv tokens vs.
    band powers), and a joint projection of raw values would let one drown the other.
    """

    def __init__(self, standard_dim: int, alias_dim: int, out_dim: int, *, balance: bool = False) -> None:
        """
        :param balance: scale the normalised aliasing features by ``sqrt(standard_dim /
            alias_dim)``, so that both streams bring the same variance into the projection (after
            per-stream normalisation every feature has unit variance, so the wider conv stream
            would otherwise bring ``standard_dim / alias_dim`` times more, e.g. 12x at ViT-B).
        """
        super().__init__()

        self.alias_scale = math.sqrt(standard_dim / alias_dim) if balance else 1.0

        self.standard_norm = LayerNorm(standard_dim)
        self.alias_norm = LayerNorm(alias_dim)

        self.proj = Linear(standard_dim + alias_dim, out_dim)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)

    def forward(self, standard: Tensor, alias: Tensor) -> Tensor:
        """``(..., standard_dim)``, ``(..., alias_dim)`` -> ``(..., out_dim)``."""
        alias = self.alias_norm(alias)
        if self.alias_scale != 1.0:
            alias = alias * self.alias_scale
        fused = torch.cat([self.standard_norm(standard), alias], dim=-1)

        return self.proj(fused)
