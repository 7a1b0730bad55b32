"""Finding recipes: the ``fairseq2.recipe`` entry-point group.

Any installed distribution can add recipes to the ``fairseq2`` command::

    [project.entry-points."fairseq2.recipe"]
    my_recipe = "my_plugin.recipes:MyRecipe"     # a fairseq2 Recipe subclass (or a factory)

A recipe class may state, as class attributes:

* ``description: str``: the one-line description ``fairseq2 recipe list`` shows (default: the
  first line of its docstring);
* ``presets: str``: where its ``--preset`` YAML files are, as ``"package:folder"`` (read with
  importlib.resources, so they work from a wheel), e.g. ``"aape_plugin.presets:pretrain"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from fairseq2.recipe import Recipe

RECIPE_GROUP = "fairseq2.recipe"


class CliError(Exception):
    """A user error the command reports in one line (exit code 2)."""


@dataclass(frozen=True)
class RecipeEntry:
    name: str
    entry_point: EntryPoint

    def load(self) -> Recipe:
        target = self.entry_point.load()
        recipe = target()
        if not isinstance(recipe, Recipe):
            raise CliError(f"the entry point {self.entry_point.value} of recipe {self.name!r} does not give a fairseq2 Recipe")
        return recipe

    def kls(self) -> type:
        target = self.entry_point.load()
        return target if isinstance(target, type) else type(target())

    def description(self) -> str:
        kls = self.kls()
        text = getattr(kls, "description", None) or (kls.__doc__ or "").strip().splitlines()[:1]
        return text if isinstance(text, str) else (text[0] if text else "")

    def preset_dir(self) -> Traversable | None:
        spec = getattr(self.kls(), "presets", None)
        if not spec:
            return None
        package, _, folder = spec.partition(":")
        try:
            root = files(package)
        except ModuleNotFoundError:
            # Typically one virtualenv shared by two checkouts: the editable install maps the
            # presets package into the other one.
            import aape_plugin

            raise CliError(
                f"recipe {self.name!r}: its presets package {package!r} cannot be imported (aape_plugin is imported from "
                f"{Path(aape_plugin.__file__).parent}); reinstall this checkout into the environment (`scripts/setup.sh`, "
                "or `pip install -e .`)"
            ) from None
        return root / folder if folder else root


def discover_recipes() -> dict[str, RecipeEntry]:
    found = {}
    for ep in entry_points(group=RECIPE_GROUP):
        found.setdefault(ep.name, RecipeEntry(ep.name, ep))
    return dict(sorted(found.items()))


def get_recipe(name: str) -> RecipeEntry:
    recipes = discover_recipes()
    if name not in recipes:
        known = ", ".join(recipes) or "none installed"
        raise CliError(f"unknown recipe {name!r}; available recipes: {known}")
    return recipes[name]
