"""AudioSet as researchers hold it: the official segment CSVs, ``class_labels_indices.csv``, and a
folder of downloaded clips whose file names contain the YouTube ID.

Recognised file names (any folder depth, wav/flac/ogg/mp3 as libsndfile reads them):
``YTID.wav``, ``YYTID.wav`` (the ``Y`` prefix of common AudioSet archives),
``YTID_30.000.flac`` / ``YTID_30000_40000.wav`` (ID then start time).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from aape_plugin.data.clips import ClipEntry, ManifestError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}

_YTID = re.compile(r"^[A-Za-z0-9_-]{11}$")


@dataclass(frozen=True)
class AudioSetClass:
    index: int
    mid: str
    display_name: str


def read_class_labels(path: Path) -> list[AudioSetClass]:
    """``class_labels_indices.csv``: ``index,mid,display_name`` (names may hold quoted commas)."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"{path} does not exist; AudioSet needs class_labels_indices.csv "
            f"(index,mid,display_name) next to the segment CSVs."
        ) from None

    classes = []
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["index", "mid", "display_name"]:
            raise ManifestError(f"{path}:1: expected the header `index,mid,display_name`, found {header}.")
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 3:
                raise ManifestError(f"{path}:{number}: expected 3 fields (index,mid,display_name), found {row}.")
            try:
                index = int(row[0])
            except ValueError:
                raise ManifestError(f"{path}:{number}: the index {row[0]!r} is not an integer.") from None
            if index != len(classes):
                raise ManifestError(f"{path}:{number}: indices must be 0, 1, 2, ... in order; found {index} at position {len(classes)}.")
            classes.append(AudioSetClass(index, row[1].strip(), row[2].strip()))
    return classes


@dataclass(frozen=True)
class Segment:
    ytid: str
    start: float
    end: float
    mids: tuple[str, ...]
    where: str


def read_segments(path: Path, known_mids: set[str]) -> list[Segment]:
    """An official segment CSV (``#`` header lines; ``YTID, start, end, "mid,mid"``)."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"The AudioSet segment file {path} does not exist.") from None

    segments = []
    with f:
        for number, row in enumerate(csv.reader(f, skipinitialspace=True), start=1):
            if not row or row[0].startswith("#"):
                continue
            where = f"{path}:{number}"
            if len(row) != 4:
                raise ManifestError(f"{where}: expected `YTID, start_seconds, end_seconds, \"labels\"`, found {row}.")
            ytid, start, end, labels = (cell.strip() for cell in row)
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise ManifestError(f"{where}: start and end must be seconds, found {start!r}, {end!r}.") from None
            mids = tuple(m.strip() for m in labels.split(",") if m.strip())
            unknown = [m for m in mids if m not in known_mids]
            if unknown:
                raise ManifestError(f"{where}: unknown label(s) {unknown} (not in class_labels_indices.csv).")
            if not mids:
                raise ManifestError(f"{where}: the segment has no label.")
            segments.append(Segment(ytid, start_s, end_s, mids, where))
    return segments


def ytid_candidates(stem: str) -> list[str]:
    """YouTube IDs a file name may stand for, most specific first."""
    out = []
    if _YTID.match(stem):
        out.append(stem)
    if stem.startswith("Y") and _YTID.match(stem[1:12]) and (len(stem) == 12 or stem[12] == "_"):
        out.append(stem[1:12])
    if len(stem) > 11 and stem[11] == "_" and _YTID.match(stem[:11]):
        out.append(stem[:11])
    return out


def index_audio_folder(root: Path, wanted: set[str]) -> dict[str, Path]:
    """Maps the wanted YouTube IDs to files found anywhere under ``root``."""
    found: dict[str, Path] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            for ytid in ytid_candidates(path.stem):
                if ytid in wanted:
                    found.setdefault(ytid, path)
                    break
    return found


def audioset_entries(segments: list[Segment], files: dict[str, Path]) -> tuple[list[ClipEntry], list[Segment]]:
    """Entries of the segments whose audio exists, and the segments that are missing."""
    entries, missing = [], []
    for seg in segments:
        path = files.get(seg.ytid)
        if path is None:
            missing.append(seg)
        else:
            entries.append(ClipEntry(path, seg.mids, None, seg.where))
    return entries, missing
