"""Checkpoint files that cannot run code when a run resumes.

fairseq2 loads model states with ``torch.load(weights_only=True)`` but trainer, optimiser and
data-reader states with a full unpickler: a run folder copied from someone else (resumed by
re-running the recipe on it, or named by ``--checkpoint-dir``) could then run arbitrary code.
The AaPE recipes replace fairseq2's tensor-file loader with :class:`SafeTensorFileLoader`: model
files still load with ``weights_only``; every other state file goes through an unpickler that
can build only what these recipes' states hold (tensors and their storages, ordered dicts, the
plugin's :class:`~aape_plugin.data.batch.AudioBatch` buffered in a data reader's state) and
refuses anything else in one line, before it is built. Setting ``AAPE_TRUST_CHECKPOINTS=1``
lifts the restriction for a run folder one trusts (fairseq2's own behaviour).
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, final

import torch
from fairseq2.file_system import FileSystem
from fairseq2.io import CorruptFileError, TensorFileLoader, TensorFileLoadOptions
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from typing_extensions import override

TRUST_VARIABLE = "AAPE_TRUST_CHECKPOINTS"

_STORAGES = {name for name in dir(torch) if name.endswith("Storage")}

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
     ("torch", "Size"), ("torch.storage", "UntypedStorage"), ("aape_plugin.data.batch", "AudioBatch"),
     ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex")}
    | {("torch", name) for name in _STORAGES}
)
"""What the state files of the AaPE recipes need to be rebuilt (checked on real runs' files)."""


class UnsafeCheckpointError(Exception):
    """A checkpoint state file asks to build something the recipes never save."""

    def __init__(self, file: Path, module: str, name: str) -> None:
        super().__init__(
            f"{file} asks to build `{module}.{name}` when loaded, which no checkpoint of these recipes holds; "
            f"refusing to unpickle it (it could run code). If you trust where this run folder came from, "
            f"set {TRUST_VARIABLE}=1 to load it anyway."
        )
        self.file = file


class _Refusal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise _Refusal(module, name)
        return super().find_class(module, name)


def _restricted_pickle_module() -> ModuleType:
    """A ``pickle``-like module for ``torch.load(pickle_module=...)`` whose Unpickler is restricted
    (torch then wires its own storage loading into it)."""
    module = ModuleType("aape_restricted_pickle")
    module.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
    # torch.load reads a legacy (non-zip) file's header with ``pickle_module.load``: restricted too.
    module.load = lambda file, **kwargs: _RestrictedUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    return module


RESTRICTED_PICKLE = _restricted_pickle_module()


def load_state_file(file: Path | io.BytesIO, map_location: Any, *, name: Path) -> dict[str, object]:
    """A trainer, optimiser or data-reader state file, built by the restricted unpickler."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*weights_only=False.*")
            return torch.load(file, map_location, weights_only=False, pickle_module=RESTRICTED_PICKLE)  # type: ignore[no-any-return]
    except _Refusal as refusal:
        raise UnsafeCheckpointError(name, refusal.module, refusal.name) from None


@final
class SafeTensorFileLoader(TensorFileLoader):
    """fairseq2's loader, with every unrestricted load restricted to :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file_system: FileSystem) -> None:
        self._file_system = file_system

    @override
    def load(self, file: Path, options: TensorFileLoadOptions | None = None) -> dict[str, object]:
        options = options or TensorFileLoadOptions()
        trusted = os.environ.get(TRUST_VARIABLE) == "1"
        source: Path | io.BytesIO = file
        if not (self._file_system.is_local_path(file) and options.mmap):
            source = io.BytesIO(self._file_system.cat(file))
        try:
            if options.restrict:
                mmap = options.mmap and isinstance(source, Path)
                return torch.load(source, options.map_location, weights_only=True, mmap=mmap)  # type: ignore[arg-type, no-any-return]
            if trusted:
                return torch.load(source, options.map_location, weights_only=False)  # type: ignore[arg-type, no-any-return]
            return load_state_file(source, options.map_location, name=file)
        except UnsafeCheckpointError:
            raise
        except (RuntimeError, pickle.PickleError, EOFError) as ex:
            raise CorruptFileError(file) from ex


def register_safe_checkpoints(container: DependencyContainer) -> None:
    """Makes the recipe's checkpoint manager (and ``model.path``) load through
    :class:`SafeTensorFileLoader`.

    fairseq2 0.8 registers its own loader before a recipe's ``register`` runs and has no public
    way to replace a provider, so the registration is replaced in place. The tamper tests in
    ``tests/recipes/test_recipes_pretrain.py`` fail if a fairseq2 release changes this.
    """
    from fairseq2.runtime.dependency import _DependencyRegistration

    def provide(resolver: DependencyResolver) -> TensorFileLoader:
        return SafeTensorFileLoader(resolver.resolve(FileSystem))

    registrations = container._registrations  # noqa: SLF001
    key = (TensorFileLoader, None)
    if key not in registrations:
        raise RuntimeError("fairseq2 registers no TensorFileLoader here; the safe checkpoint loader cannot be installed.")
    registrations[key] = _DependencyRegistration(provide, None, singleton=True)
