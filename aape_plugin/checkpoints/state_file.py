"""A run's state files as safetensors plus JSON: reading one builds tensors and plain data only.

A pickle is a program; a checked unpickler can only refuse programs it recognises. So every state
a run writes (model, optimiser, trainer, data reader) is one safetensors file, at the path
fairseq2 asks for: each tensor of the nested state under a generated key (``t0``, ``t1``, ...),
and the structure with every plain value as a JSON document in the header's ``__metadata__``
(:data:`STRUCTURE_KEY`). Reading parses the bytes once (safetensors checks every tensor's
offsets against the file's size), builds nothing but tensors, numbers, strings, lists, tuples and
dicts, and never reopens the file.

The JSON document is made of plain JSON values and tagged objects (one key each)::

    null, true, 1, 0.5, "text", [...]            None, bool, int, finite float, str, list
    {"float": "nan" | "inf" | "-inf"}            a float JSON cannot write
    {"tuple": [...]}                             a tuple
    {"dict": [[key, value], ...]}                a dict (str or int keys, in order)
    {"odict": [[key, value], ...], "metadata": v}  an OrderedDict (a module's state dict, whose
                                                 ``_metadata`` holds its modules' versions)
    {"tensor": "t3"}                             the tensor stored under ``t3``
    {"bytes": "t4"}                              bytes, stored as the uint8 tensor ``t4``
    {"dtype": "float32"}, {"size": [2, 3]}       a torch.dtype, a torch.Size

The same tensor object (or the same view of the same memory) is stored once and read back as one
tensor; other tensors that share memory are stored as copies (safetensors refuses shared
storage). Anything else (a DTensor, a complex tensor, a set, an object) is refused when the
state is saved, naming where it lies.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aape_plugin.checkpoints.errors import UnsafeCheckpointError

FORMAT = "aape-state/1"
"""The ``format`` entry of a state file's ``__metadata__``."""

FORMAT_KEY, STRUCTURE_KEY = "format", "aape_state"

MAX_STRUCTURE_BYTES = 4 << 20
"""The largest JSON structure a state file may carry (a data reader's, the largest the recipes
write, is tens of kilobytes: the paths of the batches it holds). Parsed, JSON takes up to about
twenty times its size in Python objects: this bounds that too."""

MAX_HEADER_BYTES = 64 << 20
"""The largest safetensors header read (the structure plus one short entry per tensor). Below
``0x04034B50``, so a zip archive (``PK\\x03\\x04``) can never be read as a header length."""

MAX_DEPTH = 64
"""How deeply the structure may nest (the recipes' deepest state nests six levels)."""

ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80\x02\x8a\x0a"
"""The first bytes of ``torch.save``'s zip archive and of its legacy (pre-1.6) pickle stream."""

CONVERT_COMMAND = "aape convert"

_DTYPES: dict[str, torch.dtype] = {
    name: getattr(torch, name) for name in (
        "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
        "float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64")
    if hasattr(torch, name)
}
"""The tensor dtypes safetensors stores, by the name the structure uses for them."""

_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


class StateNotStorableError(Exception):
    """A state holds a value the state file format cannot store; nothing was written.

    One line: the file, where the value lies in the state, and what it is."""

    def __init__(self, file: Path | str, where: str, what: str) -> None:
        super().__init__(f"{file}: the state to save holds {what} at `{where or '<root>'}`, which a state file cannot "
                         f"store (tensors, None, bool, int, float, str, bytes, list, tuple and dicts with str or int keys); "
                         f"nothing was written.")
        self.file = Path(file)
        self.where = where


def is_pickle_checkpoint(data: bytes) -> bool:
    """Whether ``data`` is a file ``torch.save`` wrote (a zip archive or a legacy pickle stream)."""
    return data.startswith(ZIP_MAGIC) or data.startswith(LEGACY_MAGIC)


def convert_hint(file: Path | str) -> str:
    """What to run to convert the pickle checkpoint ``file`` (its run folder, when it lies in one)."""
    from aape_plugin.checkpoints.layout import STEP_FOLDER

    path = Path(file)
    target = path
    for folder in path.parents:
        if STEP_FOLDER.fullmatch(folder.name):
            # The checkpoint folder (``--checkpoint-dir``), or the run folder that holds it.
            target = folder.parent.parent if folder.parent.name == "checkpoints" else folder.parent
            break
    return f"{CONVERT_COMMAND} {target}"


