"""A run folder belongs to one recipe and one configuration, checked before anything is written.

fairseq2 rewrites ``OUTPUT_DIR/config.yaml`` as soon as a run starts, and only then builds the
model, opens the data and restores checkpoints. Another recipe or other settings in an existing
folder would overwrite the record of how the folder was made, mix their outputs with the old
ones, or fail half-way with an error about a checkpoint state. So the command compares the
folder with the run it is asked to start first, and refuses a mismatch in one line:

* ``recipe.json``, written atomically when a run starts, names the recipe and holds its whole
  configuration. A folder written before it existed is recognised by its ``config.yaml``,
  whose sections name the recipe; a non-empty folder with neither is no run folder.
* The configuration must be the same, except for :data:`MAY_CHANGE`.
* A training run's ``checkpoints/model.yaml`` (the whole model configuration, written by
  fairseq2) must be the model the configuration builds now: when an arch's defaults change,
  the same ``model.arch`` would otherwise resume the old weights inside another model.
  ``model.arch`` and ``model.config_overrides`` may change when they still build that model
  (e.g. pinning an arch's former values).

Under torchrun or SLURM only rank 0 checks the folder and writes ``recipe.json``; the other
ranks wait until it records their run (:func:`await_record`) before fairseq2 writes their logs.

A run that starts a new folder and stops with a user error (exit code 2) before its first
checkpoint removes what it wrote, so that the folder can be used again with corrected settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aape_plugin.cli.recipes import CliError, discover_recipes

OWNER_FILE = "recipe.json"
"""The marker of a run folder: ``{"recipe": NAME, "config": {...}}``."""

MAY_CHANGE: dict[str, str] = {
    "regime.num_steps": "how long to train: re-running with more steps extends a run",
    "common.metric_recorders": "where metrics are recorded (JSONL, TensorBoard, W&B), not what",
    "common.profilers": "profiling only",
    "common.torch.num_threads": "CPU threads: the speed (and the order of floating-point sums), not the method",
    "common.debug": "log detail only",
    "common.cluster": "how the cluster is detected: a run may move between torchrun and SLURM",
    "gang.timeout": "how long a collective operation waits before it fails",
}
"""Settings a re-run may change (key, and every key below it), with why that is safe."""

MODEL_KEYS = ("model.arch", "model.config_overrides")
"""May change when they build the model of the folder's ``checkpoints/model.yaml``."""

MAX_LISTED = 3

AWAIT_SECONDS = 600.0
"""How long the other ranks wait for rank 0 to record the run (rank 0 may start later)."""


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Difference:
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any, limit: int = 60) -> str:
    if value is ABSENT:
        text = "(absent)"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def differences(old: Any, new: Any, prefix: str = "") -> list[Difference]:
    """Every leaf that differs, as a dotted key (a mapping on one side only is one leaf)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += differences(old.get(key, ABSENT), new.get(key, ABSENT), f"{prefix}.{key}" if prefix else str(key))
        return found
    return [] if old == new else [Difference(prefix, old, new)]


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def listing(found: list[Difference]) -> str:
    shown = ", ".join(str(d) for d in found[:MAX_LISTED])
    return shown + (f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else "")


def _plain(value: Any) -> Any:
    """What ``value`` reads back as from JSON (the form the marker keeps)."""
    return json.loads(json.dumps(value, default=str))


def _rank() -> int:
    """This process's rank (fairseq2 reads SLURM's variables only later, when it starts)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1")))


@dataclass(kw_only=True)
class _Snapshot:
    """A folder as it was before the run: the paths in it and the folders the run made."""

    root: Path
    before: frozenset[str]
    made: list[Path]

    @staticmethod
    def take(root: Path) -> _Snapshot:
        made, missing = [], root
        while not missing.exists():
            made.insert(0, missing)
            missing = missing.parent
        return _Snapshot(root=root, before=frozenset(_paths(root)), made=made)

    def remove_what_is_new(self) -> None:
        for path in sorted(set(_paths(self.root)) - self.before, key=lambda p: p.count(os.sep), reverse=True):
            target = Path(path)
            if target.is_dir() and not target.is_symlink():
                try:
                    target.rmdir()
                except OSError:  # holds something older than the run
                    pass
            else:
                target.unlink(missing_ok=True)
        for folder in reversed(self.made):
            try:
                folder.rmdir()
            except OSError:
                break


