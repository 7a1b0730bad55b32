"""Loading a pickle checkpoint only after its archive and its pickle have been checked: the
reading side of ``aape convert`` (:mod:`.convert`), the one path that still unpickles."""

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
from aape_plugin.checkpoints.regular_file import read_regular_file


def _bytes_of(source: Path | bytes, budget: FileBudget) -> bytes:
    if isinstance(source, Path):
        return read_regular_file(source, budget.max_bytes, kind=budget.kind, basis=budget.basis)
    return source


def check_file(source: Path | bytes, budget: FileBudget, *, name: Path | str | None = None) -> bytes:
    """The bytes of ``source`` (read once) if it is a PyTorch zip archive whose records and
    pickle hold only what the AaPE recipes save, within ``budget``; otherwise
    :class:`UnsafeCheckpointError` (one line, naming the file). Nothing of the file is built."""
    name = name if name is not None else (source if isinstance(source, Path) else "<bytes>")
    data = _bytes_of(source, budget)
    archive = read_archive(data, budget, name)
    try:
        check_pickle(archive.pickle, archive.storages, budget.max_bytes)
    except PickleRefused as refusal:
        raise UnsafeCheckpointError(name, str(refusal)) from None
    return data


def load_checked(source: Path | bytes, budget: FileBudget, *, map_location: Any = "cpu",
                 name: Path | str | None = None) -> dict[str, object]:
    """:func:`check_file`, then torch's ``weights_only=True`` load of the very bytes checked
    (the file is read once: nothing can change between the check and the load)."""
    name = name if name is not None else (source if isinstance(source, Path) else "<bytes>")
    data = check_file(source, budget, name=name)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*TypedStorage is deprecated.*")
            loaded = torch.load(io.BytesIO(data), map_location, weights_only=True)
    except (RuntimeError, ValueError, EOFError, OSError, torch.serialization.pickle.UnpicklingError) as ex:
        detail = str(ex).strip().splitlines()[0][:200] if str(ex).strip() else type(ex).__name__
        raise UnsafeCheckpointError(name, f"passed the checks but torch could not read it ({detail})") from None
    if not isinstance(loaded, dict):
        raise UnsafeCheckpointError(name, "does not hold a dict of states")
    return loaded
