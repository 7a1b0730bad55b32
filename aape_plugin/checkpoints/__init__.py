"""Checkpoint files that are checked before a byte of them is unpickled.

A run folder is something researchers share; resuming it, or fine-tuning from it, must not run
code, write files or exhaust memory. :func:`load_checked` reads a PyTorch file only after
:mod:`.container` has checked its zip archive and :mod:`.pickle_check` has walked its pickle
without building anything, both against a :class:`FileBudget`; then torch's own
``weights_only=True`` unpickler builds it. Plain PyTorch: no fairseq2 import.
"""

from aape_plugin.checkpoints.budget import FileBudget
from aape_plugin.checkpoints.errors import UnsafeCheckpointError
from aape_plugin.checkpoints.load import check_file, load_checked

__all__ = ["FileBudget", "UnsafeCheckpointError", "check_file", "load_checked"]