def refuse_pickle_checkpoint(file: Path | str) -> UnsafeCheckpointError:
    """The one-line refusal of a file in the format written before state files were safetensors."""
    return UnsafeCheckpointError(
        file, "is a pickle checkpoint (the format written before state files became safetensors)",
        consequence=f"refusing to unpickle it (nothing of it was built); convert it with `{convert_hint(file)}`, "
        f"which keeps the original beside it as *.pt.pickle")


class _Encoder:
    def __init__(self, file: Path | str) -> None:
        self.file = file
        self.tensors: dict[str, torch.Tensor] = {}
        self._keys: dict[tuple[object, ...], str] = {}
        self._storages: set[int] = set()

    def value(self, value: object, where: str, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise StateNotStorableError(self.file, where, f"containers nested deeper than {MAX_DEPTH}")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if isinstance(value, torch.Tensor):
            return {"tensor": self.tensor(value, where)}
        if type(value) is bytes:
            return {"bytes": self.tensor(torch.frombuffer(bytearray(value), dtype=torch.uint8) if value else
                                         torch.empty(0, dtype=torch.uint8), where)}
        if isinstance(value, torch.dtype):
            if value not in _DTYPE_NAMES:
                raise StateNotStorableError(self.file, where, f"the dtype {value}")
            return {"dtype": _DTYPE_NAMES[value]}
        if isinstance(value, torch.Size):
            return {"size": [int(n) for n in value]}
        if isinstance(value, list):
            return [self.value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, tuple) and type(value) is tuple:
            return {"tuple": [self.value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]}
        if type(value) is dict or type(value) is OrderedDict:
            items = [[self.key(key, where), self.value(item, f"{where}.{key}" if where else str(key), depth + 1)]
                     for key, item in value.items()]
            if type(value) is dict:
                return {"dict": items}
            node: dict[str, object] = {"odict": items}
            metadata = getattr(value, "_metadata", None)
            if metadata is not None:
                node["metadata"] = self.value(metadata, f"{where}._metadata" if where else "_metadata", depth + 1)
            return node
        raise StateNotStorableError(self.file, where, f"a value of type {type(value).__module__}.{type(value).__qualname__}")

    def key(self, key: object, where: str) -> object:
        if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
            return key
        raise StateNotStorableError(self.file, where, f"a dict key of type {type(key).__qualname__} ({key!r:.40})")

    def tensor(self, tensor: torch.Tensor, where: str) -> str:
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter) or tensor.layout != torch.strided:
            raise StateNotStorableError(self.file, where, f"a {type(tensor).__qualname__} with layout {tensor.layout}")
        if tensor.dtype not in _DTYPE_NAMES:
            raise StateNotStorableError(self.file, where, f"a tensor of dtype {tensor.dtype}")
        if tensor.device.type == "meta":
            raise StateNotStorableError(self.file, where, "a tensor on the meta device (it has no values)")
        tensor = tensor.detach()
        storage = tensor.untyped_storage()
        identity = (tensor.device, storage.data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if tensor.numel() > 0 and identity in self._keys:
            return self._keys[identity]  # the same view of the same memory: stored once, read back as one tensor
        stored = tensor.to("cpu")
        whole = stored.is_contiguous() and stored.storage_offset() == 0 and storage.nbytes() == stored.numel() * stored.element_size()
        if not whole or stored.untyped_storage().data_ptr() in self._storages or stored.numel() == 0:
            stored = stored.contiguous().clone()
        if stored.numel() > 0:
            self._storages.add(stored.untyped_storage().data_ptr())
        key = f"t{len(self.tensors)}"
        self.tensors[key] = stored
        if tensor.numel() > 0:
            self._keys[identity] = key
        return key


def dump_state(state: Mapping[str, object], file: Path | str = "<state>") -> bytes:
    """The bytes of the state file of ``state``; :class:`StateNotStorableError` (naming the
    file and where the value lies) if it holds anything but tensors and plain data."""
    import safetensors.torch

    if not isinstance(state, Mapping):
        raise StateNotStorableError(file, "", f"a {type(state).__qualname__} (a state is a dict)")
    encoder = _Encoder(file)
    structure = encoder.value(state if type(state) in (dict, OrderedDict) else dict(state), "", 0)
    text = json.dumps(structure, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > MAX_STRUCTURE_BYTES:
        raise StateNotStorableError(file, "", f"a structure of {len(text.encode())} bytes (at most {MAX_STRUCTURE_BYTES})")
    return safetensors.torch.save(encoder.tensors, metadata={FORMAT_KEY: FORMAT, STRUCTURE_KEY: text})


class _Decoder:
    def __init__(self, file: Path | str, tensors: dict[str, torch.Tensor]) -> None:
        self.file = file
        self.tensors = tensors
        self.used: set[str] = set()

    def refuse(self, reason: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(self.file, f"is not a state file these recipes write ({reason})")

    def value(self, node: object, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise self.refuse(f"its structure nests deeper than {MAX_DEPTH}")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.value(item, depth + 1) for item in node]
        if not isinstance(node, dict) or not node:
            raise self.refuse(f"its structure holds {type(node).__name__}")
        tag = next(iter(node))
        payload = node[tag]
        if tag == "odict" and set(node) <= {"odict", "metadata"}:
            result: OrderedDict[object, object] = OrderedDict(self.items(payload, depth))
            if "metadata" in node:
                result._metadata = self.value(node["metadata"], depth + 1)  # type: ignore[attr-defined]
            return result
        if len(node) != 1:
            raise self.refuse(f"its structure holds an object with the keys {sorted(node)[:4]}")
        if tag == "tensor" and isinstance(payload, str):
            if payload not in self.tensors:
                raise self.refuse(f"its structure names the tensor {payload[:40]!r}, which it does not hold")
            self.used.add(payload)
            return self.tensors[payload]
        if tag == "bytes" and isinstance(payload, str) and payload in self.tensors:
            tensor = self.tensors[payload]
            if tensor.dtype != torch.uint8 or tensor.dim() != 1:
                raise self.refuse(f"its structure reads the {tensor.dtype} tensor {payload[:40]!r} as bytes")
            self.used.add(payload)
            return tensor.numpy().tobytes()
        if tag == "dict":
            return dict(self.items(payload, depth))
        if tag == "tuple" and isinstance(payload, list):
            return tuple(self.value(item, depth + 1) for item in payload)
        if tag == "float" and payload in ("nan", "inf", "-inf"):
            return float(payload)
        if tag == "dtype" and isinstance(payload, str) and payload in _DTYPES:
            return _DTYPES[payload]
        if tag == "size" and isinstance(payload, list) and all(type(n) is int and n >= 0 for n in payload):
            return torch.Size(payload)
        raise self.refuse(f"its structure holds an unknown or malformed {tag[:40]!r} entry")

    def items(self, payload: object, depth: int) -> list[tuple[object, object]]:
        if not isinstance(payload, list):
            raise self.refuse("its structure holds a dict that is not a list of pairs")
        items: list[tuple[object, object]] = []
        for pair in payload:
            if not isinstance(pair, list) or len(pair) != 2 or not (type(pair[0]) is str or type(pair[0]) is int):
                raise self.refuse("its structure holds a dict entry that is not a [str or int key, value] pair")
            items.append((pair[0], self.value(pair[1], depth + 1)))
        if len({key for key, _ in items}) != len(items):
            raise self.refuse("its structure holds a dict with a repeated key")
        return items


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a JSON object repeats a key")
    return result


def _no_constants(name: str) -> object:
    raise ValueError(f"JSON holds {name}")


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
    **{name: getattr(torch, attr) for name, attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("U16", "uint16"),
                                                      ("U32", "uint32"), ("U64", "uint64")) if hasattr(torch, attr)},
}
"""safetensors' dtype names."""


def _header(data: bytes, file: Path | str) -> dict[str, Any]:
    """The safetensors header of ``data``, parsed within :data:`MAX_HEADER_BYTES`."""
    refuse = lambda reason: UnsafeCheckpointError(file, f"is not a state file these recipes write ({reason})")  # noqa: E731
    if len(data) < 8:
        raise refuse(f"it holds {len(data)} bytes, fewer than a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES:
        raise refuse(f"its header would be {size} bytes, more than {MAX_HEADER_BYTES}")
    if 8 + size > len(data):
        raise refuse(f"its header would be {size} bytes, but the file holds {len(data)}")
    try:
        header = json.loads(data[8:8 + size], object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as ex:
        raise refuse(f"its header is not readable JSON: {str(ex)[:120]}") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    return header


def _tensors(data: bytes, refuse: Any) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked by safetensors against the file's size, each
    in writable memory of its own (``safetensors.torch.load`` gives views of immutable bytes,
    which an optimiser would then update in place)."""
    import safetensors

    try:
        views = safetensors.deserialize(data)
    except Exception as ex:  # safetensors raises its own SafetensorError for any damage
        detail = str(ex).strip().splitlines()[0][:200] if str(ex).strip() else type(ex).__name__
        raise refuse(f"safetensors cannot read it: {detail}") from None
    tensors: dict[str, torch.Tensor] = {}
    for i, (key, view) in enumerate(views):
        views[i] = None  # type: ignore[call-overload]  # each tensor's bytes are freed once it is built
        dtype = _SAFETENSORS_DTYPES.get(view["dtype"])
        if dtype is None:
            raise refuse(f"the tensor {key[:40]!r} has the dtype {view['dtype'][:20]!r}")
        shape = view["shape"]
        if not view["data"]:
            tensors[key] = torch.empty(shape, dtype=dtype)
            continue
        tensor = torch.frombuffer(bytearray(view["data"]), dtype=dtype).reshape(shape)
        tensors[key] = tensor if sys.byteorder == "little" else torch.from_numpy(tensor.numpy().byteswap(inplace=False))
    return tensors


def load_state(data: bytes, file: Path | str, *, device: torch.device | str | None = None) -> dict[str, object]:
    """The state in ``data``, the bytes of the state file ``file`` (read once, by the caller);
    :class:`UnsafeCheckpointError` in one line naming ``file`` if it is a pickle checkpoint or
    not a state file as :func:`dump_state` writes one."""
    if is_pickle_checkpoint(data):
        raise refuse_pickle_checkpoint(file)
    header = _header(data, file)
    metadata = header.get("__metadata__")
    refuse = lambda reason: UnsafeCheckpointError(file, f"is not a state file these recipes write ({reason})")  # noqa: E731
    if not isinstance(metadata, dict) or metadata.get(FORMAT_KEY) != FORMAT or not isinstance(metadata.get(STRUCTURE_KEY), str):
        raise refuse(f"its header names no {FORMAT} structure")
    text = metadata[STRUCTURE_KEY]
    if len(text.encode()) > MAX_STRUCTURE_BYTES:
        raise refuse(f"its structure is {len(text.encode())} bytes of JSON, more than {MAX_STRUCTURE_BYTES}")
    try:
        structure = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as ex:
        raise refuse(f"its structure is not readable JSON: {str(ex)[:120]}") from None
    tensors = _tensors(data, refuse)
    decoder = _Decoder(file, tensors)
    try:
        state = decoder.value(structure, 0)
    except RecursionError:
        raise refuse(f"its structure nests deeper than {MAX_DEPTH}") from None
    unused = sorted(set(tensors) - decoder.used)
    if unused:
        raise refuse(f"it holds {len(unused)} tensor(s) its structure does not use, e.g. {unused[0][:40]!r}")
    if not isinstance(state, dict):
        raise refuse("its structure is not a dict of states")
    if device is not None and torch.device(device).type != "cpu":
        state = _to(state, torch.device(device), {})
    return state


def _to(value: object, device: torch.device, memo: dict[int, torch.Tensor]) -> Any:
    """``value`` with every tensor moved to ``device`` (a tensor used twice stays one tensor)."""
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value.to(device)
        return memo[id(value)]
    if isinstance(value, list):
        return [_to(item, device, memo) for item in value]
    if isinstance(value, tuple):
        return tuple(_to(item, device, memo) for item in value)
    if isinstance(value, dict):
        moved = type(value)((key, _to(item, device, memo)) for key, item in value.items())
        if hasattr(value, "_metadata"):
            moved._metadata = value._metadata  # type: ignore[attr-defined]
        return moved
    return value


def save_state(state: Mapping[str, object], path: Path) -> Path:
    """``state`` as a state file at ``path`` (mode ``0666 & ~umask``, written beside and renamed:
    whole or not at all), e.g. a model's state dict for ``model.path`` or an asset card."""
    import os

    from aape_plugin.safetensors_files import current_umask

    payload = dump_state(state, path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666 & ~current_umask())
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