def _paths(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    found = []
    for folder, dirs, files in os.walk(root):
        found += [os.path.join(folder, name) for name in dirs + files]
    return found


@dataclass(kw_only=True)
class Claim:
    """A run folder this run may use, and what to undo when it stops with a user error."""

    folder: Path
    checkpoint_dir: Path
    new_run: bool
    """No run was in the folder before this one."""
    snapshots: list[_Snapshot] = field(default_factory=list)

    def release(self, exit_code: int) -> None:
        """After a user error (exit code 2) of a new run that saved no checkpoint, removes
        what the run wrote (never a path that was there before it)."""
        if exit_code != 2 or not self.new_run or _rank() != 0:
            return
        if self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.glob("step_*")):
            return
        for snapshot in self.snapshots:
            snapshot.remove_what_is_new()


def _run_folders(resolver: Any, config: Any, output_dir: Path, checkpoint_dir: Path | None) -> tuple[Path, Path]:
    """The folders fairseq2 will use: OUTPUT_DIR and the checkpoint folder, each in its sweep
    subfolder unless ``common.no_sweep_dir``."""
    from fairseq2.utils.structured import ValueConverter

    tag = None
    common = getattr(config, "common", None)
    if common is not None and not common.no_sweep_dir:
        from fairseq2.recipe.internal.config import _RecipeConfigHolder
        from fairseq2.recipe.internal.sweep_tag import _StandardSweepTagGenerator
        from fairseq2.world_info import WorldInfo

        world = WorldInfo(rank=_rank(), size=_world_size(), local_rank=0, local_size=1)
        tag = _StandardSweepTagGenerator(common, world, _RecipeConfigHolder(config), resolver.resolve(ValueConverter)).maybe_generate()

    def place(folder: Path) -> Path:
        folder = folder.expanduser().resolve()
        return folder / tag if tag else folder

    folder = place(output_dir)
    return folder, place(checkpoint_dir) if checkpoint_dir is not None else folder / "checkpoints"


def _recipe_of_sections(sections: set[str]) -> str | None:
    """The installed recipe whose configuration has exactly these top-level sections."""
    matches = []
    for name, entry in discover_recipes().items():
        try:
            kls = entry.load().config_kls
        except CliError:
            continue
        if dataclasses.is_dataclass(kls) and {f.name for f in dataclasses.fields(kls)} == sections:
            matches.append(name)
    return matches[0] if len(matches) == 1 else None


def _read_yaml(resolver: Any, file: Path) -> Any:
    from fairseq2.utils.yaml import YamlError, YamlLoader

    try:
        docs = resolver.resolve(YamlLoader).load(file)
    except (OSError, YamlError) as ex:
        raise CliError(f"{file} cannot be read ({str(ex).splitlines()[0] if str(ex) else type(ex).__name__}); "
                       "use another OUTPUT_DIR") from None
    return docs[0] if docs else None


def read_owner(resolver: Any, folder: Path) -> tuple[str, dict[str, Any]] | None:
    """``(recipe, configuration)`` of the run in ``folder``; ``None`` for a missing or empty
    folder (hidden files aside)."""
    if folder.exists() and not folder.is_dir():
        raise CliError(f"OUTPUT_DIR {folder} is a file, not a folder; use another OUTPUT_DIR")
    marker = folder / OWNER_FILE
    if marker.exists():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
            recipe, config = data["recipe"], data["config"]
        except (OSError, ValueError, KeyError, TypeError):
            recipe, config = None, None
        if not isinstance(recipe, str) or not isinstance(config, dict):
            raise CliError(f"{marker} does not name the recipe and configuration of the run in {folder}; use another OUTPUT_DIR")
        return recipe, config
    legacy = folder / "config.yaml"
    if legacy.exists():
        config = _read_yaml(resolver, legacy)
        recipe = _recipe_of_sections(set(config)) if isinstance(config, dict) else None
        if recipe is None:
            sections = ", ".join(map(str, config)) if isinstance(config, dict) else "none"
            raise CliError(f"{legacy} is the configuration of none of the installed recipes (sections: {sections}); "
                           "use another OUTPUT_DIR")
        return recipe, config
    if folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir()):
        raise CliError(f"OUTPUT_DIR {folder} is not empty and holds no run ({OWNER_FILE} or config.yaml); "
                       "use a new or empty OUTPUT_DIR")
    return None


