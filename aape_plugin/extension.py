"""The ``fairseq2.extension`` entry point: everything the plugin adds to fairseq2."""

from __future__ import annotations

from fairseq2.composition import register_package_assets
from fairseq2.runtime.dependency import DependencyContainer

from aape_plugin.data.registration import register_aape_datasets
from aape_plugin.losses import register_aape_criteria
from aape_plugin.models.classifier import register_aape_classifier
from aape_plugin.models.registration import register_aape_models
from aape_plugin.recipes.safe_checkpoints import register_checked_loaders

ASSET_CARDS_PACKAGE = "aape_plugin.assets.cards"


def setup_aape_extension(container: DependencyContainer) -> None:
    """Registers AaPE's model families, archs, criterion, dataset families, asset cards and checked
    checkpoint loaders with fairseq2.

    fairseq2 calls this once per process (``init_fairseq2()`` and every recipe run). It only
    logs a warning when an extension raises, so run tests with ``FAIRSEQ2_EXTENSION_TRACE=1``.
    """
    register_aape_models(container)

    register_aape_classifier(container)

    register_aape_criteria(container)

    register_aape_datasets(container)

    register_package_assets(container, ASSET_CARDS_PACKAGE)

    # Every checkpoint file fairseq2 loads in this process (asset cards, `load_encoder`, HEAR)
    # is read through the checked loaders; the recipes add their run's budgets.
    register_checked_loaders(container)
