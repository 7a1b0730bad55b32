"""The alias-feature target (``targets.alias_features``): what it carries, how the criterion
weighs it, and where its gradient goes."""

import numpy as np
import pytest
import torch

from aape_plugin.corpora.modulation import amplitude_modulate, noise_band
from aape_plugin.data.features import LogMel
from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
from aape_plugin.models.archs import ARCHS
from aape_plugin.models.factory import create_aape_model
from aape_plugin.nn.targets import alias_targets


def alias_model(**criterion: float) -> tuple[torch.nn.Module, AapeCriterion]:
    """``aape_tiny`` with the alias target at the masked patches only (``alias_visible`` off)."""
    config = ARCHS["aape_tiny"]()
    config.targets.alias_features = True
    config.targets.alias_visible = False
    return create_aape_model(config), AapeCriterion(AapeCriterionConfig(**criterion))


def test_alias_targets_have_unit_scale_per_patch_and_keep_what_holds_over_the_clip() -> None:
    g = torch.Generator().manual_seed(0)
    # Positive features that are the same at every patch of a clip (a steady modulation).
    per_clip = torch.rand(3, 1, 1, 32, generator=g) + 0.1
    targets = alias_targets(per_clip.expand(3, 5, 6, 32))
    assert targets.shape == (3, 30, 32)
    torch.testing.assert_close(targets.mean(-1), torch.zeros(3, 30), atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.var(-1, unbiased=False), torch.ones(3, 30), atol=1e-3, rtol=0)
    # Normalising over the clip's patches (as the layer-pooled targets do) would leave nothing.
    assert (targets - targets.mean(dim=1, keepdim=True)).abs().max() < 1e-5
    assert targets.abs().mean() > 0.5


