"""Embeddings of a split, computed once and reused: safetensors files keyed by what made them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor
from torch.nn import Module

from aape_plugin.safetensors_files import save_safetensors


class EmbeddingCache:
    """``folder/<hash>.safetensors`` + ``folder/<hash>.json`` (the key, for humans).

    The key holds everything the embeddings depend on (encoder source and weights file
    fingerprint, task, split, clip list, crop, front end), so a changed input never reuses a
    stale file. safetensors holds tensors only: loading one cannot run code.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def digest(key: dict[str, object]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def has(self, key: dict[str, object]) -> bool:
        return (self.folder / f"{self.digest(key)}.safetensors").is_file()

    def get(self, key: dict[str, object]) -> dict[str, Tensor] | None:
        path = self.folder / f"{self.digest(key)}.safetensors"
        return load_file(str(path)) if path.is_file() else None

    def put(self, key: dict[str, object], tensors: dict[str, Tensor]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = self.digest(key)
        save_safetensors(tensors, self.folder / f"{name}.safetensors")  # atomic: a crash leaves no half file
        (self.folder / f"{name}.json").write_text(json.dumps(key, indent=1, sort_keys=True, default=str) + "\n")
        return self.folder / f"{name}.safetensors"


def weights_digest(module: Module) -> str:
    """A hash of a module's parameters and buffers (names, shapes, dtypes and bytes): what its
    embeddings depend on, whatever file or run folder it was loaded from."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def clips_fingerprint(paths: list[Path]) -> str:
    """Paths, sizes and modification times of the clips of a split: a rebuilt corpus (same
    names, new audio) gets a new fingerprint, so embeddings of the old files are not reused."""
    h = hashlib.sha256()
    for path in paths:
        stat = path.stat() if path.exists() else None
        h.update(f"{path}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1};".encode())
    return h.hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    """Size and modification time of every file under ``path`` (weights identify by these)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in files).encode()).hexdigest()[:16]
