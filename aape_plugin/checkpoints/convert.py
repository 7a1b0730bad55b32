"""Converting pickle checkpoints (run folders written before state files were safetensors).

``aape convert PATH`` converts every ``.pt`` file ``torch.save`` wrote under ``PATH`` (a run
folder, its ``checkpoints`` folder, a ``step_N`` folder, or one ``.pt`` file such as a
``model.path``) into a state file (:mod:`.state_file`), in place:

* each file is read with the checks the recipes used on pickles (:func:`.load.load_checked`:
  a regular file, its zip archive and its pickle walked without building anything, then torch's
  ``weights_only=True`` unpickler on the same bytes), within a budget of twice the file's size
  plus 16 MiB; anything they refuse stops the conversion with one line naming the file;
* the state file is written beside it and renamed over it (a file is either the old one or the
  new one, never half-written); the original is kept as ``NAME.pt.pickle`` (a hard link, made
  before the rename), which nothing loads: delete it once the converted run resumes;
* files already converted are left alone, so the command can be run again after an
  interruption; a run's ``checkpoints`` folder is checked (:mod:`.layout`) before any file.

This is the only code that still unpickles, and only when asked to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from aape_plugin.checkpoints.budget import SLACK, FileBudget
from aape_plugin.checkpoints.errors import UnsafeCheckpointError
from aape_plugin.checkpoints.layout import check_checkpoint_dir
from aape_plugin.checkpoints.regular_file import refuse_irregular
from aape_plugin.checkpoints.state_file import dump_state, is_pickle_checkpoint

BACKUP_SUFFIX = ".pickle"
"""Appended to a converted file's name for the original (``sdp_00.pt.pickle``)."""

REFUSED = "refusing to convert it (nothing of it was built)"


@dataclass(kw_only=True)
class Conversion:
    """What :func:`convert` did."""

    converted: list[Path] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)
    """``.pt`` files that were state files already."""


def _budget(path: Path, size: int) -> FileBudget:
    return FileBudget(max_bytes=2 * size + SLACK, kind="checkpoint", basis=f"twice the {size} bytes of {path.name}, plus 16 MiB")


def _umask() -> int:
    from aape_plugin.safetensors_files import current_umask

    return current_umask()


def convert_file(path: Path) -> bool:
    """Converts the pickle checkpoint ``path`` in place (the original kept as
    ``path.pickle``); ``False`` if it is a state file already. :class:`UnsafeCheckpointError`
    (one line naming it) if the checks refuse it."""
    from aape_plugin.checkpoints.load import load_checked
    from aape_plugin.checkpoints.regular_file import read_regular_file

    status = refuse_irregular(path)
    budget = _budget(path, status.st_size)
    data = read_regular_file(path, budget.max_bytes, kind=budget.kind, basis=budget.basis)
    if not is_pickle_checkpoint(data):
        return False
    try:
        state = load_checked(data, budget, name=path)
    except UnsafeCheckpointError as ex:
        raise UnsafeCheckpointError(ex.file, ex.reason, consequence=REFUSED) from None
    payload = dump_state(state, path)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if backup.exists() or backup.is_symlink():
        if not backup.is_symlink() and os.path.samefile(backup, path):
            backup.unlink()  # left by an interrupted conversion of this very file
        else:
            raise UnsafeCheckpointError(backup, "exists already (an original kept by an earlier conversion?)",
                                        consequence=f"refusing to convert {path.name}; move it away and run the command again")
    tmp = path.with_name(f".{path.name}.convert.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.link(path, backup)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _pt_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for parent, dirs, names in os.walk(folder):
        for name in sorted(dirs):
            if (Path(parent) / name).is_symlink():
                raise UnsafeCheckpointError(Path(parent) / name, "is a symbolic link (checkpoint folders written by these "
                                            "recipes never are); move it out of the folder", consequence="refusing to convert it")
        dirs.sort()
        found += [Path(parent) / name for name in sorted(names) if name.endswith((".pt", ".pth"))]
    return found


def convert(target: Path) -> Conversion:
    """Converts every pickle checkpoint under ``target`` (a folder) or ``target`` itself (a
    file); see the module docstring."""
    done = Conversion()
    if target.is_dir():
        for checkpoints in (target / "checkpoints", target):
            if checkpoints.name == "checkpoints" and checkpoints.is_dir():
                check_checkpoint_dir(checkpoints)
        files = _pt_files(target)
    elif target.exists() or target.is_symlink():
        files = [target]
    else:
        raise FileNotFoundError(f"{target} does not exist")
    for file in files:
        if file.is_symlink():
            raise UnsafeCheckpointError(file, "is a symbolic link (checkpoint files written by these recipes never are)",
                                        consequence="refusing to convert it; convert the file it points to")
        (done.converted if convert_file(file) else done.already).append(file)
    return done
