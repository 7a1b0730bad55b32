"""Loading a trained (or freshly initialised) encoder for downstream use.

``source`` may be:

* a pre-training run folder (``OUT`` of ``aape_pretrain``), its ``checkpoints`` folder, or one
  ``step_N`` folder in it: the model config comes from ``checkpoints/model.yaml``, the weights
  from the last (or the given) step, the log-mel statistics from the run's
  ``feature_stats.json``;
* a ``.pt`` / ``.safetensors`` file saved from an ``aape`` or ``aape_encoder`` model (give
  ``arch``);
* an asset card (its name, or a fairseq2 ``AssetCard``) of the ``aape_encoder`` or ``aape``
  family with a ``checkpoint``.

Every file is read by the plugin's checked loaders, the ones fairseq2 itself uses in this process
(:mod:`aape_plugin.recipes.safe_checkpoints`): whatever names it (a relative path in an asset
card, any ``file:`` URI, ``checkpoint_path``, a shard pattern, a symbolic link), it is read once,
only if it is a regular file no larger than the model it is loaded into, and a ``.pt`` file is
read as a state file (:mod:`aape_plugin.checkpoints.state_file`: tensors and plain data, never
unpickled; a pickle is refused with the ``aape convert`` command that converts it); a run's
``checkpoints`` folder is used only if it holds nothing but what the recipes write. A refused file is an :class:`EncoderLoadError` naming it, and an asset card cannot lift
the restriction (``restrict: false`` is refused). ``step`` applies to run folders; with a ``step_N`` folder it
must name that step, and with a file or an asset card it is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import yaml

from aape_plugin.checkpoints.budget import FileBudget
from aape_plugin.data.stats import FeatureStats
from aape_plugin.models.config import AapeConfig
from aape_plugin.nn.audio_encoder import AudioEncoder


if TYPE_CHECKING:
    from fairseq2.assets import AssetCard


class EncoderLoadError(Exception):
    """The encoder source cannot be loaded; the message says what was expected."""


@dataclass
class LoadedEncoder:
    encoder: AudioEncoder
    config: AapeConfig
    stats: FeatureStats | None
    """The statistics the encoder was trained with, when the source says."""
    description: str


@contextmanager
def _weights_only(what: str) -> Iterator[None]:
    """Turns a refused checkpoint (a pickle, a damaged file, weights of another model) into one
    line that names the file."""
    from fairseq2.assets import AssetCardError
    from fairseq2.model_checkpoint import CorruptModelCheckpointError

    from aape_plugin.checkpoints import UnsafeCheckpointError

    try:
        yield
    except UnsafeCheckpointError as ex:
        message = str(ex)
        if str(ex.file) != what and message.startswith(f"{ex.file} "):
            message = f"{ex.file} (from {what}) {message[len(str(ex.file)) + 1:]}"
        raise EncoderLoadError(message) from None
    except (CorruptModelCheckpointError, AssetCardError) as ex:
        corrupt = ex
        while corrupt is not None and not isinstance(corrupt, CorruptModelCheckpointError):
            corrupt = corrupt.__cause__  # type: ignore[assignment]
        if corrupt is None:
            raise
        path = str(_refused_file(corrupt) or getattr(corrupt, "path", what))
        source = "" if path == what else f" (from {what})"
        raise EncoderLoadError(
            f"{path}{source} cannot be loaded as weights: {_unpickling_detail(corrupt)}. A .pt file is read as a state "
            f"file (aape_plugin.checkpoints.save_state(model.state_dict(), path) writes one), never unpickled; or use "
            f"a .safetensors file."
        ) from None


def _refused_file(ex: BaseException) -> object | None:
    """The file torch refused (a checkpoint folder's shard), from fairseq2's error chain."""
    node: BaseException | None = ex
    while node is not None:
        if getattr(node, "file", None) is not None:
            return node.file  # type: ignore[attr-defined]
        node = node.__cause__
    return None


def _unpickling_detail(ex: BaseException) -> str:
    """The reason torch gave, in one line (e.g. ``Unsupported global: GLOBAL builtins.exec``)."""
    node: BaseException | None = ex
    while node is not None:
        for line in str(node).splitlines():
            if "WeightsUnpickler error:" in line:
                return line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0].rstrip(".")
        node = node.__cause__
    return "not a readable checkpoint of tensors"


def ensure_fairseq2() -> None:
    """fairseq2's library container (with this plugin), initialised once per process."""
    from fairseq2 import init_fairseq2
    from fairseq2.error import InvalidOperationError

    try:
        init_fairseq2()
    except InvalidOperationError:
        pass


def _structure_config(raw: object) -> AapeConfig:
    from fairseq2.runtime.dependency import get_dependency_resolver
    from fairseq2.utils.structured import ValueConverter

    converter = get_dependency_resolver().resolve(ValueConverter)
    return converter.structure(raw, AapeConfig)


def checkpoint_steps(checkpoint_dir: Path) -> list[int]:
    """The step numbers of a run's checkpoints, as fairseq2's checkpoint manager lists them (the
    same code that saved them and that resumes training)."""
    from fairseq2.checkpoint import StandardCheckpointManager
    from fairseq2.device import CPU
    from fairseq2.gang import create_fake_gangs
    from fairseq2.runtime.dependency import get_dependency_resolver, wire_object

    from aape_plugin.checkpoints.layout import check_checkpoint_dir

    check_checkpoint_dir(checkpoint_dir)
    manager = wire_object(get_dependency_resolver(), StandardCheckpointManager, output_dir=checkpoint_dir.parent,
                          gangs=create_fake_gangs(CPU), checkpoint_dir=checkpoint_dir)
    return manager.get_step_numbers()


def _find_step_dir(root: Path, step: int | None) -> Path:
    steps = checkpoint_steps(root)
    if not steps:
        raise EncoderLoadError(f"{root} holds no step_N checkpoint.")
    if step is None:
        return root / f"step_{steps[-1]}"
    if step not in steps:
        raise EncoderLoadError(f"{root} has no checkpoint at step {step}; it has steps {steps}.")
    return root / f"step_{step}"


def _run_layout(source: Path, step: int | None) -> tuple[Path, Path, Path | None] | None:
    """(model.yaml, step dir, stats file) for a run / checkpoints / step folder."""
    candidates = [source, source / "checkpoints", source.parent, source.parent.parent]
    for ckpt in candidates:
        if (ckpt / "model.yaml").is_file():
            # A step_N folder (or its model folder) names its step; otherwise `step` or the last one.
            names = {f"step_{n}" for n in checkpoint_steps(ckpt)}
            given = next((p for p in (source, source.parent) if p.parent == ckpt and p.name in names), None)
            if given is not None and step is not None and given.name != f"step_{step}":
                raise EncoderLoadError(
                    f"{source} is the checkpoint of {given.name.replace('_', ' ')}, but `step` asks for step {step}: "
                    f"give the run folder {ckpt.parent} with the step, or leave `step` unset.")
            step_dir = given or _find_step_dir(ckpt, step)
            stats = ckpt.parent / "feature_stats.json"
            return ckpt / "model.yaml", step_dir, stats if stats.is_file() else None
    return None


MAX_RUNS_NAMED = 3
"""Run folders an error names when it is given the folder above them."""


def runs_inside(folder: Path, depth: int = 2) -> list[Path]:
    """The pre-training run folders (with ``checkpoints/model.yaml``) in ``folder`` and up to
    ``depth`` levels below it, sorted (``runs/demo`` holds ``runs/demo/pretrain-<digest>``)."""
    found: list[Path] = []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return found
    for child in children:
        if (child / "checkpoints" / "model.yaml").is_file():
            found.append(child)
        elif depth > 1:
            found += runs_inside(child, depth - 1)
    return found


def load_encoder(
    source: str | Path | AssetCard,
    *,
    weights: Literal["teacher", "student"] = "teacher",
    step: int | None = None,
    arch: str | None = None,
    device: torch.device | str = "cpu",
) -> LoadedEncoder:
    """The encoder of ``source`` in eval mode (see the module docstring for the sources)."""
    from fairseq2.assets import AssetCard

    ensure_fairseq2()

    device = torch.device(device)

    if isinstance(source, AssetCard):
        if step is not None:
            raise EncoderLoadError(f"`step` ({step}) applies to a pre-training run folder, but {source.name!r} is an asset "
                                   f"card, which has no steps: leave `step` unset.")
        return _load_card(source, weights, device)

    path = Path(str(source)).expanduser()

    with _weights_only(str(path)):
        return _load_path(path, source, weights, step, arch, device)


def _load_path(path: Path, source: str | Path, weights: str, step: int | None, arch: str | None,
               device: torch.device) -> LoadedEncoder:
    from aape_plugin.checkpoints.regular_file import refuse_irregular
    from aape_plugin.models.hub import get_aape_encoder_hub, get_aape_hub
    from aape_plugin.recipes.safe_checkpoints import expected_weights

    if path.is_dir():
        layout = _run_layout(path, step)
        if layout is None:
            inside = runs_inside(path)
            if inside:
                shown = ", ".join(str(r) for r in inside[:MAX_RUNS_NAMED])
                more = f" and {len(inside) - MAX_RUNS_NAMED} more" if len(inside) > MAX_RUNS_NAMED else ""
                raise EncoderLoadError(
                    f"{path} is not a pre-training run but holds {'one' if len(inside) == 1 else len(inside)}: "
                    f"{shown}{more}; give {'it' if len(inside) == 1 else 'one of them'} instead."
                )
            raise EncoderLoadError(
                f"{path} is not a pre-training run: expected {path}/checkpoints/model.yaml and "
                f"{path}/checkpoints/step_N/model (the OUTPUT_DIR of `fairseq2 recipe run aape_pretrain`)."
            )
        model_yaml, step_dir, stats_file = layout
        meta = yaml.safe_load(model_yaml.read_text())
        if meta.get("model_family") != "aape":
            raise EncoderLoadError(f"{model_yaml} describes a {meta.get('model_family')!r} model, not an AaPE one.")
        config = _structure_config(meta["model_config"])
        config.downstream_encoder = weights
        # fairseq2 skips what is not a regular file in a model folder; name it instead.
        for folder, _, names in os.walk(step_dir / "model"):
            for name in names:
                refuse_irregular(Path(folder) / name)
        with expected_weights(weight_file_budget(config)):
            model = get_aape_encoder_hub().load_custom_model(step_dir / "model", config, device=device, restrict=True)
        stats = FeatureStats.load(stats_file) if stats_file else None
        return LoadedEncoder(model.encoder.eval(), config, stats, f"{step_dir} ({weights})")

    if step is not None:
        what = "a checkpoint file" if path.suffix in (".pt", ".pth", ".safetensors") else "an asset card"
        raise EncoderLoadError(f"`step` ({step}) applies to a pre-training run folder, but {source} is {what}, which has "
                               f"no steps: leave `step` unset, or give the run folder.")

    if path.suffix in (".pt", ".pth", ".safetensors"):
        if not path.exists():
            raise EncoderLoadError(f"The checkpoint file {path} does not exist.")
        refuse_irregular(path)
        if arch is None:
            raise EncoderLoadError(f"Loading the file {path} needs the architecture: give `arch` (e.g. aape_base).")
        config = get_aape_hub().get_arch_config(arch)
        config.downstream_encoder = weights
        with expected_weights(weight_file_budget(config)):
            model = get_aape_encoder_hub().load_custom_model(path, config, device=device, restrict=True)
        return LoadedEncoder(model.encoder.eval(), config, None, f"{path} ({arch}, {weights})")

    return _load_card(str(source), weights, device)


def _load_card(name_or_card: str | AssetCard, weights: str, device: torch.device) -> LoadedEncoder:
    """An asset card of the ``aape_encoder`` family (the encoder alone, e.g. the shipped
    ``aape_tiny_demo``) or of the ``aape`` family (a whole SSL checkpoint). A card may carry
    ``feature_stats: {mean, std}``, the statistics the encoder was trained with."""
    from fairseq2.assets import AssetStore
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.models.hub import get_aape_encoder_hub, get_aape_hub
    from aape_plugin.recipes.safe_checkpoints import expected_weights

    if isinstance(name_or_card, str):
        name = name_or_card
        card = get_dependency_resolver().resolve(AssetStore).maybe_retrieve_card(name)
    else:
        card, name = name_or_card, name_or_card.name
    if card is None:
        if name in get_aape_hub().get_archs():
            raise EncoderLoadError(
                f"{name!r} is an architecture, not a trained model: give a pre-training run folder, a checkpoint "
                f"file or an asset card with weights (e.g. aape_tiny_demo), or use the architecture alone for a "
                f"randomly initialised encoder (the probe's `model.arch={name}`)."
            )
        raise EncoderLoadError(
            f"{name!r} is neither a run folder, a checkpoint file (.pt/.safetensors) nor an asset card "
            f"(list them with `fairseq2 assets list --kind model`)."
        )

    family = card.field("model_family").as_(str)
    refuse_unrestricted_card(card)
    stats = None
    raw_stats = card.maybe_get_field("feature_stats")
    if raw_stats is not None:
        values = raw_stats.as_(dict)
        stats = FeatureStats(mean=float(values["mean"]), std=float(values["std"]), source=f"asset card {name}")
    else:
        stats = _run_stats_near(card)

    if family not in ("aape_encoder", "aape"):
        raise EncoderLoadError(f"The asset card {name!r} is of the {family!r} family, not aape or aape_encoder.")
    hub = get_aape_encoder_hub() if family == "aape_encoder" else get_aape_hub()
    with _weights_only(f"asset card {name!r}"):
        budget = weight_file_budget(hub.get_model_config(card))
    if family == "aape_encoder":
        with _weights_only(f"asset card {name!r}"), expected_weights(budget):
            model = get_aape_encoder_hub().load_model(card, device=device)
        return LoadedEncoder(model.encoder.eval(), model.config, stats, f"asset {name}")
    if family == "aape":
        with _weights_only(f"asset card {name!r}"), expected_weights(budget):
            ssl = get_aape_hub().load_model(card, device=device)
        encoder = ssl.teacher if weights == "teacher" else ssl.student
        return LoadedEncoder(encoder.eval(), ssl.config, stats, f"asset {name} ({weights})")
    raise EncoderLoadError(f"The asset card {name!r} is of the {family!r} family, not aape or aape_encoder.")


def weight_file_budget(config: AapeConfig) -> FileBudget:
    """The most an AaPE weight file of ``config`` holds: the SSL model's state."""
    from aape_plugin.checkpoints.budget import model_budget
    from aape_plugin.models.factory import create_aape_model

    with torch.device("meta"):
        model = create_aape_model(config)
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() for p in model.parameters())
    return model_budget(size, f"AaPE model of {params / 1e6:.1f}M parameters")


