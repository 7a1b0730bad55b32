"""A pickle walked without building it: only what the recipes' checkpoints hold gets through.

Only ``aape convert`` (:mod:`.convert`) reads a pickle. Every state file the AaPE recipes wrote
before state files (model, optimiser, trainer, data reader) is a protocol-2 pickle of dicts, lists, tuples, ``OrderedDict``s, numbers, strings, bytes and tensors, nothing
else. This module executes the pickle's opcodes on *descriptions* of values (a kind, a size, the
value itself for small scalars) instead of the values, and refuses, naming what it met:

* any global but ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
  ``_codecs.encode`` and torch's typed storages; any opcode a protocol-2 pickle of such data
  does not need (``NEWOBJ``, ``NEWOBJ_EX``, ``INST``, ``OBJ``, extension codes, protocol 4-5
  framing and ``STACK_GLOBAL``);
* a call that is not one of three exact shapes: ``OrderedDict()``, ``_codecs.encode(str,
  'latin1')`` (bytes) and ``_rebuild_tensor_v2(storage, offset, size, stride, bool,
  OrderedDict())`` whose view lies inside its storage and holds no more elements than it;
  so no callable ever receives a tensor to iterate, a count to allocate or a keyword;
* ``BUILD`` on anything but a state dict's ``_metadata`` attribute;
* a storage whose record is missing or of another size than its type and length say, a
  record no tensor uses;
* a container changed after it was placed in another (the only way to make a cycle), nesting
  deeper than :data:`MAX_DEPTH`, or an expanded size (each shared reference counted again,
  tensors by the bytes of their view) above the file's budget: consumers that walk or copy the
  structure then stay within it too;
* more opcodes than the budget holds values (one per :data:`NODE_BYTES`): each opcode makes at
  most one description, so the walk itself stays within a small multiple of the budget however
  many values the pickle pushes and drops.

Only after this does torch's own ``weights_only=True`` unpickler build the file.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
from dataclasses import dataclass, field
from typing import Any

from aape_plugin.checkpoints.budget import describe_bytes

MAX_DEPTH = 64
"""Nesting of containers; the deepest state (a data reader's) is about 12."""

MAX_RANK = 16
"""Dimensions of a tensor."""

NODE_BYTES = 64
"""What each expanded value counts for, besides its payload."""

STORAGE_ITEM_SIZE: dict[str, int] = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8, "IntStorage": 4,
    "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1, "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}
"""The typed storages ``torch.save`` names, with their element sizes."""

_CALLABLES = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("_codecs", "encode")}

_SCALAR_OPS = {
    "NONE": None, "NEWTRUE": True, "NEWFALSE": False,
}
_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1"}


class PickleRefused(Exception):
    """What the walk met that the recipes never save (the reason, without the file)."""


@dataclass(eq=False)
class Node:
    """The description of one value on the symbolic stack."""

    kind: str
    """``int``, ``float``, ``bool``, ``none``, ``str``, ``bytes``, ``tuple``, ``list``, ``dict``,
    ``odict``, ``global``, ``storage``, ``tensor``."""

    value: Any = None
    """Scalars and strings: the value; tuples: their items; globals: ``(module, name)``;
    storages: ``(type name, length, key)``."""

    weight: int = NODE_BYTES
    """Bytes when expanded (shared references counted each time)."""

    depth: int = 0
    items: list[Node] = field(default_factory=list)
    sealed: bool = False
    """Placed inside another value: it must not change any more."""

    raw: bool = False
    """A storage or a global, or a tuple holding one: a call's argument, never data."""


_MARK = Node("mark")


