"""The cross-attention predictor: queries at masked positions attend to the student's tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import LayerNorm, Linear, Module, ModuleList, Parameter

from aape_plugin.nn.position import sincos_2d
from aape_plugin.nn.vit import Mlp


class CrossAttention(Module):
    """Multi-head attention of ``queries`` over a separate ``context``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()

        if dim % num_heads != 0:
            raise ValueError(f"`dim` ({dim}) must be a multiple of `num_heads` ({num_heads}).")

        self.num_heads = num_heads

        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.proj = Linear(dim, dim)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        batch_size, num_queries, dim = queries.shape
        head_dim = dim // self.num_heads

        q = self.q(queries).view(batch_size, num_queries, self.num_heads, head_dim).transpose(1, 2)

        kv = self.kv(context).view(batch_size, context.size(1), 2, self.num_heads, head_dim)

        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)

        out = F.scaled_dot_product_attention(q, k, v)

        return self.proj(out.transpose(1, 2).reshape(batch_size, num_queries, dim))


class CrossAttentionBlock(Module):
    """``q + cross_attn(norm(q), norm(context))``, then ``q + mlp(norm(q))``.

    Queries do not attend to each other: each masked position is predicted from the visible
    context alone, so the cost is linear in the number of masked positions.
    """

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0) -> None:
        super().__init__()

        self.query_norm = LayerNorm(dim, eps=1e-6)
        self.context_norm = LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, num_heads)
        self.mlp_norm = LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        queries = queries + self.attn(self.query_norm(queries), self.context_norm(context))

        return queries + self.mlp(self.mlp_norm(queries))


class CrossAttentionPredictor(Module):
    """Predicts target tokens at masked positions from the student's output tokens.

    Queries are a learned mask token plus the 2-D position embedding of each masked patch;
    keys and values are the student's tokens (CLS and visible patches) projected to ``dim``.
    """

    def __init__(
        self,
        *,
        context_dim: int,
        out_dim: int,
        dim: int = 384,
        num_layers: int = 4,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()

        if dim % 4 != 0:
            raise ValueError(f"`dim` must be a multiple of 4, but is {dim} instead.")

        self.dim = dim

        self.context_proj = Linear(context_dim, dim)

        self.mask_token = Parameter(torch.empty(1, 1, dim))

        self.blocks = ModuleList(
            CrossAttentionBlock(dim, num_heads, mlp_ratio=mlp_ratio) for _ in range(num_layers)
        )

        self.norm = LayerNorm(dim, eps=1e-6)

        self.out_proj = Linear(dim, out_dim)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.mask_token, std=0.02)

        for module in self.modules():
            if isinstance(module, Linear):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)

    def forward(self, context: Tensor, masked_index: Tensor, grid: tuple[int, int]) -> Tensor:
        """
        :param context: ``(B, n_ctx, context_dim)`` student tokens.
        :param masked_index: ``(B, n_masked)`` flat indices ``s * P + t`` to predict.
        :param grid: ``(S, P)``.
        :returns: ``(B, n_masked, out_dim)``.
        """
        pos = sincos_2d(*grid, self.dim, device=context.device).flatten(0, 1)  # (S*P, dim)

        queries = self.mask_token.to(context.dtype) + pos.to(context.dtype)[masked_index]

        ctx = self.context_proj(context)

        for block in self.blocks:
            queries = block(queries, ctx)

        return self.out_proj(self.norm(queries))
