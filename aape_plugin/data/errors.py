"""User-facing data errors: their messages say what is wrong and how to fix it.

They subclass fairseq2's ``DatasetError`` (so Python callers can catch that), but are distinct
types so that the recipes report them in one line instead of fairseq2's stack trace.
"""

from __future__ import annotations

from fairseq2.datasets import DatasetError


class AudioDataError(DatasetError):
    """A data set cannot be opened or read as configured."""
