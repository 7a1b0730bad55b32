"""Finds the host syncs of a training step on a machine without a GPU.

On a GPU a step that reads a device value on the host (``.item()``, ``.tolist()``, ``bool(t)``,
``.cpu()``, ``.to("cpu")``), runs an operation whose output size depends on the data
(``nonzero``, one-argument ``torch.where``, a boolean-mask index or assignment, ``unique``,
``masked_select``) or copies pageable host memory to the device without ``non_blocking`` waits
until the device has caught up. On the CPU none of that waits, so this module records where it
*would*, with two PyTorch modes sharing one bookkeeping:

* which tensors live on the host: those made by a factory without a ``device`` (``torch.tensor``,
  ``torch.zeros(n)``, ...), the ones a step keeps there by design (named by the caller), and
  anything computed from host tensors alone. Every other tensor is a device tensor, including
  ones made before the detector started (parameters, optimiser and metric states, the batch):
  a tensor it knows nothing about counts as on the device, so a read is never missed;
* a ``TorchDispatchMode`` sees every ATen operation of the step (forward, backward, the
  optimiser, hooks): ``_local_scalar_dense`` (``item``, ``bool``, ``int``, ``float``), the
  data-dependent operations above and copies between host and device tensors;
* a ``TorchFunctionMode`` sees the Python calls that do not reach ATen on the CPU (``tolist``,
  ``numpy``, ``cpu``, ``to``), and which ``device`` objects name the device: the run's own, and
  any read from a device tensor's ``.device``; ``"cpu"``, ``torch.device("cpu")`` and fairseq2's
  ``CPU`` name the host.

The run's device must be a ``device`` object of its own, distinct from ``torch.device("cpu")``
and fairseq2's ``CPU``: the tests run on ``FAIRSEQ2_DEVICE=cpu:0``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary

aten = torch.ops.aten

DATA_DEPENDENT = {
    aten._local_scalar_dense: "item",
    aten.nonzero: "nonzero",
    aten.nonzero_numpy: "nonzero",
    aten.argwhere: "nonzero",
    aten.masked_select: "masked_select",
    aten._unique: "unique",
    aten._unique2: "unique",
    aten.unique_dim: "unique",
    aten.unique_consecutive: "unique",
    aten.unique_dim_consecutive: "unique",
    aten.bincount: "bincount",
    aten.equal: "equal",
    aten.is_nonzero: "bool",
}
"""ATen operations that read a device value on the host, or whose output size depends on one."""

INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}

FACTORIES = {
    "tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "empty", "full", "arange", "range", "linspace",
    "logspace", "rand", "randn", "randint", "randperm", "eye", "empty_strided", "scalar_tensor", "tril_indices",
    "triu_indices",
}
"""Functions that make a tensor from nothing: on the host unless given a device."""

HOST_READS = {"tolist": "tolist", "numpy": "numpy", "__array__": "numpy", "cpu": "cpu", "item": "item"}


class HostSyncs:
    """What a step would wait for on a GPU, step by step.

    Use :meth:`observe` around the code of one step (it installs both modes); read
    :attr:`events` (one string per host sync, in order) and reset it with :meth:`take`.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.events: list[str] = []
        self._host = WeakTensorKeyDictionary()
        self._device_objects: list[torch.device] = [device]
        self._host_objects: list[torch.device] = [torch.device("cpu")]
        from fairseq2.device import CPU

        self._host_objects.append(CPU)
        self._functions = _FunctionLevel(self)
        self._dispatch = _DispatchLevel(self)

    def keep_on_host(self, tensors: Iterable[Tensor]) -> None:
        """Tensors a step keeps on the host by design (e.g. AdamW's step counts, clip indices)."""
        for t in tensors:
            self._host[t] = True

    def on_host(self, t: Tensor) -> bool:
        return t in self._host

    def mark_host(self, value: Any) -> None:
        for leaf in pytree.tree_leaves(value):
            if isinstance(leaf, Tensor):
                self._host[leaf] = True

    def names_device(self, target: Any) -> bool | None:
        """Whether ``target`` (an argument naming where a tensor goes) is the device (True), the
        host (False), or says nothing about it (None)."""
        if target is None:
            return None
        if isinstance(target, Tensor):
            return not self.on_host(target)
        if isinstance(target, torch.device):
            if any(target is d for d in self._device_objects):
                return True
            if any(target is d for d in self._host_objects):
                return False
            if target.type != "cpu":
                return True
            # A CPU device object of unknown origin (e.g. the keys of torch's own grouping of
            # tensors by device, made in C++): on a GPU it would name the tensors' own device.
            return None
        if isinstance(target, str):
            return not target.startswith("cpu")
        if isinstance(target, int):
            return True
        return None

    def note_device_object(self, device: torch.device) -> None:
        self._device_objects.append(device)

    def note_host_object(self, device: torch.device) -> None:
        self._host_objects.append(device)

    def flag(self, what: str) -> None:
        self.events.append(what)

    def take(self) -> list[str]:
        events, self.events = self.events, []
        return events

    def observe(self) -> _Observation:
        return _Observation(self)


