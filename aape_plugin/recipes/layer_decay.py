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
from typing import Any, Final

from fairseq2.recipe.component import register_component
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from torch import Tensor
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

    lambda_lr_scale: float = 1.0
    """The Lambda Encoder's learning rate as a multiple of its layer's (the stem's): 0 keeps it
    at its initialisation (frozen; its teacher copy then stays there too), 1 trains it like the
    rest of the stem."""


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
    two groups, with and without weight decay (more when ``lambda_lr_scale`` is not 1)."""
    if config.lambda_lr_scale < 0:
        raise ValueError(f"`lambda_lr_scale` must be >= 0, but is {config.lambda_lr_scale}.")
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
        if ".lambda_encoder." in f".{name}":
            lr *= config.lambda_lr_scale
            if lr == 0.0:
                weight_decay = 0.0  # frozen: AdamW must not shrink it either
        group = groups.setdefault((lr, weight_decay), {"params": [], "lr": lr, "weight_decay": weight_decay})
        group["params"].append(param)  # type: ignore[union-attr]
    return list(groups.values())


class ShardLocalAdamW(AdamW):
    """AdamW whose state dict holds plain tensors.

    Under FSDP2 the parameters, hence the moments, are ``DTensor`` shards; pickled, a ``DTensor``
    brings its device mesh, spec and placements, classes a resume would have to rebuild from the
    file. This optimiser saves each rank's local shard instead and, on load, wraps it back around
    the parameter's own mesh and placements, so a checkpoint holds only tensors and plain data.
    """

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # The packed per-parameter dicts are the live ones: copy before replacing values.
        state["state"] = {key: {name: _local(value) for name, value in per_param.items()}
                          for key, per_param in state["state"].items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        from torch.distributed.tensor import DTensor

        saved = [key for group in state_dict["param_groups"] for key in group["params"]]
        params = dict(zip(saved, (p for group in self.param_groups for p in group["params"])))
        restored = {}
        for key, per_param in state_dict["state"].items():
            param = params.get(key)
            if isinstance(param, DTensor):
                local = param.to_local()
                per_param = {name: DTensor.from_local(value, param.device_mesh, param.placements, run_check=False,
                                                      shape=param.shape, stride=param.stride())
                             if isinstance(value, Tensor) and not isinstance(value, DTensor) and value.shape == local.shape
                             else value for name, value in per_param.items()}
            restored[key] = per_param
        super().load_state_dict({**state_dict, "state": restored})


def _local(value: object) -> object:
    from torch.distributed.tensor import DTensor

    return value.to_local() if isinstance(value, DTensor) else value


def create_adamw_layer_decay(resolver: DependencyResolver, config: AdamWLayerDecayConfig) -> Optimizer:
    model = resolver.resolve(Module)
    return ShardLocalAdamW(parameter_groups(model, config), lr=config.lr, betas=config.betas, eps=config.eps)


def register_layer_decay_optimizer(container: DependencyContainer) -> None:
    register_component(container, Optimizer, ADAMW_LAYER_DECAY, AdamWLayerDecayConfig, create_adamw_layer_decay)
