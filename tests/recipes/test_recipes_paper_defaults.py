"""The archs, the recipe's defaults and the ``audioset_*`` presets build the paper's method; the
project's own options are named in the ``study`` and ``demo`` presets. Checked on the
configuration the CLI resolves (the same merge and the same model build as a run)."""

from __future__ import annotations

import pytest

from aape_plugin.models.archs import ARCHS
from aape_plugin.models.config import AapeConfig


class _RecipeResolver:
    """The library's resolver plus fairseq2's own ``config_overrides`` merger, which fairseq2
    registers only in a running recipe's container."""

    def __init__(self, resolver: object) -> None:
        self._resolver = resolver

    def resolve(self, kls: type, key: str | None = None) -> object:
        from fairseq2.recipe.internal.asset_config import _AssetConfigOverrider, _StandardAssetConfigOverrider
        from fairseq2.utils.config import ConfigMerger, ConfigProcessor
        from fairseq2.utils.structured import ValueConverter
        from fairseq2.utils.validation import ObjectValidator

        if kls is _AssetConfigOverrider:
            r = self._resolver
            return _StandardAssetConfigOverrider(r.resolve(ValueConverter), r.resolve(ConfigMerger),  # type: ignore[attr-defined]
                                                 r.resolve(ConfigProcessor), r.resolve(ObjectValidator))  # type: ignore[attr-defined]
        return self._resolver.resolve(kls, key=key) if key is not None else self._resolver.resolve(kls)  # type: ignore[attr-defined]


def resolved(preset: str | None, *overrides: str) -> tuple[object, AapeConfig, object]:
    """``(recipe config, model config, model on the meta device)`` as ``recipe run aape_pretrain
    [--preset P] [--config ...]`` resolves them."""
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.cli.config import check_config, merged_file_config, parse_config_overrides
    from aape_plugin.cli.presets import get_preset
    from aape_plugin.cli.recipes import get_recipe
    from aape_plugin.recipes.checkpoint_budget import configured_model

    entry = get_recipe("aape_pretrain")
    recipe = entry.load()
    resolver = get_dependency_resolver()
    file_config = merged_file_config(resolver, recipe.config_kls, get_preset(entry, preset) if preset else None, None)
    config = check_config(resolver, recipe.config_kls, file_config, parse_config_overrides(list(overrides)))
    model_config, model = configured_model(_RecipeResolver(resolver), config.model)  # type: ignore[attr-defined]
    assert isinstance(model_config, AapeConfig)
    return config, model_config, model


def component_field(section: object, name: str) -> object:
    """A field of a component's ``config`` (structured, or still a mapping before fairseq2
    builds the component)."""
    config = section.config  # type: ignore[attr-defined]
    return config[name] if isinstance(config, dict) else getattr(config, name)


def lambda_lr_scale(config: object) -> object:
    return component_field(config.optimizer, "lambda_lr_scale")  # type: ignore[attr-defined]


def test_every_arch_is_the_papers_objective() -> None:
    for name, make in ARCHS.items():
        targets = make().targets
        assert not targets.alias_features and not targets.alias_visible, name
    assert ARCHS["aape_base"]().encoder.stem.adaptive


@pytest.mark.parametrize("preset", [None, "audioset_base", "audioset_small"])
def test_the_recipe_and_the_audioset_presets_build_the_papers_method(fairseq2_initialised: None, preset: str | None) -> None:
    config, model_config, model = resolved(preset)
    assert lambda_lr_scale(config) == 1.0  # the Lambda Encoder is trained
    assert model_config.encoder.stem.kind == "aape" and model_config.encoder.stem.adaptive
    assert not model_config.targets.alias_features
    assert model.alias_head is None and model.visible_alias_head is None  # type: ignore[attr-defined]
    for term in ("patch_weight", "global_weight", "contrastive_weight"):
        assert float(component_field(config.criterion, term)) > 0, term  # type: ignore[attr-defined, arg-type]


@pytest.mark.parametrize("preset", ["study", "demo"])
def test_the_small_scale_presets_name_the_projects_options(fairseq2_initialised: None, preset: str) -> None:
    config, model_config, model = resolved(preset)
    assert lambda_lr_scale(config) == 0.0  # the Lambda Encoder frozen
    targets = model_config.targets
    assert targets.alias_features and targets.alias_norm == "subband" and targets.alias_visible
    assert model.alias_head is not None and model.visible_alias_head is not None  # type: ignore[attr-defined]


def test_the_study_preset_trains_its_plain_stem_reference_without_the_alias_term(fairseq2_initialised: None) -> None:
    config, model_config, model = resolved("study", "model.arch=vit_tiny")
    assert model_config.encoder.stem.kind == "plain"
    assert model.alias_head is None and model.visible_alias_head is None  # type: ignore[attr-defined]


def test_a_dotted_override_adds_to_the_presets_options(fairseq2_initialised: None) -> None:
    # The fixed-pole arm on top of the study preset keeps the preset's alias target.
    _, model_config, model = resolved("study", "model.config_overrides.encoder.stem.adaptive=false",
                                      "optimizer.config.lambda_lr_scale=1")
    assert not model_config.encoder.stem.adaptive and model_config.targets.alias_visible
    lambda_encoder = model.student.stem.lambda_encoder  # type: ignore[attr-defined]
    assert not lambda_encoder.adaptive
