"""The one error a refused checkpoint file gives."""

from __future__ import annotations

from pathlib import Path

TRUST_VARIABLE = "AAPE_TRUST_CHECKPOINTS"
"""``AAPE_TRUST_CHECKPOINTS=1`` loads a run folder's state files with fairseq2's own loader (a
full unpickler: only for folders one trusts)."""

NOT_BUILT = "refusing to load it (nothing of it was built)"


class UnsafeCheckpointError(Exception):
    """A checkpoint file is not what the AaPE recipes save; nothing of it was built.

    The message is one line: the file, what is wrong, and the way out.
    """

    def __init__(self, file: Path | str, reason: str, *, trust_hint: bool = True, consequence: str = NOT_BUILT) -> None:
        hint = f" If you trust where this file came from, set {TRUST_VARIABLE}=1 to load it anyway." if trust_hint else ""
        super().__init__(f"{file} {reason}; {consequence}.{hint}")
        self.file = Path(file)
        self.reason = reason
