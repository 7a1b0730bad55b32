"""The objective's options: feed-forward targets, the clip-level target, inverse-block masks,
representation health, the EMA schedule tied to the run, and weight decay groups."""

import pytest
import torch
import torch.nn.functional as F

from aape_plugin.models.archs import ARCHS
from aape_plugin.models.ema import EmaConfig, ema_decay, resolve_ema
from aape_plugin.models.factory import create_aape_model
from aape_plugin.models.health import effective_rank, representation_health
from aape_plugin.nn.masking import inverse_block_patch_masks, random_patch_masks
from aape_plugin.nn.targets import clip_target, global_target, layer_pooled_targets
from aape_plugin.nn.vit import ViTBlock
from aape_plugin.recipes.layer_decay import AdamWLayerDecayConfig, parameter_groups
from aape_plugin.recipes.pretrain_unit import warn_on_collapse


def test_feed_forward_output_is_the_branch_before_the_residual_add() -> None:
    torch.manual_seed(0)
    block = ViTBlock(32, 4).eval()
    x = torch.randn(2, 7, 32)
    out, ffn = block(x, return_ffn=True)
    mid = x + block.attn(block.norm1(x))
    assert torch.allclose(ffn, block.mlp(block.norm2(mid)), atol=1e-6)
    assert torch.allclose(out, mid + ffn, atol=1e-6) and torch.allclose(out, block(x), atol=1e-6)


def test_clip_target_keeps_what_differs_between_clips(real_logmel_batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = create_aape_model(ARCHS["aape_tiny"]()).eval()
    layers = model.teacher(real_logmel_batch, return_layers=True).layers
    patch_mean = global_target(layer_pooled_targets(layers, 2))
    clip = clip_target(layers, 2)
    # The mean of instance-normalised tokens is close to zero: nothing to learn...
    assert patch_mean.square().mean() < 0.1
    # ...the normalised clip summary has unit scale and differs from clip to clip.
    assert clip.square().mean() == pytest.approx(1.0, abs=1e-3)
    assert clip.var(dim=0).mean() > 10 * patch_mean.var(dim=0).mean()


@pytest.mark.parametrize("grid", [(5, 6), (5, 38)])
def test_inverse_block_masks_hide_exactly_as_many_patches_in_connected_regions(grid: tuple[int, int]) -> None:
    n = grid[0] * grid[1]
    blocks = inverse_block_patch_masks(16, grid, ratio=0.75, num_clones=4, seeds=list(range(16)))
    scattered = random_patch_masks(16, grid, ratio=0.75, num_clones=4, seeds=list(range(16)))
    hidden = (~blocks.visible).flatten(1).sum(dim=1)
    assert (hidden == (~scattered.visible).flatten(1).sum(dim=1)).all() and int(hidden[0]) == round(0.75 * n)
    assert blocks.masked_index.shape == scattered.masked_index.shape and blocks.clip_index.tolist() == scattered.clip_index.tolist()

    def visible_neighbours(v: torch.Tensor) -> float:
        padded = F.pad(v.float(), (1, 1, 1, 1))
        around = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
        return float((around * v).sum() / v.sum())

    # Visible patches come in blocks: they have more visible neighbours than scattered ones.
    assert visible_neighbours(blocks.visible) > 1.5 * visible_neighbours(scattered.visible)
    # Seeded per clip, like the random masks.
    again = inverse_block_patch_masks(2, grid, ratio=0.75, num_clones=4, seeds=[5, 0])
    assert torch.equal(again.visible[4:8], blocks.visible[0:4])


def test_effective_rank_counts_directions() -> None:
    g = torch.Generator().manual_seed(0)
    line = torch.randn(32, 1, generator=g) * torch.randn(1, 16, generator=g)
    assert float(effective_rank(line)) == pytest.approx(1.0, abs=1e-3)
    assert float(effective_rank(torch.randn(64, 8, generator=g))) > 6.5
    assert float(effective_rank(torch.ones(5, 4))) == 1.0


def test_health_statistics_of_a_real_step_and_a_collapsed_one(real_logmel_batch: torch.Tensor, caplog) -> None:
    torch.manual_seed(0)
    config = ARCHS["aape_tiny"]()
    config.targets.global_target = "clip"
    model = create_aape_model(config).train()
    out = model(real_logmel_batch, mask_seeds=list(range(len(real_logmel_batch))))
    stats = representation_health(out, config.masking.num_clones)
    assert set(stats) == {"target_clip_spread", "target_position_spread", "target_position_share", "teacher_rank",
                          "student_rank", "prediction_cosine", "global_r2"}
    assert 0.1 < float(stats["target_clip_spread"]) < 1.5 and 0.0 <= float(stats["target_position_share"]) <= 1.0
    assert 1.5 < float(stats["teacher_rank"]) <= len(real_logmel_batch) - 1 + 1e-3
    with caplog.at_level("WARNING", logger="aape_plugin.recipes"):
        warn_on_collapse({k: float(v) for k, v in stats.items()})
        assert "collapse" not in caplog.text
        warn_on_collapse({"teacher_rank": 1.01, "target_clip_spread": 0.001})
    assert "Representation collapse" in caplog.text and "effective rank 1.01" in caplog.text


def test_ema_schedule_follows_the_run_length_by_default() -> None:
    config = resolve_ema(EmaConfig(start=0.99, end=0.999), 3000)
    assert config.num_steps == 3000 and ema_decay(config, 0) == pytest.approx(0.99) and ema_decay(config, 3000) == 0.999
    assert resolve_ema(EmaConfig(num_steps=100), 3000).num_steps == 100
    with pytest.raises(ValueError, match="resolve it with `resolve_ema`"):
        ema_decay(EmaConfig(), 5)


def test_pretraining_optimizer_spares_norms_biases_and_tokens() -> None:
    model = create_aape_model(ARCHS["aape_tiny"]())
    groups = parameter_groups(model, AdamWLayerDecayConfig(lr=1e-3, weight_decay=0.05, layer_decay=1.0))
    assert len(groups) == 2
    names = {id(p): n for n, p in model.named_parameters()}
    spared = {names[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] == 0.05 for p in g["params"]}
    assert {"student.cls_token", "predictor.mask_token", "student.blocks.norm.weight", "student.blocks.blocks.0.attn.qkv.bias"} <= spared
    assert "student.blocks.blocks.0.attn.qkv.weight" in decayed and "predictor.context_proj.weight" in decayed
    assert not any(n.startswith("teacher.") for n in spared | decayed)
