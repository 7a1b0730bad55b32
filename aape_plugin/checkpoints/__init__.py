"""Checkpoint files that are checked before a byte of them is unpickled.

A run folder is something researchers share; resuming it, or fine-tuning from it, must not run
code, write files, hang or exhaust memory. :func:`load_checked` reads a PyTorch file once, and
only if it is a regular file (:mod:`.regular_file`); builds it only after :mod:`.container` has
checked its zip archive and :mod:`.pickle_check` has walked its pickle without building
anything, both against a :class:`FileBudget`, and then with torch's own ``weights_only=True``
unpickler on the same bytes. :mod:`.layout` checks what a run's ``checkpoints`` folder holds,
:mod:`.sense` that a trainer or optimiser state makes sense. Plain PyTorch: no fairseq2 import.
"""

from aape_plugin.checkpoints.budget import FileBudget
from aape_plugin.checkpoints.errors import UnsafeCheckpointError
from aape_plugin.checkpoints.load import check_file, load_checked

__all__ = ["FileBudget", "UnsafeCheckpointError", "check_file", "load_checked"]