def test_subband_targets_drop_the_subbands_fixed_pattern_and_keep_what_differs_between_clips() -> None:
    g = torch.Generator().manual_seed(0)
    pattern = torch.rand(1, 5, 1, 32, generator=g) * 4 + 0.5  # a fixed level per subband and feature
    per_clip = torch.rand(6, 1, 1, 32, generator=g) * 0.2 + 1.0  # a small difference per clip
    alias = (pattern * per_clip).expand(6, 5, 7, 32)
    patch = alias_targets(alias).view(6, 5, 7, 32)
    subband = alias_targets(alias, "subband").view(6, 5, 7, 32)
    # Per subband and feature: zero mean and unit variance over clips and patches.
    torch.testing.assert_close(subband.mean(dim=(0, 2)), torch.zeros(5, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(subband.var(dim=(0, 2), unbiased=False), torch.ones(5, 32), atol=5e-3, rtol=0)

    def clip_share(t: torch.Tensor) -> float:
        """The share of the targets' variance that differs between clips (within a subband)."""
        total = (t - t.mean()).square().mean()
        return float((t.mean(dim=2, keepdim=True) - t.mean(dim=(0, 2), keepdim=True)).square().mean() / total)

    assert clip_share(patch) < 0.2 and clip_share(subband) > 0.99
    with pytest.raises(ValueError, match="subband"):
        alias_targets(alias.flatten(1, 2), "subband")


def test_subband_statistics_summed_over_ranks_are_those_of_the_whole_batch() -> None:
    g = torch.Generator().manual_seed(1)
    alias = torch.rand(6, 5, 7, 32, generator=g) * torch.rand(1, 5, 1, 32, generator=g) * 4 + 0.1
    whole = alias_targets(alias, "subband")
    first, second = alias[:2], alias[2:]  # two ranks with different numbers of clips

    local: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def reduce(moments: torch.Tensor) -> torch.Tensor:
            local[name] = moments.clone()
            return moments
        return reduce

    alias_targets(first, "subband", sum_over_ranks=keep("first"))
    alias_targets(second, "subband", sum_over_ranks=keep("second"))
    # What an all-reduce (sum) gives every rank: its moments plus the other's.
    synced = [
        alias_targets(first, "subband", sum_over_ranks=lambda m: m + local["second"]),
        alias_targets(second, "subband", sum_over_ranks=lambda m: m + local["first"]),
    ]
    torch.testing.assert_close(torch.cat(synced), whole, atol=1e-5, rtol=1e-5)
    # Each rank's own statistics give other targets.
    assert (alias_targets(first, "subband") - whole[:2]).abs().max() > 0.05


def am_logmel(rate: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    carrier = noise_band(rng, 2.0, low_hz=500, high_hz=4000)
    wave = amplitude_modulate(carrier, rate, depth=0.9, phase=float(rng.uniform(0, 2 * np.pi)))
    logmel = LogMel()(torch.from_numpy(wave).float())[:, :192]
    return ((logmel - logmel.mean()) / logmel.std()).unsqueeze(0)


def test_the_teacher_stems_targets_tell_modulation_rates_apart() -> None:
    torch.manual_seed(0)
    model, _ = alias_model()
    model.eval()
    x = torch.stack([am_logmel(rate, seed) for rate in (6.0, 25.0) for seed in (1, 2, 3)])
    with torch.no_grad():
        alias = model.teacher(x).alias
    clip = alias_targets(alias).mean(dim=1)  # (6, A): one summary per clip
    slow, fast = clip[:3], clip[3:]
    within = (torch.cdist(slow, slow).sum() + torch.cdist(fast, fast).sum()) / 12
    between = torch.cdist(slow, fast).mean()
    assert between > 3 * within


def test_the_criterion_adds_the_weighted_term_only_for_a_model_that_predicts_it(real_logmel_batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    x = real_logmel_batch[:2]
    model, criterion = alias_model(alias_weight=0.25)
    out = model(x, mask_seeds=[1, 2])
    loss = criterion(out)
    assert out.predicted_alias is not None and out.target_alias is not None
    assert out.predicted_alias.shape == out.target_alias.shape == (*out.predicted_patches.shape[:2], 32)
    torch.testing.assert_close(loss.alias, ((out.predicted_alias - out.target_alias) ** 2).mean())
    torch.testing.assert_close(loss.total, loss.patch + loss.global_ + 0.1 * loss.contrastive + 0.25 * loss.alias)

    before = ARCHS["aape_tiny"]()
    before.targets.alias_features = False
    plain = create_aape_model(before)
    plain_out = plain(x, mask_seeds=[1, 2])
    assert plain_out.predicted_alias is None and criterion(plain_out).alias is None


def test_the_term_trains_the_students_blocks_through_the_visible_tokens(real_logmel_batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    model, criterion = alias_model()
    loss = criterion(model(real_logmel_batch[:2], mask_seeds=[1, 2]))
    assert loss.alias is not None
    loss.alias.backward()
    last_block = list(model.student.blocks.parameters())
    assert sum(float(p.grad.abs().sum()) for p in last_block if p.grad is not None) > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_the_alias_target_is_an_aape_stem_option_that_a_plain_stem_trains_without(caplog: pytest.LogCaptureFixture) -> None:
    config = ARCHS["vit_tiny"]()
    config.targets.alias_features = config.targets.alias_visible = True
    with caplog.at_level("INFO", logger="aape_plugin.models"):
        model = create_aape_model(config)
    assert model.alias_head is None and model.visible_alias_head is None
    assert "applies to the AaPE stem only" in caplog.text


def test_a_negative_alias_weight_is_named() -> None:
    with pytest.raises(ValueError, match="alias_weight"):
        AapeCriterion(AapeCriterionConfig(alias_weight=-1.0))


def test_a_model_config_saved_before_the_option_means_the_objective_before(fairseq2_initialised: None) -> None:
    from fairseq2.runtime.dependency import get_dependency_resolver
    from fairseq2.utils.structured import ValueConverter

    from aape_plugin.models.config import AapeConfig

    converter = get_dependency_resolver().resolve(ValueConverter)
    saved = converter.unstructure(ARCHS["vit_tiny"]())
    del saved["targets"]["alias_features"], saved["targets"]["alias_norm"], saved["targets"]["alias_visible"]  # as run folders saved it
    config = converter.structure(saved, AapeConfig)
    assert not config.targets.alias_features and config.targets.alias_norm == "patch" and not config.targets.alias_visible
    create_aape_model(config)  # the plain stem builds: nothing asks it for alias features
    # A run folder of rounds 3-4 (the alias target at masked patches, before round 5) stays that.
    rounds_3_4 = ARCHS["aape_tiny"]()
    rounds_3_4.targets.alias_features, rounds_3_4.targets.alias_norm = True, "subband"
    saved = converter.unstructure(rounds_3_4)
    del saved["targets"]["alias_visible"]
    config = converter.structure(saved, AapeConfig)
    assert config.targets.alias_features and not config.targets.alias_visible
    assert create_aape_model(config).visible_alias_head is None


def test_visible_alias_targets_are_the_features_where_the_student_looks_and_train_its_output(real_logmel_batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    config = ARCHS["aape_tiny"]()
    config.targets.alias_features, config.targets.alias_norm, config.targets.alias_visible = True, "subband", True
    model, criterion = create_aape_model(config), AapeCriterion(AapeCriterionConfig())
    x = real_logmel_batch[:2]
    out = model(x, mask_seeds=[1, 2])
    assert out.predicted_visible_alias is not None and out.target_visible_alias is not None
    rows, n_visible = out.predicted_visible_alias.shape[:2]
    n_masked = out.predicted_alias.shape[1]
    grid = out.targets.shape[1]
    assert n_visible + n_masked == grid
    # Masked and visible positions together cover each clone's grid once: the two target sets
    # are the whole clip's targets (the same for every clone of a clip), rearranged.
    with torch.no_grad():
        whole = alias_targets(model.teacher(x).alias, "subband")  # (B, N, A)
    for row in range(rows):
        both = torch.cat([out.target_alias[row], out.target_visible_alias[row]])
        clip = whole[int(out.clip_index[row])]
        torch.testing.assert_close(both.sort(dim=0).values, clip.sort(dim=0).values)
    loss = criterion(out)
    masked = ((out.predicted_alias - out.target_alias) ** 2).mean()
    visible = ((out.predicted_visible_alias - out.target_visible_alias) ** 2).mean()
    torch.testing.assert_close(loss.alias, 0.5 * (masked + visible))
    # The visible term alone reaches the student's last block without the predictor.
    visible.backward()
    assert all(p.grad is None for p in model.predictor.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.student.blocks.blocks[-1].parameters() if p.grad is not None) > 0


def test_visible_alias_targets_turn_off_with_the_alias_target(real_logmel_batch: torch.Tensor) -> None:
    config = ARCHS["aape_tiny"]()
    config.targets.alias_visible = True
    config.targets.alias_features = False  # the paper's objective: no alias term at all
    model = create_aape_model(config)
    assert model.alias_head is None and model.visible_alias_head is None
    out = model(real_logmel_batch[:2], mask_seeds=[1, 2])
    assert out.predicted_visible_alias is None and AapeCriterion(AapeCriterionConfig())(out).alias is None
