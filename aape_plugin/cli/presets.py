"""Presets: named YAML configurations shipped with a recipe, merged under the user's own."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from aape_plugin.cli.recipes import CliError, RecipeEntry


@dataclass(frozen=True)
class Preset:
    name: str
    file: Traversable
    description: str


def list_presets(recipe: RecipeEntry) -> list[Preset]:
    folder = recipe.preset_dir()
    if folder is None or not folder.is_dir():
        return []
    presets = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.name.endswith(".yaml"):
            first = item.read_text(encoding="utf-8").splitlines()[:1]
            description = first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""
            presets.append(Preset(item.name[: -len(".yaml")], item, description))
    return presets


def get_preset(recipe: RecipeEntry, name: str) -> Preset:
    presets = {p.name: p for p in list_presets(recipe)}
    if name not in presets:
        known = ", ".join(presets) or "none"
        raise CliError(f"unknown preset {name!r} for recipe {recipe.name!r}; available presets: {known}")
    return presets[name]


def read_yaml_file(path: Path, where: str) -> dict[str, Any]:
    """A recipe config file's first YAML document (what fairseq2 reads from --config-file)."""
    import yaml

    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as ex:
        raise CliError(f"{where} is not valid YAML: {ex}") from None
    if not docs or docs[0] is None:
        return {}
    if not isinstance(docs[0], dict):
        raise CliError(f"{where} must hold a mapping of configuration sections, not {type(docs[0]).__name__}")
    return docs[0]
