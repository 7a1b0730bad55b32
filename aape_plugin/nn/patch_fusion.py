"""Patch Fusion: standard patch tokens + aliasing features -> one embedding per patch."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import LayerNorm, Linear, Module


class PatchFusion(Module):
    """Normalises both streams independently, concatenates them and projects to ``out_dim``.

    Independent normalisation matters: the two streams have unrelated scales (conv tokens vs.
    band powers), and a joint projection of raw values would let one drown the other.
    """

    def __init__(self, standard_dim: int, alias_dim: int, out_dim: int) -> None:
        super().__init__()

        self.standard_norm = LayerNorm(standard_dim)
        self.alias_norm = LayerNorm(alias_dim)

        self.proj = Linear(standard_dim + alias_dim, out_dim)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)

    def forward(self, standard: Tensor, alias: Tensor) -> Tensor:
        """``(..., standard_dim)``, ``(..., alias_dim)`` -> ``(..., out_dim)``."""
        fused = torch.cat([self.standard_norm(standard), self.alias_norm(alias)], dim=-1)

        return self.proj(fused)
