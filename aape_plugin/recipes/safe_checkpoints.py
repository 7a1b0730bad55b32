"""Every state file a run writes is safetensors plus JSON, and every file fairseq2 loads in this
process is read through one checked loader.

fairseq2 0.8 writes a checkpoint's states with ``torch.save`` and reads them with ``torch.load``
(a full unpickler for the trainer, optimiser and data-reader states), and reads asset cards,
``model.path`` and ``load_encoder``'s files with whatever loader is registered. The plugin
replaces fairseq2's tensor-file dumper and loader and its safetensors loader in the container
itself (so every entry point, every URI form of an asset card, ``checkpoint_path`` and shard
patterns reach them), and the recipes replace the loader again with one that knows the run's
budgets:

* every state is written by :func:`aape_plugin.checkpoints.state_file.dump_state`: one
  safetensors file at the path fairseq2 asks for, the structure and plain values as JSON in its
  header; a value it cannot store is refused when the checkpoint is saved, naming where it lies;
* every file is read once, whole, and only if it is a regular file (a FIFO, a device or a
  directory is refused before it is opened; a symbolic link is followed and its target checked
  the same), within the budget this run's configuration implies for that kind of file; a
  ``.pt`` file is then parsed from those bytes by
  :func:`~aape_plugin.checkpoints.state_file.load_state` (no pickle, no ``torch.load``), a
  ``.safetensors`` file by safetensors;
* a pickle checkpoint (a ``.pt`` file ``torch.save`` wrote, as these recipes did before) is
  refused in one line that says how to convert it (``aape convert RUN_DIR``,
  :mod:`aape_plugin.checkpoints.convert`);
* a file in a run's ``checkpoints/step_N`` folder is used only if that folder holds nothing but
  what the recipes write (:mod:`aape_plugin.checkpoints.layout`), and a trainer or optimiser
  state only if it makes sense (:mod:`aape_plugin.checkpoints.sense`).

A refusal is one line naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import final

import torch
from fairseq2.file_system import FileMode, FileSystem
from fairseq2.io import (
    SafetensorsLoader,
    SafetensorsLoadOptions,
    TensorFileDumper,
    TensorFileDumpOptions,
    TensorFileLoader,
    TensorFileLoadOptions,
)
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from typing_extensions import override

from aape_plugin.checkpoints import UnsafeCheckpointError
from aape_plugin.checkpoints.budget import SLACK, FileBudget
from aape_plugin.checkpoints.layout import check_checkpoint_dir, step_folder_of
from aape_plugin.checkpoints.regular_file import read_regular_file
from aape_plugin.checkpoints.sense import check_optimizer_state, check_trainer_state
from aape_plugin.checkpoints.state_file import dump_state, load_state
from aape_plugin.recipes.checkpoint_budget import StateBudgets

BudgetProvider = Callable[[DependencyResolver], StateBudgets]

__all__ = ["SafeTensorFileLoader", "StateFileDumper", "UnsafeCheckpointError", "expected_weights", "register_checked_loaders",
           "register_safe_checkpoints"]

_EXPECTED: ContextVar[FileBudget | None] = ContextVar("aape_expected_weights", default=None)


@contextmanager
def expected_weights(budget: FileBudget) -> Iterator[None]:
    """Weight files loaded inside this block (outside a recipe's run folder) are held to
    ``budget``, e.g. the model ``load_encoder`` was asked for."""
    token = _EXPECTED.set(budget)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def _loose_budget(file: Path) -> FileBudget:
    """A weight file of unknown model: it may build twice its own size (tied weights), no more."""
    try:
        size = os.stat(file).st_size
    except OSError:
        size = 0
    return FileBudget(max_bytes=2 * size + SLACK, kind="model", basis="a weight file of a model not known in advance")


def _read(file_system: FileSystem, file: Path, budget: FileBudget) -> bytes:
    if file_system.is_local_path(file):
        return read_regular_file(file, budget.max_bytes, kind=budget.kind, basis=budget.basis)
    # Read no more than the budget allows (one byte more tells the checks it is too large).
    with file_system.open(file) as f:
        return f.read(budget.max_bytes + 1)  # type: ignore[no-any-return]


@final
class SafeTensorFileLoader(TensorFileLoader):
    """fairseq2's tensor-file loader for state files (:mod:`aape_plugin.checkpoints.state_file`),
    every file checked first (:mod:`aape_plugin.checkpoints`); nothing is unpickled."""

    def __init__(self, file_system: FileSystem, budgets: Callable[[], StateBudgets | None]) -> None:
        self._file_system = file_system
        self._budgets = budgets

    @override
    def load(self, file: Path, options: TensorFileLoadOptions | None = None) -> dict[str, object]:
        options = options or TensorFileLoadOptions()
        located = step_folder_of(file)
        if located is not None:
            check_checkpoint_dir(located[0])
        budgets = self._budgets()
        budget = self._budget_of(file, budgets, options)
        data = _read(self._file_system, file, budget)
        location = options.map_location
        state = load_state(data, file, device=location if isinstance(location, (str, torch.device)) else None)
        if budgets is not None and located is not None and _EXPECTED.get() is None:
            if budget.kind == "trainer":
                check_trainer_state(state, file, folder_step=located[1], num_steps=budgets.max_step)
            elif budget.kind == "optimizer":
                check_optimizer_state(state, file)
        return state

    def _budget_of(self, file: Path, budgets: StateBudgets | None, options: TensorFileLoadOptions) -> FileBudget:
        expected = _EXPECTED.get()
        if expected is not None:
            return expected
        budget = budgets.for_file(file) if budgets is not None else None
        if budget is not None:
            return budget
        # A model file outside a checkpoint folder (`model.path`, an asset card's checkpoint).
        if budgets is not None and options.restrict:
            return budgets.model
        return _loose_budget(file)


@final
class CheckedSafetensorsLoader(SafetensorsLoader):
    """fairseq2's safetensors loader, reading a regular file once, within its budget (a
    safetensors file holds no code; its header is checked against its size by safetensors)."""

    def __init__(self, file_system: FileSystem) -> None:
        self._file_system = file_system

    @override
    def load(self, file: Path, options: SafetensorsLoadOptions | None = None) -> dict[str, object]:
        import safetensors.torch

        options = options or SafetensorsLoadOptions()
        data = _read(self._file_system, file, _EXPECTED.get() or _loose_budget(file))
        try:
            tensors = safetensors.torch.load(data)
        except Exception as ex:  # safetensors raises its own SafetensorError for any damage
            detail = str(ex).strip().splitlines()[0][:200] if str(ex).strip() else type(ex).__name__
            raise UnsafeCheckpointError(file, f"is not a readable safetensors file ({detail})") from None
        device = options.device or torch.device("cpu")
        return {key: tensor.to(device) for key, tensor in tensors.items()}


@final
class StateFileDumper(TensorFileDumper):
    """fairseq2's tensor-file dumper, writing every state as a state file (safetensors plus JSON,
    :func:`~aape_plugin.checkpoints.state_file.dump_state`) instead of a pickle; fairseq2's
    ``pickle_protocol`` option has nothing to choose."""

    def __init__(self, file_system: FileSystem) -> None:
        self._file_system = file_system

    @override
    def dump(self, data: Mapping[str, object], file: Path, options: TensorFileDumpOptions | None = None) -> None:
        payload = dump_state(data, file)  # refused before the file is opened: nothing half-written
        with self._file_system.open(file, mode=FileMode.WRITE) as f:
            f.write(payload)


def _replace(container: DependencyContainer, kls: type, provide: Callable[[DependencyResolver], object]) -> None:
    """fairseq2 0.8 registers its own loaders before a plugin or a recipe runs and has no public
    way to replace a provider, so the registration is replaced in place. The tamper tests in
    ``tests/recipes/test_recipes_safe_resume.py`` fail if a fairseq2 release changes this."""
    from fairseq2.runtime.dependency import _DependencyRegistration

    registrations = container._registrations  # noqa: SLF001
    key = (kls, None)
    if key not in registrations:
        raise RuntimeError(f"fairseq2 registers no {kls.__name__} here; the checked checkpoint loaders cannot be installed.")
    registrations[key] = _DependencyRegistration(provide, None, singleton=True)


def register_checked_loaders(container: DependencyContainer) -> None:
    """Makes every tensor file and safetensors file fairseq2 loads in this process go through
    :class:`SafeTensorFileLoader` and :class:`CheckedSafetensorsLoader`, and every tensor file
    it writes through :class:`StateFileDumper` (the plugin's setup)."""
    _replace(container, TensorFileLoader, lambda resolver: SafeTensorFileLoader(resolver.resolve(FileSystem), lambda: None))
    _replace(container, TensorFileDumper, lambda resolver: StateFileDumper(resolver.resolve(FileSystem)))
    _replace(container, SafetensorsLoader, lambda resolver: CheckedSafetensorsLoader(resolver.resolve(FileSystem)))


def register_safe_checkpoints(container: DependencyContainer, budgets: BudgetProvider) -> None:
    """Makes the recipe's checkpoint manager (and ``model.path``) load through
    :class:`SafeTensorFileLoader` with the run's budgets, and save through
    :class:`StateFileDumper`.

    :param budgets: the run's :class:`StateBudgets`, computed once, on the first load from a
        run folder, from the resolved recipe configuration.
    """

    def provide_loader(resolver: DependencyResolver) -> TensorFileLoader:
        cache: list[StateBudgets] = []

        def lazy() -> StateBudgets:
            if not cache:
                cache.append(budgets(resolver))
            return cache[0]

        return SafeTensorFileLoader(resolver.resolve(FileSystem), lazy)

    _replace(container, TensorFileLoader, provide_loader)
    _replace(container, TensorFileDumper, lambda resolver: StateFileDumper(resolver.resolve(FileSystem)))
    _replace(container, SafetensorsLoader, lambda resolver: CheckedSafetensorsLoader(resolver.resolve(FileSystem)))
