"""A pre-norm ViT block stack on ``torch.nn.functional.scaled_dot_product_attention``.

Plain PyTorch so that the stem and encoder can be used outside fairseq2; the layout (fused
QKV projection, pre-LayerNorm, GELU MLP) is the standard ViT one, and attention goes through
PyTorch's SDPA so that flash / memory-efficient kernels are used on GPU.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import GELU, LayerNorm, Linear, Module, ModuleList


class DropPath(Module):
    """Stochastic depth: drops a whole residual branch per sample during training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()

        if not 0.0 <= p < 1.0:
            raise ValueError(f"`p` must be in [0, 1), but is {p} instead.")

        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x

        keep = x.new_empty((x.size(0),) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)

        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SelfAttention(Module):
    """Multi-head self-attention with a fused QKV projection."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()

        if dim % num_heads != 0:
            raise ValueError(f"`dim` ({dim}) must be a multiple of `num_heads` ({num_heads}).")

        self.num_heads = num_heads

        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """:param x: ``(B, N, D)``. :param attn_mask: boolean, broadcastable to
        ``(B, heads, N, N)``, True where attention is allowed."""
        batch_size, seq_len, dim = x.shape

        qkv = self.qkv(x).view(batch_size, seq_len, 3, self.num_heads, dim // self.num_heads)

        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, d) each

        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)

        return self.proj(out.transpose(1, 2).reshape(batch_size, seq_len, dim))


class Mlp(Module):
    """The ViT feed-forward block: Linear, GELU, Linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()

        self.fc1 = Linear(dim, hidden_dim)
        self.act = GELU()
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


LayerOutput = Literal["residual", "ffn"]
"""What a block reports as its output for layer-wise targets: the residual stream after the
block (``residual``), or the feed-forward output before it is added to the stream (``ffn``, as
data2vec 2.0 and EAT regress: it does not carry the position embedding the stream holds)."""


class ViTBlock(Module):
    """``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()

        self.norm1 = LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: Tensor, attn_mask: Tensor | None = None, *, return_ffn: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """:returns: the block's output, and with ``return_ffn`` also the feed-forward output
        before the residual add (a keyword rather than a method, so that FSDP's and activation
        checkpointing's hooks on ``__call__`` still run)."""
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))

        ffn = self.mlp(self.norm2(x))

        out = x + self.drop_path(ffn)

        return (out, ffn) if return_ffn else out


class ViTStack(Module):
    """A stack of :class:`ViTBlock` with a final LayerNorm, optionally returning every layer.

    Returning the per-layer outputs (before the final norm) is what layer-wise pooled targets
    of a teacher need.
    """

    def __init__(
        self,
        *,
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        """
        :param drop_path: stochastic-depth rate of the last block, increasing linearly from 0.
        """
        super().__init__()

        self.dim = dim

        # Plain Python: this also runs under a meta-device context, where tensors hold no data.
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]

        self.blocks = ModuleList(
            ViTBlock(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=r, norm_eps=norm_eps)
            for r in rates
        )

        self.norm = LayerNorm(dim, eps=norm_eps)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform linear weights and zero biases, LayerNorm at identity (as ViT/MAE)."""
        for module in self.modules():
            if isinstance(module, Linear):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, LayerNorm):
                torch.nn.init.ones_(module.weight)
                torch.nn.init.zeros_(module.bias)

    def forward(
        self,
        x: Tensor,
        *,
        attn_mask: Tensor | None = None,
        return_layers: bool = False,
        layer_output: LayerOutput = "residual",
    ) -> tuple[Tensor, list[Tensor]]:
        """:returns: the normed output ``(B, N, D)`` and, if asked, each block's output (the
        residual stream, or the feed-forward output with ``layer_output="ffn"``)."""
        layers: list[Tensor] = []

        ffn = return_layers and layer_output == "ffn"

        for block in self.blocks:
            if ffn:
                x, out = block(x, attn_mask, return_ffn=True)
                layers.append(out)
            else:
                x = block(x, attn_mask)
                if return_layers:
                    layers.append(x)

        return self.norm(x), layers
