"""The demo data shipped inside the package, addressable as the root ``@demo``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aape_plugin.data.errors import AudioDataError

DEMO_ROOT = "@demo"
"""Write this as a data set's root to mean the demo data shipped with aape_plugin (asset cards
cannot hold paths relative to themselves)."""


def demo_root() -> Path:
    """The folder of the shipped demo data (``assets/demo`` in a checkout)."""
    root = Path(str(files("aape_plugin.assets") / "demo"))
    if not (root / "pretrain.tsv").exists():
        raise AudioDataError(
            f"The demo data is missing from {root}. In a checkout, regenerate it with "
            f"`python -m aape_plugin.data.make_demo --out assets/demo`."
        )
    return root


def resolve_root(root: Path | str) -> Path:
    """``@demo`` (or ``@demo/sub/folder``) -> the shipped demo folder; other paths unchanged."""
    text = str(root)
    if text == DEMO_ROOT or text.startswith(DEMO_ROOT + "/"):
        return demo_root() / text[len(DEMO_ROOT) :].lstrip("/")
    return Path(text).expanduser()