def model_differences(resolver: Any, config: Any, checkpoint_dir: Path) -> list[Difference] | None:
    """How the model the configuration builds differs from the one in ``checkpoints/model.yaml``;
    ``None`` where there is no such file or the ``model`` section names no model fairseq2's
    trainer would build (fairseq2 reports that itself)."""
    from fairseq2.recipe.config import ModelSection

    section = getattr(config, "model", None)
    file = checkpoint_dir / "model.yaml"
    if not isinstance(section, ModelSection) or not file.is_file():
        return None
    metadata = _read_yaml(resolver, file)
    if not isinstance(metadata, dict) or not isinstance(metadata.get("model_config"), dict):
        raise CliError(f"{file} holds no `model_config`; use another OUTPUT_DIR")

    from fairseq2.assets import AssetCardError, AssetCardNotValidError, AssetMetadataError, AssetNotFoundError
    from fairseq2.models import ModelFamilyNotKnownError
    from fairseq2.recipe.error import RecipeError
    from fairseq2.recipe.internal.asset_config import _StandardAssetConfigOverrider
    from fairseq2.runtime.dependency import DependencyNotFoundError, wire_object
    from fairseq2.utils.structured import ValueConverter
    from fairseq2.utils.validation import ValidationError

    from aape_plugin.recipes.checkpoint_budget import configured_model_config

    try:
        family, model_config = configured_model_config(resolver, section, wire_object(resolver, _StandardAssetConfigOverrider))
    except (AssetCardError, AssetCardNotValidError, AssetMetadataError, AssetNotFoundError, DependencyNotFoundError,
            ModelFamilyNotKnownError, RecipeError, ValidationError):
        return None
    if model_config is None:  # an unknown arch: reported before this check
        return None
    found = differences(metadata.get("model_family"), family.name, "model_family")
    return found + differences(metadata["model_config"], _plain(resolver.resolve(ValueConverter).unstructure(model_config)))


def claim_output_dir(resolver: Any, recipe: str, config: Any, output_dir: Path, checkpoint_dir: Path | None) -> Claim:
    """Checks that ``output_dir`` is new, empty, or a run of ``recipe`` with ``config`` (up to
    :data:`MAY_CHANGE`), then records the run in it (rank 0). Raises :class:`CliError`, having
    written nothing, otherwise."""
    from fairseq2.utils.structured import ValueConverter

    folder, checkpoints = _run_folders(resolver, config, output_dir, checkpoint_dir)
    new = _plain(resolver.resolve(ValueConverter).unstructure(config))
    if _rank() != 0:
        # Only rank 0 checks and writes. The others wait for its record of this run before they
        # go on: fairseq2 on another rank writes its log into the folder as soon as it starts,
        # and rank 0 would then find the new folder "not empty, holding no run".
        await_record(folder, recipe, new)
        return Claim(folder=folder, checkpoint_dir=checkpoints, new_run=False)

    owner = read_owner(resolver, folder)
    if owner is not None:
        owner_recipe, old = owner
        if owner_recipe != recipe:
            raise CliError(f"{folder} holds a run of {owner_recipe}, not of {recipe}; give {recipe} another OUTPUT_DIR")
        changed = [d for d in differences(old, new) if not _under(d.key, MAY_CHANGE)]
        model = model_differences(resolver, config, checkpoints)
        same_model = model == [] and all(_under(d.key, MODEL_KEYS) for d in changed)
        if changed and not same_model:
            raise CliError(
                f"{folder} holds a run of {recipe} with other settings: {listing(changed)}; re-run it with the settings it was "
                f"started with (the same --preset, --model-arch, --config-file and --config values; regime.num_steps and the "
                f"few settings docs/config.md lists may change), or use another OUTPUT_DIR")
        if model:
            raise CliError(
                f"{checkpoints / 'model.yaml'} holds another model than the configuration builds now: {listing(model)}; "
                f"resume it with the version of aape_plugin that wrote it, pin the old values with "
                f"--config model.config_overrides=..., or use another OUTPUT_DIR")

    claim = Claim(folder=folder, checkpoint_dir=checkpoints, new_run=owner is None)
    if claim.new_run:
        claim.snapshots.append(_Snapshot.take(folder))
        if not checkpoints.is_relative_to(folder):
            claim.snapshots.append(_Snapshot.take(checkpoints))
    _write_marker(folder, recipe, new)
    return claim


def await_record(folder: Path, recipe: str, config: dict[str, Any], timeout: float | None = None) -> None:
    """Waits until ``recipe.json`` in ``folder`` records this run (rank 0 writes it once the
    folder passed its checks). Raises :class:`CliError` after ``timeout`` seconds
    (:data:`AWAIT_SECONDS` by default): rank 0 refused the folder or stopped before it."""
    marker = folder / OWNER_FILE
    expected = {"recipe": recipe, "config": config}
    limit = AWAIT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + limit
    while True:
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == expected:
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            raise CliError(f"rank {_rank()}: rank 0 did not record this run in {marker} within {limit:g} s "
                           "(it refused the folder or stopped first: its error says why)")
        time.sleep(0.1)


def _write_marker(folder: Path, recipe: str, config: dict[str, Any]) -> None:
    """Writes ``recipe.json`` atomically (a reader sees the old file or the new one), only when
    it changes."""
    marker = folder / OWNER_FILE
    text = json.dumps({"recipe": recipe, "config": config}, indent=1) + "\n"
    try:
        if marker.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{OWNER_FILE}.{os.getpid()}.partial"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, marker)