def check_pickle(data: bytes, storages: dict[str, int], max_expanded_bytes: int) -> None:
    """Walks ``data`` (a ``data.pkl``) against the storage records ``storages`` (key -> bytes);
    raises :class:`PickleRefused` at the first thing a recipe checkpoint never holds."""
    stack: list[Node] = []
    memo: dict[int, Node] = {}
    used: set[str] = set()
    storage_types: dict[str, str] = {}

    def pop() -> Node:
        if not stack or stack[-1] is _MARK:
            raise PickleRefused("is a malformed pickle (pops an empty stack)")
        return stack.pop()

    def pop_mark() -> list[Node]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise PickleRefused("is a malformed pickle (no MARK)")

    def place(child: Node, parent: Node) -> None:
        if child is parent:
            raise PickleRefused("puts a container inside itself")
        if child is _MARK:
            raise PickleRefused("is a malformed pickle (stores a MARK)")
        if child.raw or child.kind in ("global", "storage"):
            if parent.kind != "tuple":
                raise PickleRefused(f"stores a bare {child.kind if not child.raw or child.kind != 'tuple' else 'storage or type'} as data")
            parent.raw = True
        child.sealed = True
        parent.items.append(child)
        parent.weight += child.weight
        parent.depth = max(parent.depth, child.depth + 1)
        if parent.depth > MAX_DEPTH:
            raise PickleRefused(f"nests containers deeper than {MAX_DEPTH}")
        if parent.weight > max_expanded_bytes:
            raise PickleRefused(f"expands to more than {describe_bytes(max_expanded_bytes)} when its shared parts are "
                                f"counted each time they are used")

    def open_container(node: Node, kinds: tuple[str, ...], op: str) -> Node:
        if node.kind not in kinds:
            raise PickleRefused(f"applies {op} to a {node.kind}")
        if node.sealed:
            raise PickleRefused(f"changes a container ({node.kind}) after placing it in another ({op})")
        return node

    def tuple_of(items: list[Node]) -> Node:
        node = Node("tuple")
        for item in items:
            place(item, node)
        node.value = node.items
        node.sealed = True
        return node

    def set_items(target: Node, items: list[Node], op: str) -> None:
        open_container(target, ("dict", "odict"), op)
        if len(items) % 2:
            raise PickleRefused(f"is a malformed pickle (odd {op})")
        for key, value in zip(items[::2], items[1::2]):
            if key.kind not in ("int", "str", "float", "bool", "none", "bytes") and not _hashable_tuple(key):
                raise PickleRefused(f"uses a {key.kind} as a dict key")
            place(key, target)
            place(value, target)

    protocol_seen = False
    max_opcodes = max_expanded_bytes // NODE_BYTES
    for count, (opcode, arg, _) in enumerate(_opcodes(data)):
        if count > max_opcodes:
            raise PickleRefused(f"has more than {max_opcodes} pickle opcodes, more values than its "
                                f"{describe_bytes(max_expanded_bytes)} budget can hold")
        name = opcode.name
        if name == "PROTO":
            if arg != 2 or protocol_seen:
                raise PickleRefused(f"is a protocol-{arg} pickle (the recipes wrote protocol 2)")
            protocol_seen = True
        elif not protocol_seen:
            raise PickleRefused("does not start with a protocol-2 header")
        elif name == "STOP":
            if len(stack) != 1 or stack[0].kind not in ("dict", "odict"):
                raise PickleRefused("does not hold a single dict")
            unused = set(storages) - used
            if unused:
                raise PickleRefused(f"holds storage records no tensor uses ({sorted(unused)[:5]})")
            return
        elif name in _SCALAR_OPS:
            value = _SCALAR_OPS[name]
            stack.append(Node("none" if value is None else "bool", value=value))
        elif name in _INT_OPS:
            stack.append(Node("int", value=arg))
        elif name == "BINFLOAT":
            stack.append(Node("float", value=arg))
        elif name == "BINUNICODE":
            stack.append(Node("str", value=arg, weight=NODE_BYTES + len(arg)))
        elif name == "EMPTY_DICT":
            stack.append(Node("dict"))
        elif name == "EMPTY_LIST":
            stack.append(Node("list"))
        elif name == "EMPTY_TUPLE":
            stack.append(tuple_of([]))
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "TUPLE":
            stack.append(tuple_of(pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [pop() for _ in range(n)][::-1]
            stack.append(tuple_of(items))
        elif name == "APPEND":
            item = pop()
            place(item, open_container(stack[-1] if stack else _MARK, ("list",), name))
        elif name == "APPENDS":
            items = pop_mark()
            target = open_container(stack[-1] if stack else _MARK, ("list",), name)
            for item in items:
                place(item, target)
        elif name == "SETITEM":
            value, key = pop(), pop()
            set_items(stack[-1] if stack else _MARK, [key, value], name)
        elif name == "SETITEMS":
            items = pop_mark()
            set_items(stack[-1] if stack else _MARK, items, name)
        elif name in ("BINPUT", "LONG_BINPUT"):
            if not stack or stack[-1] is _MARK:
                raise PickleRefused("is a malformed pickle (memoises nothing)")
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise PickleRefused("is a malformed pickle (reads an unset memo)")
            stack.append(memo[arg])
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            # Protocol 2 names Python 3 modules by their Python 2 names; torch maps them back.
            module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (_compat_pickle.IMPORT_MAPPING.get(module, module), attr))
            if (module, attr) not in _CALLABLES and not (module == "torch" and attr in STORAGE_ITEM_SIZE):
                raise PickleRefused(f"asks to build `{module}.{attr}`, which no checkpoint of these recipes holds")
            stack.append(Node("global", value=(module, attr)))
        elif name == "BINPERSID":
            stack.append(_storage(pop(), storages, storage_types, used))
        elif name == "REDUCE":
            args, func = pop(), pop()
            stack.append(_call(func, args))
        elif name == "BUILD":
            state = pop()
            target = stack[-1] if stack else _MARK
            _build(target, state)
            place(state, target)
        else:
            raise PickleRefused(f"uses the pickle opcode {name}, which no checkpoint of these recipes needs")
    raise PickleRefused("is a malformed pickle (no STOP)")


def _opcodes(data: bytes):  # type: ignore[no-untyped-def]
    try:
        yield from pickletools.genops(data)
    except (ValueError, EOFError, UnicodeDecodeError, OverflowError) as ex:
        raise PickleRefused(f"is a malformed pickle ({ex})") from None


def _hashable_tuple(node: Node) -> bool:
    return node.kind == "tuple" and all(i.kind in ("int", "str", "float", "bool", "none") for i in node.value)


def _storage(pid: Node, storages: dict[str, int], types: dict[str, str], used: set[str]) -> Node:
    """``('storage', torch.<T>Storage, key, location, length)``, checked against its record."""
    parts = pid.value if pid.kind == "tuple" else None
    if (parts is None or len(parts) != 5 or parts[0].value != "storage" or parts[1].kind != "global"
            or parts[2].kind != "str" or parts[3].kind != "str" or parts[4].kind != "int"):
        raise PickleRefused("names a persistent object that is not a storage")
    module, type_name = parts[1].value
    key, location, length = parts[2].value, parts[3].value, parts[4].value
    if module != "torch" or type_name not in STORAGE_ITEM_SIZE:
        raise PickleRefused(f"names a storage of type {module}.{type_name}")
    if not (location == "cpu" or location.startswith("cuda")) or len(location) > 16:
        raise PickleRefused(f"places a storage on {location[:32]!r}")
    if key not in storages:
        raise PickleRefused(f"uses the storage record {key!r}, which it does not hold")
    expected = length * STORAGE_ITEM_SIZE[type_name]
    if length < 0 or storages[key] != expected:
        raise PickleRefused(f"says storage {key!r} holds {length} {type_name} elements ({expected} bytes), but its "
                            f"record has {storages[key]} bytes")
    if types.setdefault(key, type_name) != type_name:
        raise PickleRefused(f"reads storage {key!r} as two types")
    used.add(key)
    node = Node("storage", value=(type_name, length, key))
    node.sealed = True
    return node


def _ints(node: Node, what: str) -> list[int]:
    if node.kind != "tuple" or len(node.value) > MAX_RANK or any(i.kind != "int" for i in node.value):
        raise PickleRefused(f"rebuilds a tensor whose {what} is not a short tuple of integers")
    return [i.value for i in node.value]


def _call(func: Node, args: Node) -> Node:
    if func.kind != "global" or args.kind != "tuple":
        raise PickleRefused(f"calls a {func.kind}")
    module, name = func.value
    items = args.value
    if (module, name) == ("collections", "OrderedDict"):
        if items:
            raise PickleRefused("calls OrderedDict with arguments")
        return Node("odict")
    if (module, name) == ("_codecs", "encode"):
        if len(items) != 2 or items[0].kind != "str" or items[1].kind != "str" or items[1].value != "latin1":
            raise PickleRefused("calls _codecs.encode with anything but (text, 'latin1')")
        return Node("bytes", weight=NODE_BYTES + len(items[0].value))
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
        return _tensor(items)
    raise PickleRefused(f"calls `{module}.{name}`, which only names a type")


def _tensor(items: list[Node]) -> Node:
    """``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict())``."""
    if len(items) != 6:
        raise PickleRefused(f"rebuilds a tensor with {len(items)} arguments (torch.save writes 6)")
    storage, offset, size_node, stride_node, requires_grad, hooks = items
    if storage.kind != "storage" or offset.kind != "int" or requires_grad.kind != "bool":
        raise PickleRefused("rebuilds a tensor from something other than (storage, offset, size, stride, flag, hooks)")
    if hooks.kind != "odict" or hooks.items or hooks.weight != NODE_BYTES:
        raise PickleRefused("rebuilds a tensor with backward hooks")
    type_name, length, _ = storage.value
    size, stride = _ints(size_node, "size"), _ints(stride_node, "stride")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) or offset.value < 0:
        raise PickleRefused("rebuilds a tensor with a negative or mismatched size, stride or offset")
    numel = 1
    for s in size:
        numel *= s
    if numel:
        last = offset.value + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= length or numel > length - offset.value:
            raise PickleRefused(f"rebuilds a tensor of {numel} elements from a storage of {length} (a view that repeats "
                                f"or reaches past its storage)")
    hooks.sealed = True
    node = Node("tensor", weight=NODE_BYTES + numel * STORAGE_ITEM_SIZE[type_name])
    node.sealed = True
    return node


def _build(target: Node, state: Node) -> None:
    """``BUILD`` only sets the ``_metadata`` of a module state dict (an ``OrderedDict``)."""
    if target.kind != "odict" or target.sealed:
        raise PickleRefused(f"sets the state of a {target.kind} (BUILD), which the recipes never save")
    keys = state.items[::2] if state.kind == "dict" else None
    if keys is None or [k.value for k in keys] != ["_metadata"] or state.items[1].kind not in ("dict", "odict"):
        raise PickleRefused("sets attributes of a state dict other than its _metadata (BUILD)")
