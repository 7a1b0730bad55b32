"""The ``aape`` command, also installed as ``fairseq2`` (fairseq2 0.8.1 ships none): run
recipes by name, with presets.

    fairseq2 recipe list
    fairseq2 recipe presets NAME
    fairseq2 recipe run NAME OUTPUT_DIR [--preset P] [--model-arch A] [fairseq2's flags]
    fairseq2 assets list|show ...
    fairseq2 convert PATH


``recipe run`` hands over to fairseq2's own recipe CLI (``fairseq2.recipe.cli.main``), so
``--config k=v``, ``--config-file``, ``--dump-config``, ``--no-rich``, ``--no-exit-on-error`` and
``--checkpoint-dir`` mean what they mean there. User errors (unknown recipe, preset, arch,
configuration key, an OUTPUT_DIR of another recipe or configuration) are one line on stderr and
exit code 2; nothing is written before they are checked (see :mod:`aape_plugin.cli.ownership`).
fairseq2's set-up log goes to the run folder's log file only (see :mod:`aape_plugin.cli.logs`).
``convert`` turns the pickle checkpoints of a run folder written before state files were
safetensors into state files (:mod:`aape_plugin.checkpoints.convert`). See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aape_plugin.cli.recipes import CliError, RecipeEntry, discover_recipes, get_recipe

PROG = "fairseq2"


def _prog() -> str:
    """The name the command was started by (``aape`` or ``fairseq2``)."""
    name = Path(sys.argv[0]).name
    return name if name in ("aape", "fairseq2") else PROG


def _recipe_list() -> int:
    recipes = discover_recipes()
    if not recipes:
        print("No recipes are installed (entry-point group `fairseq2.recipe`).")
        return 0
    width = max(len(n) for n in recipes)
    for name, entry in recipes.items():
        print(f"{name:<{width}}  {entry.description()}")
    return 0


def _recipe_presets(name: str) -> int:
    from aape_plugin.cli.presets import list_presets

    presets = list_presets(get_recipe(name))
    if not presets:
        print(f"Recipe {name!r} has no presets.")
        return 0
    width = max(len(p.name) for p in presets)
    for preset in presets:
        print(f"{preset.name:<{width}}  {preset.description}")
    return 0


def _check_arch(resolver: Any, config: Any) -> None:
    from fairseq2.models import ModelFamily
    from fairseq2.runtime.dependency import DependencyNotFoundError

    model = getattr(config, "model", None)
    arch = getattr(model, "arch", None)
    if arch is None:
        return
    family_name = getattr(model, "family", None)
    if getattr(model, "name", None) is not None or family_name is None:
        return  # an asset card decides the family; fairseq2 reports a bad arch itself
    try:
        family = resolver.resolve(ModelFamily, key=family_name)
    except DependencyNotFoundError:
        raise CliError(f"unknown model family {family_name!r} in `model.family`") from None
    archs = sorted(family.get_archs())
    if arch not in archs:
        raise CliError(f"unknown arch {arch!r} for model family {family_name!r}; valid archs: {', '.join(archs)}")


def _check_model_card(resolver: Any, config: Any) -> None:
    """A ``model.name`` card of an AaPE family must not lift fairseq2's ``weights_only`` load
    (fairseq2 honours a card's ``restrict: false`` when a recipe loads its model by name)."""
    from fairseq2.assets import AssetCard, AssetStore, FileAssetMetadataLoader

    from aape_plugin.inference.loading import EncoderLoadError, refuse_unrestricted_card
    from aape_plugin.models.classifier import AAPE_CLASSIFIER_FAMILY
    from aape_plugin.models.config import AAPE_ENCODER_FAMILY, AAPE_FAMILY

    name = getattr(getattr(config, "model", None), "name", None)
    if not isinstance(name, str):
        return
    card = resolver.resolve(AssetStore).maybe_retrieve_card(name)
    if card is None:  # maybe one of the run's own card folders (`common.assets.extra_paths`)
        loader = resolver.resolve(FileAssetMetadataLoader)
        for folder in getattr(getattr(getattr(config, "common", None), "assets", None), "extra_paths", None) or []:
            try:
                provider = loader.load(Path(folder))
            except Exception:  # fairseq2 reports unreadable folders itself
                continue
            # Cards of the default environment are stored as `name@`.
            metadata = provider.maybe_get_metadata(name) or provider.maybe_get_metadata(f"{name}@")
            if metadata is not None:
                card = AssetCard(name, metadata)
                break
    if card is None:
        return
    family = card.maybe_get_field("model_family")
    if family is not None and family.as_(str) in (AAPE_FAMILY, AAPE_ENCODER_FAMILY, AAPE_CLASSIFIER_FAMILY):
        try:
            refuse_unrestricted_card(card)
        except EncoderLoadError as ex:
            raise CliError(str(ex)) from None


def _recipe_run(name: str, argv: list[str]) -> int:
    from fairseq2 import init_fairseq2
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.cli.config import check_config, merged_file_config, parse_config_overrides
    from aape_plugin.cli.presets import get_preset, list_presets

    entry = get_recipe(name)

    parser = argparse.ArgumentParser(
        prog=f"{_prog()} recipe run {name}",
        description=f"{entry.description()}\n\nPresets: {', '.join(p.name for p in list_presets(entry)) or 'none'}. "
        "Precedence: recipe defaults < --preset < --config-file < --model-arch < --config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output_dir", nargs="?", type=Path, help="directory of the run (re-run the same command to resume)")
    parser.add_argument("--preset", help="a preset of this recipe (`fairseq2 recipe presets NAME`)")
    parser.add_argument("--model-arch", help="shorthand for --config model.arch=ARCH")
    parser.add_argument("--config-file", type=Path, help="YAML configuration merged over the preset")
    parser.add_argument("--config", nargs="*", default=[], action="extend", metavar="NAME=VALUE", help="configuration overrides")
    parser.add_argument("--dump-config", action="store_true", help="print the merged configuration and exit")
    parser.add_argument("--no-rich", action="store_true", help="plain log output")
    parser.add_argument("--no-exit-on-error", action="store_true", help="propagate errors (debugging)")
    parser.add_argument("--checkpoint-dir", type=Path, help="where checkpoints go (default OUTPUT_DIR/checkpoints)")
    args = parser.parse_args(argv)

    if args.output_dir is None and not args.dump_config:
        raise CliError(f"`recipe run {name}` needs an OUTPUT_DIR (or --dump-config)")

    recipe = entry.load()

    preset = get_preset(entry, args.preset) if args.preset else None

    if not args.dump_config:
        from aape_plugin.cli.logs import route_recipe_log

        route_recipe_log()

    init_fairseq2()

    resolver = get_dependency_resolver()

    file_config = merged_file_config(resolver, recipe.config_kls, preset, args.config_file)

    overrides = list(args.config)
    if args.model_arch:
        overrides.insert(0, f"model.arch={args.model_arch}")

    config = check_config(resolver, recipe.config_kls, file_config, parse_config_overrides(overrides))

    _check_arch(resolver, config)

    _check_model_card(resolver, config)

    # The last check, and the first write: the folder must hold no other recipe's or
    # configuration's run (see aape_plugin.cli.ownership).
    claim = None
    if args.output_dir is not None and not args.dump_config:
        from aape_plugin.cli.ownership import claim_output_dir

        claim = claim_output_dir(resolver, name, config, args.output_dir, args.checkpoint_dir)

    # The output folder goes first: fairseq2's --config takes every following word.
    forwarded: list[str] = [] if args.output_dir is None else [str(args.output_dir)]
    tmp = None
    if file_config is not None:
        import yaml

        tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"{name}-", delete=False)
        yaml.safe_dump(file_config, tmp, sort_keys=False)
        tmp.close()
        forwarded += ["--config-file", tmp.name]
    for flag in ("dump_config", "no_rich", "no_exit_on_error"):
        if getattr(args, flag):
            forwarded.append("--" + flag.replace("_", "-"))
    if args.checkpoint_dir is not None:
        forwarded += ["--checkpoint-dir", str(args.checkpoint_dir)]
    if overrides:
        forwarded += ["--config", *overrides]

    from fairseq2.recipe.cli import main as fairseq2_main

    saved = sys.argv
    sys.argv = [f"{_prog()} recipe run {name}", *forwarded]
    code = 0
    try:
        fairseq2_main(recipe)
    except SystemExit as ex:
        code = int(ex.code or 0) if not isinstance(ex.code, str) else 1
    finally:
        sys.argv = saved
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
    if claim is not None:
        claim.release(code)
    return code


