"""The official layouts of common downstream corpora, read as they are downloaded.

Each reader returns ``{split: [ClipEntry]}``. Folds become splits named ``fold1``, ``fold2``...
(the linear probe then runs leave-one-fold-out).

* ``esc50``: ``meta/esc50.csv`` (filename, fold, target, category, ...) and ``audio/``.
* ``us8k``: ``metadata/UrbanSound8K.csv`` (slice_file_name, ..., fold, classID, class) and
  ``audio/fold<N>/``.
* ``speech_commands``: one folder per word, ``validation_list.txt`` and ``testing_list.txt``
  (everything else trains; ``_background_noise_`` is not a class).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aape_plugin.data.clips import ClipEntry, ManifestError


@dataclass(frozen=True)
class LayoutFiles:
    """What a layout reads under its root: the readers check these columns, and ``docs/data.md``
    shows this table (:func:`layout_table`; a test keeps the page equal to it)."""

    metadata: str
    columns: tuple[str, ...]
    """The metadata columns the reader needs (others are ignored); empty: no CSV."""
    audio: str
    splits: str


LAYOUT_FILES: dict[str, LayoutFiles] = {
    "esc50": LayoutFiles(metadata="meta/esc50.csv", columns=("filename", "fold", "category"), audio="audio/<filename>",
                         splits="fold1 ... fold5 (from `fold`)"),
    "us8k": LayoutFiles(metadata="metadata/UrbanSound8K.csv", columns=("slice_file_name", "fold", "class"),
                        audio="audio/fold<fold>/<slice_file_name>", splits="fold1 ... fold10 (from `fold`)"),
    "speech_commands": LayoutFiles(metadata="validation_list.txt, testing_list.txt", columns=(),
                                   audio="<word>/<clip>.wav",
                                   splits="valid, test (the lists), train (every other clip; `_background_noise_` is no class)"),
}


def layout_table() -> str:
    """The Markdown table of :data:`LAYOUT_FILES` that ``docs/data.md`` shows."""
    rows = ["| `layout` | metadata file(s) | columns it needs | audio | splits |", "|---|---|---|---|---|"]
    for name, files in LAYOUT_FILES.items():
        columns = ", ".join(f"`{c}`" for c in files.columns) or "none (one relative path per line)"
        rows.append(f"| `{name}` | `{files.metadata.replace(', ', '`, `')}` | {columns} | `{files.audio}` | {files.splits} |")
    return "\n".join(rows)


def _rows(path: Path, required: list[str], example: str) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ManifestError(f"Expected the metadata file {path} (e.g. {example}).")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}:1: the header lacks the column(s) {missing}; found {reader.fieldnames}.")
        return [(n, row) for n, row in enumerate(reader, start=2)]


def read_esc50(root: Path) -> dict[str, list[ClipEntry]]:
    splits: dict[str, list[ClipEntry]] = {}
    for n, row in _rows(root / "meta" / "esc50.csv", list(LAYOUT_FILES["esc50"].columns), f"{root}/meta/esc50.csv"):
        splits.setdefault(f"fold{int(row['fold'])}", []).append(
            ClipEntry(root / "audio" / row["filename"], (row["category"],), None, f"{root}/meta/esc50.csv:{n}"))
    return dict(sorted(splits.items(), key=lambda kv: int(kv[0][4:])))


def read_us8k(root: Path) -> dict[str, list[ClipEntry]]:
    meta = root / "metadata" / "UrbanSound8K.csv"
    splits: dict[str, list[ClipEntry]] = {}
    for n, row in _rows(meta, list(LAYOUT_FILES["us8k"].columns), f"{root}/metadata/UrbanSound8K.csv"):
        fold = int(row["fold"])
        splits.setdefault(f"fold{fold}", []).append(
            ClipEntry(root / "audio" / f"fold{fold}" / row["slice_file_name"], (row["class"],), None, f"{meta}:{n}"))
    return dict(sorted(splits.items(), key=lambda kv: int(kv[0][4:])))


def read_speech_commands(root: Path) -> dict[str, list[ClipEntry]]:
    lists = {}
    for split, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt")):
        path = root / name
        if not path.is_file():
            raise ManifestError(f"Expected {path} (Speech Commands' official split list next to the word folders).")
        lists[split] = {line.strip() for line in path.read_text().splitlines() if line.strip()}
    splits: dict[str, list[ClipEntry]] = {"train": [], "valid": [], "test": []}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for wav in sorted(folder.glob("*.wav")):
            relative = f"{folder.name}/{wav.name}"
            split = "valid" if relative in lists["valid"] else "test" if relative in lists["test"] else "train"
            splits[split].append(ClipEntry(wav, (folder.name,), None, relative))
    if not splits["train"]:
        raise ManifestError(f"No word folders with .wav files under {root} (expected e.g. {root}/yes/0a7c2a8d_nohash_0.wav).")
    return splits


CORPUS_LAYOUTS: dict[str, Callable[[Path], dict[str, list[ClipEntry]]]] = {
    "esc50": read_esc50,
    "us8k": read_us8k,
    "speech_commands": read_speech_commands,
}
