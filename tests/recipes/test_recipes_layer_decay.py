"""Layer-wise learning-rate decay: every trainable parameter in one group, block i of L at
``lr * decay ** (L - i)``, the stem below the first block, the head at the full rate, no weight
decay on biases, norms and the CLS token; one AdamW step moves each layer by its own rate."""

import pytest
import torch

from aape_plugin.models.archs import ARCHS
from aape_plugin.models.classifier import AapeClassifierConfig, create_aape_classifier
from aape_plugin.recipes.layer_decay import AdamWLayerDecayConfig, layer_id, parameter_groups


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_aape_classifier(AapeClassifierConfig(encoder=ARCHS["aape_tiny"]().encoder, num_classes=6))


def test_layer_ids() -> None:
    assert layer_id("encoder.stem.proj.weight", 4) == 0
    assert layer_id("encoder.cls_token", 4) == 0
    assert layer_id("encoder.blocks.blocks.0.attn.qkv.weight", 4) == 1
    assert layer_id("encoder.blocks.blocks.3.mlp.fc2.bias", 4) == 4
    assert layer_id("encoder.blocks.norm.weight", 4) == 5
    assert layer_id("head.2.weight", 4) == 5


def test_groups_cover_every_parameter_once_with_the_decayed_rate(model: torch.nn.Module) -> None:
    config = AdamWLayerDecayConfig(lr=1e-3, layer_decay=0.5, weight_decay=0.05)
    groups = parameter_groups(model, config)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    num_layers = 4  # aape_tiny
    assert rate[id(named["head.2.weight"])] == (1e-3, 0.05)
    assert rate[id(named["head.2.bias"])] == (1e-3, 0.0)
    for i in range(num_layers):
        assert rate[id(named[f"encoder.blocks.blocks.{i}.attn.qkv.weight"])] == (pytest.approx(1e-3 * 0.5 ** (num_layers - i)), 0.05)
    assert rate[id(named["encoder.stem.proj.weight"])] == (pytest.approx(1e-3 * 0.5 ** (num_layers + 1)), 0.05)
    assert rate[id(named["encoder.cls_token"])][1] == 0.0
    norms = [n for n, p in named.items() if p.ndim == 1]
    assert norms and all(rate[id(named[n])][1] == 0.0 for n in norms)


def test_one_adamw_step_moves_each_layer_by_its_rate(model: torch.nn.Module) -> None:
    config = AdamWLayerDecayConfig(lr=1e-3, layer_decay=0.5, weight_decay=0.0)
    optimizer = torch.optim.AdamW(parameter_groups(model, config), lr=config.lr)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    model(torch.randn(4, 1, 80, 96)).square().mean().backward()
    optimizer.step()
    # Adam's first step moves every coordinate with a gradient by about lr.
    for name, expected in (("head.2.weight", 1e-3), ("encoder.blocks.blocks.3.attn.qkv.weight", 5e-4),
                           ("encoder.blocks.blocks.0.attn.qkv.weight", 6.25e-5), ("encoder.stem.proj.weight", 3.125e-5)):
        step = (dict(model.named_parameters())[name].detach() - before[name]).abs()
        assert step.max() == pytest.approx(expected, rel=0.01), name


@pytest.mark.parametrize("scale", [0.0, 0.1])
def test_the_lambda_encoder_can_learn_slower_or_stay_frozen(model: torch.nn.Module, scale: float) -> None:
    config = AdamWLayerDecayConfig(lr=1e-2, layer_decay=1.0, weight_decay=0.05, lambda_lr_scale=scale)
    groups = parameter_groups(model, config)
    lambda_ids = {id(p) for n, p in model.named_parameters() if ".lambda_encoder." in n}
    assert lambda_ids
    for group in groups:
        ids = {id(p) for p in group["params"]}  # type: ignore[union-attr]
        if ids & lambda_ids:
            assert ids <= lambda_ids and group["lr"] == pytest.approx(1e-2 * scale)
            assert scale > 0 or group["weight_decay"] == 0.0
    optimiser = torch.optim.AdamW(groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    logits = model(torch.randn(2, 1, 80, 96))
    logits.sum().backward()
    optimiser.step()
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    lambda_moves = [v for n, v in moved.items() if ".lambda_encoder." in n]
    stem_conv = moved["encoder.stem.proj.weight"]
    assert stem_conv > 1e-4
    if scale == 0.0:
        assert max(lambda_moves) == 0.0  # frozen at its initialisation
    else:
        assert 0 < max(lambda_moves) < 0.2 * 1e-2 * 5
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(before[n])
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="lambda_lr_scale"):
        parameter_groups(model, AdamWLayerDecayConfig(lambda_lr_scale=-1.0))