def _assets(argv: list[str]) -> int:
    import runpy

    saved = sys.argv
    sys.argv = [f"{_prog()} assets", *argv]
    try:
        runpy.run_module("fairseq2.assets", run_name="__main__", alter_sys=True)
    except SystemExit as ex:
        return int(ex.code or 0) if not isinstance(ex.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def _convert(path: Path) -> int:
    from aape_plugin.checkpoints import UnsafeCheckpointError
    from aape_plugin.checkpoints.convert import BACKUP_SUFFIX, convert
    from aape_plugin.checkpoints.state_file import StateNotStorableError

    try:
        done = convert(path)
    except (UnsafeCheckpointError, StateNotStorableError, FileNotFoundError) as ex:
        raise CliError(str(ex)) from None
    for file in done.converted:
        print(f"converted {file} (the original is {file.name}{BACKUP_SUFFIX})")
    print(f"{len(done.converted)} file(s) converted, {len(done.already)} already state files"
          + (f"; delete the *.pt{BACKUP_SUFFIX} originals once the run resumes" if done.converted else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_prog(), description="Run fairseq2 recipes by name (installed by aape-fairseq2).")
    sub = parser.add_subparsers(dest="command", metavar="{recipe,assets,convert}")
    recipe = sub.add_parser("recipe", help="list, inspect and run recipes")
    recipe_sub = recipe.add_subparsers(dest="action", metavar="{list,presets,run}")
    recipe_sub.add_parser("list", help="list the installed recipes")
    presets = recipe_sub.add_parser("presets", help="list a recipe's presets")
    presets.add_argument("name")
    run = recipe_sub.add_parser("run", help="run a recipe: run NAME OUTPUT_DIR [options]; `run NAME --help` for options", add_help=False)
    run.add_argument("name")
    run.add_argument("rest", nargs=argparse.REMAINDER)
    assets = sub.add_parser("assets", help="fairseq2's asset CLI (list, show)", add_help=False)
    assets.add_argument("rest", nargs=argparse.REMAINDER)
    convert = sub.add_parser("convert", help="convert a run folder's pickle checkpoints (or one .pt file) to state files, in place")
    convert.add_argument("path", type=Path, help="a run folder, its checkpoints or step_N folder, or a .pt file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    # fairseq2 0.8.1 registers one of its own families with a deprecated argument on every start.
    warnings.filterwarnings("ignore", message="`hg_exporter` is deprecated", category=DeprecationWarning)

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        if args.command == "recipe":
            if args.action == "list":
                return _recipe_list()
            if args.action == "presets":
                return _recipe_presets(args.name)
            if args.action == "run":
                return _recipe_run(args.name, args.rest)
            parser.parse_args(["recipe", "--help"])
        elif args.command == "assets":
            return _assets(args.rest)
        elif args.command == "convert":
            return _convert(args.path)
        parser.print_help()
        return 0
    except CliError as ex:
        print(f"{_prog()}: error: {ex}", file=sys.stderr)
        return 2


def console_main() -> None:
    """The ``aape`` and ``fairseq2`` console scripts."""
    sys.exit(main())


__all__ = ["main", "console_main", "CliError", "RecipeEntry"]