def refuse_unrestricted_card(card: object) -> None:
    """fairseq2 lets a card's ``restrict: false`` unpickle its checkpoint with
    ``weights_only=False``, which runs whatever code the file holds; AaPE weights never need it
    (the plugin's loader unpickles nothing either way, but a card that asks to is a mistake)."""
    field = card.maybe_get_field("restrict")  # type: ignore[attr-defined]
    if field is None or field.as_(bool):
        return
    where = card.maybe_get_field("checkpoint")  # type: ignore[attr-defined]
    target = f" for {where.as_(str)}" if where is not None else ""
    raise EncoderLoadError(
        f"The asset card {card.name!r} sets `restrict: false`{target}: AaPE checkpoints load only with "  # type: ignore[attr-defined]
        f"torch.load(weights_only=True), since unpickling anything else can run code. Remove the field "
        f"(and convert the checkpoint with `aape convert FILE` if it is a pickle)."
    )


def _run_stats_near(card: object) -> FeatureStats | None:
    """The ``feature_stats.json`` of the pre-training run a checkpoint card points into (the
    cards fairseq2 makes for ``last_checkpoint`` / ``best_checkpoint``)."""
    field = card.maybe_get_field("checkpoint")  # type: ignore[attr-defined]
    if field is None:
        return None
    try:
        location = Path(str(field.as_(str)).removeprefix("file://"))
    except Exception:
        return None
    for folder in (location, *location.parents):
        stats_file = folder / "feature_stats.json"
        if stats_file.is_file():
            return FeatureStats.load(stats_file)
    return None


def new_encoder(arch: str, *, seed: int = 0, device: torch.device | str = "cpu") -> LoadedEncoder:
    """A randomly initialised encoder of ``arch`` (the untrained baseline)."""
    from aape_plugin.models.factory import create_encoder
    from aape_plugin.models.hub import get_aape_hub

    ensure_fairseq2()
    config = get_aape_hub().get_arch_config(arch)
    torch.manual_seed(seed)
    encoder = create_encoder(config.encoder, drop_path=0.0).to(device).eval()
    return LoadedEncoder(encoder, config, None, f"random {arch} (seed {seed})")
