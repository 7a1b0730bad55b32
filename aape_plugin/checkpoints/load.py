"""Loading a checkpoint file only after its archive and its pickle have been checked."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from aape_plugin.checkpoints.budget import FileBudget
from aape_plugin.checkpoints.container import read_archive
from aape_plugin.checkpoints.errors import UnsafeCheckpointError
from aape_plugin.checkpoints.pickle_check import PickleRefused, check_pickle


def check_file(source: Path | bytes, budget: FileBudget, *, name: Path | str | None = None) -> None:
    """Raises :class:`UnsafeCheckpointError` (one line, naming the file) unless ``source`` is a
    PyTorch zip archive whose records and pickle hold only what the AaPE recipes save, within
    ``budget``. Nothing of the file is built."""
    name = name if name is not None else (source if isinstance(source, Path) else "<bytes>")
    archive = read_archive(source, budget, name)
    try:
        check_pickle(archive.pickle, archive.storages, budget.max_bytes)
    except PickleRefused as refusal:
        raise UnsafeCheckpointError(name, str(refusal)) from None


def load_checked(source: Path | bytes, budget: FileBudget, *, map_location: Any = "cpu", mmap: bool = False,
                 name: Path | str | None = None) -> dict[str, object]:
    """:func:`check_file`, then torch's ``weights_only=True`` load of the same bytes (``mmap``
    for a local path keeps large model files out of memory)."""
    name = name if name is not None else (source if isinstance(source, Path) else "<bytes>")
    check_file(source, budget, name=name)
    target: Path | io.BytesIO = source if isinstance(source, Path) else io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*TypedStorage is deprecated.*")
            loaded = torch.load(target, map_location, weights_only=True, mmap=mmap and isinstance(source, Path))  # type: ignore[arg-type]
    except (RuntimeError, ValueError, EOFError, OSError, torch.serialization.pickle.UnpicklingError) as ex:
        detail = str(ex).strip().splitlines()[0][:200] if str(ex).strip() else type(ex).__name__
        raise UnsafeCheckpointError(name, f"passed the checks but torch could not read it ({detail})", trust_hint=False) from None
    if not isinstance(loaded, dict):
        raise UnsafeCheckpointError(name, "does not hold a dict of states", trust_hint=False)
    return loaded
