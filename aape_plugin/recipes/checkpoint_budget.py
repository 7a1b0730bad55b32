"""How large each state file of a run may be, derived from the run's own configuration.

The model's size comes from building the configured model (family, arch, overrides, dtype) on
the meta device, which allocates nothing; the data reader's from its batch size, crop,
prefetch and parallel calls. :mod:`aape_plugin.checkpoints.budget` turns both into limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import Module

from aape_plugin.checkpoints.budget import (
    FileBudget,
    data_reader_budget,
    model_budget,
    optimizer_budget,
    trainer_budget,
)
from aape_plugin.checkpoints.layout import STEP_FOLDER

STATE_KINDS = ("model", "optimizer", "trainer", "data_reader")
"""The folders of a fairseq2 ``step_N`` checkpoint, one per kind of state."""


@dataclass(frozen=True)
class StateBudgets:
    """One :class:`FileBudget` per kind of state file of a run."""

    model: FileBudget
    optimizer: FileBudget
    trainer: FileBudget
    data_reader: FileBudget
    max_step: int
    """``regime.num_steps``: the latest step a trainer state of this run may hold."""

    def for_file(self, file: Path) -> FileBudget | None:
        """The budget of a file in a ``step_N/<kind>/...`` folder, or ``None`` for other files."""
        parts = file.parts
        for folder, kind in zip(parts, parts[1:]):
            if STEP_FOLDER.fullmatch(folder) and kind in STATE_KINDS:
                return getattr(self, kind)  # type: ignore[no-any-return]
        return None


def state_bytes(model: Module) -> int:
    """Bytes of a module's state dict (meta tensors count by shape and dtype)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if isinstance(t, torch.Tensor))


def describe_model(arch: str | None, model: Module) -> str:
    params = sum(p.numel() for p in model.parameters())
    return f"{arch or 'the configured model'}, {params / 1e6:.1f}M parameters"


def run_budgets(model: Module, *, arch: str | None, batch_size: int, num_frames: int, num_mel_bins: int,
                num_prefetch: int, num_parallel_calls: int, num_steps: int) -> StateBudgets:
    """The budgets of a run that trains ``model`` (built on the meta device) and reads batches
    of ``batch_size`` crops of ``num_frames`` log-mel frames."""
    size, basis = state_bytes(model), describe_model(arch, model)
    reader = (f"batch {batch_size} x {num_frames} frames, {num_prefetch} batches prefetched, "
              f"{num_parallel_calls} parallel calls")
    return StateBudgets(
        model=model_budget(size, basis),
        optimizer=optimizer_budget(size, basis),
        trainer=trainer_budget(),
        data_reader=data_reader_budget(batch_size=batch_size, num_frames=num_frames, num_mel_bins=num_mel_bins,
                                       num_prefetch=num_prefetch, num_parallel_calls=num_parallel_calls, basis=reader),
        max_step=num_steps,
    )


def configured_model_config(resolver: object, section: object, overrider: object | None = None) -> tuple[object, object]:
    """``(model family, model config)`` of a recipe's ``model`` section, resolved the way
    fairseq2's trainer resolves it (family, arch or asset card, then ``config_overrides``).
    ``overrider`` is fairseq2's ``_AssetConfigOverrider``; by default the recipe's own."""
    from fairseq2.assets import AssetStore
    from fairseq2.models import ModelFamily
    from fairseq2.models.family import get_model_family_name
    from fairseq2.recipe.internal.asset_config import _AssetConfigOverrider

    name, family_name, arch = getattr(section, "name"), getattr(section, "family"), getattr(section, "arch")
    if getattr(section, "path") is None and name is not None:
        card = resolver.resolve(AssetStore).retrieve_card(name)  # type: ignore[attr-defined]
        family = resolver.resolve(ModelFamily, key=get_model_family_name(card))  # type: ignore[attr-defined]
        config = family.get_model_config(card)
    else:
        family = resolver.resolve(ModelFamily, key=family_name)  # type: ignore[attr-defined]
        config = family.maybe_get_arch_config(arch) if arch is not None else family.config_kls()
    if overrider is None:
        overrider = resolver.resolve(_AssetConfigOverrider)  # type: ignore[attr-defined]
    config = overrider.apply_overrides("model", config, getattr(section, "config_overrides"))  # type: ignore[attr-defined]
    return family, config


def configured_model(resolver: object, section: object) -> tuple[object, Module]:
    """``(model config, model on the meta device)`` of a recipe's ``model`` section, built the
    way fairseq2's trainer builds it (family, arch or asset card, ``config_overrides``, dtype)."""
    from fairseq2.device import CPU
    from fairseq2.gang import create_fake_gangs

    family, config = configured_model_config(resolver, section)
    model = family.create_new_model(config, create_fake_gangs(CPU), getattr(section, "dtype"), meta=True, init_rank0_only=True)  # type: ignore[attr-defined]
    return config, model
