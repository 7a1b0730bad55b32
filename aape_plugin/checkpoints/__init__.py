"""Checkpoint files that hold tensors and plain data only, checked before anything is built.

A run folder is something researchers share; resuming it, or fine-tuning from it, must not run
code, write files, hang or exhaust memory. Every state a run writes is a state file
(:mod:`.state_file`: safetensors plus a JSON structure, no pickle), read once, and only if it is
a regular file (:mod:`.regular_file`), within a :class:`FileBudget` (:mod:`.budget`).
:mod:`.layout` checks what a run's ``checkpoints`` folder holds, :mod:`.sense` that a trainer
or optimiser state makes sense. Pickle checkpoints (run folders written before) are refused with
the command that converts them (:mod:`.convert`), the only code that still unpickles: it checks
the zip archive (:mod:`.container`) and walks the pickle (:mod:`.pickle_check`) without building
anything before torch's ``weights_only=True`` unpickler reads the same bytes (:mod:`.load`).
Plain PyTorch: no fairseq2 import.
"""

from aape_plugin.checkpoints.budget import FileBudget
from aape_plugin.checkpoints.errors import UnsafeCheckpointError
from aape_plugin.checkpoints.state_file import StateNotStorableError, dump_state, load_state, save_state

__all__ = ["FileBudget", "StateNotStorableError", "UnsafeCheckpointError", "dump_state", "load_state", "save_state"]
