"""A checkpoint file read once, whole, and only if it is a regular file.

Every check of a checkpoint and the load that follows read the same bytes in memory, so the
file cannot change between them (a file replaced after its check, or an archive that two zip
readers see differently, is never read a second time). A FIFO would block the reader forever
and a device has no end, so anything but a regular file is refused before it is opened; a
symbolic link is followed and its target checked the same way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aape_plugin.checkpoints.budget import describe_bytes
from aape_plugin.checkpoints.errors import UnsafeCheckpointError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def describe_kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def refuse_irregular(path: Path) -> os.stat_result:
    """``path``'s status (its link target's), or :class:`UnsafeCheckpointError` if it is not a
    regular file; nothing is opened."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as ex:
        raise UnsafeCheckpointError(path, f"cannot be inspected ({ex.strerror})") from None
    if not stat.S_ISREG(status.st_mode):
        raise UnsafeCheckpointError(path, f"is {describe_kind(status.st_mode)}, not a regular file")
    return status


def read_regular_file(path: Path, max_bytes: int, *, kind: str = "checkpoint", basis: str = "") -> bytes:
    """The bytes of ``path``, or :class:`UnsafeCheckpointError` (one line naming it) if it is
    not a regular file or holds more than ``max_bytes``."""
    before = refuse_irregular(path)
    _refuse_size(path, before.st_size, max_bytes, kind, basis)
    # O_NONBLOCK: should the path become a FIFO after the check above, opening it cannot block.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise UnsafeCheckpointError(path, "was replaced while it was being opened")
        _refuse_size(path, opened.st_size, max_bytes, kind, basis)
        chunks, remaining = [], max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    _refuse_size(path, len(data), max_bytes, kind, basis)
    return data


def _refuse_size(path: Path, size: int, max_bytes: int, kind: str, basis: str) -> None:
    if size > max_bytes:
        why = f" ({basis})" if basis else ""
        raise UnsafeCheckpointError(
            path, f"is {describe_bytes(size)}, more than the {describe_bytes(max_bytes)} this run's configuration allows "
            f"for its {kind} state{why}")
