"""Writing safetensors files with the permissions of every other file the plugin writes.

``safetensors.torch.save_file`` creates its file with mode 0600 whatever the umask, so an
embeddings file written beside a 0644 JSON could not be read by the rest of a group. Files
written here get ``0666`` less the process's umask (0644 under the usual 022), as ``open``
gives, and appear whole or not at all (written beside, then renamed).
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (``os.umask`` can
    only be read by setting it, which another thread could see for an instant)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_safetensors(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> Path:
    """``tensors`` (made contiguous) and ``metadata`` to ``path``, mode ``0666 & ~umask``."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.chmod(0o666 & ~current_umask())
    tmp.replace(path)
    return path