class _Observation:
    def __init__(self, syncs: HostSyncs) -> None:
        self._syncs = syncs

    def __enter__(self) -> HostSyncs:
        self._syncs._functions.__enter__()
        self._syncs._dispatch.__enter__()
        return self._syncs

    def __exit__(self, *exc: object) -> None:
        self._syncs._dispatch.__exit__(*exc)
        self._syncs._functions.__exit__(*exc)
        self._syncs._device_objects[1:] = []
        self._syncs._host_objects[2:] = []


def _target_of_to(args: tuple, kwargs: dict) -> Any:
    """The device (or tensor) ``Tensor.to(...)`` sends its tensor to, if it names one."""
    if "device" in kwargs:
        return kwargs["device"]
    if "other" in kwargs:
        return kwargs["other"]
    for arg in args[1:2]:
        if isinstance(arg, (torch.device, str, int, Tensor)):
            return arg
    return None


class _FunctionLevel(TorchFunctionMode):
    def __init__(self, syncs: HostSyncs) -> None:
        super().__init__()
        self.syncs = syncs

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        s = self.syncs
        name = getattr(func, "__name__", "")
        first = args[0] if args else None
        is_tensor = isinstance(first, Tensor)
        on_device = is_tensor and not s.on_host(first)

        if name == "__get__" and getattr(func, "__self__", None) is Tensor.device:
            result = func(*args, **kwargs)
            if on_device:
                s.note_device_object(result)
            return result
        if func is torch.device:
            result = func(*args, **kwargs)
            if result.type == "cpu":
                s.note_host_object(result)  # torch.device("cpu") written in the step: the host
            return result

        to_host = False
        if is_tensor and name in HOST_READS and name != "item":
            to_host = True
            if on_device:
                s.flag(HOST_READS[name])
        elif is_tensor and name in ("to", "cuda"):
            target = _target_of_to(args, kwargs) if name == "to" else "cuda"
            where = s.names_device(target)
            non_blocking = bool(kwargs.get("non_blocking", False)) or any(a is True for a in args[2:3])
            if where is False:
                to_host = True
                if on_device:
                    s.flag("to('cpu')")
            elif where is True and not on_device and not non_blocking:
                s.flag("blocking host-to-device copy")
        elif is_tensor and name == "new_tensor" and on_device:
            s.flag("blocking host-to-device copy (new_tensor)")

        result = func(*args, **kwargs)

        factory = name in FACTORIES and not any(isinstance(a, Tensor) for a in pytree.tree_leaves((args, kwargs)))
        if factory:
            where = s.names_device(kwargs.get("device"))
            if not where:
                s.mark_host(result)
            elif name in ("tensor", "as_tensor", "asarray"):
                s.flag(f"blocking host-to-device copy (torch.{name} with a device)")
        elif to_host:
            s.mark_host(result)
        return result


class _DispatchLevel(TorchDispatchMode):
    def __init__(self, syncs: HostSyncs) -> None:
        super().__init__()
        self.syncs = syncs

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        s = self.syncs
        packet = func.overloadpacket
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, Tensor)]
        on_device = any(not s.on_host(t) for t in tensors)

        if on_device:
            if packet in DATA_DEPENDENT:
                s.flag(DATA_DEPENDENT[packet])
            elif packet in INDEXING:
                indices = args[1] if len(args) > 1 else kwargs.get("indices", [])
                if any(isinstance(i, Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or []):
                    s.flag("boolean-mask index")
            elif packet is aten.repeat_interleave and "output_size" not in kwargs and isinstance(args[0], Tensor) and len(args) < 3:
                s.flag("repeat_interleave without output_size")

        if packet is aten.copy_:
            dst, src = args[0], args[1]
            non_blocking = bool(args[2]) if len(args) > 2 else bool(kwargs.get("non_blocking", False))
            if not s.on_host(src) and s.on_host(dst):
                s.flag("device-to-host copy")
            elif s.on_host(src) and not s.on_host(dst) and not non_blocking:
                s.flag("blocking host-to-device copy")
            return func(*args, **kwargs)

        result = func(*args, **kwargs)
        if tensors and not on_device:
            s.mark_host(result)
        return result
