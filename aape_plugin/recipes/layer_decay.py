"""AdamW with layer-wise learning-rate decay, as a fairseq2 optimizer component
(``optimizer.name: adamw_layer_decay``).

Block ``i`` of ``L`` gets ``lr * decay ** (L - i)``; the stem, positions and CLS token count
as layer 0, the final norm and the head as layer ``L + 1`` (full ``lr``). Biases, norms,
other 1-d parameters and learned tokens (CLS, mask token) get no weight decay (as in BEiT / MAE /
M2D fine-tuning, and EAT / data2vec 2.0 pre-training, which use it with ``layer_decay: 1.0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from fairseq2.recipe.component import register_component
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from torch.nn import Module
from torch.optim import AdamW, Optimizer

ADAMW_LAYER_DECAY: Final = "adamw_layer_decay"

_BLOCK = re.compile(r"(?:^|\.)blocks\.blocks\.(\d+)\.")


@dataclass(kw_only=True)
class AdamWLayerDecayConfig:
    lr: float = 1e-3
    """Learning rate of the head (and top layer); lower layers get less."""

    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.05

    layer_decay: float = 0.75
    """Factor per layer from the top (1.0: no decay)."""


def layer_id(name: str, num_layers: int) -> int:
    """0 for the stem and embeddings, ``i + 1`` for block ``i``, ``L + 1`` for the rest."""
    match = _BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    if ".stem." in f".{name}" or "cls_token" in name:
        return 0
    return num_layers + 1


def parameter_groups(model: Module, config: AdamWLayerDecayConfig) -> list[dict[str, object]]:
    """One group per distinct (learning rate, weight decay): with ``layer_decay: 1.0`` that is
    two groups, with and without weight decay."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    num_layers = 1 + max((int(m.group(1)) for n in names if (m := _BLOCK.search(n))), default=-1)
    groups: dict[tuple[float, float], dict[str, object]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, num_layers)
        no_decay = param.ndim <= 1 or name.endswith(".bias") or name.endswith("_token")
        lr = config.lr * config.layer_decay ** (num_layers + 1 - lid)
        weight_decay = 0.0 if no_decay else config.weight_decay
        group = groups.setdefault((lr, weight_decay), {"params": [], "lr": lr, "weight_decay": weight_decay})
        group["params"].append(param)  # type: ignore[union-attr]
    return list(groups.values())


def create_adamw_layer_decay(resolver: DependencyResolver, config: AdamWLayerDecayConfig) -> Optimizer:
    model = resolver.resolve(Module)
    return AdamW(parameter_groups(model, config), lr=config.lr, betas=config.betas, eps=config.eps)


def register_layer_decay_optimizer(container: DependencyContainer) -> None:
    register_component(container, Optimizer, ADAMW_LAYER_DECAY, AdamWLayerDecayConfig, create_adamw_layer_decay)
