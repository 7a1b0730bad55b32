"""The one error a refused checkpoint file gives."""

from __future__ import annotations

from pathlib import Path

NOT_BUILT = "refusing to load it (nothing of it was built)"


class UnsafeCheckpointError(Exception):
    """A checkpoint file is not what the AaPE recipes save; nothing of it was built.

    The message is one line: the file, what is wrong, and the way out.
    """

    def __init__(self, file: Path | str, reason: str, *, consequence: str = NOT_BUILT) -> None:
        super().__init__(f"{file} {reason}; {consequence}.")
        self.file = Path(file)
        self.reason = reason
