"""A clip listed by a manifest, and the errors manifests raise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aape_plugin.data.errors import AudioDataError


@dataclass(frozen=True)
class ClipEntry:
    """One row of a manifest, resolved."""

    path: Path
    """Absolute path of the audio file."""

    labels: tuple[str, ...] = ()
    """Label names (several for multi-label data), empty for unlabelled clips."""

    num_samples: int | None = None
    """Length, if the manifest says it (informative only; files are measured when read)."""

    where: str = ""
    """``manifest:line`` the entry came from, for error messages."""


class ManifestError(AudioDataError):
    """A manifest or metadata file is malformed; raised when a data set is opened, naming the
    file and line, so that a bad row never surfaces as a crash deep in a data worker."""


def label_vocabulary(entries: list[ClipEntry]) -> list[str]:
    """All label names, sorted (numbers numerically, so that MIDI pitches keep their order)."""
    names = {label for e in entries for label in e.labels}

    def key(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), "")
        except ValueError:
            return (1, 0.0, name)

    return sorted(names, key=key)
