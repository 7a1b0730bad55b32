"""Run folders that cannot run code, write files or exhaust memory when a recipe resumes them.

fairseq2 0.8 loads a checkpoint's model state with ``torch.load(weights_only=True)`` but its
trainer, optimiser and data-reader states with a full unpickler, so re-running a recipe on a
run folder copied from someone else (or named by ``--checkpoint-dir``) could run whatever the
folder's files hold. The AaPE recipes replace fairseq2's tensor-file loader and dumper:

* every state file is written with pickle protocol 2 (fairseq2 writes protocol 5 for the
  non-model states, which torch's restricted unpickler cannot read), and holds only dicts,
  lists, tuples, numbers, strings and tensors: the data reader buffers batches as dicts, and the
  ``adamw_layer_decay`` optimiser saves FSDP shards as plain tensors;
* every state file is read by :func:`aape_plugin.checkpoints.load_checked`: its zip archive and
  its pickle are checked without building anything (against the budget this run's
  configuration implies for that kind of file), then torch's ``weights_only=True`` unpickler
  builds it. A refusal is one line naming the file.

``AAPE_TRUST_CHECKPOINTS=1`` restores fairseq2's own loader for a folder one trusts (for
example one written before these checks existed).
"""

from __future__ import annotations

import io
import os
import warnings
from pickle import PicklingError
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import final

import torch
from fairseq2.file_system import FileMode, FileSystem
from fairseq2.io import CorruptFileError, DataNotPicklableError, TensorFileDumper, TensorFileDumpOptions, TensorFileLoader, TensorFileLoadOptions
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from typing_extensions import override

from aape_plugin.checkpoints import UnsafeCheckpointError, load_checked
from aape_plugin.checkpoints.budget import FileBudget, model_budget
from aape_plugin.checkpoints.errors import TRUST_VARIABLE
from aape_plugin.recipes.checkpoint_budget import StateBudgets

BudgetProvider = Callable[[DependencyResolver], StateBudgets]

__all__ = ["TRUST_VARIABLE", "SafeTensorFileLoader", "UnsafeCheckpointError", "register_safe_checkpoints"]


@final
class SafeTensorFileLoader(TensorFileLoader):
    """fairseq2's loader with every file checked first (:mod:`aape_plugin.checkpoints`)."""

    def __init__(self, file_system: FileSystem, budgets: Callable[[], StateBudgets]) -> None:
        self._file_system = file_system
        self._budgets = budgets

    @override
    def load(self, file: Path, options: TensorFileLoadOptions | None = None) -> dict[str, object]:
        options = options or TensorFileLoadOptions()
        local = self._file_system.is_local_path(file)
        if os.environ.get(TRUST_VARIABLE) == "1":
            return self._trusted(file, options, local)
        budget = self._budget_of(file, options)
        source: Path | bytes = file
        if not local:
            # Read no more than the budget allows (one byte more tells the checks it is too large).
            with self._file_system.open(file) as f:
                source = f.read(budget.max_bytes + 1)
        return load_checked(source, budget, map_location=options.map_location, mmap=options.mmap and local, name=file)

    def _budget_of(self, file: Path, options: TensorFileLoadOptions) -> FileBudget:
        budgets = self._budgets()
        budget = budgets.for_file(file)
        if budget is not None:
            return budget
        # A model file outside a checkpoint folder (`model.path`, an asset card's checkpoint).
        if options.restrict:
            return budgets.model
        return model_budget(0, "an unrecognised state file")

    def _trusted(self, file: Path, options: TensorFileLoadOptions, local: bool) -> dict[str, object]:
        target: Path | io.BytesIO = file if local and options.mmap else io.BytesIO(self._file_system.cat(file))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*weights_only=False.*")
                return torch.load(target, options.map_location, weights_only=options.restrict, mmap=options.mmap and local)  # type: ignore[arg-type, no-any-return]
        except (RuntimeError, EOFError) as ex:
            raise CorruptFileError(file) from ex


@final
class Protocol2TensorFileDumper(TensorFileDumper):
    """fairseq2's dumper, writing every state with pickle protocol 2 (the protocol torch's
    restricted unpickler reads; fairseq2 writes protocol 5 for non-model states)."""

    def __init__(self, file_system: FileSystem) -> None:
        self._file_system = file_system

    @override
    def dump(self, data: Mapping[str, object], file: Path, options: TensorFileDumpOptions | None = None) -> None:
        with self._file_system.open(file, mode=FileMode.WRITE) as f:
            try:
                torch.save(data, f, pickle_protocol=2)
            except (RuntimeError, PicklingError, TypeError) as ex:
                raise DataNotPicklableError() from ex


def register_safe_checkpoints(container: DependencyContainer, budgets: BudgetProvider) -> None:
    """Makes the recipe's checkpoint manager (and ``model.path``) load through
    :class:`SafeTensorFileLoader` and save through :class:`Protocol2TensorFileDumper`.

    :param budgets: the run's :class:`StateBudgets`, computed once, on the first load, from the
        resolved recipe configuration.

    fairseq2 0.8 registers its own loader and dumper before a recipe's ``register`` runs and
    has no public way to replace a provider, so the registrations are replaced in place. The
    tamper tests in ``tests/recipes/test_recipes_safe_resume.py`` fail if a fairseq2 release
    changes this.
    """
    from fairseq2.runtime.dependency import _DependencyRegistration

    def provide_loader(resolver: DependencyResolver) -> TensorFileLoader:
        cache: list[StateBudgets] = []

        def lazy() -> StateBudgets:
            if not cache:
                cache.append(budgets(resolver))
            return cache[0]

        return SafeTensorFileLoader(resolver.resolve(FileSystem), lazy)

    def provide_dumper(resolver: DependencyResolver) -> TensorFileDumper:
        return Protocol2TensorFileDumper(resolver.resolve(FileSystem))

    registrations = container._registrations  # noqa: SLF001
    for kls, provide in ((TensorFileLoader, provide_loader), (TensorFileDumper, provide_dumper)):
        key = (kls, None)
        if key not in registrations:
            raise RuntimeError(f"fairseq2 registers no {kls.__name__} here; the safe checkpoint files cannot be installed.")
        registrations[key] = _DependencyRegistration(provide, None, singleton=True)
