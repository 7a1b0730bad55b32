"""The ``audio_manifest`` dataset family: TSV manifests or an EVAR metadata CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aape_plugin.data.errors import AudioDataError

from aape_plugin.data.clips import ClipEntry, label_vocabulary
from aape_plugin.data.dataset import AudioDataset
from aape_plugin.data.demo import resolve_root
from aape_plugin.data.manifest import evar_splits, read_evar_csv, read_tsv_manifest

AUDIO_MANIFEST_FAMILY: Final = "audio_manifest"


@dataclass(kw_only=True)
class AudioManifestDatasetConfig:
    """Where the clips and their lists are. Relative paths are taken from ``root``."""

    root: Path = field(default_factory=lambda: Path("@demo"))
    """Audio folder; ``@demo`` is the demo data shipped with aape_plugin."""

    metadata: str | None = None
    """An EVAR metadata CSV (``file_name,label,split``); its split column defines the splits."""

    splits: dict[str, str] = field(default_factory=lambda: {"train": "train.tsv", "valid": "valid.tsv", "test": "test.tsv"})
    """TSV manifest of each split (used without ``metadata``; missing files are no split)."""

    labels: str | None = None
    """Optional file with one class name per line (fixes the class order); otherwise the
    sorted names found in all splits."""

    stats: str | None = None
    """Optional JSON of log-mel statistics (``python -m aape_plugin.data.stats``)."""

    layout: str = "manifest"
    """``manifest`` (TSV manifests or ``metadata``), or a corpus' own layout as downloaded:
    ``esc50``, ``us8k``, ``speech_commands`` (see :mod:`aape_plugin.data.corpus_layouts`)."""


class AudioManifestDataset(AudioDataset):
    """A data set of the ``audio_manifest`` family."""


def _in_root(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def open_audio_manifest_dataset(config: AudioManifestDatasetConfig) -> AudioManifestDataset:
    """Reads every split's list now, so that a malformed row fails at start with its line."""
    root = resolve_root(config.root)

    if not root.is_dir():
        raise AudioDataError(
            f"The audio folder {root} does not exist. Point `root` at the folder the manifest's "
            f"paths are relative to (in a recipe: --config dataset.root=/data/esc50)."
        )

    entries: dict[str, list[ClipEntry]] = {}

    if config.layout != "manifest":
        from aape_plugin.data.corpus_layouts import CORPUS_LAYOUTS

        if config.layout not in CORPUS_LAYOUTS:
            raise AudioDataError(f"Unknown layout {config.layout!r}; known: manifest, {', '.join(CORPUS_LAYOUTS)}.")
        entries = CORPUS_LAYOUTS[config.layout](root)
        name = config.layout
    elif config.metadata is not None:
        metadata = _in_root(root, config.metadata)
        if not metadata.is_file():
            raise AudioDataError(f"The metadata file {metadata} does not exist (expected EVAR's `file_name,label,split` CSV, e.g. {root / 'metadata.csv'}).")
        for split in evar_splits(metadata):
            entries[split] = read_evar_csv(metadata, root, split=split)
        name = metadata.stem
    else:
        for split, file_name in config.splits.items():
            manifest = _in_root(root, file_name)
            if manifest.is_file():
                entries[split] = read_tsv_manifest(manifest, root)
        if not entries:
            expected = ", ".join(str(_in_root(root, f)) for f in config.splits.values())
            raise AudioDataError(f"No manifest found; expected at least one of: {expected}.")
        name = root.name

    all_entries = [e for es in entries.values() for e in es]

    label_names: list[str] | None
    if config.labels is not None:
        label_file = _in_root(root, config.labels)
        if not label_file.is_file():
            raise AudioDataError(f"The label file {label_file} does not exist.")
        label_names = [line.strip() for line in label_file.read_text().splitlines() if line.strip()]
    else:
        label_names = label_vocabulary(all_entries) or None

    if label_names is not None:
        unlabelled = [e.where for e in all_entries if not e.labels]
        if unlabelled:
            raise AudioDataError(f"{unlabelled[0]}: a labelled data set has a clip without a label ({len(unlabelled)} such rows).")

    stats_file = _in_root(root, config.stats) if config.stats is not None else None

    return AudioManifestDataset(name, entries, label_names, stats_file=stats_file)
