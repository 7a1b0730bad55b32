"""What a run's ``checkpoints`` folder may hold, checked before anything in it is used.

fairseq2's checkpoint manager takes every ``step_*`` folder whose suffix ``int()`` parses for a
checkpoint: it resumes from the highest and, when it cleans up, deletes the others by number.
A planted ``step_99999999999999999999`` (or ``step_04``, ``step_+4``, ``step_٤``) would be
resumed from, and would make the cleanup delete genuine checkpoints. So the folder may hold
``model.yaml``, ``scores/``, and real (not linked) folders named ``step_<n>`` (``n`` of 1 to 9
digits, no leading zero) or ``step_<n>.tmp`` (a save that was interrupted); anything else is
refused, and nothing is deleted or resumed from until it is moved away.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aape_plugin.checkpoints.errors import UnsafeCheckpointError

STEP_FOLDER = re.compile(r"step_(0|[1-9][0-9]{0,8})")
"""A checkpoint folder's name, as fairseq2 writes it (``step_{step_nr}``)."""

_INTERRUPTED = re.compile(r"step_(0|[1-9][0-9]{0,8})\.tmp")

REFUSED = "refusing to use this checkpoint folder (nothing in it was loaded, moved or deleted)"


def check_checkpoint_dir(checkpoint_dir: Path) -> None:
    """Raises :class:`UnsafeCheckpointError` (one line, naming the entry) at the first entry
    of ``checkpoint_dir`` that no run of these recipes writes there."""
    try:
        entries = sorted(os.scandir(checkpoint_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UnsafeCheckpointError(checkpoint_dir, "is not a folder", consequence=REFUSED) from None
    for entry in entries:
        path = Path(entry.path)
        if entry.is_symlink():
            raise UnsafeCheckpointError(path, "is a symbolic link (checkpoint folders written by these recipes never "
                                        "are); move it out of the folder", consequence=REFUSED)
        if entry.name == "model.yaml" and entry.is_file():
            continue
        if entry.name == "scores" and entry.is_dir():
            continue
        if (STEP_FOLDER.fullmatch(entry.name) or _INTERRUPTED.fullmatch(entry.name)) and entry.is_dir():
            continue
        raise UnsafeCheckpointError(
            path, "is not a checkpoint these recipes write (step folders are named step_<number>, 1 to 9 digits, no "
            "leading zero); move it out of the folder", consequence=REFUSED)


def step_folder_of(file: Path) -> tuple[Path, int | None] | None:
    """``(checkpoints folder, step)`` of a file inside a ``checkpoints/step_*/`` folder (the
    step is ``None`` for a folder name fairseq2 would parse but these recipes never write)."""
    for folder in (file, *file.parents):
        if folder.name.startswith("step_") and folder.parent.name == "checkpoints":
            match = STEP_FOLDER.fullmatch(folder.name)
            return folder.parent, int(match.group(1)) if match is not None else None
    return None
