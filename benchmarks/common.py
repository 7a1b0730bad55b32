"""Shared benchmark helpers: interleaved timing with medians, memory of a training step,
and a record of the machine."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


@dataclass
class Timing:
    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None
) -> dict[str, Timing]:
    """Times each function ``repeats`` times, alternating between them (A B A B ...), so that
    load changes on a shared machine hit every variant alike; returns all samples."""
    sync = sync or (lambda: None)

    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync()

    samples: dict[str, list[float]] = {name: [] for name in fns}

    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - start)

    return {name: Timing(name, s) for name, s in samples.items()}


def saved_activation_bytes(step: Callable[[], Tensor]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of ``step()``'s loss.

    On CPU there is no allocator high-water mark; the saved activations are what a training
    step holds on top of parameters, gradients and optimiser state, and they are exact and
    repeatable. (Tensors saved twice are counted once per distinct storage.)
    """
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()

    loss.backward()

    return sum(seen.values())


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    info = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
    }

    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()

    return info


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def save_report(out: Path, text: str, results: dict) -> None:
    """Writes a benchmark's page (Markdown) and its raw numbers (JSON next to it), and prints it."""
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(text)
