"""The zip archive of a PyTorch file, checked record by record before torch opens it (only
``aape convert`` opens one: runs write state files, :mod:`.state_file`).

``torch.save`` writes a zip archive of uncompressed records: ``data.pkl`` (the structure),
``data/<key>`` (one per storage) and a few small markers. Anything else is refused here:

* a file that does not start as a zip archive: torch would read it as the legacy (pre-1.6)
  format, a bare pickle stream;
* a TorchScript archive (``constants.pkl``, ``code/``): ``torch.load`` hands those to
  ``torch.jit.load``, which runs the archive's code;
* a compressed or encrypted record: torch never writes one, and a deflated record can expand a
  thousandfold (a decompression bomb);
* records outside the file, overlapping ones, or more bytes than the budget allows;
* an archive that does not start at the file's first byte: Python's ``zipfile`` then shifts
  every offset by what precedes it, while torch's reader follows the stated offsets, so the two
  would read different archives;
* a ``byteorder`` record other than this machine's: torch would load every tensor byte-swapped.

The checks and torch's load read the same bytes in memory (:mod:`.regular_file`).
"""

from __future__ import annotations

import io
import re
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aape_plugin.checkpoints.budget import FileBudget, describe_bytes
from aape_plugin.checkpoints.errors import UnsafeCheckpointError

LOCAL_HEADER = b"PK\x03\x04"
"""How a zip archive starts; torch reads anything else as the legacy pickle format."""

MARKERS = frozenset({"byteorder", "version", ".format_version", ".storage_alignment", ".data/serialization_id", ".data/version"})

_STORAGE_RECORD = re.compile(r"data/(\d+)")

_TORCHSCRIPT = ("constants.pkl", "code/", ".data/ts_code", "extra/")


@dataclass(frozen=True)
class Archive:
    """What a checked archive holds: its pickle and the size of each storage record by key."""

    pickle: bytes
    storages: dict[str, int]


def read_archive(data: bytes, budget: FileBudget, name: Path | str) -> Archive:
    """The archive of a file's bytes ``data``, or :class:`UnsafeCheckpointError`."""
    return _read(io.BytesIO(data), len(data), budget, name)


def _read(f: BinaryIO, size: int, budget: FileBudget, name: Path | str) -> Archive:
    def refuse(reason: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(name, reason)

    if size > budget.max_bytes:
        raise UnsafeCheckpointError(
            name, f"is {describe_bytes(size)}, more than the {describe_bytes(budget.max_bytes)} this run's configuration "
            f"allows for its {budget.kind} state ({budget.basis})")

    if f.read(4) != LOCAL_HEADER:
        raise refuse("is not a PyTorch zip archive (torch would read it as a legacy-format pickle stream, which these "
                     "recipes never write)")
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
        infos = archive.infolist()
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # noqa: SLF001
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as ex:
        raise refuse(f"is not a readable zip archive ({ex})") from None
    if end is None or archive.start_dir != end[zipfile._ECD_OFFSET]:  # type: ignore[attr-defined]  # noqa: SLF001
        raise refuse("has data before its zip archive (torch and Python's zipfile would read different archives)")

    if not infos:
        raise refuse("is an empty archive")

    prefix = infos[0].filename.split("/", 1)[0]
    seen: set[str] = set()
    storages: dict[str, int] = {}
    spans: list[tuple[int, int]] = []
    for info in infos:
        head, _, record = info.filename.partition("/")
        if head != prefix or not record:
            raise refuse(f"holds {info.filename!r} outside its archive folder {prefix!r}/")
        if record in seen:
            raise refuse(f"holds the record {record!r} twice")
        seen.add(record)
        if any(record == t or record.startswith(t) for t in _TORCHSCRIPT):
            raise refuse("is a TorchScript archive (torch.load would hand it to torch.jit.load, which runs its code)")
        storage = _STORAGE_RECORD.fullmatch(record)
        if record != "data.pkl" and record not in MARKERS and storage is None:
            raise refuse(f"holds a record {record!r} that torch.save never writes")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise refuse(f"holds the compressed record {record!r} (torch.save stores records uncompressed)")
        if info.flag_bits & 0x1:
            raise refuse(f"holds the encrypted record {record!r}")
        start = _data_start(f, info, size)
        if start is None:
            raise refuse(f"has a damaged or inconsistent header for the record {record!r}")
        spans.append((start, start + info.file_size))
        if storage is not None:
            storages[storage.group(1)] = info.file_size

    spans.sort()
    if any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:])):
        raise refuse("has records that overlap (a zip trick torch.save never uses)")

    if spans and min(info.header_offset for info in infos) != 0:
        raise refuse("has data before its first record (torch.save starts the archive at the file's first byte)")
    if "byteorder" in seen:
        order = archive.read(f"{prefix}/byteorder") if archive.getinfo(f"{prefix}/byteorder").file_size <= 16 else b"?"
        if order.decode("ascii", "replace") != sys.byteorder:
            raise refuse(f"stores its tensors in {order.decode('ascii', 'replace')[:16]!r} byte order, not this machine's "
                         f"({sys.byteorder}): they would load byte-swapped")

    if "data.pkl" not in seen:
        raise refuse("has no data.pkl record")
    pickle_info = archive.getinfo(f"{prefix}/data.pkl")
    if pickle_info.file_size > budget.max_pickle_bytes:
        raise refuse(f"has a {describe_bytes(pickle_info.file_size)} pickle, more than the "
                     f"{describe_bytes(budget.max_pickle_bytes)} any state file of these recipes needs")
    try:
        pickle = archive.read(pickle_info)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as ex:
        raise refuse(f"has an unreadable data.pkl ({ex})") from None
    return Archive(pickle=pickle, storages=storages)


def _data_start(f: BinaryIO, info: zipfile.ZipInfo, size: int) -> int | None:
    """Where the record's bytes begin, from its local header, if that header agrees with the
    central directory (stored, same name) and the bytes lie inside the file."""
    offset = info.header_offset
    if offset < 0 or offset + 30 > size:
        return None
    f.seek(offset)
    header = f.read(30)
    if len(header) != 30 or header[:4] != LOCAL_HEADER:
        return None
    method, = struct.unpack("<H", header[8:10])
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    if method != zipfile.ZIP_STORED:
        return None
    if f.read(name_length) != info.orig_filename.encode("utf-8"):
        return None
    start = offset + 30 + name_length + extra_length
    return start if start + info.file_size <= size else None
