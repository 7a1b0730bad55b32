"""Building a recipe's configuration the way fairseq2 will, before running it.

fairseq2 honours one ``--config-file``; a preset plus the user's file are merged here, in this
order of precedence (later wins): recipe defaults < preset < ``--config-file`` < ``--model-arch``
< ``--config`` overrides. Each file's ``${dir}`` is replaced by its own folder first, so it keeps
its meaning after the merge. The merged configuration is then checked (structure, arch) so
that a typo is reported in one line instead of a traceback.
"""

from __future__ import annotations

from argparse import ArgumentParser
from importlib.resources import as_file
from pathlib import Path
from typing import Any

from fairseq2.runtime.dependency import DependencyResolver
from fairseq2.utils.argparse import ConfigAction
from fairseq2.utils.config import ConfigMerger, ReplacePathDirective, StandardConfigProcessor
from fairseq2.utils.structured import StructureError, ValueConverter

from aape_plugin.cli.presets import Preset, read_yaml_file
from aape_plugin.cli.recipes import CliError


def parse_config_overrides(values: list[str]) -> list[dict[str, Any]]:
    """``--config k=v ...`` groups, parsed exactly as fairseq2 parses them."""
    parser = ArgumentParser(add_help=False)
    parser.add_argument("--config", dest="overrides", action=ConfigAction)
    args = ["--config", *values] if values else []
    return list(parser.parse_args(args).overrides or [])


def merged_file_config(
    resolver: DependencyResolver, config_kls: type, preset: Preset | None, user_file: Path | None
) -> dict[str, Any] | None:
    """Defaults merged with the preset and the user's file; ``None`` when there is neither."""
    if preset is None and user_file is None:
        return None

    converter = resolver.resolve(ValueConverter)
    merger = resolver.resolve(ConfigMerger)

    config: Any = converter.unstructure(config_kls())

    sources: list[tuple[dict[str, Any], Path, str]] = []
    if preset is not None:
        with as_file(preset.file) as path:
            sources.append((read_yaml_file(path, f"preset {preset.name!r}"), path.parent, f"preset {preset.name!r}"))
    if user_file is not None:
        if not user_file.is_file():
            raise CliError(f"--config-file {user_file} does not exist")
        sources.append((read_yaml_file(user_file, str(user_file)), user_file.resolve().parent, str(user_file)))

    for overrides, folder, where in sources:
        overrides = StandardConfigProcessor([]).process(overrides, [ReplacePathDirective(folder)])
        try:
            config = merger.merge(config, overrides)
        except (ValueError, TypeError) as ex:
            raise CliError(f"{where} cannot be merged with the recipe's configuration: {ex}") from None

    return config


def check_config(
    resolver: DependencyResolver, config_kls: type, file_config: dict[str, Any] | None, overrides: list[dict[str, Any]]
) -> Any:
    """Applies the overrides and structures the result; a typo becomes a one-line error."""
    converter = resolver.resolve(ValueConverter)
    merger = resolver.resolve(ConfigMerger)

    config: Any = file_config if file_config is not None else converter.unstructure(config_kls())

    for group in overrides:
        try:
            config = merger.merge(config, group)
        except (ValueError, TypeError) as ex:
            raise CliError(f"--config {group} cannot be applied: {ex}") from None

    try:
        return converter.structure(config, config_kls)
    except StructureError as ex:
        raise CliError(describe(ex, config_kls)) from None


def describe(ex: BaseException, config_kls: type) -> str:
    """A structure error as one line: where (dotted path) and what, with the valid keys for
    an unknown one."""
    import dataclasses
    import re
    import typing

    path: list[str] = []
    innermost = str(ex)
    node: BaseException | None = ex
    while node is not None:
        text = str(node)
        found = re.search(r"`([A-Za-z_][A-Za-z0-9_]*)` field cannot be structured", text)
        if found:
            path.append(found.group(1))
        innermost = text or innermost
        node = node.__cause__ or node.__context__

    where = ".".join(path) or "the configuration"

    extra = re.search(r"extra key\(s\) (.+?)\.?$", innermost)
    if extra:
        kls: Any = config_kls
        for name in path:
            hints = typing.get_type_hints(kls) if dataclasses.is_dataclass(kls) else {}
            kls = hints.get(name)
            kls = next((a for a in typing.get_args(kls) if dataclasses.is_dataclass(a)), kls)
        keys = [f.name for f in dataclasses.fields(kls)] if dataclasses.is_dataclass(kls) else []
        valid = f"; valid keys: {', '.join(keys)}" if keys else ""
        return f"unknown configuration key(s) {extra.group(1)} in `{where}`{valid}"

    return f"invalid configuration value at `{where}`: {innermost}"
