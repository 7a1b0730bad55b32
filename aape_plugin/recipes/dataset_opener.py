"""Opening a recipe's data set from its section: an asset card ``name`` or a ``family``, with
``config_overrides`` and the ``root`` shorthand.

fairseq2 rebuilds a recipe's configuration object on every access, so the ``root`` shorthand
cannot be folded into the section it reads; the recipes open data sets here instead, through
the same families, cards and merge rules.
"""

from __future__ import annotations

import logging
from typing import Any

from fairseq2.assets import AssetCardError, AssetStore
from fairseq2.datasets import DatasetFamily
from fairseq2.runtime.dependency import DependencyNotFoundError, DependencyResolver
from fairseq2.utils.config import ConfigMerger
from fairseq2.utils.structured import StructureError, ValueConverter

from aape_plugin.data.dataset import AudioDataset
from aape_plugin.data.errors import AudioDataError
from aape_plugin.recipes.sections import AudioDatasetSection

log = logging.getLogger("aape_plugin.recipes")


def _family(resolver: DependencyResolver, name: str) -> DatasetFamily:
    try:
        return resolver.resolve(DatasetFamily, key=name)
    except DependencyNotFoundError:
        raise AudioDataError(f"{name!r} is not a known dataset family (AaPE registers 'audioset' and 'audio_manifest').") from None


def open_dataset_section(resolver: DependencyResolver, section: AudioDatasetSection, what: str = "dataset") -> AudioDataset:
    overrides: dict[str, Any] = dict(section.config_overrides or {})  # type: ignore[call-overload]
    if section.root is not None:
        overrides["root"] = str(section.root)

    card = None
    if section.name is not None:
        store = resolver.resolve(AssetStore)
        card = store.maybe_retrieve_card(section.name)
        if card is None:
            raise AudioDataError(f"No asset card named {section.name!r} (`{what}.name`); list them with `fairseq2 assets list --kind dataset`.")
        family = _family(resolver, card.field("dataset_family").as_(str))
        config = family.get_dataset_config(card)
    elif section.family is not None:
        family = _family(resolver, section.family)
        config = family.config_kls()
    else:
        raise AudioDataError(f"`{what}.name` or `{what}.family` must be set.")

    if overrides:
        converter = resolver.resolve(ValueConverter)
        merged = resolver.resolve(ConfigMerger).merge(converter.unstructure(config), overrides)
        try:
            config = converter.structure(merged, type(config))
        except StructureError as ex:
            raise AudioDataError(f"`{what}.config_overrides` do not fit the {family.name} config: {ex.__cause__ or ex}") from None

    log.info("Opening %s (%s): %s", section.name or family.name, what, config)

    try:
        dataset = family.open_dataset(card, config) if card is not None else family.open_custom_dataset(config)
    except AssetCardError as ex:
        # fairseq2 wraps the opener's error in a generic one; ours says what to fix.
        if isinstance(ex.__cause__, AudioDataError):
            raise ex.__cause__ from None
        raise

    if not isinstance(dataset, AudioDataset):
        raise AudioDataError(f"The {family.name} family does not give audio clips; AaPE recipes read 'audioset' or 'audio_manifest'.")

    return dataset
