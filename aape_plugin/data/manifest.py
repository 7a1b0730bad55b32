"""Reading clip lists: TSV manifests (fairseq layout or with a header) and EVAR metadata CSVs.

TSV, with a header row naming the columns::

    path<TAB>num_samples<TAB>labels          (num_samples / duration / label(s) optional)
    speech/a.flac<TAB>16000<TAB>yes
    music/b.wav<TAB>441000<TAB>guitar,piano  (several labels: comma-separated)

or the fairseq layout, whose first line is the audio root folder and whose rows are
``relative/path<TAB>num_samples``. EVAR's metadata CSV has the columns
``file_name,label,split``; its ``split`` column selects the rows of a split.
"""

from __future__ import annotations

import csv
from pathlib import Path

from aape_plugin.data.clips import ClipEntry, ManifestError

TSV_COLUMNS = ("path", "num_samples", "duration", "label", "labels")


def _resolve(root: Path, relative: str) -> Path:
    path = Path(relative)
    return path if path.is_absolute() else root / path


def read_tsv_manifest(manifest: Path, root: Path | None = None) -> list[ClipEntry]:
    """Reads a TSV manifest; relative paths are taken from ``root`` (default: the manifest's
    folder, or the root line of a fairseq manifest)."""
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"The manifest {manifest} does not exist.") from None
    except UnicodeDecodeError:
        raise ManifestError(f"The manifest {manifest} is not UTF-8 text.") from None

    if not lines:
        raise ManifestError(f"The manifest {manifest} is empty.")

    first = lines[0].rstrip("\n").split("\t")

    if len(first) == 1 and first[0].strip() not in TSV_COLUMNS:
        # fairseq layout: root folder, then "relpath<TAB>num_samples"
        root = root or Path(first[0].strip())
        columns = ["path", "num_samples"]
        body = enumerate(lines[1:], start=2)
    else:
        columns = [c.strip() for c in first]
        unknown = [c for c in columns if c not in TSV_COLUMNS]
        if "path" not in columns or unknown:
            raise ManifestError(
                f"{manifest}:1: the header must name a `path` column and only the columns "
                f"{list(TSV_COLUMNS)}, but is {columns}. Example header: path<TAB>num_samples<TAB>label"
            )
        body = enumerate(lines[1:], start=2)

    root = root or manifest.parent

    entries = []

    for number, line in body:
        if not line.strip() or line.startswith("#"):
            continue

        fields = line.rstrip("\n").split("\t")

        where = f"{manifest}:{number}"

        if len(fields) != len(columns):
            raise ManifestError(
                f"{where}: expected {len(columns)} tab-separated fields ({', '.join(columns)}), "
                f"but found {len(fields)}: {line!r}"
            )

        row = dict(zip(columns, fields))

        num_samples = None
        try:
            if row.get("num_samples"):
                num_samples = int(row["num_samples"])
            elif row.get("duration"):
                float(row["duration"])
        except ValueError:
            raise ManifestError(f"{where}: `num_samples`/`duration` must be a number, but is {line!r}.") from None

        label_field = row.get("labels", row.get("label", ""))
        labels = tuple(x.strip() for x in label_field.split(",") if x.strip())

        if not row["path"].strip():
            raise ManifestError(f"{where}: the `path` field is empty.")

        entries.append(ClipEntry(_resolve(root, row["path"].strip()), labels, num_samples, where))

    return entries


def read_evar_csv(metadata: Path, root: Path, *, split: str | None = None) -> list[ClipEntry]:
    """Reads EVAR's ``file_name,label,split`` metadata (rows of ``split``, or all)."""
    try:
        f = open(metadata, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"The metadata file {metadata} does not exist.") from None

    entries = []

    with f:
        reader = csv.reader(f)

        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["file_name", "label", "split"]:
            raise ManifestError(
                f"{metadata}:1: EVAR metadata must start with the header `file_name,label,split`, "
                f"but starts with {header}."
            )

        for number, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue

            where = f"{metadata}:{number}"

            if len(row) < 3 or not row[0].strip() or not row[2].strip():
                raise ManifestError(f"{where}: expected `file_name,label,split`, but found {row}.")

            file_name, label, row_split = (cell.strip() for cell in row[:3])

            if split is not None and row_split != split:
                continue

            labels = tuple(x.strip() for x in label.split(",") if x.strip()) if label else ()

            entries.append(ClipEntry(_resolve(root, file_name), labels, None, where))

    return entries


def evar_splits(metadata: Path) -> list[str]:
    """The split names used in an EVAR metadata file: train, valid, test first, then the others
    (e.g. folds) in order of first appearance."""
    seen: dict[str, None] = {}
    with open(metadata, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            if len(row) >= 3 and row[2].strip():
                seen.setdefault(row[2].strip(), None)
    canonical = [s for s in ("train", "valid", "test") if s in seen]
    return canonical + [s for s in seen if s not in canonical]


def read_manifest(path: Path, root: Path, *, split: str | None = None) -> list[ClipEntry]:
    """A TSV manifest, or the ``split`` rows of an EVAR CSV (by file extension)."""
    if path.suffix.lower() == ".csv":
        return read_evar_csv(path, root, split=split)

    return read_tsv_manifest(path, root)
